function bytes = dd_encode_set_rois(labels, varargin)
%DD_ENCODE_SET_ROIS  The set_rois request.
%   bytes = dd_encode_set_rois(labels)           every series
%   bytes = dd_encode_set_rois(labels, series)   one series
%   bytes = dd_encode_set_rois([], ...)          remove the ROIs (labels nil)
%   bytes = dd_encode_set_rois(labels, [series,] 'fit', true, 'source', 'rois/cells.npy')
%   LABELS is an H-by-W integer label image (0 = background): uint8, uint16, int16,
%   uint32, int32 or int64; a double image of whole numbers is sent as int32 (or int64).
%   Options (PROTOCOL.md, set_rois): 'fit' true: LABELS is the ROIs' extent from the
%   frame's top-left corner, not the whole frame, so any frame that holds it fits
%   (default false); 'source': where the labels came from (a file's path, say), 1 to
%   1024 characters, no control character, which the service's status.traces.source
%   then names (default [], none). A bad option is an error 'deepdenoise:usage'.
%   Keys in the spec's order: cmd, series (when given), dtype, shape, labels (bin, C
%   order), fit (when true), source (when given).
series = '';
if mod(numel(varargin), 2) == 1   % an odd count: the series, then the options
  series = varargin{1};
  varargin = varargin(2:end);
end
opts = dd_parse_options(varargin, struct('fit', false, 'source', []));
args = {};
if ~isempty(series)
  args = {'series', dd_check_series(series)};
end
tail = options_tail(opts);
if isempty(labels)
  bytes = dd_encode_request('set_rois', args{:}, 'labels', [], tail{:});
  return;
end
if isfloat(labels)
  if any(labels(:) ~= fix(labels(:)))
    dd_error('dtype', 'expected an integer label image, got fractional values');
  end
  if all(abs(labels(:)) < 2^31)
    labels = int32(labels);
  else
    labels = int64(labels);
  end
end
if ndims(labels) ~= 2
  dd_error('shape', 'expected an H-by-W label image, got size %s', mat2str(size(labels)));
end
dtype = dd_dtype_of(labels, {'|u1', '<u2', '<i2', '<u4', '<i4', '<i8'});
bytes = dd_encode_request('set_rois', args{:}, 'dtype', dtype, 'shape', int64(size(labels)), ...
  'labels', dd_bin(dd_image_to_bytes(labels)), tail{:});
end

function tail = options_tail(opts)
% fit (when true) and source (when given, also ''), checked, as name, value pairs.
if ~(islogical(opts.fit) && isscalar(opts.fit))
  dd_error('usage', 'expected set_rois'' fit as true or false');
end
tail = {};
if opts.fit
  tail = {'fit', true};
end
if ischar(opts.source) || ~isempty(opts.source)
  tail = [tail, {'source', check_source(opts.source)}];
end
end

function source = check_source(source)
% 1 to 1024 characters of UTF-8, none a control character (U+0000-U+001F, U+007F-U+009F).
if ~ischar(source) || size(source, 1) > 1
  dd_error('usage', 'expected set_rois'' source as a char row vector, got a %s of size %s', ...
    class(source), mat2str(size(source)));
end
b = double(dd_utf8_encode(source));
chars = sum(b < 128 | b >= 192);              % a character's first byte
c1 = b(1:end - 1) == 194 & b(2:end) < 160;    % U+0080-U+009F are C2 80..C2 9F
try
  dd_utf8_decode(b);
  valid = true;
catch
  valid = false;
end
if ~valid
  why = 'invalid UTF-8';
elseif any(b < 32 | b == 127) || any(c1)
  why = 'a control character';
elseif chars < 1 || chars > 1024
  why = sprintf('%d characters', chars);
else
  return;
end
dd_error('usage', ['expected set_rois'' source (where the labels came from) as 1 to 1024 ' ...
  'characters, none a control character, got %s'], why);
end
