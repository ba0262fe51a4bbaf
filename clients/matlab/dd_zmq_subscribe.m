function dd_zmq_subscribe(s, prefix)
%DD_ZMQ_SUBSCRIBE  Subscribe SUB socket S to the topic prefix PREFIX (char).
bytes = dd_utf8_encode(prefix);
if strcmp(s.backend, 'octave')
  zmq_setsockopt(s.handle, ZMQ_SUBSCRIBE, char(bytes));   % this binding wants a char
else
  s.handle.subscribe(typecast(bytes, 'int8'));
end
end
