function value = dd_msgpack_decode(bytes)
%DD_MSGPACK_DECODE  Decode exactly one msgpack value from BYTES (uint8 vector).
%   value = dd_msgpack_decode(bytes)
%
%   msgpack             MATLAB value
%   nil                 []
%   bool                logical scalar
%   int (every width)   int64; uint64 only above intmax('int64') (never double,
%                       so t_ns above 2^53 stays exact)
%   float32 / float64   single / double
%   str                 char row vector (UTF-8 checked)
%   bin                 DD_BIN struct (field .bytes)
%   array               1xN cell
%   map                 DD_MAP struct (fields .keys, .values, in wire order);
%                       DD_TO_STRUCT gives a struct view
%
%   Errors with identifier 'deepdenoise:header_decode' on malformed input, trailing
%   bytes, map keys that are not str, invalid UTF-8 and ext types.
b = reshape(uint8(bytes), 1, []);
[value, p] = dec(b, 1, 0);
if p ~= numel(b) + 1
  dd_error('header_decode', '%d bytes after the msgpack value', numel(b) + 1 - p);
end
end

function [v, p] = dec(b, p, depth)
if depth > 100
  dd_error('header_decode', 'msgpack nesting deeper than 100 levels');
end
if p > numel(b)
  need(b, p, 1);
end
c = double(b(p));
p = p + 1;
if c <= 127                                   % positive fixint
  v = int64(c);
elseif c >= 224                               % negative fixint
  v = int64(c - 256);
elseif c >= 128 && c <= 143                   % fixmap
  [v, p] = dec_map(b, p, c - 128, depth);
elseif c >= 144 && c <= 159                   % fixarray
  [v, p] = dec_array(b, p, c - 144, depth);
elseif c >= 160 && c <= 191                   % fixstr (the common case: inlined)
  n = c - 160;
  if p + n - 1 > numel(b)
    need(b, p, n);
  end
  raw = b(p:p + n - 1);
  if all(raw < 128)
    v = char(raw);                            % ASCII: the same in Octave and MATLAB
  else
    v = dd_utf8_decode(raw);
  end
  p = p + n;
else
  switch c
    case 192
      v = [];
    case 194
      v = false;
    case 195
      v = true;
    case {196, 197, 198}                      % bin 8/16/32
      [n, p] = rd_len(b, p, c - 196);
      need(b, p, n);
      v = dd_bin(b(p:p + n - 1));
      p = p + n;
    case 202                                  % float32
      v = typecast(rev(take(b, p, 4)), 'single');
      p = p + 4;
    case 203                                  % float64
      v = typecast(rev(take(b, p, 8)), 'double');
      p = p + 8;
    case 204
      v = int64(take(b, p, 1));
      p = p + 1;
    case 205
      v = int64(typecast(rev(take(b, p, 2)), 'uint16'));
      p = p + 2;
    case 206
      v = int64(typecast(rev(take(b, p, 4)), 'uint32'));
      p = p + 4;
    case 207
      u = typecast(rev(take(b, p, 8)), 'uint64');
      if u <= uint64(intmax('int64'))
        v = int64(u);
      else
        v = u;
      end
      p = p + 8;
    case 208
      v = int64(typecast(take(b, p, 1), 'int8'));
      p = p + 1;
    case 209
      v = int64(typecast(rev(take(b, p, 2)), 'int16'));
      p = p + 2;
    case 210
      v = int64(typecast(rev(take(b, p, 4)), 'int32'));
      p = p + 4;
    case 211
      v = typecast(rev(take(b, p, 8)), 'int64');
      p = p + 8;
    case {217, 218, 219}                      % str 8/16/32
      [n, p] = rd_len(b, p, c - 217);
      [v, p] = dec_str(b, p, n);
    case {220, 221}                           % array 16/32
      [n, p] = rd_len(b, p, c - 219);
      [v, p] = dec_array(b, p, n, depth);
    case {222, 223}                           % map 16/32
      [n, p] = rd_len(b, p, c - 221);
      [v, p] = dec_map(b, p, n, depth);
    otherwise                                 % c1 (never used) and the ext types
      dd_error('header_decode', 'msgpack type byte 0x%02x is not allowed in a header', c);
  end
end
end

function [v, p] = dec_str(b, p, n)
need(b, p, n);
raw = b(p:p + n - 1);
if all(raw < 128)
  v = char(raw);
else
  v = dd_utf8_decode(raw);
end
p = p + n;
end

function [v, p] = dec_array(b, p, n, depth)
need(b, p, n);                                % every element takes at least one byte
v = cell(1, n);
for i = 1:n
  [v{i}, p] = dec(b, p, depth + 1);
end
end

function [v, p] = dec_map(b, p, n, depth)
need(b, p, 2 * n);
keys = cell(1, n);
values = cell(1, n);
for i = 1:n
  if p <= numel(b) && ~is_str_byte(b(p))
    dd_error('header_decode', 'a map key is not a msgpack str (type byte 0x%02x)', b(p));
  end
  [keys{i}, p] = dec(b, p, depth + 1);
  [values{i}, p] = dec(b, p, depth + 1);
end
v = struct('msgpack', 'map', 'keys', {keys}, 'values', {values});   % as dd_map makes it
end

function tf = is_str_byte(c)
tf = (c >= 160 && c <= 191) || (c >= 217 && c <= 219);
end

function [n, p] = rd_len(b, p, width_code)
% width_code 0, 1, 2: an 8-, 16- or 32-bit big-endian length.
widths = [1 2 4];
classes = {'uint8', 'uint16', 'uint32'};
w = widths(width_code + 1);
n = double(typecast(rev(take(b, p, w)), classes{width_code + 1}));
p = p + w;
end

function x = rev(x)
% Reverse a row (big-endian msgpack numbers to the host's little-endian order); plain
% indexing, which is much cheaper than fliplr in Octave.
x = x(end:-1:1);
end

function x = take(b, p, n)
need(b, p, n);
x = b(p:p + n - 1);
end

function need(b, p, n)
if p + n - 1 > numel(b)
  dd_error('header_decode', 'msgpack data ends early (truncated header)');
end
end
