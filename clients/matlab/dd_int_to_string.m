function s = dd_int_to_string(x)
%DD_INT_TO_STRING  Exact decimal text of an integer scalar of any class.
%   sprintf('%d', x) goes through double in Octave for uint64 (and idivide too), so
%   values above 2^53 are printed digit by digit from two exact 32-bit halves.
if ~isinteger(x)
  s = sprintf('%d', x);
  return;
end
if abs(double(x)) < 2^53
  s = sprintf('%d', double(x));
  return;
end
negative = x < 0;
if negative
  if x == intmin('int64')
    s = '-9223372036854775808';
    return;
  end
  x = -x;
end
halves = double(typecast(uint64(x), 'uint32'));   % [low, high], little-endian host
lo = halves(1);
hi = halves(2);
digits = '';
while hi > 0 || lo > 0
  % (hi * 2^32 + lo) / 10, with every intermediate below 2^36: exact in double.
  r_hi = mod(hi, 10);
  hi = (hi - r_hi) / 10;
  t = r_hi * 4294967296 + lo;
  r = mod(t, 10);
  lo = (t - r) / 10;
  digits = [char('0' + r), digits]; %#ok<AGROW>
end
if negative
  digits = ['-' digits];
end
s = digits;
end
