function b = dd_bin(bytes)
%DD_BIN  A msgpack bin value (raw bytes), e.g. the label image of set_rois.
%   A uint8 array alone is encoded as an array of integers, so bin is tagged.
b = struct('msgpack', 'bin', 'bytes', reshape(uint8(bytes), 1, []));
end
