function parts = dd_encode_message(topic, header, payload)
%DD_ENCODE_MESSAGE  Any message as its parts {topic, header} or {topic, header, payload}.
%   parts = dd_encode_message('status', hdr)
%   parts = dd_encode_message('frame', hdr, img)      % img H-by-W, sent in C order
%   parts = dd_encode_message('frame', hdr, bytes)    % or payload bytes (uint8 row)
%   Each part is a uint8 row vector. No protocol checks beyond encodability: use
%   DD_ENCODE_FRAME to build input frames.
parts = {dd_utf8_encode(topic), dd_encode_header(header)};
if nargin >= 3
  if isa(payload, 'uint8') && isvector(payload) && size(payload, 1) == 1
    parts{3} = payload;       % already bytes (a 1-row uint8 image is the same bytes)
  else
    parts{3} = dd_image_to_bytes(payload);
  end
end
end
