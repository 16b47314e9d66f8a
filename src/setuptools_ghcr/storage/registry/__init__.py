"""The OCI distribution API over requests, in layers, each leaning only on those before it.

- ``credentials``: where the credentials for a registry come from.
- ``challenge``: ``WWW-Authenticate`` challenges, token scopes, bearer tokens and their cache,
  what an anonymous read sends first (the fast path).
- ``redact``: keeping secrets out of messages, logs and URLs.
- ``retry``: when and how long to wait before trying a request again.
- ``responses``: reading answers: bounded bodies, error bodies, short failure reasons.
- ``streams``: upload bodies that hash as they go; pooled buffers and workers for downloads.
- ``authenticate``: the ``Authorization`` of each request: the challenge flow, tokens per
  scope, anonymous reads (the fast path first on ghcr.io), and counts of what was sent.
- ``transport``: one registry's HTTP: session, retries, redirects, errors.
- ``uploads``: blob upload sessions: opened, streamed, committed or cancelled.
- ``client``: ``RegistryClient``, the API verbs (blobs, manifests, tags, the catalog).
- ``repository``: ``RegistryStore``, one repository behind the ``Store`` interface.
"""
