function parts = dd_encode_start(series, varargin)
%DD_ENCODE_START  The 'start' message of a series: {topic, header}.
%   parts = dd_encode_start(series, 't_ns', t, 'topic', 'frame')
parts = dd_encode_mark('start', series, varargin{:});
end
