function [max_header, max_payload] = dd_output_bounds(limits)
%DD_OUTPUT_BOUNDS  The largest header and payload the service may send (PROTOCOL.md 7).
%   [max_header, max_payload] = dd_output_bounds(dd_limits())  % 1 MiB, 1 GiB
%   Its output may exceed its input limits: a traces header lists every ROI's label
%   (16 x max_header_bytes), and a float32 output of the largest |u1 frame is
%   4 x max_payload_bytes. Output payloads have no max_side (a traces row per ROI).
max_header = 16 * limits.max_header_bytes;
max_payload = 4 * limits.max_payload_bytes;
end
