"""``setuptools-ghcr serve``: a PEP 503 / 691 index of the target, and pass-through routes."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from setuptools_ghcr.errors import ConfigError

if TYPE_CHECKING:
    from setuptools_ghcr.cli import Context
    from setuptools_ghcr.storage.factory import StoreFactory


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return port


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return seconds


def _size(text: str) -> int:
    from setuptools_ghcr.serve.upload import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; anything else serves the network "
        "whatever the server's credentials can read)",
    )
    parser.add_argument(
        "--port", type=_port, default=8000, help="port to listen on (default: 8000; 0 picks one)"
    )
    parser.add_argument(
        "--registry",
        dest="registries",
        action="append",
        default=[],
        metavar="HOST",
        help="serve /HOST/NAMESPACE/simple/ for this registry, read with each caller's own "
        "credentials (repeatable; also $SETUPTOOLS_GHCR_SERVE_REGISTRIES, comma-separated)",
    )
    parser.add_argument(
        "--fallback-index",
        metavar="URL",
        help="redirect projects a target does not hold to URL/<project>/ (e.g. "
        "https://pypi.org/simple/; also $SETUPTOOLS_GHCR_FALLBACK_INDEX)",
    )
    parser.add_argument(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host header value to answer besides loopback (NAME, NAME:PORT or *; "
        "repeatable; also $SETUPTOOLS_GHCR_ALLOWED_HOSTS); others get 421",
    )
    parser.add_argument(
        "--cache-ttl",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="how long a project page is reused before the target is read again "
        "(default: 30; 0 reads it on every request)",
    )
    parser.add_argument(
        "--max-upload-size",
        type=_size,
        default=None,
        metavar="SIZE",
        help="refuse uploads bigger than SIZE (e.g. 500M, 2G) with 413 before reading them "
        "(default: $SETUPTOOLS_GHCR_MAX_UPLOAD_SIZE, else no cap)",
    )


def _fixed_target(args: argparse.Namespace, context: Context) -> StoreFactory | None:
    """The factory of the target served at /simple/; None when only pass-through routes
    are asked for (registries given and no repository named anywhere)."""
    from setuptools_ghcr.config import REPOSITORY_ENV, load_settings

    if args.registries or context.environ.get("SETUPTOOLS_GHCR_SERVE_REGISTRIES", "").strip():
        named = (
            args.repository
            or context.environ.get(REPOSITORY_ENV)
            or load_settings(context.cwd / "pyproject.toml").repository
        )
        if not named:
            return None
    return context.factory(args)


def run(args: argparse.Namespace, context: Context) -> int:
    from setuptools_ghcr import serve
    from setuptools_ghcr.config import insecure_registries
    from setuptools_ghcr.serve.app import make_app
    from setuptools_ghcr.serve.projects import DEFAULT_CACHE_TTL
    from setuptools_ghcr.serve.server import make_server
    from setuptools_ghcr.serve.settings import serve_settings
    from setuptools_ghcr.serve.upload import Uploads, max_upload_size

    ttl = DEFAULT_CACHE_TTL if args.cache_ttl is None else args.cache_ttl
    settings = serve_settings(
        context.environ,
        registries=args.registries,
        fallback_index=args.fallback_index,
        allowed_hosts=args.allowed_hosts,
    )
    uploads = Uploads(
        max_size=max_upload_size(args.max_upload_size, context.environ), environ=context.environ
    )
    # Access lines are the point of a foreground server: show them (and whatever else the
    # index service says at INFO) unless logging is finer.
    server_log = logging.getLogger(serve.__name__)
    if server_log.getEffectiveLevel() > logging.INFO:
        server_log.setLevel(logging.INFO)
    stores = _fixed_target(args, context)
    app = make_app(
        stores,
        cache_ttl=ttl,
        registries=settings.registries,
        hosts=settings.hosts,
        fallback_index=settings.fallback_index,
        cache_dir=settings.cache_dir,
        environ=context.environ,
        uploads=uploads,
        insecure=insecure_registries(args.insecure_registries, context.environ),
    )
    try:
        try:
            server = make_server(app, args.host, args.port)
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {args.host}:{args.port}: {error.strerror or error}"
            ) from error
        _announce(server_log, args.host, server.url, stores, settings.registries)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("Stopped.", file=sys.stderr)
        finally:
            server.server_close()
    finally:
        app.close()
        if stores is not None:
            stores.close()
    return 0


def _announce(
    log: logging.Logger,
    host: str,
    url: str,
    stores: StoreFactory | None,
    registries: tuple[str, ...],
) -> None:
    from setuptools_ghcr.core.targets import is_loopback_host

    if stores is not None and not is_loopback_host(host.strip("[]")):
        log.warning(
            "listening on %s: anyone who can reach it reads what this server's credentials "
            "can read at %s",
            host,
            url,
        )
    if stores is not None:
        print(f"Serving {stores.target} at {url}", file=sys.stderr, flush=True)
    root = url.removesuffix("simple/")
    for registry in registries:
        print(
            f"Serving {registry} at {root}{registry}/<namespace>/simple/ "
            "(with each caller's credentials)",
            file=sys.stderr,
            flush=True,
        )
