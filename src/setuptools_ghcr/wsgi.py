"""``setuptools_ghcr.wsgi:application``: the index service under a WSGI server.

Configured by the environment alone (see docs/deploy.md)::

    SETUPTOOLS_GHCR_SERVE_REGISTRIES=ghcr.io \\
    SETUPTOOLS_GHCR_ALLOWED_HOSTS=pkgs.example.com \\
        gunicorn -w 4 -b 127.0.0.1:8000 setuptools_ghcr.wsgi:application

- ``SETUPTOOLS_GHCR_REPOSITORY``: the fixed target at ``/simple/``, read with the server's
  credentials (``SETUPTOOLS_GHCR_USERNAME``/``PASSWORD``, the credential stores,
  ``GITHUB_TOKEN``) for callers who send none; none when unset.
- ``SETUPTOOLS_GHCR_SERVE_REGISTRIES``: registries of pass-through routes, comma-separated.
- ``SETUPTOOLS_GHCR_FALLBACK_INDEX``, ``SETUPTOOLS_GHCR_ALLOWED_HOSTS``,
  ``SETUPTOOLS_GHCR_CACHE_DIR``, ``SETUPTOOLS_GHCR_INSECURE_REGISTRIES``,
  ``SETUPTOOLS_GHCR_MAX_UPLOAD_SIZE``: as for ``setuptools-ghcr serve``.

Each worker process builds its own application when the server first looks it up (importing
the module alone builds nothing); the workers share the disk cache. A configuration error
stops the worker with one line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from setuptools_ghcr.errors import GhcrError
from setuptools_ghcr.serve.app import IndexApp

__all__ = ["application", "create_application"]  # noqa: F822 - application: see __getattr__


def create_application(environ: Mapping[str, str] | None = None) -> IndexApp:
    """The index service configured by ``environ`` (default: the process environment)."""
    from setuptools_ghcr.config import REPOSITORY_ENV, insecure_registries
    from setuptools_ghcr.core.targets import parse_target
    from setuptools_ghcr.errors import ConfigError
    from setuptools_ghcr.serve.app import make_app
    from setuptools_ghcr.serve.settings import serve_settings
    from setuptools_ghcr.serve.upload import Uploads, max_upload_size
    from setuptools_ghcr.storage.factory import StoreFactory

    env = dict(os.environ if environ is None else environ)
    settings = serve_settings(env)
    insecure = insecure_registries((), env)
    named = env.get(REPOSITORY_ENV, "").strip()
    if not named and not settings.registries:
        raise ConfigError(
            f"nothing to serve: set {REPOSITORY_ENV} (a target) and/or "
            "SETUPTOOLS_GHCR_SERVE_REGISTRIES (registries of pass-through routes)"
        )
    factory = StoreFactory(parse_target(named, insecure=insecure), environ=env) if named else None
    max_size = max_upload_size(None, env)
    return make_app(
        factory,
        registries=settings.registries,
        hosts=settings.hosts,
        fallback_index=settings.fallback_index,
        cache_dir=settings.cache_dir,
        environ=env,
        uploads=Uploads(max_size=max_size, environ=env),
        insecure=insecure,
    )


_lock = threading.Lock()


def __getattr__(name: str) -> IndexApp:
    """``application``, built on first use from the environment."""
    if name != "application":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        built = globals().get("application")
        if built is None:
            try:
                built = create_application()
            except GhcrError as error:
                # One line, not a traceback: the server reports the worker failed to boot.
                raise SystemExit(f"setuptools-ghcr: {error}") from None
            globals()["application"] = built
    return built
