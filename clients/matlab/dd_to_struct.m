function s = dd_to_struct(value)
%DD_TO_STRUCT  A convenient MATLAB view of a decoded msgpack value.
%   Maps become structs (keys made valid field names: 'x-vendor' -> 'x_vendor';
%   a repeated key keeps its last value), arrays of numbers of one class become
%   numeric row vectors (shape -> int64 [h w]), other arrays stay cells. Use the
%   exact DD_MAP (msg.header_map) when a key is not a valid identifier.
if dd_is_map(value)
  s = struct();
  for i = 1:numel(value.keys)
    s.(field_name(value.keys{i})) = dd_to_struct(value.values{i});
  end
elseif iscell(value)
  s = cellfun(@dd_to_struct, value, 'UniformOutput', false);
  if ~isempty(s) && all(cellfun(@(e) (isnumeric(e) || islogical(e)) && isscalar(e), s))
    classes = cellfun(@class, s, 'UniformOutput', false);
    if all(strcmp(classes, classes{1}))
      s = [s{:}];
    end
  end
else
  s = value;
end
end

function name = field_name(key)
if isvarname(key)
  name = key;
  return;
end
name = regexprep(key, '[^A-Za-z0-9_]', '_');
if isempty(name) || ~isletter(name(1))
  name = ['x' name];
end
if iskeyword(name)
  name = [name '_'];                     % 'end', 'for', ... cannot be field names
end
name = name(1:min(end, namelengthmax));
end
