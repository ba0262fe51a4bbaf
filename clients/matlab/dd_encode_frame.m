function parts = dd_encode_frame(img, series, index, varargin)
%DD_ENCODE_FRAME  Validate and encode one input frame as {topic, header, payload}.
%   parts = dd_encode_frame(img, series, index)
%   parts = dd_encode_frame(img, series, index, 't_ns', t, 'meta', s, 'resend', true, ...
%                           'topic', 'frame', 'limits', dd_limits())
%
%   img     H-by-W uint8, uint16, int16 or single image (sent row by row)
%   series  series id, 1-64 chars of [A-Za-z0-9._-], not starting with '.'
%   index   frame number 0..2^40-1 (an integer class, or an integral double)
%   t_ns    Unix time in ns, int64 or uint64 (DD_NOW_NS); a double cannot hold it
%   meta    struct or DD_MAP kept with the frame (at most 8192 bytes encoded)
%   resend  true: replaces the frame of this index sent before
%
%   Errors 'deepdenoise:<reason>' with the code the service would reject the frame
%   with (series, index, dtype, shape, t_ns, meta, payload_size, header_size).
opts = dd_parse_options(varargin, struct('t_ns', [], 'meta', [], 'resend', false, ...
  'topic', 'frame', 'limits', dd_limits()));
limits = opts.limits;
header = struct('v', int64(1), 'kind', 'frame', 'series', dd_check_series(series));
header.index = dd_check_int(index, 'index', 0, 2^40 - 1);
header.dtype = dd_dtype_of(img);
if ndims(img) ~= 2 || any(size(img) < 1) || any(size(img) > limits.max_side)
  dd_error('shape', 'expected a 2-D image (height, width), each 1..%d, got size %s', ...
    limits.max_side, mat2str(size(img)));
end
header.shape = int64(size(img));
if ~isempty(opts.t_ns)
  header.t_ns = dd_check_int(opts.t_ns, 't_ns', 0, intmax('int64'));
end
if ~isempty(opts.meta)
  header.meta = check_meta(opts.meta, limits);
end
if ~(islogical(opts.resend) && isscalar(opts.resend))
  dd_error('resend', 'expected resend as true or false');
end
if opts.resend
  header.resend = true;
end
[~, itemsize] = dd_dtype_info(header.dtype);
nbytes = numel(img) * itemsize;
if nbytes > limits.max_payload_bytes
  dd_error('payload_size', 'frame of %d bytes exceeds the payload limit %d', ...
    nbytes, limits.max_payload_bytes);
end
parts = dd_encode_message(opts.topic, header, img);
if numel(parts{2}) > limits.max_header_bytes
  dd_error('header_size', 'header is %d bytes, limit %d', numel(parts{2}), ...
    limits.max_header_bytes);
end
end

function meta = check_meta(meta, limits)
if ~(dd_is_map(meta) || (isstruct(meta) && isscalar(meta)))
  dd_error('meta', 'expected meta as a struct or dd_map, got %s', class(meta));
end
try
  size_bytes = numel(dd_msgpack_encode(meta));
catch err
  dd_error('meta', 'meta cannot be encoded as msgpack: %s', err.message);
end
if size_bytes > limits.max_meta_bytes
  dd_error('meta', 'meta is %d bytes encoded, limit %d', size_bytes, limits.max_meta_bytes);
end
levels = 1 + dd_nesting_levels(meta);  % the header's own map is the first
if levels > 16  % what the service would reject (header_decode)
  dd_error('header_decode', ...
    'expected a header nested at most 16 levels deep, meta makes it %d', levels);
end
end
