function img = dd_bytes_to_image(bytes, dtype, shape)
%DD_BYTES_TO_IMAGE  An H-by-W MATLAB array from a C-order payload.
%   img = dd_bytes_to_image(bytes, '<u2', [h w])   (class from DD_DTYPE_INFO)
%   The payload holds rows one after another; reshaping it to W-by-H fills MATLAB's
%   columns with those rows, and the transpose gives the H-by-W image.
%   MATLAB and Octave cannot wrap a received buffer without a copy, so this copies.
cls = dd_dtype_info(dtype);
h = double(shape(1));
w = double(shape(2));
img = reshape(typecast(reshape(uint8(bytes), 1, []), cls), w, h).';
end
