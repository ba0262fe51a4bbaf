classdef DDPublisher < handle
  %DDPUBLISHER  Send frames to the service, as an acquisition program does.
  %   pub = DDPublisher('tcp://127.0.0.1:5555')                  % PUSH, connects
  %   pub = DDPublisher('tcp://127.0.0.1:5555', 'mode', 'pub')   % XPUB, binds
  %   pub.wait_for_subscriber(10);          % pub mode: before the first frame
  %   pub.start_series('cell-01', dd_now_ns());
  %   pub.send_frame(img, 'cell-01', k, 't_ns', dd_now_ns());      % img H-by-W uint16
  %   pub.end_series('cell-01');
  %   pub.close();
  %
  %   Options: 'mode' 'push' (default: for a service with input_mode = "pull" and its
  %   input bound; a send waits while the service is not keeping up, so no frame is
  %   dropped) or 'pub' (an XPUB socket for the service's default SUB input, which
  %   connects to it; call wait_for_subscriber before the first frame); 'bind'
  %   (default: false for push, true for pub); 'topic' (default 'frame'); 'timeout'
  %   seconds a PUSH send may wait (default Inf); 'linger' seconds close() lets queued
  %   frames go out (default 1); 'limits' (DD_LIMITS) checked before sending; 'curve'
  %   (DD_CURVE_KEYS) for a service with [security]: bound, a CURVE server of this key
  %   pair (the service's security.input_server_key is its public key); connected, a
  %   CURVE client (the keys need the service's public key).
  %   Frames are validated first (DD_ENCODE_FRAME): a bad dtype, shape, series, index
  %   or t_ns is an error 'deepdenoise:<reason>' here, not a silent rejection there.

  properties (SetAccess = private)
    endpoint = ''
    mode = 'push'
    topic = 'frame'
    timeout = Inf
    linger = 1
    limits
  end
  properties (Access = private)
    socket = []
    subscriptions = 0
    hint = ''   % with CURVE keys, what a timeout asks (the keys themselves are not kept)
  end

  methods
    function obj = DDPublisher(endpoint, varargin)
      if nargin < 1 || isempty(endpoint)
        endpoint = 'tcp://127.0.0.1:5555';
      end
      bind = [];
      curve = [];
      obj.limits = dd_limits();
      for i = 1:2:numel(varargin)
        switch lower(varargin{i})
          case 'mode', obj.mode = varargin{i + 1};
          case 'bind', bind = logical(varargin{i + 1});
          case 'topic', obj.topic = varargin{i + 1};
          case 'timeout', obj.timeout = varargin{i + 1};
          case 'linger', obj.linger = varargin{i + 1};
          case 'limits', obj.limits = varargin{i + 1};
          case 'curve', curve = varargin{i + 1};
          otherwise, dd_error('usage', 'unknown DDPublisher option %s', varargin{i});
        end
      end
      if ~any(strcmp(obj.mode, {'pub', 'push'}))
        dd_error('usage', 'expected mode ''pub'' or ''push'', got ''%s''', obj.mode);
      end
      if isempty(bind)
        bind = strcmp(obj.mode, 'pub');
      end
      types = struct('pub', 'XPUB', 'push', 'PUSH');
      obj.socket = dd_zmq_socket(types.(obj.mode));
      try
        if ~isempty(curve)
          dd_zmq_curve(obj.socket, curve, bind);
          obj.hint = dd_curve_hint(bind);
        end
        if bind
          obj.endpoint = dd_zmq_bind(obj.socket, endpoint);
        else
          dd_zmq_connect(obj.socket, endpoint);
          obj.endpoint = endpoint;
        end
      catch err
        dd_zmq_close(obj.socket, 0);
        obj.socket = [];
        rethrow(err);
      end
    end

    function n = subscribers(obj)
      %SUBSCRIBERS  Active subscriptions to a prefix of the topic (pub mode).
      obj.require_pub('subscribers');
      obj.drain_subscriptions(0);
      n = obj.subscriptions;
    end

    function wait_for_subscriber(obj, timeout_s)
      %WAIT_FOR_SUBSCRIBER  Block until the service has subscribed (pub mode).
      %   A PUB socket drops what it sends before a subscription has arrived (the
      %   "slow joiner"); frames sent after this returns reach the subscriber.
      %   Error 'deepdenoise:timeout' after TIMEOUT_S seconds without one.
      obj.require_pub('wait_for_subscriber');
      deadline = tic;
      while true
        obj.drain_subscriptions(0);
        if obj.subscriptions > 0
          return;
        end
        left = timeout_s - toc(deadline);
        if left <= 0
          dd_error('timeout', ['no subscriber to topic ''%s'' on %s within %g s: is the ' ...
            'service running, with its input connected here?%s'], obj.topic, obj.endpoint, ...
            timeout_s, obj.hint);
        end
        obj.drain_subscriptions(min(left, 0.1));
      end
    end

    function send_frame(obj, img, series, index, varargin)
      %SEND_FRAME  Validate and send one frame.
      %   pub.send_frame(img, series, index, 't_ns', t, 'meta', s, 'resend', true)
      parts = dd_encode_frame(img, series, index, varargin{:}, 'topic', obj.topic, ...
        'limits', obj.limits);
      obj.send(parts);
    end

    function start_series(obj, series, t_ns)
      %START_SERIES  Announce the start of a series (optional).
      if nargin < 3, t_ns = []; end
      obj.send(dd_encode_start(series, 't_ns', t_ns, 'topic', obj.topic));
    end

    function end_series(obj, series, t_ns)
      %END_SERIES  Announce the end of a series: the service writes it to disk and
      %   publishes a series_end event. (Named end_series: 'end' is a keyword.)
      if nargin < 3, t_ns = []; end
      obj.send(dd_encode_end(series, 't_ns', t_ns, 'topic', obj.topic));
    end

    function close(obj, linger_s)
      %CLOSE  Close the socket, letting queued frames go out for LINGER_S seconds
      %   (default: the 'linger' option). See DD_ZMQ_CLOSE for Octave's limits.
      if nargin < 2, linger_s = obj.linger; end
      if ~isempty(obj.socket)
        dd_zmq_close(obj.socket, linger_s);
        obj.socket = [];
      end
    end

    function delete(obj)
      obj.close();
    end
  end

  methods (Access = private)
    function send(obj, parts)
      if isempty(obj.socket)
        dd_error('usage', 'this DDPublisher is closed');
      end
      if ~dd_zmq_send(obj.socket, parts, obj.timeout)
        dd_error('timeout', ['could not queue a message on %s within %g s: no PULL peer ' ...
          'connected, or the service is not keeping up.%s'], obj.endpoint, obj.timeout, obj.hint);
      end
    end

    function drain_subscriptions(obj, wait_s)
      % XPUB delivers (un)subscriptions as one-part messages: byte 1 (subscribe) or
      % 0 (unsubscribe), then the prefix. Only prefixes of our topic count.
      topic = dd_utf8_encode(obj.topic);
      while true
        parts = dd_zmq_recv(obj.socket, wait_s, 65536);
        if isempty(parts)
          return;
        end
        wait_s = 0;
        msg = parts{1};
        if isempty(msg) || numel(msg) - 1 > numel(topic) || ...
            ~isequal(msg(2:end), topic(1:numel(msg) - 1))
          continue;
        end
        if msg(1) == 1
          obj.subscriptions = obj.subscriptions + 1;
        elseif msg(1) == 0
          obj.subscriptions = max(0, obj.subscriptions - 1);
        end
      end
    end

    function require_pub(obj, what)
      if ~strcmp(obj.mode, 'pub')
        dd_error('usage', '%s needs mode ''pub''; this publisher is mode ''%s''', what, obj.mode);
      end
    end
  end
end
