function bytes = dd_encode_header(header)
%DD_ENCODE_HEADER  Encode a header canonically: the keys of DD_CANONICAL_KEYS first, in
%   that order, then the others in the given order; smallest integer forms, str for
%   strings, float64 floats. HEADER is a struct or a DD_MAP; nested maps (meta)
%   keep their own order.
m = dd_as_map(header);
rank = zeros(1, numel(m.keys));
canonical = dd_canonical_keys();
for i = 1:numel(m.keys)
  hit = find(strcmp(canonical, m.keys{i}), 1);
  if isempty(hit)
    rank(i) = numel(canonical) + 1;
  else
    rank(i) = hit;
  end
end
[~, order] = sort(rank);          % sort is stable: the others keep their order
bytes = dd_msgpack_encode(dd_map(m.keys(order), m.values(order)));
end
