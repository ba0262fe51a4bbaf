function bytes = dd_encode_set_rois(labels, series)
%DD_ENCODE_SET_ROIS  The set_rois request.
%   bytes = dd_encode_set_rois(labels)           every series
%   bytes = dd_encode_set_rois(labels, series)   one series
%   bytes = dd_encode_set_rois([], ...)          remove the ROIs (labels nil)
%   LABELS is an H-by-W integer label image (0 = background): uint8, uint16, int16,
%   uint32, int32 or int64; a double image of whole numbers is sent as int32 (or int64).
%   Keys in the spec's order: cmd, series (when given), dtype, shape, labels (bin, C order).
args = {};
if nargin >= 2 && ~isempty(series)
  args = {'series', dd_check_series(series)};
end
if isempty(labels)
  bytes = dd_encode_request('set_rois', args{:}, 'labels', []);
  return;
end
if isfloat(labels)
  if any(labels(:) ~= fix(labels(:)))
    dd_error('dtype', 'expected an integer label image, got fractional values');
  end
  if all(abs(labels(:)) < 2^31)
    labels = int32(labels);
  else
    labels = int64(labels);
  end
end
if ndims(labels) ~= 2
  dd_error('shape', 'expected an H-by-W label image, got size %s', mat2str(size(labels)));
end
dtype = dd_dtype_of(labels, {'|u1', '<u2', '<i2', '<u4', '<i4', '<i8'});
bytes = dd_encode_request('set_rois', args{:}, 'dtype', dtype, 'shape', int64(size(labels)), ...
  'labels', dd_bin(dd_image_to_bytes(labels)));
end
