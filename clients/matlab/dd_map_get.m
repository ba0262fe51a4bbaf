function value = dd_map_get(m, key, default)
%DD_MAP_GET  The value of KEY in a DD_MAP (the last one if repeated), else DEFAULT.
%   Works with exact key strings, including those that are not valid field names.
if nargin < 3
  default = [];
end
value = default;
if ~dd_is_map(m)
  return;
end
hit = find(strcmp(m.keys, key), 1, 'last');
if ~isempty(hit)
  value = m.values{hit};
end
end
