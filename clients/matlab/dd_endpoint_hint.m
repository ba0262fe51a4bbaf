function hint = dd_endpoint_hint(endpoint)
%DD_ENDPOINT_HINT  The endpoint's expected form, when ENDPOINT lacks a transport.
if isempty(strfind(endpoint, '://'))
  hint = ' (expected an endpoint like tcp://127.0.0.1:5555)';
else
  hint = '';
end
end
