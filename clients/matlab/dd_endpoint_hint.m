function hint = dd_endpoint_hint(endpoint, message)
%DD_ENDPOINT_HINT  The endpoint's expected form, when ENDPOINT is malformed: it lacks a
%   transport, or libzmq's MESSAGE (if given) says it could not parse it (EINVAL,
%   EPROTONOSUPPORT, as the C, C++ and Node clients tell from the error number).
if nargin < 2
  message = '';
end
malformed = isempty(strfind(endpoint, '://')) || ...
  ~isempty(strfind(message, 'Invalid argument')) || ...
  ~isempty(strfind(message, 'Protocol not supported'));
if malformed
  hint = ' (expected an endpoint like tcp://127.0.0.1:5555)';
else
  hint = '';
end
end
