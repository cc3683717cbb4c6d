"""JMAP (RFC 8620 core, RFC 8621 mail) over the mail store.

Layout (as Stalwart's jmap-proto): ``protocol/`` is the pure protocol — request parsing, result
references, errors, ids — with no I/O; ``methods/`` has one module per method, each a coroutine from
the parsed arguments to the response arguments over the mail store; ``api.py`` runs a request's
method calls; ``http.py`` is the HTTP edge (session resource, API, upload, download, EventSource)
that the gateway mounts.
"""
