function value = json_read_exact(text)
%JSON_READ_EXACT  Parse JSON into the values DD_MSGPACK_DECODE produces, losslessly.
%   jsondecode would turn 1700000000123456789 into a double (losing the last digits),
%   mangle keys that are not identifiers and drop the int/float distinction, all of
%   which the golden vectors test. Here:
%     object -> DD_MAP (key order kept)   array -> 1xN cell    null -> []
%     number without '.'/exponent -> int64 (uint64 above intmax('int64'))
%     other number -> double   string -> char   true/false -> logical
tokens = regexp(text, ['"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|' ...
  '-?Infinity|NaN|[{}\[\]:,]'], 'match');
[value, i] = parse(tokens, 1);
if i <= numel(tokens)
  error('json:trailing', 'unexpected %s after the JSON value', tokens{i});
end
end

function [v, i] = parse(t, i)
tok = t{i};
switch tok(1)
  case '{'
    keys = {};
    values = {};
    i = i + 1;
    if strcmp(t{i}, '}')
      v = dd_map(keys, values);
      i = i + 1;
      return;
    end
    while true
      [keys{end + 1}, i] = parse(t, i); %#ok<AGROW>
      expect(t, i, ':');
      [values{end + 1}, i] = parse(t, i + 1); %#ok<AGROW>
      if strcmp(t{i}, '}')
        break;
      end
      expect(t, i, ',');
      i = i + 1;
    end
    v = dd_map(keys, values);
    i = i + 1;
  case '['
    v = {};
    i = i + 1;
    if strcmp(t{i}, ']')
      i = i + 1;
      return;
    end
    while true
      [v{end + 1}, i] = parse(t, i); %#ok<AGROW>
      if strcmp(t{i}, ']')
        break;
      end
      expect(t, i, ',');
      i = i + 1;
    end
    i = i + 1;
  case '"'
    v = unescape(tok(2:end - 1));
    i = i + 1;
  otherwise
    i = i + 1;
    switch tok
      case 'true'
        v = true;
      case 'false'
        v = false;
      case 'null'
        v = [];
      case 'NaN'
        v = NaN;
      case 'Infinity'
        v = Inf;
      case '-Infinity'
        v = -Inf;
      otherwise
        if any(tok == '.' | tok == 'e' | tok == 'E')
          v = str2double(tok);
        else
          v = exact_int(tok);
        end
    end
end
end

function expect(t, i, what)
if i > numel(t) || ~strcmp(t{i}, what)
  error('json:syntax', 'expected %s in JSON', what);
end
end

function v = exact_int(tok)
negative = tok(1) == '-';
digits = tok(1 + negative:end) - '0';
lo = 0;
hi = 0;
for d = digits                  % (hi * 2^32 + lo) * 10 + d, in exact doubles
  lo = lo * 10 + d;
  carry = floor(lo / 4294967296);
  lo = lo - carry * 4294967296;
  hi = hi * 10 + carry;
end
u = typecast(uint32([lo hi]), 'uint64');
if negative
  if u == uint64(intmax('int64')) + 1
    v = intmin('int64');
  else
    v = -int64(u);
  end
elseif u <= uint64(intmax('int64'))
  v = int64(u);
else
  v = u;
end
end

function s = unescape(raw)
if ~any(raw == '\')
  s = raw;
  return;
end
bytes = uint8([]);
k = 1;
while k <= numel(raw)
  c = raw(k);
  if c ~= '\'
    bytes(end + 1) = uint8(c); %#ok<AGROW>
    k = k + 1;
    continue;
  end
  e = raw(k + 1);
  k = k + 2;
  switch e
    case 'n', bytes(end + 1) = 10; %#ok<AGROW>
    case 't', bytes(end + 1) = 9; %#ok<AGROW>
    case 'r', bytes(end + 1) = 13; %#ok<AGROW>
    case 'b', bytes(end + 1) = 8; %#ok<AGROW>
    case 'f', bytes(end + 1) = 12; %#ok<AGROW>
    case 'u'
      cp = hex2dec(raw(k:k + 3));
      k = k + 4;
      if cp >= 55296 && cp <= 56319 && k + 5 <= numel(raw) && raw(k) == '\' && raw(k + 1) == 'u'
        low = hex2dec(raw(k + 2:k + 5));
        cp = 65536 + (cp - 55296) * 1024 + (low - 56320);
        k = k + 6;
      end
      bytes = [bytes, utf8(cp)]; %#ok<AGROW>
    otherwise
      bytes(end + 1) = uint8(e); %#ok<AGROW>
  end
end
s = dd_utf8_decode(bytes);
end

function b = utf8(cp)
if cp < 128
  b = uint8(cp);
elseif cp < 2048
  b = uint8([192 + floor(cp / 64), 128 + mod(cp, 64)]);
elseif cp < 65536
  b = uint8([224 + floor(cp / 4096), 128 + mod(floor(cp / 64), 64), 128 + mod(cp, 64)]);
else
  b = uint8([240 + floor(cp / 262144), 128 + mod(floor(cp / 4096), 64), ...
    128 + mod(floor(cp / 64), 64), 128 + mod(cp, 64)]);
end
end
