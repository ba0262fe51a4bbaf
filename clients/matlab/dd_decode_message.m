function msg = dd_decode_message(parts, varargin)
%DD_DECODE_MESSAGE  Decode one message (a cell of uint8 parts as received).
%   msg = dd_decode_message(parts)                      service output (denoised, ...)
%   msg = dd_decode_message(parts, 'strict', true)      every input rule, in spec order
%   msg = dd_decode_message(parts, 'limits', dd_limits())
%   msg = dd_decode_message(parts, 'header_map', m)  % parts{2} already decoded to m
%
%   msg.topic       char, e.g. 'denoised'
%   msg.header      struct view of the header (DD_TO_STRUCT): msg.header.index, ...
%   msg.header_map  the exact header (DD_MAP): every key, in wire order
%   msg.image       H-by-W array of the dtype's class ([] without a payload)
%   msg.payload     the payload bytes, uint8 row ([] without a payload)
%
%   Default checks are those needed to read output safely: the part count, header size
%   and decoding, v == 1, and with a payload its dtype, shape and length, against the
%   output bounds (DD_OUTPUT_BOUNDS). With 'strict'
%   every rule for input messages of PROTOCOL.md section 6 is applied in its order, so
%   the error identifier 'deepdenoise:<reason>' carries the code the service reports.
strict = false;
limits = dd_limits();
hmap = [];
for i = 1:2:numel(varargin)
  switch varargin{i}
    case 'strict'
      strict = logical(varargin{i + 1});
    case 'limits'
      limits = varargin{i + 1};
    case 'header_map'
      hmap = varargin{i + 1};
    otherwise
      dd_error('usage', 'unknown option %s', varargin{i});
  end
end

nparts = numel(parts);
if nparts ~= 2 && nparts ~= 3
  dd_error('parts', 'expected 2 or 3 message parts, got %d', nparts);
end
max_header = limits.max_header_bytes;
if ~strict
  max_header = dd_output_bounds(limits);
end
if numel(parts{2}) > max_header
  dd_error('header_size', 'header is %d bytes, limit %d', numel(parts{2}), max_header);
end
if isempty(hmap)
  hmap = dd_msgpack_decode(parts{2});
end
if ~dd_is_map(hmap)
  dd_error('header_decode', 'expected the header as a msgpack map');
end
v = dd_map_get(hmap, 'v');
if ~(is_int(v) && v == 1)
  dd_error('version', 'expected protocol version v=1, got %s', show(v));
end
has_payload = nparts == 3;

msg = struct('topic', char(reshape(parts{1}, 1, [])), 'header', [], 'header_map', hmap, ...
  'image', [], 'payload', []);
if strict
  kind = dd_map_get(hmap, 'kind', 'frame');
  if ~(ischar(kind) && any(strcmp(kind, {'frame', 'start', 'end'})))
    dd_error('kind', 'expected kind ''frame'', ''start'' or ''end'', got %s', show(kind));
  end
  series = dd_map_get(hmap, 'series');
  if ~dd_valid_series(series)
    dd_error('series', ['expected series of 1-64 characters from [A-Za-z0-9._-], not ' ...
      'starting with ''.'', got %s'], show(series));
  end
  t_ns = dd_map_get(hmap, 't_ns');
  if ~isempty(t_ns) && ~(is_int(t_ns) && in_range(t_ns, 0, intmax('int64')))
    dd_error('t_ns', 'expected t_ns as an integer 0..2^63-1, got %s', show(t_ns));
  end
  if any(strcmp(hmap.keys, 'meta'))
    check_meta(dd_map_get(hmap, 'meta'), limits);
  end
  resend = dd_map_get(hmap, 'resend', false);
  if ~(islogical(resend) && isscalar(resend))
    dd_error('resend', 'expected resend as a bool, got %s', show(resend));
  end
  if ~strcmp(kind, 'frame')
    if has_payload
      dd_error('payload_unexpected', 'a ''%s'' message has no payload', kind);
    end
    msg.header = dd_to_struct(hmap);
    return;
  end
  if ~has_payload
    dd_error('parts', 'a frame needs 3 parts {topic, header, payload}, got 2');
  end
  index = dd_map_get(hmap, 'index');
  if ~(is_int(index) && in_range(index, 0, 2^40 - 1))
    dd_error('index', 'expected index as an integer 0..2^40-1, got %s', show(index));
  end
