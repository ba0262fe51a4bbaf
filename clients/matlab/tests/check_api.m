function failures = check_api()
%CHECK_API  Checks of the public API that the golden vectors do not reach: validation
%   before sending, the smallest integer and length forms at every boundary, the
%   MATLAB/C pixel order, the struct view, JSON printing, the output bounds, the REQ
%   timeout (one socket to a port where nothing listens), and CURVE: reading key files
%   and a loopback publisher/subscriber. Prints failures; returns their number.
failures = 0;
checks = 0;
  function check(name, ok)
    checks = checks + 1;
    if ~ok
      failures = failures + 1;
      fprintf('FAIL api %s\n', name);
    end
  end
  function rejects(name, reason, f)
    try
      f();
      check(sprintf('%s: accepted, expected %s', name, reason), false);
    catch err
      check(sprintf('%s: %s (%s), expected %s', name, dd_reason(err), err.message, reason), ...
        strcmp(dd_reason(err), reason));
    end
  end
  function rejects_naming(name, text, f)
    % a usage error whose message says TEXT (a file name, a variable name)
    try
      f();
      check([name ': accepted'], false);
    catch err
      check(sprintf('%s: %s', name, err.message), strcmp(dd_reason(err), 'usage') && ...
        ~isempty(strfind(err.message, text)));
    end
  end

% Validation before sending, with the service's reason codes.
img = zeros(2, 3, 'uint16');
rejects('double image', 'dtype', @() dd_encode_frame(zeros(2, 3), 's1', 0));
rejects('logical image', 'dtype', @() dd_encode_frame(true(2, 3), 's1', 0));
rejects('3-D image', 'shape', @() dd_encode_frame(zeros(2, 3, 2, 'uint8'), 's1', 0));
rejects('16385 wide', 'shape', @() dd_encode_frame(zeros(1, 16385, 'uint8'), 's1', 0));
rejects('series .x', 'series', @() dd_encode_frame(img, '.x', 0));
rejects('series 65', 'series', @() dd_encode_frame(img, repmat('a', 1, 65), 0));
rejects('series a/b', 'series', @() dd_encode_frame(img, 'a/b', 0));
rejects('index -1', 'index', @() dd_encode_frame(img, 's1', -1));
rejects('index 2^40', 'index', @() dd_encode_frame(img, 's1', int64(2)^40));
rejects('index 1.5', 'index', @() dd_encode_frame(img, 's1', 1.5));
rejects('t_ns double', 't_ns', @() dd_encode_frame(img, 's1', 0, 't_ns', 1.7e18));
rejects('t_ns -1', 't_ns', @() dd_encode_frame(img, 's1', 0, 't_ns', int64(-1)));
rejects('t_ns 2^63', 't_ns', @() dd_encode_frame(img, 's1', 0, 't_ns', intmax('uint64')));
rejects('meta 8193', 'meta', @() dd_encode_frame(img, 's1', 0, 'meta', ...
  struct('text', repmat('m', 1, 8184))));
rejects('meta array', 'meta', @() dd_encode_frame(img, 's1', 0, 'meta', {1, 2}));
deep = {0};
for i = 1:13
  deep = {deep};
end  % 14 cells: header, meta and they make 16 levels
parts = dd_encode_frame(img, 's1', 0, 'meta', struct('a', {deep}));
check('meta nesting the header 16 levels is accepted', numel(parts) == 3);
rejects('meta nesting the header 17 levels', 'header_decode', ...
  @() dd_encode_frame(img, 's1', 0, 'meta', struct('a', {{deep}})));
check('levels as encoded', dd_nesting_levels(struct('a', [1 2], 'b', 'text')) == 2 && ...
  dd_nesting_levels(dd_map({'k'}, {{1, {2}}})) == 3 && dd_nesting_levels(5) == 0);
