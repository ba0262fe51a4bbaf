function bytes = dd_image_to_bytes(img)
%DD_IMAGE_TO_BYTES  The payload bytes of an H-by-W image: rows one after another
%   (C order), little-endian, as the protocol wants (PROTOCOL.md sections 5 and 11).
%   MATLAB stores columns first, so the transpose is what goes on the wire.
%   The image keeps its class: see DD_DTYPE_OF for the class of each dtype.
rows = img.';
bytes = typecast(rows(:).', 'uint8');
end
