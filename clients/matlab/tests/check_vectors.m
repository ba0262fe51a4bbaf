function failures = check_vectors(vectors_dir)
%CHECK_VECTORS  Check this client against every golden vector (PROTOCOL.md section 10).
%   failures = check_vectors('clients/vectors')
%   Valid vectors: decode to the listed topic, header, dtype, shape, payload SHA-256
%   and pixels; canonical ones re-encode byte for byte, both from the listed header
%   and through the public API (dd_encode_frame, dd_encode_start, dd_encode_request,
%   ...). Invalid vectors: rejected with the listed reason. Prints one line per
%   failure and a summary; returns the number of failures.
%   No vector is skipped: MATLAB keeps int64/uint64 apart from double, so even the
%   *_float vectors (1.0 where an integer belongs) can be told apart.
index = json_read_exact(fileread(fullfile(vectors_dir, 'vectors.json')));
vectors = dd_map_get(index, 'vectors');
failures = 0;
checks = 0;
for k = 1:numel(vectors)
  vec = dd_to_struct_shallow(vectors{k});
  try
    parts = read_parts(fullfile(vectors_dir, vec.file));
    if vec.valid
      n = check_valid(vec, parts);
    else
      n = check_invalid(vec, parts);
    end
    checks = checks + n;
  catch err
    failures = failures + 1;
    fprintf('FAIL %s: %s\n', vec.name, err.message);
  end
end
fprintf('%d vectors, %d checks, %d failures\n', numel(vectors), checks, failures);
end

function s = dd_to_struct_shallow(m)
% The vector entry's fields as a struct, keeping every value exact (header stays a map).
s = struct();
for i = 1:numel(m.keys)
  s.(m.keys{i}) = m.values{i};
end
end

function n = check_valid(vec, parts)
n = 0;
must(numel(parts) == vec.parts, 'has %d parts, expected %d', numel(parts), vec.parts);
expected = vec.header;
if strcmp(vec.direction, 'control')
  request = dd_msgpack_decode(parts{1});
  must(dd_is_map(request), 'control request is not a map');
  if dd_is_bin(dd_map_get(request, 'labels'))
    % The JSON shows the bin as "<bin: pixels>"; its bytes are pixels in dtype, C order.
    expected.values{strcmp(expected.keys, 'labels')} = dd_bin(pixel_bytes(vec));
  end
  must(values_equal(request, expected), 'decoded request differs from the listed one');
  n = n + 1;
  if vec.canonical
    must(isequal(dd_msgpack_encode(expected), parts{1}), 're-encoded request differs');
    must(isequal(api_request(expected, vec), parts{1}), 'request built by the API differs');
    n = n + 2;
  end
  return;
end

msg = dd_decode_message(parts, 'strict', strcmp(vec.direction, 'input'));
must(strcmp(msg.topic, vec.topic), 'topic %s, expected %s', msg.topic, vec.topic);
must(values_equal(msg.header_map, expected), 'decoded header differs from the listed one');
n = n + 2;
if ~isempty(vec.dtype)
  cls = dd_dtype_info(vec.dtype);
  shape = double([vec.shape{:}]);
  must(isa(msg.image, cls) && isequal(size(msg.image), shape), ...
    'image is %s %s, expected %s %s', class(msg.image), mat2str(size(msg.image)), cls, ...
    mat2str(shape));
  must(strcmp(sha256_hex(msg.payload), vec.payload_sha256), 'payload SHA-256 differs');
  n = n + 2;
  if ~isempty(vec.pixels)
    actual = double(reshape(msg.image.', 1, []));   % C order, as listed
    must(isequaln(actual, expected_pixels(vec.pixels)), 'pixels differ: %s', mat2str(actual));
    n = n + 1;
  end
end
if vec.canonical
  if isempty(msg.image)
    again = dd_encode_message(vec.topic, expected);
  else
    again = dd_encode_message(vec.topic, expected, msg.image);
  end
  must(isequal(again, parts), 're-encoded message differs from the file');
  n = n + 1;
  api = api_message(msg, vec);
  if ~isempty(api)
    must(isequal(api, parts), 'message built by the API differs from the file');
    n = n + 1;
  end
end
end

function n = check_invalid(vec, parts)
limits = dd_limits();
if isfield(vec, 'limits')
  lim = vec.limits;
  for i = 1:numel(lim.keys)
    limits.(lim.keys{i}) = double(lim.values{i});
  end
end
try
  dd_decode_message(parts, 'strict', true, 'limits', limits);
catch err
  reason = dd_reason(err);
  must(strcmp(reason, vec.reject_reason), 'rejected as %s (%s), expected %s', reason, ...
    err.message, vec.reject_reason);
  n = 1;
  return;
end
error('vectors:accepted', 'accepted, expected rejection as %s', vec.reject_reason);
end

function parts = api_message(msg, vec)
% The same message built with dd_encode_frame / dd_encode_start / dd_encode_end, when
% the header holds only what those functions write; {} otherwise (outputs, unknown keys).
h = vec.header;
parts = {};
if ~strcmp(vec.direction, 'input') || ~any(strcmp(h.keys, 'kind'))
  return;
end
api_keys = {'v', 'kind', 'series', 'index', 'dtype', 'shape', 't_ns', 'meta', 'resend'};
if ~all(ismember(h.keys, api_keys)) || isequal(dd_map_get(h, 'resend'), false)
  return;
end
options = {'topic', vec.topic};
if any(strcmp(h.keys, 't_ns'))
  options = [options, {'t_ns', dd_map_get(h, 't_ns')}];
end
series = dd_map_get(h, 'series');
switch dd_map_get(h, 'kind')
  case 'start'
    parts = dd_encode_start(series, options{:});
  case 'end'
    parts = dd_encode_end(series, options{:});
  case 'frame'
    if any(strcmp(h.keys, 'meta'))
      options = [options, {'meta', dd_map_get(h, 'meta')}];
    end
    if isequal(dd_map_get(h, 'resend'), true)
      options = [options, {'resend', true}];
    end
    parts = dd_encode_frame(msg.image, series, dd_map_get(h, 'index'), options{:});
end
end

function bytes = api_request(request, vec)
cmd = dd_map_get(request, 'cmd');
switch cmd
  case 'set_rois'
    labels = [];
    if ~isempty(vec.pixels)
      labels = expected_image(vec);
    end
    bytes = dd_encode_set_rois(labels, dd_map_get(request, 'series', ''), ...
      'fit', dd_map_get(request, 'fit', false), 'source', dd_map_get(request, 'source'));
  otherwise
    args = [request.keys(2:end); request.values(2:end)];
    bytes = dd_encode_request(cmd, args{:});
end
end

function img = expected_image(vec)
cls = dd_dtype_info(vec.dtype);
shape = double([vec.shape{:}]);
img = reshape(cast(expected_pixels(vec.pixels), cls), shape(2), shape(1)).';
end

function bytes = pixel_bytes(vec)
bytes = dd_image_to_bytes(expected_image(vec));
end

function values = expected_pixels(pixels)
values = zeros(1, numel(pixels));
for i = 1:numel(pixels)
  p = pixels{i};
  if ischar(p)
    values(i) = str2double(strrep(p, 'Infinity', 'Inf'));
  else
    values(i) = double(p);
  end
end
end

function must(ok, fmt, varargin)
if ~ok
  error('vectors:check', fmt, varargin{:});
end
end
