function parts = dd_zmq_recv(s, timeout_s, limit)
%DD_ZMQ_RECV  Receive one multipart message as a cell of uint8 row vectors.
%   parts = dd_zmq_recv(s, timeout_s, limit)
%   Returns {} when nothing arrived within TIMEOUT_S seconds (Inf: wait).
%   LIMIT is the most bytes wanted of each part: a number, or a function handle
%   limit(parts_so_far) that says it for the next part (DDSubscriber takes the
%   payload's size from the header it has just received). The Octave binding
%   receives into a buffer whose size is given in advance, costs time in proportion
%   to it and cuts longer parts; so each part is read up to LIMIT + 1 bytes, and a
%   part that comes back longer than LIMIT was longer on the wire (it may be cut).
%   JeroMQ always returns whole parts. Both bindings copy each part into a new
%   MATLAB array: there is no zero-copy view in MATLAB or Octave.
parts = {};
if strcmp(s.backend, 'octave')
  h = s.handle;
  if isfinite(timeout_s) && ~zmq_poll(h, round(timeout_s * 1000))
    return;
  end
  while true
    if isa(limit, 'function_handle')
      n = limit(parts);
    else
      n = limit;
    end
    parts{end + 1} = reshape(zmq_recv(h, n + 1), 1, []); %#ok<AGROW>
    if ~zmq_getsockopt(h, ZMQ_RCVMORE)
      break;
    end
  end
else
  sock = s.handle;
  if isfinite(timeout_s)
    sock.setReceiveTimeOut(round(timeout_s * 1000));
  else
    sock.setReceiveTimeOut(-1);
  end
  msg = org.zeromq.ZMsg.recvMsg(sock);       % null (MATLAB: []) on timeout
  if isempty(msg)
    return;
  end
  while msg.size() > 0
    frame = msg.pop();
    data = frame.getData();                  % Java byte[] -> int8 column
    parts{end + 1} = reshape(typecast(int8(data), 'uint8'), 1, []); %#ok<AGROW>
  end
end
end
