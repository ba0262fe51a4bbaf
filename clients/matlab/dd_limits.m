function limits = dd_limits()
%DD_LIMITS  The reference service's default limits (PROTOCOL.md section 6).
%   A service may be configured otherwise: pass your own struct as 'limits' to
%   DD_ENCODE_FRAME, DD_DECODE_MESSAGE, DDPUBLISHER or DDSUBSCRIBER.
%   The service's output may exceed them: see DD_OUTPUT_BOUNDS.
limits = struct('max_header_bytes', 65536, 'max_meta_bytes', 8192, ...
  'max_side', 16384, 'max_payload_bytes', 268435456);
end
