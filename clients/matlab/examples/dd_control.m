function rc = dd_control(endpoint, cmd, varargin)
%DD_CONTROL  Example: one control command, the reply printed as one JSON line.
%   dd_control(ep, 'status')              also pause, resume, flush, stop
%   dd_control(ep, 'load_model', PATH)
%   dd_control(ep, 'end_series', SERIES)
%   dd_control(ep, 'set_rois' [, '--fit'] [, '--source', TEXT], FILE, DTYPE, HEIGHT,
%              WIDTH [, SERIES])
%       FILE holds the label image as raw bytes, C order (row after row), in DTYPE
%       ('|u1', '<u2', '<i2', '<u4', '<i4' or '<i8'), e.g. numpy's labels.tobytes();
%       --fit: it is the ROIs' extent from the frame's top-left corner (any frame that
%       holds it fits); --source: where the labels came from, 1 to 1024 characters
%       (the service's status names it)
%   dd_control(ep, 'set_rois', 'none' [, SERIES])      remove the ROIs (labels nil)
%   dd_control(ep, CMD)                   any other CMD goes out as {cmd: CMD}; the
%                                         service answers an unknown one with ok false
%   Returns 0 when the reply has ok true; 1 when it has ok false (the reply is printed
%   either way); 2 for bad usage (a wrong command line, a FILE that cannot be read or
%   does not hold HEIGHT x WIDTH labels of DTYPE, a request the encoder refuses); 3 when
%   no reply came within 10 s or another transport error (messages on stderr).
%   With DEEPDENOISE_CLIENT_KEY (this client's NAME.key_secret) and
%   DEEPDENOISE_SERVER_KEY (the service's service.key) set, it connects with CURVE
%   (DD_CURVE_ENV), for a service with [security]; only one of them set, or a key file
%   that is not one, is bad usage: returns 2, a message on stderr.

% Everything wrong before sending is a usage error: check and encode the request first.
if nargin < 2
  fprintf(2, 'usage: dd_control ENDPOINT CMD [ARGS...]\n');
  rc = 2;
  return;
end
try
  send = prepare(cmd, varargin);
  curve = dd_curve_env();           % [] when neither variable is set
catch err
  fprintf(2, 'control: %s\n', err.message);
  rc = 2;
  return;
end

% One round trip.
ctl = [];
try
  ctl = DDControl(endpoint, 'timeout', 10, 'curve', curve);
  send(ctl);
  rc = 0;
catch err
  if isempty(ctl) && strcmp(dd_reason(err), 'usage')
    fprintf(2, 'control: %s\n', err.message);   % a malformed ENDPOINT: nothing sent
    rc = 2;
    return;
  elseif isempty(ctl) || ~strcmp(dd_reason(err), 'refused') || isempty(ctl.last_reply_map)
    fprintf(2, 'control: %s\n', err.message);   % no reply, or no reply map with ok
    rc = 3;
  else
    rc = 1;                                      % ok false: printed below
  end
end
if rc ~= 3
  fprintf('%s\n', dd_json_encode(ctl.last_reply_map));
end
if ~isempty(ctl)
  ctl.close();
end
end

function send = prepare(cmd, args)
% A function of a DDControl that sends the request ARGS ask for, encoded once here so
% that a mistake shows before anything is sent.
switch cmd
  case 'load_model'
    check_count(cmd, args, 1, 1);
    path = args{1};
    dd_encode_request('load_model', 'path', path);
    send = @(ctl) ctl.load_model(path);
  case 'end_series'
    check_count(cmd, args, 1, 1);
    series = dd_check_series(args{1});
    send = @(ctl) ctl.end_series(series);
  case 'set_rois'
    if ~isempty(args) && strcmp(args{1}, 'none')
      check_count(cmd, args, 1, 2);
      series = optional(args, 2);
      dd_encode_set_rois([], series);
      send = @(ctl) ctl.set_rois([], series);
    else
      [options, args] = set_rois_options(args);
      check_count(cmd, args, 4, 5);
      labels = read_labels(args{1:4});
      series = optional(args, 5);
      dd_encode_set_rois(labels, series, options{:});
      send = @(ctl) ctl.set_rois(labels, series, options{:});
    end
  otherwise
    % status, pause, resume, flush, stop, or any other command as it is.
    check_count(cmd, args, 0, 0);
    dd_encode_request(cmd);
    send = @(ctl) ctl.request(cmd);
end
end

function [options, args] = set_rois_options(args)
% The leading --fit and --source TEXT of set_rois, as DD_ENCODE_SET_ROIS' name, value
% pairs, and the arguments after them.
options = {};
while ~isempty(args) && strncmp(args{1}, '--', 2)
  if strcmp(args{1}, '--fit')
    options = [options, {'fit', true}];
    args = args(2:end);
  elseif strcmp(args{1}, '--source') && numel(args) >= 2
    options = [options, {'source', args{2}}];
    args = args(3:end);
  else
    dd_error('usage', 'set_rois takes the options --fit and --source TEXT, got %s', args{1});
  end
end
end

function check_count(cmd, args, least, most)
if numel(args) < least || numel(args) > most
  dd_error('usage', '%s takes %d to %d arguments, got %d', cmd, least, most, numel(args));
end
end

function labels = read_labels(file, dtype, height, width)
shape = [side(height), side(width)];
fid = fopen(file, 'r');
if fid < 0
  dd_error('usage', 'cannot open %s', file);
end
bytes = fread(fid, Inf, '*uint8');
fclose(fid);
[~, itemsize] = dd_dtype_info(dtype);
if itemsize == 0 || numel(bytes) ~= prod(shape) * itemsize
  dd_error('usage', '%s: %d bytes is not a %dx%d %s image', file, numel(bytes), shape, dtype);
end
labels = dd_bytes_to_image(bytes, dtype, shape);   % H-by-W, as a MATLAB user has it
end

function n = side(text)
if ~ischar(text) || isempty(regexp(text, '^[0-9]+$', 'once')) || str2double(text) == 0
  dd_error('usage', 'HEIGHT and WIDTH must be positive integers, not %s', text);
end
n = str2double(text);
end

function value = optional(args, k)
value = '';
if numel(args) >= k
  value = args{k};
end
end