end

msg.header = dd_to_struct(hmap);
if has_payload
  [msg.image, msg.payload] = decode_payload(hmap, parts{3}, limits, strict);
end
end

function [img, payload] = decode_payload(hmap, part, limits, strict)
dtype = dd_map_get(hmap, 'dtype');
if ~(ischar(dtype) && any(strcmp(dtype, {'|u1', '<u2', '<i2', '<f4'})))
  dd_error('dtype', 'expected dtype one of |u1, <u2, <i2, <f4, got %s', show(dtype));
end
[~, itemsize] = dd_dtype_info(dtype);
% Output sides have no max_side: a traces payload has a row per ROI.
if strict
  max_bytes = limits.max_payload_bytes;
  max_side = limits.max_side;
else
  [~, max_bytes] = dd_output_bounds(limits);
  max_side = min(max_bytes, 2^32 - 1);
end
shape = dd_map_get(hmap, 'shape');
ok = iscell(shape) && numel(shape) == 2;
if ok
  ok = all(cellfun(@(s) is_int(s) && in_range(s, 1, max_side), shape));
end
if ~ok
  dd_error('shape', 'expected shape [height, width], each 1..%d, got %s', max_side, ...
    show(shape));
end
h = double(shape{1});
w = double(shape{2});
expected = h * w * itemsize;
if expected > max_bytes
  dd_error('payload_size', ['a %dx%d %s array needs %d bytes, over the payload limit %d'], ...
    h, w, dtype, expected, max_bytes);
end
payload = reshape(uint8(part), 1, []);
if numel(payload) ~= expected
  dd_error('payload_length', 'shape [%d, %d] dtype %s needs %d payload bytes, got %d', ...
    h, w, dtype, expected, numel(payload));
end
img = dd_bytes_to_image(payload, dtype, [h w]);
end

function check_meta(meta, limits)
if ~dd_is_map(meta)
  dd_error('meta', 'expected meta as a map, got %s', show(meta));
end
% The limit is on meta re-encoded canonically; for a canonical sender that is the
% number of bytes meta takes on the wire.
size_bytes = numel(dd_msgpack_encode(meta));
if size_bytes > limits.max_meta_bytes
  dd_error('meta', 'meta is %d bytes encoded, limit %d', size_bytes, limits.max_meta_bytes);
end
end

function tf = is_int(x)
% msgpack integers decode to int64/uint64; a float (1.0) or a bool is not one.
tf = isinteger(x) && isscalar(x);
end

function tf = in_range(x, lo, hi)
if isa(x, 'uint64')
  tf = (lo <= 0 || x >= uint64(lo)) && x <= uint64(hi);
else
  tf = x >= int64(lo) && x <= int64(hi);
end
end

function s = show(x)
% A short description of a received value for error messages.
if ischar(x)
  s = ['''' x ''''];
elseif isempty(x) && isnumeric(x)
  s = 'nothing (absent or nil)';
elseif isinteger(x) && isscalar(x)
  s = dd_int_to_string(x);
elseif (isnumeric(x) || islogical(x)) && isscalar(x)
  s = sprintf('%s %s', class(x), num2str(x, 17));
elseif iscell(x)
  s = sprintf('an array of %d', numel(x));
elseif dd_is_map(x)
  s = 'a map';
elseif dd_is_bin(x)
  s = 'bin';
else
  s = class(x);
end
end
