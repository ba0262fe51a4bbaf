function dd_check_port(endpoint, action)
%DD_CHECK_PORT  An error 'deepdenoise:usage' for a tcp ENDPOINT whose port libzmq
%   would not take as written (0-65535, or *): it reads tcp://127.0.0.1:99999 as port
%   34463 (99999 mod 65536), binds there or waits there. ACTION: 'bind', 'connect to'.
if strncmp(endpoint, 'tcp://', 6)
  colons = strfind(endpoint, ':');
  port = endpoint(colons(end) + 1:end);
  digits = ~isempty(port) && numel(port) <= 5 && all(port >= '0' & port <= '9');
  if colons(end) <= 7 || ~(strcmp(port, '*') || (digits && str2double(port) <= 65535))
    dd_error('usage', ['cannot %s %s: expected a TCP endpoint tcp://host:port with a ' ...
      'port of 0-65535 (or *)'], action, endpoint);
  end
end
end
