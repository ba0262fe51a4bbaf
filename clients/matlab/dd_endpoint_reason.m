function reason = dd_endpoint_reason(hint)
%DD_ENDPOINT_REASON  The reason code of a failed bind or connect: 'usage' where the
%   endpoint is malformed (HINT, from dd_endpoint_hint, says its expected form: nothing
%   was sent, a program's wrong command line), else 'transport'.
if isempty(hint)
  reason = 'transport';
else
  reason = 'usage';
end
end
