function bound = dd_zmq_bind(s, endpoint)
%DD_ZMQ_BIND  Bind socket S to ENDPOINT; returns the endpoint actually bound
%   ('tcp://127.0.0.1:*' picks a free port). A failure (a port in use, an endpoint
%   without tcp://) is an error 'deepdenoise:transport' naming the endpoint.
dd_check_port(endpoint, 'bind');
dd_zmq_ipv6(s, endpoint, 'bind');
try
  if strcmp(s.backend, 'octave')
    zmq_bind(s.handle, endpoint);
    bound = zmq_getsockopt(s.handle, ZMQ_LAST_ENDPOINT);
  else
    s.handle.bind(endpoint);
    bound = char(s.handle.getLastEndpoint());
  end
catch err
  dd_error('transport', 'cannot bind %s: %s%s', endpoint, err.message, dd_endpoint_hint(endpoint));
end
bound = char(reshape(bound, 1, []));
end
