function bytes = dd_msgpack_encode(value)
%DD_MSGPACK_ENCODE  Encode a MATLAB value as msgpack, canonically (PROTOCOL.md section 4).
%   bytes = dd_msgpack_encode(value)   returns a uint8 row vector.
%
%   MATLAB value                          msgpack
%   []  (0x0 double)                      nil
%   true / false (logical scalar)         bool
%   int8 ... int64, uint8 ... uint64      int, in its smallest form (never float)
%   double or single scalar               float64 (always: the canonical float)
%   char row vector (or MATLAB string)    str (UTF-8)
%   DD_BIN(bytes)                         bin
%   cell vector, numeric/logical vector   array (a matrix is refused: its shape would
%                                         be lost; a cell of row vectors keeps it)
%   struct scalar (field order)           map
%   DD_MAP(keys, values) (key order)      map
%
%   A double is always a float: write integers as int64(...) / uint64(...).
%   Maps keep the order they are given in; DD_ENCODE_HEADER applies the canonical
%   key order of a header on top of this.
parts = enc(value);
bytes = [uint8([]), parts{:}];
bytes = reshape(bytes, 1, []);
end

function out = enc(x)
% Returns a cell of uint8 row vectors (joined once at the end, which is cheaper
% than growing one vector).
if dd_is_map(x)
  out = enc_map(x.keys, x.values);
elseif dd_is_bin(x)
  n = numel(x.bytes);
  out = {len_prefix(n, [], uint8(196), uint8(197), uint8(198)), x.bytes};
elseif isstruct(x)
  if ~isscalar(x)
    dd_error('header_decode', 'cannot encode a %s struct array; use a cell of structs', ...
      mat2str(size(x)));
  end
  names = fieldnames(x)';
  values = cellfun(@(f) x.(f), names, 'UniformOutput', false);
  out = enc_map(names, values);
elseif ischar(x)
  if ~isempty(x) && size(x, 1) ~= 1
    dd_error('header_decode', 'cannot encode a char matrix; use a cell of strings');
  end
  b = dd_utf8_encode(x);
  out = {len_prefix(numel(b), uint8(160), uint8(217), uint8(218), uint8(219)), b};
elseif isa(x, 'string')
  out = enc(char(x));
elseif iscell(x)
  check_vector(x, 'cell');
  out = [{len_prefix(numel(x), uint8(144), [], uint8(220), uint8(221))}, ...
    cellfun(@(e) cat_parts(enc(e)), reshape(x, 1, []), 'UniformOutput', false)];
elseif isnumeric(x) && isequal(size(x), [0 0]) && isa(x, 'double')
  out = {uint8(192)};
elseif (isnumeric(x) || islogical(x)) && ~isscalar(x)
  check_vector(x, class(x));
  n = numel(x);
  items = cell(1, n);
  for i = 1:n
    items{i} = cat_parts(enc(x(i)));
  end
  out = [{len_prefix(n, uint8(144), [], uint8(220), uint8(221))}, items];
elseif islogical(x)
  out = {uint8(194 + double(x))};
elseif isinteger(x)
  out = {enc_int(x)};
elseif isfloat(x)
  if ~isreal(x)
    dd_error('header_decode', 'cannot encode a complex number');
  end
  out = {[uint8(203), be(double(x), 'double')]};
else
  dd_error('header_decode', 'cannot encode a value of class %s in a msgpack header', class(x));
end
end

function check_vector(x, what)
% An array is a vector: a matrix would go out flattened in column order, its shape lost
% (a reader in C order sees its transpose).
if ~isempty(x) && ~isvector(x)
  dd_error('header_decode', ['cannot encode a %s %s matrix as a msgpack array; use a ' ...
    'vector, or a cell of row vectors (one per row)'], mat2str(size(x)), what);
end
end

function b = cat_parts(c)
b = [c{:}];
end

function out = enc_map(keys, values)
n = numel(keys);
out = cell(1, 2 * n + 1);
out{1} = len_prefix(n, uint8(128), [], uint8(222), uint8(223));
for i = 1:n
  if ~ischar(keys{i})
    dd_error('header_decode', 'map keys must be strings');
  end
  out{2 * i} = cat_parts(enc(keys{i}));
  out{2 * i + 1} = cat_parts(enc(values{i}));
end
end

function b = enc_int(x)
% Smallest form: unsigned forms for every non-negative value, signed forms only for
% negative ones (the msgpack rule the reference libraries follow).
if x >= 0
  u = uint64(x);
  if u <= 127
    b = uint8(u);
  elseif u <= 255
    b = [uint8(204), uint8(u)];
  elseif u <= 65535
    b = [uint8(205), be(u, 'uint16')];
  elseif u <= 4294967295
    b = [uint8(206), be(u, 'uint32')];
  else
    b = [uint8(207), be(u, 'uint64')];
  end
else
  s = int64(x);
  if s >= -32
    b = typecast(int8(s), 'uint8');
  elseif s >= -128
    b = [uint8(208), typecast(int8(s), 'uint8')];
  elseif s >= -32768
    b = [uint8(209), be(s, 'int16')];
  elseif s >= -2147483648
    b = [uint8(210), be(s, 'int32')];
  else
    b = [uint8(211), be(s, 'int64')];
  end
end
end

function b = be(x, cls)
% Big-endian bytes of x as class cls. typecast gives the host order, which is
% little-endian on every platform MATLAB and Octave run on.
b = fliplr(typecast(cast(x, cls), 'uint8'));
end

function b = len_prefix(n, fix_base, code8, code16, code32)
% The smallest length form: fix (when the type has one), then 8/16/32 bits.
if ~isempty(fix_base) && n <= 15 + 16 * (fix_base == 160)
  b = uint8(double(fix_base) + n);
elseif ~isempty(code8) && n <= 255
  b = [code8, uint8(n)];
elseif n <= 65535
  b = [code16, be(n, 'uint16')];
else
  b = [code32, be(n, 'uint32')];
end
end
