% RUN_TESTS  Octave command-line runner of this client's own tests: every golden vector
% (check_vectors.m) and the API checks the vectors do not reach (check_api.m).
%   octave-cli --quiet --norc clients/matlab/tests/run_tests.m [VECTORS_DIR]
% VECTORS_DIR defaults to clients/vectors next to this folder. Exits 0 when everything
% passes, 1 otherwise. (MATLAB: add clients/matlab and clients/matlab/tests to the path,
% then check_vectors('clients/vectors') and check_api(); each returns its failures.)
here = fileparts(mfilename('fullpath'));
addpath(fileparts(here));
addpath(here);
args = argv();
if isempty(args)
  vectors_dir = fullfile(here, '..', '..', 'vectors');
else
  vectors_dir = args{1};
end
failures = 0;
try
  failures = failures + check_vectors(vectors_dir);
catch err
  fprintf('ERROR in check_vectors: %s\n', err.message);
  failures = failures + 1;
end
try
  failures = failures + check_api();
catch err
  fprintf('ERROR in check_api: %s\n', err.message);
  failures = failures + 1;
end
exit(double(failures > 0));
