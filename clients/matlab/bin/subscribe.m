% Octave command line for the example dd_subscribe (see clients/matlab/README.md):
%   octave-cli --quiet --norc clients/matlab/bin/subscribe.m ARGS...
% Exits with the example's return code; an error is printed on stderr (exit 1).
here = fileparts(mfilename('fullpath'));
addpath(fileparts(here), fullfile(fileparts(here), 'examples'));
args = argv();
try
  rc = dd_subscribe(args{:});
catch err
  fprintf(2, 'subscribe: %s\n', err.message);
  rc = 1;
end
exit(rc);
