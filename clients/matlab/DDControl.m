classdef DDControl < handle
  %DDCONTROL  Send commands to the service's control socket (REQ/REP).
  %   ctl = DDControl('tcp://127.0.0.1:5557');           % 'timeout', 5 (seconds)
  %   st = ctl.status();  disp(st.frames_in)
  %   ctl.pause();  ctl.resume();  ctl.flush();
  %   ctl.load_model('models/dncnn.onnx');                % path on the service's machine
  %   ctl.end_series('cell-01');                          % a crashed sender's open series
  %   ctl.set_rois(labels);                               % H-by-W integer label image
  %   ctl.set_rois(labels, 'fit', true, 'source', 'rois/cells.npy');
  %   ctl.set_rois([]);                                   % remove the ROIs
  %   ctl.stop();
  %   ctl.close();
  %
  %   Each command returns the reply as a struct (DD_TO_STRUCT); ctl.last_reply_map
  %   holds it exactly (DD_MAP). A reply with ok = false is an error
  %   'deepdenoise:refused' whose message is the service's; no reply within the
  %   timeout is an error 'deepdenoise:timeout', after which the REQ socket (which
  %   could not send again) is replaced, so the object stays usable. In Octave, every
  %   command but status is sent only once a status request got its reply (its closed
  %   sockets cannot drop what they hold: see README.md, Limits).
  %   Options: 'timeout' (seconds per reply, default 5), 'max_reply' (bytes, default
  %   4 MiB: Octave's binding receives into a buffer of that size, see DD_ZMQ_RECV),
  %   'curve' (DD_CURVE_KEYS with the service's public key: a CURVE client of a service
  %   with [security]; a refused key gets no reply, so it looks like a timeout).

  properties (SetAccess = private)
    endpoint = ''
    timeout = 5
    max_reply = 4 * 1024 * 1024
    last_reply_map = []
  end
  properties (Access = private)
    socket = []
    curve = []
  end

  methods
    function obj = DDControl(endpoint, varargin)
      if nargin < 1 || isempty(endpoint)
        endpoint = 'tcp://127.0.0.1:5557';
      end
      for i = 1:2:numel(varargin)
        switch lower(varargin{i})
          case 'timeout', obj.timeout = varargin{i + 1};
          case 'max_reply', obj.max_reply = varargin{i + 1};
          case 'curve', obj.curve = varargin{i + 1};
          otherwise, dd_error('usage', 'unknown DDControl option %s', varargin{i});
        end
      end
      obj.endpoint = endpoint;
      obj.open();
    end

    function reply = request(obj, cmd, varargin)
      %REQUEST  Send {cmd, name1: value1, ...} and return the reply (ok is true).
      %   reply = ctl.request('load_model', 'path', 'model.onnx')
      reply = obj.exchange(cmd, dd_encode_request(cmd, varargin{:}));
    end

    function reply = status(obj)
      %STATUS  The service's counters: the fields of a status message, plus ok.
      reply = obj.request('status');
    end

    function reply = pause(obj)
      %PAUSE  Stop denoising; raw frames are still recorded.
      reply = obj.request('pause');
    end

    function reply = resume(obj)
      reply = obj.request('resume');
    end

    function reply = flush(obj)
      %FLUSH  Return once every frame received so far is on disk.
      reply = obj.request('flush');
    end

    function reply = stop(obj)
      %STOP  Drain the queues and shut the service down.
      reply = obj.request('stop');
    end

    function reply = load_model(obj, path)
      %LOAD_MODEL  Swap the model between two frames (PATH on the service's machine).
      reply = obj.request('load_model', 'path', path);
    end

    function reply = end_series(obj, series)
      %END_SERIES  End an open series as its sender's end would (a sender that crashed
      %   with it open); reply.last_index is the last frame received (-1: none).
      reply = obj.request('end_series', 'series', dd_check_series(series));
    end

    function reply = set_rois(obj, labels, varargin)
      %SET_ROIS  Replace the ROIs: LABELS an H-by-W integer label image (0 =
      %   background) or [] to remove them.
      %   ctl.set_rois(labels, [series,] 'fit', true, 'source', 'rois/cells.npy')
      %   SERIES: one series (default: all); options 'fit' and 'source' as
      %   DD_ENCODE_SET_ROIS takes them. reply.rois is the ROI count.
      reply = obj.exchange('set_rois', dd_encode_set_rois(labels, varargin{:}));
    end

    function close(obj)
      if ~isempty(obj.socket)
        dd_zmq_close(obj.socket, 0);
        obj.socket = [];
      end
    end

    function delete(obj)
      obj.close();
    end
  end

  methods (Access = private)
    function parts = transact(obj, cmd, request, before)
      % Send REQUEST, return the reply's parts; no reply within the timeout: the
      % socket is replaced and an error 'deepdenoise:timeout' raised. BEFORE: the
      % command this request was a probe for (not sent), or ''.
      parts = {};
      if dd_zmq_send(obj.socket, {request}, obj.timeout)
        parts = dd_zmq_recv(obj.socket, obj.timeout, obj.max_reply);
      end
      if isempty(parts)
        obj.reset();
        keys = '';
        if ~isempty(obj.curve)   % a service with [security] drops a refused key's handshake
          keys = dd_curve_hint(false);
        end
        unsent = '';
        if ~isempty(before)
          unsent = sprintf(' (asked before ''%s'', which was not sent)', before);
        end
        dd_error('timeout', ['no reply to ''%s''%s from %s within %g s: is the service ' ...
          'running with its control socket there?%s'], cmd, unsent, obj.endpoint, ...
          obj.timeout, keys);
      end
    end

    function open(obj)
      obj.socket = dd_zmq_socket('REQ');
      try
        if ~isempty(obj.curve)
          dd_zmq_curve(obj.socket, obj.curve, false);   % again on each new socket
        end
        dd_zmq_connect(obj.socket, obj.endpoint);
      catch err
        dd_zmq_close(obj.socket, 0);
        obj.socket = [];
        rethrow(err);
      end
    end

    function reset(obj)
      % A REQ socket that got no reply cannot send again: close it (linger 0) and
      % open a new one.
      dd_zmq_close(obj.socket, 0);
      obj.open();
    end

    function reply = exchange(obj, cmd, request)
      if isempty(obj.socket)
        dd_error('usage', 'this DDControl is closed');
      end
      if strcmp(obj.socket.backend, 'octave') && ~strcmp(cmd, 'status')
        % Octave's zeromq package cannot set ZMQ_LINGER, so a closed socket cannot drop
        % a request it holds: one given up on while no service was there went out when
        % a service started later on the endpoint, which then stopped or paused. A
        % status request first proves a service answers now; only then is CMD sent (an
        % unanswered status request reaching a later service changes nothing).
        obj.transact('status', dd_encode_request('status'), cmd);
      end
      parts = obj.transact(cmd, request, '');
      if numel(parts{1}) > obj.max_reply
        dd_error('transport', 'the reply to ''%s'' is longer than max_reply = %d bytes', cmd, ...
          obj.max_reply);
      end
      try
        reply_map = dd_msgpack_decode(parts{1});
      catch err
        dd_error('refused', 'reply to ''%s'' is not valid msgpack: %s', cmd, err.message);
      end
      ok = dd_map_get(reply_map, 'ok');
      if ~dd_is_map(reply_map) || ~(islogical(ok) && isscalar(ok))
        dd_error('refused', 'reply to ''%s'' is not a map with a bool ''ok''', cmd);
      end
      obj.last_reply_map = reply_map;
      reply = dd_to_struct(reply_map);
      if ~ok
        message = dd_map_get(reply_map, 'error', 'no error message given');
        if ~ischar(message), message = 'no error message given'; end
        dd_error('refused', 'service refused ''%s'': %s', cmd, message);
      end
    end
  end
end
