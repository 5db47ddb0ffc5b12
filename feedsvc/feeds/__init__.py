"""From articles to feed bytes: the catalog, query flags and paging, URLs, and the renderers
(feedgen for RSS and Atom, JSON Feed, digests). Request-free: no Flask."""
