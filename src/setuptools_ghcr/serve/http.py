"""The small vocabulary of the index service's answers: statuses, one-line bodies, redirects.

Every route answers a :data:`Response`; a route ends a request early by raising
:class:`HTTPError`. Redirects are relative (a path, no scheme or host): a ``Host`` header is
never echoed into a ``Location``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from urllib.parse import quote

from setuptools_ghcr.errors import AuthenticationError, GhcrError
from setuptools_ghcr.serve.pages import TEXT_HTML

__all__ = [
    "BASIC_CHALLENGE",
    "HTTPError",
    "Response",
    "close_body",
    "found_elsewhere",
    "health",
    "page_headers",
    "redirect",
    "refused",
    "request_path",
    "stream_verified",
    "text",
]

logger = logging.getLogger(__name__)

#: What a response holds: status line, headers, body.
Response = tuple[str, list[tuple[str, str]], Iterable[bytes]]

#: The challenge of a refusal: pip and uv then ask their keyring or netrc, or prompt.
BASIC_CHALLENGE = 'Basic realm="setuptools-ghcr", charset="UTF-8"'


class HTTPError(Exception):
    """Ends a request with ``status`` and a one-line text body."""

    def __init__(self, status: str, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)

    @classmethod
    def unauthorized(cls, message: str) -> HTTPError:
        """401 with a Basic challenge: the caller may not read this (or must log in)."""
        return cls("401 Unauthorized", message, [("WWW-Authenticate", BASIC_CHALLENGE)])


def request_path(environ: Mapping[str, object]) -> str:
    """The request's path below the application, decoded as UTF-8."""
    # PEP 3333 hands the path over as latin-1 decoded bytes.
    raw = str(environ.get("PATH_INFO", "") or "")
    return raw.encode("latin-1").decode("utf-8", "replace")


def text(message: str, headers: list[tuple[str, str]]) -> list[bytes]:
    """A one-line text body (its headers appended to ``headers``)."""
    body = (" ".join(message.split()) + "\n").encode("utf-8")
    headers.append(("Content-Type", "text/plain; charset=utf-8"))
    headers.append(("Content-Length", str(len(body))))
    return [body]


def redirect(
    environ: Mapping[str, object], path: str, status: str = "301 Moved Permanently"
) -> Response:
    """A redirect to ``path`` (absolute below the application), the query string kept.

    The location is a path: the client resolves it against the URL it asked for, so the
    answer is right behind any proxy and never names a host the request made up.
    """
    root = str(environ.get("SCRIPT_NAME", "") or "").rstrip("/")
    location = quote(root, safe="/") + path
    query = str(environ.get("QUERY_STRING", "") or "")
    if query:
        location += "?" + query
    headers = [("Location", location)]
    return status, headers, text(f"see {location}", headers)


def found_elsewhere(url: str) -> Response:
    """A temporary redirect to another index (its URL as the operator configured it)."""
    headers = [("Location", url)]
    return "302 Found", headers, text(f"see {url}", headers)


def health(method: str) -> Response:
    if method not in ("GET", "HEAD"):
        raise HTTPError("405 Method Not Allowed", "only GET and HEAD", [("Allow", "GET, HEAD")])
    headers: list[tuple[str, str]] = [("Cache-Control", "no-store")]
    return "200 OK", headers, text("ok", headers)


def refused(error: AuthenticationError, environ: Mapping[str, object]) -> Response:
    """401 for what the caller may not read: never a 404, never a redirect elsewhere."""
    if environ.get("HTTP_AUTHORIZATION"):
        message = "the registry refused these credentials for this page"
    else:
        message = "this page needs credentials: send your registry user name and token"
    logger.info("refused: %s", error)
    refusal = HTTPError.unauthorized(message)
    headers = list(refusal.headers)
    return refusal.status, headers, text(refusal.message, headers)


def stream_verified(first: bytes, chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """Yield a verified blob; on failure stop short of its ``Content-Length``, so the client
    sees an incomplete download, never a complete wrong file."""
    try:
        if first:
            yield first
        yield from chunks
    except (GhcrError, OSError) as error:
        logger.warning("%s: %s; the download was cut short", what, error)
    finally:
        close_body(chunks)


def close_body(body: object) -> None:
    close = getattr(body, "close", None)
    if callable(close):
        close()


def page_headers(content_type: str, body: bytes) -> list[tuple[str, str]]:
    header = f"{content_type}; charset=utf-8" if content_type == TEXT_HTML else content_type
    return [
        ("Content-Type", header),
        ("Content-Length", str(len(body))),
        ("Vary", "Accept"),
    ]
