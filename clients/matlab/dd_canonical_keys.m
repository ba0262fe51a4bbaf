function keys = dd_canonical_keys()
%DD_CANONICAL_KEYS  The header keys that go first, in this order (PROTOCOL.md section 4);
%   every other key follows in the order the producer gives it.
keys = {'v', 'kind', 'series', 'index', 'dtype', 'shape', 't_ns', 'meta', 'resend', ...
  'model', 't_recv_ns', 't_done_ns'};
end
