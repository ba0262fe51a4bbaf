function h = sha256_hex(bytes)
%SHA256_HEX  Lower-case hex SHA-256 of a uint8 vector.
bytes = reshape(uint8(bytes), 1, []);
if dd_is_octave()
  h = hash('sha256', char(bytes));
else
  md = java.security.MessageDigest.getInstance('SHA-256');
  digest = typecast(int8(md.digest(typecast(bytes, 'int8'))), 'uint8');
  h = lower(reshape(dec2hex(digest, 2).', 1, []));
end
end
