function text = dd_json_encode(value)
%DD_JSON_ENCODE  One line of JSON for a decoded value (for printing and logs).
%   Integers are written exactly (int64/uint64 above 2^53 included), maps in their
%   order, bin as the string "<bin N bytes>", non-finite floats as NaN / Infinity /
%   -Infinity (which Python's json module reads), [] as null, structs as objects.
if dd_is_map(value)
  items = cell(1, numel(value.keys));
  for i = 1:numel(value.keys)
    items{i} = [quote(value.keys{i}), ':', dd_json_encode(value.values{i})];
  end
  text = ['{', strjoin(items, ','), '}'];
elseif dd_is_bin(value)
  text = quote(sprintf('<bin %d bytes>', numel(value.bytes)));
elseif isstruct(value) && isscalar(value)
  text = dd_json_encode(dd_as_map(value));
elseif ischar(value)
  text = quote(value);
elseif iscell(value)
  items = cellfun(@dd_json_encode, reshape(value, 1, []), 'UniformOutput', false);
  text = ['[', strjoin(items, ','), ']'];
elseif isnumeric(value) && isequal(size(value), [0 0])
  text = 'null';
elseif (isnumeric(value) || islogical(value)) && ~isscalar(value)
  text = dd_json_encode(num2cell(reshape(value, 1, [])));
elseif islogical(value)
  words = {'false', 'true'};
  text = words{value + 1};
elseif isinteger(value)
  text = dd_int_to_string(value);
elseif isnumeric(value)
  text = number(double(value));
else
  text = quote(sprintf('<%s>', class(value)));
end
end

function t = number(x)
if isnan(x)
  t = 'NaN';
elseif isinf(x)
  t = 'Infinity';
  if x < 0, t = '-Infinity'; end
else
  t = sprintf('%.15g', x);               % the shortest of these that reads back exactly
  if str2double(t) ~= x
    t = sprintf('%.17g', x);
  end
  if ~any(t == '.' | t == 'e')
    t = [t '.0'];                        % keep a float a float for the reader (0.0, not 0)
  end
end
end

function q = quote(s)
s = reshape(s, 1, []);
s = strrep(s, '\', '\\');
s = strrep(s, '"', '\"');
s = strrep(s, sprintf('\n'), '\n');
s = strrep(s, sprintf('\r'), '\r');
s = strrep(s, sprintf('\t'), '\t');
control = find(s < 32);
for k = fliplr(control)
  s = [s(1:k - 1), sprintf('\\u%04x', double(s(k))), s(k + 1:end)];
end
q = ['"', s, '"'];
end
