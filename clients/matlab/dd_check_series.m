function series = dd_check_series(series)
%DD_CHECK_SERIES  Return SERIES if it is a valid series id, else error 'deepdenoise:series'.
%   1-64 characters from [A-Za-z0-9._-] (ASCII), not starting with '.'.
if ~dd_valid_series(series)
  if ischar(series)
    shown = ['''' series ''''];
  else
    shown = ['a ' class(series)];
  end
  dd_error('series', ['expected a series id of 1-64 characters from [A-Za-z0-9._-], ' ...
    'not starting with ''.'', got %s'], shown);
end
end
