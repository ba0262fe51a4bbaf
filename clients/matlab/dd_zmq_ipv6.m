function dd_zmq_ipv6(s, endpoint, action)
%DD_ZMQ_IPV6  Ready socket S for ENDPOINT when it names an IPv6 address in brackets
%   (tcp://[::1]:5555): libzmq takes one only on a socket with its IPV6 option set.
%   JeroMQ sets it; octave-zeromq (1.5) has no such option, so there it is an error
%   'deepdenoise:transport' that says so. ACTION: 'bind', 'connect to'.
if ~strncmp(endpoint, 'tcp://', 6) || isempty(strfind(endpoint, '['))
  return;
end
if strcmp(s.backend, 'octave')
  dd_error('transport', ['cannot %s %s: the Octave zeromq package cannot set ZMQ_IPV6, ' ...
    'so its sockets take IPv4 addresses only (tcp://127.0.0.1:5555)'], action, endpoint);
end
s.handle.setIPv6(true);
end
