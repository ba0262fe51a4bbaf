function rc = dd_publish(endpoint, series, frames, height, width, mode)
%DD_PUBLISH  Example acquisition: a series of uint16 frames to the service.
%   rc = dd_publish('tcp://127.0.0.1:5555', 'cell-01', 12, 24, 32)
%   rc = dd_publish('tcp://127.0.0.1:5555', 'cell-01', 12, 24, 32, 'pub')
%   Default ('push'): connects a PUSH socket to a service in PULL mode (input bound).
%   'pub': binds an XPUB socket at ENDPOINT for the service's SUB socket to connect
%   to, and waits (up to 30 s) for its subscription before the first frame.
%   Sends 'start', FRAMES frames of a test pattern (frame k: pixel (r, c) =
%   mod(1000*k + WIDTH*r + c, 65536), 0-based) with t_ns = 1700000000000000000 + k,
%   then 'end'. Numbers may be given as text (the command-line wrapper
%   bin/publish.m passes them so). Returns 0.
%   With DEEPDENOISE_CLIENT_KEY (this client's NAME.key_secret) and
%   DEEPDENOISE_SERVER_KEY (the service's service.key) set, it connects with CURVE
%   (DD_CURVE_ENV), for a service with [security]; only one of them set, or a key file
%   that is not one, is bad usage: returns 2, a message on stderr. With 'pub', the bound
%   XPUB is a CURVE server of this client's key pair (the service's input_server_key).
if nargin < 6
  mode = 'push';
end
try
  curve = dd_curve_env();           % [] when neither variable is set
catch err
  fprintf(2, 'publish: %s\n', err.message);
  rc = 2;
  return;
end
frames = as_number(frames);
height = as_number(height);
width = as_number(width);
if ~whole(frames, 0) || ~whole(height, 1) || ~whole(width, 1)
  fprintf(2, ['publish: expected FRAMES a whole number and HEIGHT, WIDTH whole numbers ' ...
    'of 1 or more\nusage: publish ENDPOINT SERIES FRAMES HEIGHT WIDTH [push|pub]\n']);
  rc = 2;
  return;
end
t0_ns = int64(1700000000) * int64(1000000000);   % above 2^53: built in int64, never double

if strcmp(mode, 'pub')
  pub = DDPublisher(endpoint, 'mode', 'pub', 'curve', curve);   % binds: a CURVE server
  pub.wait_for_subscriber(30);                          % PUB drops frames sent before
else
  pub = DDPublisher(endpoint, 'mode', 'push', 'bind', false, 'timeout', 30, 'curve', curve);
end
pub.start_series(series);
[cols, rows] = meshgrid(0:width - 1, 0:height - 1);    % rows(r, c) = r, cols(r, c) = c
for k = 0:frames - 1
  img = uint16(mod(1000 * k + width * rows + cols, 65536));   % H-by-W, MATLAB order
  pub.send_frame(img, series, k, 't_ns', t0_ns + k);
end
pub.end_series(series);
pub.close(1);        % give the I/O thread a second to hand the queue to the service
rc = 0;
end

function x = as_number(x)
if ischar(x)
  x = str2double(x);
end
end

function ok = whole(x, least)
ok = isnumeric(x) && isscalar(x) && isfinite(x) && x == round(x) && x >= least;
end
