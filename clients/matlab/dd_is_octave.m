function tf = dd_is_octave()
%DD_IS_OCTAVE  True when running in GNU Octave, false in MATLAB.
persistent cached;
if isempty(cached)
  cached = exist('OCTAVE_VERSION', 'builtin') ~= 0;
end
tf = cached;
end
