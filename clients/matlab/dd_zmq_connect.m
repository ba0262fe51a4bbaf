function dd_zmq_connect(s, endpoint)
%DD_ZMQ_CONNECT  Connect socket S to ENDPOINT ('tcp://127.0.0.1:5555'). A failure is an
%   error naming the endpoint: 'deepdenoise:usage' for a malformed one (no tcp://, a port
%   beyond 65535), 'deepdenoise:transport' for any other.
dd_check_port(endpoint, 'connect to');
dd_zmq_ipv6(s, endpoint, 'connect to');
try
  if strcmp(s.backend, 'octave')
    zmq_connect(s.handle, endpoint);
  else
    s.handle.connect(endpoint);
  end
catch err
  hint = dd_endpoint_hint(endpoint, err.message);
  dd_error(dd_endpoint_reason(hint), 'cannot connect to %s: %s%s', endpoint, err.message, ...
    hint);
end
end
