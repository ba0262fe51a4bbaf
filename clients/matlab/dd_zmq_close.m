function dd_zmq_close(s, linger_s)
%DD_ZMQ_CLOSE  Close socket S, letting queued messages go out for up to LINGER_S seconds.
%   JeroMQ: ZMQ_LINGER is set and the socket closed (close returns at once; the
%   context's I/O thread keeps sending for LINGER_S).
%   Octave: the zeromq package can set neither ZMQ_LINGER nor end its context, and its
%   I/O thread dies with Octave, so messages still queued at exit are lost. A linger
%   there is a plain wait of LINGER_S seconds before closing, enough for a local
%   peer to take what was queued (there is no way to ask the queue whether it is empty).
if nargin < 2
  linger_s = 0;
end
if strcmp(s.backend, 'octave')
  if linger_s > 0
    pause(linger_s);
  end
  zmq_close(s.handle);
else
  s.handle.setLinger(round(linger_s * 1000));
  s.handle.close();
end
end
