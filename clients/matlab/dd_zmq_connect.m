function dd_zmq_connect(s, endpoint)
%DD_ZMQ_CONNECT  Connect socket S to ENDPOINT ('tcp://127.0.0.1:5555').
if strcmp(s.backend, 'octave')
  zmq_connect(s.handle, endpoint);
else
  s.handle.connect(endpoint);
end
end
