function tf = values_equal(a, b)
%VALUES_EQUAL  Strict equality of decoded msgpack values: an int never equals a float,
%   maps compare key order too, NaN equals NaN, integers compare exactly (any class).
if dd_is_map(a) || dd_is_map(b)
  tf = dd_is_map(a) && dd_is_map(b) && isequal(a.keys, b.keys) && ...
    numel(a.values) == numel(b.values) && all(cellfun(@values_equal, a.values, b.values));
elseif dd_is_bin(a) || dd_is_bin(b)
  tf = dd_is_bin(a) && dd_is_bin(b) && isequal(a.bytes, b.bytes);
elseif iscell(a) || iscell(b)
  tf = iscell(a) && iscell(b) && numel(a) == numel(b) && all(cellfun(@values_equal, a(:)', b(:)'));
elseif ischar(a) || ischar(b)
  tf = ischar(a) && ischar(b) && strcmp(reshape(a, 1, []), reshape(b, 1, []));
elseif islogical(a) || islogical(b)
  tf = islogical(a) && islogical(b) && isequal(a, b);
elseif isinteger(a) || isinteger(b)
  tf = isinteger(a) && isinteger(b) && strcmp(dd_int_to_string(a), dd_int_to_string(b));
elseif isempty(a) || isempty(b)
  tf = isempty(a) && isempty(b) && isa(a, 'double') && isa(b, 'double');
else
  tf = isfloat(a) && isfloat(b) && isequaln(double(a), double(b));
end
end
