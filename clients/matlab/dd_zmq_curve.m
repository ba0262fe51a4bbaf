function dd_zmq_curve(s, keys, bind)
%DD_ZMQ_CURVE  Set CURVE keys (DD_CURVE_KEYS) on socket S before it binds or connects.
%   BIND true: a CURVE server with its own key pair (a bound DDPublisher, which the
%   service connects to with its security.input_server_key); false: a CURVE client of
%   the service, whose public key keys.server must hold. Both bindings take the keys
%   as their 40 Z85 characters.
if ~isstruct(keys) || ~all(isfield(keys, {'public', 'secret', 'server'}))
  dd_error('usage', 'expected the ''curve'' option as the keys of dd_curve_keys(...)');
end
if ~bind && isempty(keys.server)
  dd_error('usage', ['expected the service''s public key (service.key) to connect: ' ...
    'dd_curve_keys(secret_file, server_file)']);
end
if strcmp(s.backend, 'octave')
  % CURVE came with zeromq package 1.5.0 (its help says ZMQ_CURVE_PRIVATEKEY; the
  % function is ZMQ_CURVE_SECRETKEY), and needs a libzmq built with libsodium.
  if ~exist('ZMQ_CURVE_SERVERKEY') || ~zmq_has('curve') %#ok<EXIST>
    dd_error('transport', ['this Octave zeromq package or its libzmq cannot do CURVE: ' ...
      'expected zeromq 1.5.0 or later on a libzmq with zmq_has(''curve'')']);
  end
  h = s.handle;
  zmq_setsockopt(h, ZMQ_CURVE_PUBLICKEY, keys.public);
  zmq_setsockopt(h, ZMQ_CURVE_SECRETKEY, keys.secret);
  if bind
    zmq_setsockopt(h, ZMQ_CURVE_SERVER, 1);
  else
    zmq_setsockopt(h, ZMQ_CURVE_SERVERKEY, keys.server);
  end
else
  % JeroMQ decodes a 40-byte key as Z85 text (written to its 0.5/0.6 API, untested).
  h = s.handle;
  ok = h.setCurvePublicKey(int8(keys.public)) && h.setCurveSecretKey(int8(keys.secret));
  if bind
    ok = ok && h.setCurveServer(true);
  else
    ok = ok && h.setCurveServerKey(int8(keys.server));
  end
  if ~ok
    dd_error('transport', 'JeroMQ refused the CURVE keys');
  end
end
end
