function bound = dd_zmq_bind(s, endpoint)
%DD_ZMQ_BIND  Bind socket S to ENDPOINT; returns the endpoint actually bound
%   ('tcp://127.0.0.1:*' picks a free port). A failure is an error naming the endpoint:
%   'deepdenoise:usage' for a malformed one (no tcp://, a port beyond 65535),
%   'deepdenoise:transport' for any other (a port in use).
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
  hint = dd_endpoint_hint(endpoint, err.message);
  dd_error(dd_endpoint_reason(hint), 'cannot bind %s: %s%s', endpoint, err.message, hint);
end
bound = char(reshape(bound, 1, []));
end
