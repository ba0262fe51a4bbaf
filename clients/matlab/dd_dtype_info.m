function [cls, itemsize] = dd_dtype_info(dtype)
%DD_DTYPE_INFO  MATLAB class and bytes per pixel of a protocol dtype string.
%   [cls, itemsize] = dd_dtype_info('<u2')  ->  'uint16', 2
%   Frames: '|u1' '<u2' '<i2' '<f4'. Label images of set_rois also: '<u4' '<i4' '<i8'.
%   An empty CLS means the dtype is not one of these.
names = {'|u1', '<u2', '<i2', '<f4', '<u4', '<i4', '<i8'};
classes = {'uint8', 'uint16', 'int16', 'single', 'uint32', 'int32', 'int64'};
sizes = [1 2 2 4 4 4 8];
cls = '';
itemsize = 0;
hit = find(strcmp(names, dtype), 1);
if ischar(dtype) && ~isempty(hit)
  cls = classes{hit};
  itemsize = sizes(hit);
end
end
