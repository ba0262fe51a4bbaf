function tf = dd_is_bin(x)
%DD_IS_BIN  True for a bin value made by DD_BIN (or decoded from msgpack).
tf = isstruct(x) && isscalar(x) && isfield(x, 'msgpack') && strcmp(x.msgpack, 'bin');
end
