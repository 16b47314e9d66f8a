"""Reading a registry's answers: small bodies within limits, error bodies, failure reasons.

Everything a user reads about a failed request is built here, short and free of secrets:
a transport failure becomes a reason without URLs, an OCI error body its codes and
messages, a refusal advice on what to do about it.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import requests

from setuptools_ghcr.core.oci import Digest, load_json
from setuptools_ghcr.errors import DigestMismatchError, RegistryError, TooLargeError
from setuptools_ghcr.storage.registry.challenge import Challenge
from setuptools_ghcr.storage.registry.credentials import Credentials, login_hint

__all__ = [
    "MAX_ERROR_BODY",
    "UNKNOWN_CODES",
    "check_stored_digest",
    "decode_errors",
    "describe",
    "discard",
    "is_permanent",
    "origin",
    "read_limited",
    "refusal_advice",
    "settle",
]

#: Error bodies are read only up to this size.
MAX_ERROR_BODY = 64 << 10
#: OCI error codes that mean "not there", whatever the status that came with them.
UNKNOWN_CODES = frozenset(
    {"BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "NAME_UNKNOWN"}
)


def origin(url: str) -> tuple[str, str]:
    """The scheme and ``host[:port]`` of ``url``; the port only when not the default."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, host if port in (None, default) else f"{host}:{port}"


def discard(response: requests.Response, limit: int = MAX_ERROR_BODY) -> None:
    """Finish with a response so that its connection goes back to the pool when cheap."""
    try:
        read = 0
        for chunk in response.iter_content(64 << 10):
            read += len(chunk)
            if read > limit:
                break
    except requests.RequestException:
        pass
    finally:
        response.close()


def settle(response: requests.Response, limit: int = MAX_ERROR_BODY) -> None:
    """Read a small answer whole, keeping it at hand while its connection serves the next
    request (a 401 is kept until its challenge is answered, and ghcr.io's token service is
    on the registry's own host: without this, a second connection would open)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) <= limit:
        with contextlib.suppress(requests.RequestException):
            response.content  # noqa: B018 - read for its effect: the body is buffered


def read_limited(response: requests.Response, limit: int, what: str) -> bytes:
    """The whole body of a small response; TooLargeError beyond ``limit`` bytes."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise TooLargeError(f"{what} is {declared} bytes, over the {limit} accepted")
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_content(64 << 10):
            total += len(chunk)
            if total > limit:
                raise TooLargeError(f"{what} is over the {limit} bytes accepted")
            chunks.append(chunk)
    except requests.RequestException as error:
        raise RegistryError(f"{what}: {describe(error)}") from None
    finally:
        response.close()
    return b"".join(chunks)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception behind it (cause, context, urllib3's ``reason``, args)."""
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        nested.extend(current.args)
        stack.extend(item for item in nested if isinstance(item, BaseException))


def describe(error: BaseException) -> str:
    """A short, secret-free reason for a transport failure (no URLs, which carry state)."""
    for current in _causes(error):
        if isinstance(current, requests.exceptions.SSLError):
            return "TLS handshake or certificate verification failed"
        if isinstance(current, (requests.Timeout, TimeoutError)):
            return "timed out"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
    return "connection failed"


def is_permanent(error: BaseException) -> bool:
    """Whether a transport failure cannot heal by itself: a name that does not resolve, or
    a certificate that does not verify. Those are reported at once instead of retried."""
    return any(
        isinstance(current, (socket.gaierror, requests.exceptions.SSLError))
        for current in _causes(error)
    )


def decode_errors(body: bytes) -> tuple[list[str], list[str]]:
    """The OCI error codes and their messages from an error body (best effort)."""
    try:
        value = load_json(body)
    except ValueError:
        return [], []
    errors = value.get("errors") if isinstance(value, dict) else None
    codes: list[str] = []
    messages: list[str] = []
    if isinstance(errors, list):
        for item in errors[:10]:
            if not isinstance(item, dict):
                continue
            code, message = item.get("code"), item.get("message")
            if isinstance(code, str):
                codes.append(code[:64])
                text = f"{code[:64]}: {message[:200]}" if isinstance(message, str) else code[:64]
                messages.append(text)
    return codes, messages


def refusal_advice(
    status: int,
    codes: Sequence[str],
    challenges: Sequence[Challenge],
    credentials: Credentials | None,
    host: str,
) -> str:
    """What to tell the user about a 401 or 403: log in, or which credentials failed how."""
    denied = (
        status == 403
        or "DENIED" in codes
        or any(challenge.error == "insufficient_scope" for challenge in challenges)
    )
    if credentials is None:
        return login_hint(host)
    if denied:
        who = "the bearer token" if credentials.bearer else f"user {credentials.username!r}"
        return f"{who} is not allowed to do this"
    return f"the credentials from {credentials.origin} were refused"


def check_stored_digest(response: requests.Response, digest: Digest, operation: str) -> None:
    """Refuse an answer whose ``Docker-Content-Digest`` names other content than ``digest``.

    The header is optional; one in another algorithm cannot be compared, so only a header
    in the algorithm of ``digest`` is held to it.
    """
    stored = response.headers.get("Docker-Content-Digest")
    if stored and stored.startswith(f"{digest.algorithm}:") and stored != str(digest):
        raise DigestMismatchError(
            f"{operation}: the registry stored it as {stored[:80]}, not {digest}"
        )
