function opts = dd_parse_options(args, opts)
%DD_PARSE_OPTIONS  Name, value pairs ARGS over the defaults OPTS (a struct).
%   opts = dd_parse_options({'resend', true}, struct('t_ns', [], 'resend', false))
%   An odd count or a name that is not a field of OPTS is an error 'deepdenoise:usage'.
if mod(numel(args), 2) ~= 0
  dd_error('usage', 'options come as name, value pairs');
end
for i = 1:2:numel(args)
  name = args{i};
  if ~ischar(name) || ~isfield(opts, name)
    dd_error('usage', 'unknown option %s', num2str(name));
  end
  opts.(name) = args{i + 1};
end
end
