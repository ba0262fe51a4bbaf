function b = dd_utf8_encode(s)
%DD_UTF8_ENCODE  The UTF-8 bytes of a char row vector, as a uint8 row.
%   Octave keeps char arrays as UTF-8 bytes already; MATLAB chars are UTF-16 units.
if isempty(s)
  b = uint8(zeros(1, 0));
elseif dd_is_octave()
  b = reshape(uint8(s), 1, []);
else
  b = reshape(unicode2native(s, 'UTF-8'), 1, []);
end
end
