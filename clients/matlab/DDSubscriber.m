classdef DDSubscriber < handle
  %DDSUBSCRIBER  Receive the service's output: denoised frames, traces, trigger,
  %   status and event messages.
  %   sub = DDSubscriber('tcp://127.0.0.1:5556', {'denoised', 'status'});
  %   msg = sub.recv(5);                 % [] after 5 s without a message
  %   if ~isempty(msg) && strcmp(msg.topic, 'denoised')
  %     imagesc(msg.image);              % H-by-W single (or the input class)
  %   end
  %   sub.close();
  %
  %   msg is the struct of DD_DECODE_MESSAGE (topic, header, header_map, image,
  %   payload). Subscribe to 'traces' and 'trigger' in full: SUB filtering matches
  %   prefixes, so 't' would get both. Options: 'timeout' (default for recv, Inf),
  %   'limits' (DD_LIMITS), 'max_part' (largest part accepted, bytes; default the
  %   output payload bound of DD_OUTPUT_BOUNDS + 1024), 'curve' (DD_CURVE_KEYS with the
  %   service's public key: a CURVE client of a service with [security]; a refused key
  %   receives nothing, as if nothing were published). A SUB socket misses what is
  %   published before its connection is up: wait for a first status message when
  %   that matters.

  properties (SetAccess = private)
    endpoint = ''
    topics = {}
    timeout = Inf
    limits
    max_part
  end
  properties (Access = private)
    socket = []
    header_map = []      % the header of the message being received, decoded once
  end

  methods
    function obj = DDSubscriber(endpoint, topics, varargin)
      if nargin < 1 || isempty(endpoint)
        endpoint = 'tcp://127.0.0.1:5556';
      end
      if nargin < 2
        topics = {'denoised'};
      end
      if ischar(topics)
        topics = {topics};
      end
      if isempty(topics)  % a SUB socket with no subscription receives nothing, silently
        dd_error('usage', 'expected at least one topic ( for every topic), got none');
      end
      obj.endpoint = endpoint;
      obj.topics = topics;
      obj.limits = dd_limits();
      obj.max_part = [];
      curve = [];
      for i = 1:2:numel(varargin)
        switch lower(varargin{i})
          case 'timeout', obj.timeout = varargin{i + 1};
          case 'limits', obj.limits = varargin{i + 1};
          case 'max_part', obj.max_part = varargin{i + 1};
          case 'curve', curve = varargin{i + 1};
          otherwise, dd_error('usage', 'unknown DDSubscriber option %s', varargin{i});
        end
      end
      if isempty(obj.max_part)
        [~, max_payload] = dd_output_bounds(obj.limits);
        obj.max_part = max_payload + 1024;
      end
      obj.socket = dd_zmq_socket('SUB');
      try
        for i = 1:numel(topics)
          dd_zmq_subscribe(obj.socket, topics{i});
        end
        if ~isempty(curve)
          dd_zmq_curve(obj.socket, curve, false);
        end
        dd_zmq_connect(obj.socket, endpoint);
      catch err
        dd_zmq_close(obj.socket, 0);
        obj.socket = [];
        rethrow(err);
      end
    end

    function msg = recv(obj, timeout_s)
      %RECV  Receive and decode one message; [] when none came within TIMEOUT_S
      %   seconds (default: the 'timeout' option). A malformed message is an error
      %   'deepdenoise:<reason>'.
      if nargin < 2, timeout_s = obj.timeout; end
      if isempty(obj.socket)
        dd_error('usage', 'this DDSubscriber is closed');
      end
      obj.header_map = [];
      parts = dd_zmq_recv(obj.socket, timeout_s, @(got) obj.part_limit(got));
      if isempty(parts)
        msg = [];
        return;
      end
      known = {};
      if numel(parts) == 3 && ~isempty(obj.header_map)
        known = {'header_map', obj.header_map};
      end
      msg = dd_decode_message(parts, 'limits', obj.limits, known{:});
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
    function n = part_limit(obj, got)
      % How many bytes of the next part to take (see DD_ZMQ_RECV). The payload's size
      % follows from the header just received, so no buffer is larger than needed; a
      % part over its limit comes back one byte too long and fails decoding with the
      % matching reason (header_size, payload_length).
      switch numel(got)
        case 0
          n = 65536;                                   % topic
        case 1
          n = dd_output_bounds(obj.limits);            % header
        case 2
          n = obj.max_part;
          try
            hmap = dd_msgpack_decode(got{2});
            obj.header_map = hmap;                     % recv() reuses it
            [~, itemsize] = dd_dtype_info(dd_map_get(hmap, 'dtype'));
            shape = dd_map_get(hmap, 'shape');
            expected = itemsize * double(shape{1}) * double(shape{2});
            if expected > 0
              n = min(n, expected);
            end
          catch
            % A header that does not say the size: dd_decode_message reports it.
          end
        otherwise
          n = 0;                                       % a 4th part is an error anyway
      end
    end
  end
end
