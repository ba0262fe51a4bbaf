function dd_error(reason, fmt, varargin)
%DD_ERROR  Throw an error whose identifier is 'deepdenoise:<reason>'.
%   REASON is a protocol reason code (PROTOCOL.md section 6: 'series', 'index',
%   'header_decode', ...) or 'timeout', 'refused', 'usage', 'transport'.
%   Callers read it back with err.identifier (or dd_reason(err)).
error(['deepdenoise:' reason], fmt, varargin{:});
end
