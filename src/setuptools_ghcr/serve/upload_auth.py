"""Who is uploading: the credentials an upload request carries, for the registry to judge.

The index service checks nothing itself. It hands the caller's own credentials to the
registry: Basic ones (from pip, uv, twine, poetry) as a user name and password for the
registry's challenge, a Bearer token as it is. ``__token__`` as the user name is the PyPI
clients' way of saying "a token, no user name"; registries that ignore user names (ghcr.io)
take any, so it is replaced by a neutral one, while every other user name is passed on.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING

from setuptools_ghcr.storage.registry.credentials import Credentials

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["TOKEN_USERNAME", "caller_credentials", "challenge_header"]

#: The user name PyPI clients send with a token in place of a password.
TOKEN_USERNAME = "__token__"  # noqa: S105 - a user name, not a secret
#: What is sent for it (never empty: some token services want a user name).
NEUTRAL_USERNAME = "token"
#: RFC 6750 ``b64token``: what a Bearer credential may be made of.
_BEARER_RE = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_REALM = "setuptools-ghcr"


def challenge_header() -> tuple[str, str]:
    """The ``WWW-Authenticate`` header that makes pip, uv and twine send credentials."""
    return ("WWW-Authenticate", f'Basic realm="{_REALM}"')


def _basic(value: str) -> Credentials | None:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")
    username, sep, password = decoded.partition(":")
    if not sep or not password or _CONTROL_RE.search(decoded):
        return None
    if username in ("", TOKEN_USERNAME):
        username = NEUTRAL_USERNAME
    return Credentials(username, password, "the caller")


def caller_credentials(environ: WSGIEnvironment) -> Credentials | None:
    """The credentials of the request's ``Authorization`` header; None when it has none
    usable (absent, another scheme, malformed, or a blank password)."""
    header = str(environ.get("HTTP_AUTHORIZATION", "") or "").strip()
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        return _basic(value)
    token = value.strip()
    if scheme.lower() == "bearer" and _BEARER_RE.fullmatch(token):
        return Credentials.bearer_token(token, "the caller")
    return None
