function tf = dd_is_map(x)
%DD_IS_MAP  True for a map made by DD_MAP (or decoded from msgpack).
tf = isstruct(x) && isscalar(x) && isfield(x, 'msgpack') && strcmp(x.msgpack, 'map');
end
