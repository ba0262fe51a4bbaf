function sent = dd_zmq_send(s, parts, timeout_s)
%DD_ZMQ_SEND  Send a multipart message (a cell of uint8 row vectors).
%   sent = dd_zmq_send(s, parts, timeout_s)
%   Only the first part can block: once it is queued ZeroMQ takes the rest of the
%   message, so a message is never half sent. Returns false when the first part
%   could not be queued within TIMEOUT_S seconds (Inf: wait as long as it takes).
last = numel(parts);
if strcmp(s.backend, 'octave')
  sent = octave_send(s.handle, parts, last, timeout_s);
else
  sock = s.handle;
  sock.setSendTimeOut(ms(timeout_s));
  sent = true;
  for i = 1:last
    flags = 0;
    if i < last
      flags = org.zeromq.ZMQ.SNDMORE;
    end
    if ~sock.send(typecast(parts{i}, 'int8'), flags)
      if i == 1
        sent = false;
        return;
      end
      dd_error('transport', 'ZeroMQ refused part %d of a message', i);
    end
  end
end
end

function sent = octave_send(h, parts, last, timeout_s)
% The Octave binding has no ZMQ_SNDTIMEO: the first part retries a non-blocking send,
% also with no timeout (Inf), since a blocking zmq_send cannot be interrupted: Ctrl-C
% stops the wait between two tries.
sent = true;
start = tic;
for i = 1:last
  more = 0;
  if i < last
    more = ZMQ_SNDMORE;
  end
  if i == 1
    while zmq_send(h, parts{i}, more + ZMQ_DONTWAIT) < 0
      if ~any(zmq_errno() == [11 35])            % EAGAIN (Linux, macOS): queue full
        dd_error('transport', 'zmq_send failed: %s', zmq_strerror());
      end
      if toc(start) >= timeout_s
        sent = false;
        return;
      end
      pause(0.001);
    end
  elseif zmq_send(h, parts{i}, more) < 0
    dd_error('transport', 'zmq_send failed: %s', zmq_strerror());
  end
end
end

function t = ms(timeout_s)
if isfinite(timeout_s)
  t = round(timeout_s * 1000);
else
  t = -1;
end
end
