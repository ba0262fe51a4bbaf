function bytes = dd_encode_request(cmd, varargin)
%DD_ENCODE_REQUEST  A control request: the map {cmd, then the arguments in the order given}.
%   bytes = dd_encode_request('status')
%   bytes = dd_encode_request('load_model', 'path', 'models/dncnn.onnx')
%   Argument names may be any string (they are map keys, not field names). No key
%   reordering: control requests put cmd first (PROTOCOL.md section 8).
if mod(numel(varargin), 2) ~= 0
  dd_error('usage', 'request arguments come as name, value pairs');
end
keys = [{'cmd'}, varargin(1:2:end)];
values = [{cmd}, varargin(2:2:end)];
bytes = dd_msgpack_encode(dd_map(keys, values));
end
