function n = dd_nesting_levels(x)
%DD_NESTING_LEVELS  Levels of maps and arrays X encodes to (a scalar: 0).
%   As DD_MSGPACK_ENCODE writes X: a dd_map or a struct is a map; a cell, or a numeric
%   or logical array of more than one element, is an array. A header may nest at most
%   16 levels, its own map the first (PROTOCOL.md).
if dd_is_map(x)
  n = 1 + deepest(x.values);
elseif dd_is_bin(x) || ischar(x) || isa(x, 'string')
  n = 0;
elseif isstruct(x)
  n = 1 + deepest(struct2cell(x(:)));
elseif iscell(x)
  n = 1 + deepest(x);
elseif (isnumeric(x) || islogical(x)) && ~isscalar(x) && ~isequal(size(x), [0 0])
  n = 1;
else
  n = 0;
end
end

function n = deepest(values)
n = 0;
for i = 1:numel(values)
  n = max(n, dd_nesting_levels(values{i}));
end
end
