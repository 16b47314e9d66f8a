"""What the test suites share, in one place.

- ``registry_harness``: real ``docker-registry`` processes (plain, htpasswd, token, redirect),
  with ``token_server`` as the token service of the token flavour.
- ``fault_proxy``: a TCP proxy that injects faults between a client and a registry.
- ``hostile_registry``: a registry that answers whatever a test makes it answer.
- ``wheels``: tiny, valid, reproducible wheels and sdists built on the fly.
- ``cli``: runs the command line in a process of its own and checks its one-line errors;
  ``folders``: what a run left in a folder.
- ``stores``: stores over a given client, publishing shortcuts, checks of what a store holds.
- ``http``: an index application served on a free port, and a plain HTTP request.
- ``documents``: OCI documents as other tools write them (the empty config, descriptors).
"""
