function keys = dd_curve_env()
%DD_CURVE_ENV  The CURVE keys (DD_CURVE_KEYS) the environment names, as the deepdenoise
%   CLI reads them: DEEPDENOISE_CLIENT_KEY (this client's NAME.key_secret) and
%   DEEPDENOISE_SERVER_KEY (the service's service.key). [] when neither is set; only
%   one of them set is an error 'deepdenoise:usage' naming the other.
client = getenv('DEEPDENOISE_CLIENT_KEY');
server = getenv('DEEPDENOISE_SERVER_KEY');
keys = [];
if isempty(client) && isempty(server)
  return;
end
if isempty(client) || isempty(server)
  missing = 'DEEPDENOISE_SERVER_KEY';
  if isempty(client)
    missing = 'DEEPDENOISE_CLIENT_KEY';
  end
  dd_error('usage', ['%s is not set: expected both DEEPDENOISE_CLIENT_KEY (this client''s ' ...
    'NAME.key_secret) and DEEPDENOISE_SERVER_KEY (the service''s service.key), or neither'], ...
    missing);
end
keys = dd_curve_keys(client, server);
end
