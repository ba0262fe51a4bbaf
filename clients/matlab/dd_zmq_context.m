function ctx = dd_zmq_context()
%DD_ZMQ_CONTEXT  (MATLAB/JeroMQ only) the one org.zeromq.ZContext of this MATLAB session.
%   Octave's zeromq package keeps its own global context; nothing to do there.
persistent context;
if isempty(context)
  if ~exist('org.zeromq.ZContext', 'class')
    dd_error('transport', ['JeroMQ is not on the Java class path: ' ...
      'javaaddpath(''/path/to/jeromq-0.6.0.jar'') (see clients/matlab/README.md)']);
  end
  context = org.zeromq.ZContext();
end
ctx = context;
end
