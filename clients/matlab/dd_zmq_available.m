function [ok, reason] = dd_zmq_available()
%DD_ZMQ_AVAILABLE  Whether a ZeroMQ backend can be used here, and why not.
ok = true;
reason = '';
try
  s = dd_zmq_socket('PUSH');
  dd_zmq_close(s, 0);
catch err
  ok = false;
  reason = err.message;
end
end
