function s = dd_zmq_socket(type)
%DD_ZMQ_SOCKET  Open a ZeroMQ socket: 'PUSH', 'XPUB', 'SUB' or 'REQ'.
%   The transport layer: every socket call of this client goes through the dd_zmq_*
%   functions, which are the only code that differs between the two backends:
%     Octave  the 'zeromq' package (Debian/Ubuntu: apt install octave-zeromq),
%             loaded here with pkg load zeromq;
%     MATLAB  JeroMQ (org.zeromq, pure Java) on the Java class path, see README.md.
%             This path is written to the JeroMQ 0.5/0.6 API but is NOT tested here.
%   Returns a struct: backend ('octave' or 'jeromq'), type, handle.
type = upper(type);
if ~any(strcmp(type, {'PUSH', 'XPUB', 'SUB', 'REQ', 'PULL', 'PUB', 'REP'}))
  dd_error('usage', 'unsupported socket type %s', type);
end
if dd_is_octave()
  load_octave_zeromq();
  s = struct('backend', 'octave', 'type', type, 'handle', zmq_socket(feval(['ZMQ_' type])));
else
  ctx = dd_zmq_context();
  sock = ctx.createSocket(org.zeromq.SocketType.valueOf(type));
  if strcmp(type, 'XPUB')
    % Report every subscriber's subscription, not only the first per prefix.
    sock.setXpubVerbose(true);
  elseif strcmp(type, 'PUSH')
    % A few frames queued here, not 1000: a send that returned is a frame the service
    % is about to read (octave-zeromq has no such option: libzmq's 1000 there).
    sock.setSndHWM(8);
  end
  s = struct('backend', 'jeromq', 'type', type, 'handle', sock);
end
end

function load_octave_zeromq()
persistent loaded;
if isempty(loaded)
  try
    pkg('load', 'zeromq');
  catch err
    dd_error('transport', ['the Octave zeromq package is missing (%s): install it with ' ...
      '"apt install octave-zeromq" or "pkg install -forge zeromq"'], err.message);
  end
  loaded = true;
end
end