rejects('resend 1', 'resend', @() dd_encode_frame(img, 's1', 0, 'resend', 1));
rejects('start series', 'series', @() dd_encode_start(''));
rejects('labels double 0.5', 'dtype', @() dd_encode_set_rois([0 0.5]));
% set_rois' options: fit a logical, source 1 to 1024 characters (not bytes), no control
% character; the series stays optional before them.
rois = uint16([0 1]);
rejects_naming('source empty', 'got 0 characters', @() dd_encode_set_rois(rois, 'source', ''));
rejects_naming('source 1025', 'got 1025 characters', ...
  @() dd_encode_set_rois(rois, 's1', 'source', repmat('a', 1, 1025)));
rejects_naming('source tab', 'a control character', ...
  @() dd_encode_set_rois(rois, 'source', ['rois' char(9)]));
rejects_naming('fit 1', 'true or false', @() dd_encode_set_rois(rois, 'fit', 1));
rejects_naming('unknown option', 'unknown option fitted', ...
  @() dd_encode_set_rois(rois, 'fitted', true));
request = dd_msgpack_decode(dd_encode_set_rois(rois, 'source', repmat('a', 1, 1024)));
check('source of 1024 characters is sent', numel(dd_map_get(request, 'source')) == 1024);
request = dd_msgpack_decode(dd_encode_set_rois(rois, 'fit', true));
check('options without a series', ...
  isequal(request.keys, {'cmd', 'dtype', 'shape', 'labels', 'fit'}));
parts = dd_encode_frame(img, 's1', 7, 'meta', struct('text', repmat('m', 1, 8183)));
check('meta of exactly 8192 bytes is accepted', numel(parts) == 3);

% An integral double index is taken as the integer it is.
parts = dd_encode_frame(uint8(7), 's1', 3);
hdr = dd_msgpack_decode(parts{2});
check('index double -> int', isa(dd_map_get(hdr, 'index'), 'int64') && dd_map_get(hdr, 'index') == 3);

% Pixel order: MATLAB's H-by-W image goes out row by row, and comes back the same.
img = uint16([1 2 3; 4 5 6]);
parts = dd_encode_frame(img, 's1', 0);
check('payload is C order', isequal(parts{3}, uint8([1 0 2 0 3 0 4 0 5 0 6 0])));
check('shape is [H W]', isequal(dd_map_get(dd_msgpack_decode(parts{2}), 'shape'), ...
  {int64(2), int64(3)}));
msg = dd_decode_message(parts, 'strict', true);
check('image round trip', isequal(msg.image, img) && isa(msg.image, 'uint16'));
check('struct view', isequal(msg.header.shape, int64([2 3])) && msg.header.index == 0);

% Smallest forms at every boundary (msgpack rules, PROTOCOL.md section 4).
cases = {
  int64(127), '7f'; int64(128), 'cc80'; int64(255), 'ccff'; int64(256), 'cd0100';
  int64(65535), 'cdffff'; int64(65536), 'ce00010000'; int64(4294967295), 'ceffffffff';
  int64(4294967296), 'cf0000000100000000'; intmax('uint64'), 'cfffffffffffffffff';
  int64(-1), 'ff'; int64(-32), 'e0'; int64(-33), 'd0df'; int64(-128), 'd080';
  int64(-129), 'd1ff7f'; int64(-32768), 'd18000'; int64(-32769), 'd2ffff7fff';
  int64(-2147483648), 'd280000000'; int64(-2147483649), 'd3ffffffff7fffffff';
  intmin('int64'), 'd38000000000000000'; uint8(200), 'ccc8'; int8(-5), 'fb';
  1.5, 'cb3ff8000000000000'; single(1.5), 'cb3ff8000000000000'; true, 'c3'; false, 'c2';
  [], 'c0'; {}, '90'; struct(), '80'; '', 'a0'; dd_bin([]), 'c400';
  int64([1 2]), '920102'; {int64(1), 'a'}, '9201a161'};
