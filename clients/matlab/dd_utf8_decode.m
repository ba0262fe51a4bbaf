function s = dd_utf8_decode(b)
%DD_UTF8_DECODE  A char row vector from UTF-8 bytes; error 'deepdenoise:header_decode'
%   on invalid UTF-8 (overlong forms, surrogates, code points above U+10FFFF included).
b = reshape(uint8(b), 1, []);
if isempty(b)
  s = '';
  return;
end
if any(b >= 128) && ~valid(double(b))
  dd_error('header_decode', 'a msgpack str holds invalid UTF-8');
end
if dd_is_octave()
  s = char(b);
else
  s = native2unicode(b, 'UTF-8');
end
end

function ok = valid(b)
ok = false;
n = numel(b);
i = 1;
while i <= n
  c = b(i);
  if c < 128
    i = i + 1;
    continue;
  elseif c >= 194 && c <= 223
    len = 2; lo = 128; hi = 191;
  elseif c >= 224 && c <= 239
    len = 3;
    lo = 128 + 32 * (c == 224);         % E0: no overlong forms
    hi = 191 - 32 * (c == 237);         % ED: no UTF-16 surrogates
  elseif c >= 240 && c <= 244
    len = 4;
    lo = 128 + 16 * (c == 240);         % F0: no overlong forms
    hi = 191 - 48 * (c == 244);         % F4: nothing above U+10FFFF
  else
    return;                             % C0, C1, F5..FF and stray continuation bytes
  end
  if i + len - 1 > n || b(i + 1) < lo || b(i + 1) > hi
    return;
  end
  for k = 2:len - 1
    if b(i + k) < 128 || b(i + k) > 191
      return;
    end
  end
  i = i + len;
end
ok = true;
end
