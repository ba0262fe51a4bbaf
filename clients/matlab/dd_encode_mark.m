function parts = dd_encode_mark(kind, series, varargin)
%DD_ENCODE_MARK  A header-only input message ('start' or 'end'); see DD_ENCODE_START.
t_ns = [];
topic = 'frame';
for i = 1:2:numel(varargin)
  switch varargin{i}
    case 't_ns'
      t_ns = varargin{i + 1};
    case 'topic'
      topic = varargin{i + 1};
    otherwise
      dd_error('usage', 'unknown option %s', varargin{i});
  end
end
header = struct('v', int64(1), 'kind', kind, 'series', dd_check_series(series));
if ~isempty(t_ns)
  header.t_ns = dd_check_int(t_ns, 't_ns', 0, intmax('int64'));
end
parts = dd_encode_message(topic, header);
end
