"""The PEP 503/691 index service: WSGI app, page renderers, built-in server."""
