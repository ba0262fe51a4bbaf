function m = dd_map(keys, values)
%DD_MAP  An ordered msgpack map: keys (cell of char) and values (cell), in wire order.
%   m = dd_map()                      an empty map
%   m = dd_map({'a','x-b'}, {1, 'two'})
%
%   A MATLAB struct keeps its field order too, but its field names must be valid
%   identifiers; protocol keys may be any string (unknown keys such as 'x-vendor'),
%   so the decoder returns this tagged struct and the encoder accepts both.
%   See also DD_MAP_GET, DD_TO_STRUCT, DD_MSGPACK_ENCODE.
if nargin < 1
  keys = {};
  values = {};
end
if numel(keys) ~= numel(values) || ~iscellstr(keys)
  error('deepdenoise:usage', 'dd_map: expected a cell of char keys and as many values');
end
m = struct('msgpack', 'map', 'keys', {reshape(keys, 1, [])}, 'values', {reshape(values, 1, [])});
end
