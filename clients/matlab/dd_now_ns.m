function t = dd_now_ns()
%DD_NOW_NS  The current Unix time in nanoseconds, as int64 (for t_ns).
%   MATLAB: java.time.Instant (ns resolution where the OS gives it).
%   Octave: time() (microseconds), combined in int64 so that no double above 2^53
%   ever holds the result.
if dd_is_octave()
  now_s = time();
  whole = floor(now_s);
  t = int64(whole) * int64(1000000000) + int64(round((now_s - whole) * 1e6)) * int64(1000);
else
  instant = java.time.Instant.now();
  t = int64(instant.getEpochSecond()) * int64(1000000000) + int64(instant.getNano());
end
end
