function reason = dd_reason(err)
%DD_REASON  The reason code of an error thrown by this client ('' for other errors).
prefix = 'deepdenoise:';
reason = '';
if strncmp(err.identifier, prefix, numel(prefix))
  reason = err.identifier(numel(prefix) + 1:end);
end
end
