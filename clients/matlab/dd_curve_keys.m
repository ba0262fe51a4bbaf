function keys = dd_curve_keys(secret_file, server_file)
%DD_CURVE_KEYS  CURVE keys for a service with [security], read from the files that
%   `deepdenoise keys NAME` writes (NAME.key public, NAME.key_secret both keys).
%   keys = dd_curve_keys('rig.key_secret', 'service.key')   % to connect: a CURVE client
%   keys = dd_curve_keys('acquisition.key_secret')          % a bound DDPublisher: a server
%   ctl = DDControl('tcp://127.0.0.1:5557', 'curve', keys);
%
%   KEYS is a struct of Z85 text (40 characters each): public and secret (this end's
%   pair) and server (the service's public key; '' without SERVER_FILE). Give it as the
%   'curve' option of DDControl, DDSubscriber or DDPublisher. A leading ~ in a file
%   name is the home folder. A file that cannot be read, holds no key, no secret key
%   (SECRET_FILE) or a key that is not 40 Z85 characters of a valid key is an error
%   'deepdenoise:usage' naming the file. A SECRET_FILE other users may read is loaded
%   with a warning 'deepdenoise:curve' (chmod 600 it). The service lets in only
%   the clients whose public key it allows; a refused one gets no reply at all (ZeroMQ
%   drops the handshake), so a wrong key looks like a timeout.
if nargin < 2
  server_file = '';
end
[keys.public, keys.secret] = read_certificate(secret_file);
if isempty(keys.secret)
  dd_error('usage', '%s holds no secret key: give the NAME.key_secret file, not the public NAME.key', ...
    secret_file);
end
if readable_by_others(home(secret_file))   % said, not refused, as the service says of its own
  warning('deepdenoise:curve', 'the secret key file %s is readable by other users: chmod 600 it', ...
    secret_file);
end
keys.server = '';
if ~isempty(server_file)
  keys.server = read_certificate(server_file);
end
end

function [public, secret] = read_certificate(file)
% The keys of a ZPL certificate: 'public-key = "..."' and, in a secret one, 'secret-key'.
[fid, why] = fopen(home(file), 'r');
if fid < 0
  dd_error('usage', 'cannot read the CURVE key file %s: %s', file, why);
end
text = reshape(fread(fid, Inf, '*char'), 1, []);
fclose(fid);
public = key_value(text, 'public-key', file);
if isempty(public)
  dd_error('usage', ['%s holds no public-key: expected a CURVE certificate made by ' ...
    '`deepdenoise keys NAME`'], file);
end
secret = key_value(text, 'secret-key', file);
end

function key = key_value(text, name, file)
key = '';
found = regexp(text, ['^[ \t]*' name '[ \t]*=([^\r\n]*)'], 'tokens', 'once', 'lineanchors');
if isempty(found)
  return;
end
% Z85 has no quote characters: the ones around the value are ZPL's.
key = regexprep(strtrim(found{1}), '^["'']|["'']$', '');
z85 = ['0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ' ...
  '.-:+=^!/*?&<>()[]{}@%$#'];
if numel(key) ~= 40
  dd_error('usage', '%s: expected the %s as 40 Z85 characters, got %d characters', file, name, ...
    numel(key));
elseif ~all(ismember(key, z85))
  dd_error('usage', '%s: expected the %s as 40 Z85 characters, got a character outside Z85', ...
    file, name);
end
% Each group of 5 is a base-85 number that must fit 32 bits (40 '#' do not): said here,
% not by libzmq at connect as a bare "Invalid argument". Doubles hold 85^5 exactly.
[~, digits] = ismember(key, z85);
groups = reshape(digits - 1, 5, []);
if any((85 .^ (4:-1:0)) * groups > 2^32 - 1)
  dd_error('usage', '%s: the %s is not a valid Z85 key', file, name);
end
end

function file = home(file)
% A leading ~ is the home folder, as in a shell (MATLAB's fopen does not expand it).
if ~isempty(regexp(file, '^~(/|$)', 'once'))
  file = [getenv('HOME') file(2:end)];
end
end

function shared = readable_by_others(file)
% Whether the file's mode lets other users at it; false without POSIX modes (Windows).
shared = false;
if ispc()
  return;
end
if dd_is_octave()
  [info, err] = stat(file);
  shared = err == 0 && bitand(info.mode, 63) ~= 0;   % 63 = octal 077: group and other
else
  [ok, a] = fileattrib(file);
  shared = ok && any([a.GroupRead a.GroupWrite a.OtherRead a.OtherWrite] == 1);
end
end
