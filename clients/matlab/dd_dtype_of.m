function dtype = dd_dtype_of(img, allowed)
%DD_DTYPE_OF  The protocol dtype of a MATLAB array: uint8 '|u1', uint16 '<u2',
%   int16 '<i2', single '<f4' (and for label images uint32 '<u4', int32 '<i4',
%   int64 '<i8'). ALLOWED limits the answer (default: the four frame dtypes);
%   any other class is an error 'deepdenoise:dtype' that says how to convert.
if nargin < 2
  allowed = {'|u1', '<u2', '<i2', '<f4'};
end
classes = {'uint8', 'uint16', 'int16', 'single', 'uint32', 'int32', 'int64'};
names = {'|u1', '<u2', '<i2', '<f4', '<u4', '<i4', '<i8'};
hit = find(strcmp(classes, class(img)), 1);
if isempty(hit) || ~any(strcmp(allowed, names{hit}))
  hint = '';
  if isa(img, 'double')
    hint = '; convert with single(img) (or uint16(img) for camera counts)';
  end
  dd_error('dtype', 'expected an array of class %s (dtype %s), got %s%s', ...
    strjoin(classes(ismember(names, allowed)), ', '), strjoin(allowed, ', '), class(img), hint);
end
dtype = names{hit};
end
