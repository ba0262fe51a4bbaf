function parts = read_parts(file)
%READ_PARTS  The parts of a golden-vector message file: each part is a uint32
%   little-endian length followed by that many bytes (PROTOCOL.md section 10.1).
fid = fopen(file, 'r');
if fid < 0
  error('vectors:io', 'cannot open %s', file);
end
data = reshape(fread(fid, Inf, '*uint8'), 1, []);
fclose(fid);
parts = {};
p = 1;
while p <= numel(data)
  n = double(typecast(data(p:p + 3), 'uint32'));
  parts{end + 1} = data(p + 4:p + 3 + n); %#ok<AGROW>
  p = p + 4 + n;
end
end