for k = 1:size(cases, 1)
  got = lower(reshape(dec2hex(dd_msgpack_encode(cases{k, 1}), 2).', 1, []));
  check(sprintf('encode %s -> %s (got %s)', dd_json_encode(cases{k, 1}), cases{k, 2}, got), ...
    strcmp(got, cases{k, 2}));
  expected = cases{k, 1};
  if isstruct(expected) && ~dd_is_bin(expected)
    expected = dd_as_map(expected);            % a struct comes back as a map
  elseif isnumeric(expected) && numel(expected) > 1
    expected = num2cell(expected);             % a numeric vector comes back as a cell
  end
  back = dd_msgpack_decode(dd_msgpack_encode(cases{k, 1}));
  check(sprintf('decode %s', cases{k, 2}), values_equal(back, expected));
end
lengths = [31 32 255 256 65535 65536];
heads = {'bf', 'd920', 'd9ff', 'da0100', 'daffff', 'db00010000'};
for k = 1:numel(lengths)
  b = dd_msgpack_encode(repmat('x', 1, lengths(k)));
  got = lower(reshape(dec2hex(b(1:numel(heads{k}) / 2), 2).', 1, []));
  check(sprintf('str of %d -> %s', lengths(k), heads{k}), strcmp(got, heads{k}));
end
b = dd_msgpack_encode(num2cell(int64(ones(1, 15))));
check('array of 15', b(1) == hex2dec('9f'));
b = dd_msgpack_encode(num2cell(int64(ones(1, 16))));
check('array of 16', isequal(b(1:3), uint8([220 0 16])));
keys = arrayfun(@(i) sprintf('k%d', i), 1:16, 'UniformOutput', false);
b = dd_msgpack_encode(dd_map(keys, num2cell(int64(1:16))));
check('map of 16', isequal(b(1:3), uint8([222 0 16])));
check('float32 decodes to single', isa(dd_msgpack_decode(uint8([202 63 192 0 0])), 'single'));
rejects('ext type', 'header_decode', @() dd_msgpack_decode(uint8([212 1 2])));
rejects('c1', 'header_decode', @() dd_msgpack_decode(uint8(193)));
rejects('overlong utf8', 'header_decode', @() dd_msgpack_decode(uint8([162 192 128])));
rejects('surrogate', 'header_decode', @() dd_msgpack_decode(uint8([163 237 160 128])));
rejects('huge array', 'header_decode', @() dd_msgpack_decode(uint8([221 255 255 255 255])));
% libzmq binds tcp://127.0.0.1:99999 on port 34463, or waits there for a connect
for endpoint = {'tcp://127.0.0.1:99999', 'tcp://127.0.0.1:65536', 'tcp://127.0.0.1'}
  rejects(['control at ' endpoint{1}], 'usage', @() DDControl(endpoint{1}));
  rejects(['subscriber at ' endpoint{1}], 'usage', @() DDSubscriber(endpoint{1}));
  rejects(['publisher at ' endpoint{1}], 'usage', @() DDPublisher(endpoint{1}));
end
try
  DDControl('tcp://127.0.0.1:99999');
catch err
  check('a remapped port names the rule', ~isempty(strfind(err.message, ...
    'cannot connect to tcp://127.0.0.1:99999: expected a TCP endpoint tcp://host:port')));
end
% a matrix went out flattened in column order (a C reader saw its transpose)
rejects('numeric matrix in meta', 'meta', ...
  @() dd_encode_frame(img, 's1', 0, 'meta', struct('m', [1 2; 3 4])));
rejects('cell matrix', 'header_decode', @() dd_msgpack_encode({1 2; 3 4}));
check('column vector is an array', isequal(dd_msgpack_encode([1; 2]), dd_msgpack_encode([1 2])));
check('cell of rows keeps a matrix', numel(dd_msgpack_decode(dd_msgpack_encode({[1 2], [3 4]}))) == 2);

% Canonical key order, whatever order the struct has.
h = struct('shape', int64([1 1]), 'x_note', 'a', 'v', int64(1), 'model', 'm', 'series', 's');
m = dd_msgpack_decode(dd_encode_header(h));
check('canonical order', isequal(m.keys, {'v', 'series', 'shape', 'model', 'x_note'}));

% Exact integers in text, the struct view of odd keys, JSON lines.
check('int64 text', strcmp(dd_int_to_string(int64(1700000000123456789)), '1700000000123456789'));
check('uint64 text', strcmp(dd_int_to_string(intmax('uint64')), '18446744073709551615'));
check('int64 min text', strcmp(dd_int_to_string(intmin('int64')), '-9223372036854775808'));
s = dd_to_struct(dd_map({'x-vendor', 'end', '1a'}, {1, 2, 3}));
check('field names', isequal(fieldnames(s)', {'x_vendor', 'end_', 'x1a'}));
json = dd_json_encode(dd_map({'a', 'b', 'c', 'd'}, {uint64(18446744073709551615), ...
  {0, NaN, -Inf}, dd_bin([1 2 3]), []}));
check(['json ' json], strcmp(json, '{"a":18446744073709551615,"b":[0.0,NaN,-Infinity],"c":"<bin 3 bytes>","d":null}'));
now_ns = dd_now_ns();
check('dd_now_ns is int64 after 2020', isa(now_ns, 'int64') && now_ns > int64(1577836800) * 1e9);

% Output is decoded against the output bounds (DD_OUTPUT_BOUNDS), input against the
% input limits: a traces message with 20,000 ROIs has a row per ROI and a 100 KB header.
  function parts = traces(rois, nlabels)
    hdr = dd_map({'v', 'dtype', 'shape', 'labels'}, ...
      {int64(1), '<f4', {int64(rois), int64(3)}, int64(70000 + (0:nlabels - 1))});
    parts = dd_encode_message('traces', hdr, zeros(rois, 3, 'single'));
  end
small = struct('max_header_bytes', 1024, 'max_meta_bytes', 8192, 'max_side', 64, ...
  'max_payload_bytes', 4096);
msg = dd_decode_message(traces(20000, 20000));
check('20,000 ROIs decode as output', isequal(size(msg.image), [20000 3]));
rejects('20,000 ROIs as input', 'header_size', ...
  @() dd_decode_message(traces(20000, 20000), 'strict', true));
rejects('header over 16 x 1 KiB', 'header_size', ...
  @() dd_decode_message(traces(1, 3300), 'limits', small));
msg = dd_decode_message(traces(1, 1600), 'limits', small);
check('header under 16 x 1 KiB', numel(msg.payload) == 12);
msg = dd_decode_message(traces(1365, 0), 'limits', small);
check('payload of 4 x 4096 bytes', numel(msg.payload) == 16380);
rejects('payload over 4 x 4096 bytes', 'payload_size', ...
  @() dd_decode_message(traces(1366, 0), 'limits', small));

% A REQ socket that timed out is replaced: the next request times out again instead of
% failing with "cannot send" (EFSM).
ctl = DDControl('tcp://127.0.0.1:9', 'timeout', 0.2);
rejects('control timeout', 'timeout', @() ctl.status());
rejects('control timeout again', 'timeout', @() ctl.pause());
ctl.close();

% A bind or connect that fails is a transport error naming the endpoint.
taken = DDPublisher('tcp://127.0.0.1:*', 'bind', true, 'linger', 0);
try
  DDPublisher(taken.endpoint, 'bind', true, 'linger', 0);
  check('bind a port in use: accepted', false);
catch err
  check(['bind a port in use: ' err.message], strcmp(dd_reason(err), 'transport') && ...
    ~isempty(strfind(err.message, ['cannot bind ' taken.endpoint])));
end
taken.close(0);
try
  DDSubscriber('127.0.0.1:5556');
  check('connect without tcp://: accepted', false);
catch err
  check(['connect without tcp://: ' err.message], strcmp(dd_reason(err), 'usage') && ...
    ~isempty(strfind(err.message, 'expected an endpoint like tcp://')));
end

% A subscriber with no topic would receive nothing: refused.
rejects('subscriber without a topic', 'usage', @() DDSubscriber('tcp://127.0.0.1:9', {}));

% A PUSH send waits in non-blocking tries (a blocking one cannot be interrupted) and
% gives up after its timeout: bound, with no service connected.
pub = DDPublisher('tcp://127.0.0.1:*', 'bind', true, 'timeout', 0.2, 'linger', 0);
rejects('push without a service', 'timeout', @() pub.start_series('s1'));
pub.close(0);

% CURVE keys from `deepdenoise keys` files (two pairs made once with pyzmq's
% zmq.curve_keypair()), and a bound CURVE server with a connecting CURVE client.
client = struct('public', 'Mj>LYr>J2}9Ng&bg@sI4P+K@kkNRc(+LI66)TEX=', ...
  'secret', '4qA}jrCwX!]BSw)F%.nmZ98480T<T71-tJ!ko:PP');
server = struct('public', 'W%$MjDsTjG5.tbCE!<=nA+<Ced-krJALtfA}@@bl', ...
  'secret', 'Y!$rBJPhoT80Bcp.zCag^T-!9HQ-a&diM-K@lxZb');
folder = tempname();
mkdir(folder);
rig = certificate(folder, 'rig.key_secret', client.public, client.secret);
service = certificate(folder, 'service.key', server.public, '');
keys = dd_curve_keys(rig, service);
check('curve keys read', isequal(keys, struct('public', client.public, 'secret', client.secret, ...
  'server', server.public)));
check('curve keys without the service key', isempty(dd_curve_keys(rig).server));
rejects_naming('public key where the secret one is needed', ...
  [service ' holds no secret key: give the NAME.key_secret file, not the public NAME.key'], ...
  @() dd_curve_keys(service));
short = certificate(folder, 'short.key_secret', client.public(2:end), client.secret);
rejects_naming('a key of 39 characters', ...
  [short ': expected the public-key as 40 Z85 characters, got 39 characters'], ...
  @() dd_curve_keys(short, service));
odd = certificate(folder, 'odd.key', [server.public(2:end) '~'], '');
rejects_naming('a key with a character outside Z85', 'got a character outside Z85', ...
  @() dd_curve_keys(rig, odd));
hashes = certificate(folder, 'hashes.key', repmat('#', 1, 40), '');   % '#' is 84: > 2^32 - 1
rejects_naming('40 Z85 characters that are no key', ...
  [hashes ': the public-key is not a valid Z85 key'], @() dd_curve_keys(rig, hashes));
unquoted = fullfile(folder, 'unquoted.key_secret');   % unquoted, '#' is a Z85 character
fid = fopen(unquoted, 'w');
fprintf(fid, 'curve\n    public-key = %s#  \n    secret-key = %s\n', client.public(1:39), ...
  client.secret);
fclose(fid);
system(sprintf('chmod 600 "%s"', unquoted));
check('an unquoted key with # in it', strcmp(dd_curve_keys(unquoted).public, [client.public(1:39) '#']));
saved_home = getenv('HOME');
setenv('HOME', folder);
check('~/ is the home folder', strcmp(dd_curve_keys('~/rig.key_secret').secret, client.secret));
setenv('HOME', saved_home);
if isunix()
  shared = certificate(folder, 'shared.key_secret', client.public, client.secret);
  system(sprintf('chmod 644 "%s"', shared));   % as pyzmq's create_certificates writes it
  lastwarn('');
  dd_curve_keys(shared);
  [said, id] = lastwarn();
  check(['a secret file others may read: ' said], strcmp(id, 'deepdenoise:curve') && ...
    strcmp(said, ['the secret key file ' shared ' is readable by other users: chmod 600 it']));
  lastwarn('');
  dd_curve_keys(rig);
  check('a secret file of mode 600: no warning', isempty(lastwarn()));
end
missing = fullfile(folder, 'missing.key_secret');
rejects_naming('a missing file', ['cannot read the CURVE key file ' missing], ...
  @() dd_curve_keys(missing, service));
ctl = DDControl('tcp://127.0.0.1:9', 'timeout', 0.2, 'curve', keys);
rejects('curve control timeout', 'timeout', @() ctl.status());
try
  ctl.pause();                      % the REQ socket reopened with the keys set again
  check('curve control timeout again: answered', false);
catch err
  check(['curve control timeout again: ' err.message], strcmp(dd_reason(err), 'timeout') && ...
    ~isempty(strfind(err.message, ...
    ' Is this client''s public key in the service''s security.clients folder?')));
end
ctl.close();
pub = DDPublisher('tcp://127.0.0.1:9', 'mode', 'pub', 'bind', false, 'linger', 0, 'curve', keys);
try
  pub.wait_for_subscriber(0.2);     % nothing there: no subscriber comes
  check('curve wait for subscriber: one came', false);
catch err
  check(['curve wait for subscriber: ' err.message], strcmp(dd_reason(err), 'timeout') && ...
    ~isempty(strfind(err.message, 'security.clients folder?')));
end
pub.close(0);
rejects_naming('connecting without the service key', 'service''s public key (service.key)', ...
  @() DDControl('tcp://127.0.0.1:9', 'curve', dd_curve_keys(rig)));
saved = {getenv('DEEPDENOISE_CLIENT_KEY'), getenv('DEEPDENOISE_SERVER_KEY')};
setenv('DEEPDENOISE_CLIENT_KEY', '');
setenv('DEEPDENOISE_SERVER_KEY', '');
check('no key variables: no keys', isempty(dd_curve_env()));
setenv('DEEPDENOISE_CLIENT_KEY', rig);
rejects_naming('only the client key variable', 'DEEPDENOISE_SERVER_KEY is not set', ...
  @() dd_curve_env());
setenv('DEEPDENOISE_SERVER_KEY', service);
check('both key variables', isequal(dd_curve_env(), keys));
setenv('DEEPDENOISE_CLIENT_KEY', saved{1});
setenv('DEEPDENOISE_SERVER_KEY', saved{2});

own = dd_curve_keys(certificate(folder, 'acquisition.key_secret', server.public, server.secret));
remove_folder(folder);
pub = DDPublisher('tcp://127.0.0.1:*', 'mode', 'pub', 'Curve', own, 'linger', 0);
sub = DDSubscriber(pub.endpoint, {'frame'}, 'curve', ...
  struct('public', client.public, 'secret', client.secret, 'server', server.public));
pub.wait_for_subscriber(30);
pub.send_frame(uint8([1 2]), 's1', 0);
msg = sub.recv(30);
check('a frame over CURVE', ~isempty(msg) && isequal(msg.image, uint8([1 2])));
sub.close();
pub.close(0);

fprintf('api: %d checks, %d failures\n', checks, failures);
end

function file = certificate(folder, name, public, secret)
% A certificate as pyzmq's create_certificates writes it ('' secret: a public NAME.key).
file = fullfile(folder, name);
fid = fopen(file, 'w');
fprintf(fid, '#   ****  Generated by a test  ****\n\nmetadata\ncurve\n    public-key = "%s"\n', public);
if ~isempty(secret)
  fprintf(fid, '    secret-key = "%s"\n', secret);
end
fclose(fid);
if ~isempty(secret) && isunix()
  system(sprintf('chmod 600 "%s"', file));   % else loading it warns (others may read it)
end
end

function remove_folder(folder)
if dd_is_octave()
  confirm_recursive_rmdir(false, 'local');
end
rmdir(folder, 's');
end
