function dd_zmq_connect(s, endpoint)
%DD_ZMQ_CONNECT  Connect socket S to ENDPOINT ('tcp://127.0.0.1:5555'). A failure (an
%   endpoint without tcp://) is an error 'deepdenoise:transport' naming the endpoint.
dd_check_port(endpoint, 'connect to');
dd_zmq_ipv6(s, endpoint, 'connect to');
try
  if strcmp(s.backend, 'octave')
    zmq_connect(s.handle, endpoint);
  else
    s.handle.connect(endpoint);
  end
catch err
  dd_error('transport', 'cannot connect to %s: %s%s', endpoint, err.message, ...
    dd_endpoint_hint(endpoint));
end
end
