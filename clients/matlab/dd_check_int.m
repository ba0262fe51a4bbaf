function v = dd_check_int(x, reason, lo, hi)
%DD_CHECK_INT  X as an int64 (uint64 above intmax('int64')) if it is an integer in
%   LO..HI, else error 'deepdenoise:<REASON>'.
%   Integer classes are taken as they are. A double is taken only when it is integral
%   and at most flintmax (2^53): above that a double has already lost the exact value,
%   which matters for t_ns (Unix nanoseconds are about 2^60).
ok = isscalar(x) && isreal(x) && ~islogical(x);
if ok && isfloat(x)
  ok = isfinite(x) && x == fix(x) && abs(x) <= flintmax;
  if ok
    x = int64(x);
  end
elseif ok
  ok = isinteger(x);
end
if ok
  if isa(x, 'uint64')
    ok = (lo <= 0 || x >= uint64(lo)) && hi >= 0 && x <= uint64(hi);
    if ok && x <= uint64(intmax('int64'))
      x = int64(x);
    end
  else
    x = int64(x);
    ok = x >= int64(lo) && x <= int64(hi);
  end
end
if ~ok
  dd_error(reason, 'expected %s as an integer %s..%s (int64/uint64, or an integral double up to 2^53), got %s', ...
    reason, dd_int_to_string(int64(lo)), dd_int_to_string(int64(hi)), describe(x));
end
v = x;
end

function s = describe(x)
if isscalar(x) && (isnumeric(x) || islogical(x))
  s = sprintf('%s %s', class(x), num2str(x, 17));
else
  s = sprintf('a %s of size %s', class(x), mat2str(size(x)));
end
end
