% Octave command line for the example dd_control (see clients/matlab/README.md):
%   octave-cli --quiet --norc clients/matlab/bin/control.m ARGS...
% Exits with the example's return code: 0 ok true, 1 ok false, 2 bad usage, 3 no reply
% or another error (an error that escapes the example is printed on stderr, exit 3).
here = fileparts(mfilename('fullpath'));
addpath(fileparts(here), fullfile(fileparts(here), 'examples'));
args = argv();
try
  rc = dd_control(args{:});
catch err
  fprintf(2, 'control: %s\n', err.message);
  rc = 3;
end
exit(rc);
