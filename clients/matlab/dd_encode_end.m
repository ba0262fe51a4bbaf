function parts = dd_encode_end(series, varargin)
%DD_ENCODE_END  The 'end' message of a series: {topic, header}. The service flushes the
%   series to disk and publishes a series_end event.
%   parts = dd_encode_end(series, 't_ns', t, 'topic', 'frame')
parts = dd_encode_mark('end', series, varargin{:});
end
