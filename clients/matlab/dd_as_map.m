function m = dd_as_map(value)
%DD_AS_MAP  A DD_MAP from a struct scalar (its field order) or a DD_MAP (unchanged).
if dd_is_map(value)
  m = value;
elseif isstruct(value) && isscalar(value)
  keys = fieldnames(value)';
  values = cellfun(@(f) value.(f), keys, 'UniformOutput', false);
  m = dd_map(keys, values);
else
  dd_error('header_decode', 'expected a struct or dd_map, got %s', class(value));
end
end
