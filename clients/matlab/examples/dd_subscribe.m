function rc = dd_subscribe(endpoint, denoised, traces, triggers)
%DD_SUBSCRIBE  Example viewer: print what the service publishes, one JSON line each.
%   rc = dd_subscribe('tcp://127.0.0.1:5556', 12, 12, 12)
%   Subscribes to denoised, traces, trigger and status; prints 'ready' after the
%   first status message (the subscription is live from then on), then one line per
%   message:
%     {"topic":"denoised","series":..,"index":..,"dtype":"<f4","shape":[h,w],"sum":..}
%     {"topic":"traces","series":..,"index":..,"shape":[rois,columns],"columns":[..],
%      "labels":[..],"values":[row by row]}
%     {"topic":"trigger","series":..,"index":..,"rule":..,"column":..,"value":..}
%   Returns 0 once DENOISED, TRACES and TRIGGERS messages have arrived, 1 after 60 s.
%   With DEEPDENOISE_CLIENT_KEY (this client's NAME.key_secret) and
%   DEEPDENOISE_SERVER_KEY (the service's service.key) set, it connects with CURVE
%   (DD_CURVE_ENV), for a service with [security]; only one of them set, or a key file
%   that is not one, is bad usage: returns 2, a message on stderr.
try
  curve = dd_curve_env();           % [] when neither variable is set
catch err
  fprintf(2, 'subscribe: %s\n', err.message);
  rc = 2;
  return;
end
wanted = [as_number(denoised), as_number(traces), as_number(triggers)];
seen = [0 0 0];
topics = {'denoised', 'traces', 'trigger'};
sub = DDSubscriber(endpoint, [topics, {'status'}], 'curve', curve);
cleanup = onCleanup(@() sub.close());
deadline = tic;
ready = false;
rc = 1;
while toc(deadline) < 60
  if ready && all(seen >= wanted)
    rc = 0;
    return;
  end
  try
    msg = sub.recv(min(1, max(0.01, 60 - toc(deadline))));
  catch err
    if any(strcmp(dd_reason(err), {'', 'usage', 'transport', 'timeout', 'refused'}))
      rethrow(err);  % not a malformed message: the viewer cannot go on
    end
    % a malformed message ends no viewer (as the C and C++ examples skip it): said, skipped
    fprintf(2, 'skipped a message (%s): %s\n', dd_reason(err), err.message);
    continue;
  end
  if isempty(msg)
    continue;
  end
  h = msg.header;
  switch msg.topic
    case 'status'
      if ~ready
        emit('ready');
        ready = true;
      end
      continue;
    case 'denoised'
      line = dd_map({'topic', 'series', 'index', 'dtype', 'shape', 'sum'}, ...
        {'denoised', h.series, h.index, h.dtype, h.shape, sum(double(msg.image(:)))});
    case 'traces'
      % Row r of the payload is ROI labels(r); columns are raw, denoised, dff, ...
      values = double(reshape(msg.image.', 1, []));
      line = dd_map({'topic', 'series', 'index', 'shape', 'columns', 'labels', 'values'}, ...
        {'traces', h.series, h.index, h.shape, msg.header_map.values{ ...
        strcmp(msg.header_map.keys, 'columns')}, h.labels, values});
    case 'trigger'
      line = dd_map({'topic', 'series', 'index', 'rule', 'column', 'value'}, ...
        {'trigger', h.series, h.index, h.rule, h.column, h.value});
    otherwise
      continue;
  end
  if ~ready
    continue;        % print only after 'ready', as the harness expects
  end
  seen = seen + strcmp(msg.topic, topics);
  emit(dd_json_encode(line));
end
end

function emit(text)
fprintf('%s\n', text);
if dd_is_octave()
  fflush(stdout);    % the reader waits for each line; Octave buffers a pipe
end
end

function x = as_number(x)
if ischar(x)
  x = str2double(x);
end
end
