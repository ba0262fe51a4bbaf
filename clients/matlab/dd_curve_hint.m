function hint = dd_curve_hint(bind)
%DD_CURVE_HINT  What a timeout's message adds when CURVE keys are in use: a service
%   with [security] drops a refused key's handshake without a word, so a wrong key
%   looks like a timeout. BIND true: this end is the CURVE server the service connects to.
if bind
  hint = ' Is this end''s public key the service''s security.input_server_key?';
else
  hint = ' Is this client''s public key in the service''s security.clients folder?';
end
end
