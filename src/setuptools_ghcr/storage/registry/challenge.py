"""Authentication challenges, token scopes and the bearer tokens issued for them.

Pure: the parsing of ``WWW-Authenticate`` (RFC 7235), the ``repository:NAME:ACTIONS`` scopes,
token endpoint answers, and the cache that holds one token per (realm, service, scopes,
anonymous). The requests that answer a challenge are the transport's (see ``transport``).
"""

from __future__ import annotations

import string
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from setuptools_ghcr.core.oci import load_json
from setuptools_ghcr.errors import AuthenticationError, ConfigError

__all__ = [
    "ANONYMOUS_AUTH_ENV",
    "GHCR_DUMMY_BEARER",
    "GHCR_SERVICE",
    "AnonymousAuth",
    "Challenge",
    "Token",
    "TokenCache",
    "TokenKey",
    "delete_scope",
    "mount_scopes",
    "parse_challenges",
    "parse_token_response",
    "pick_challenge",
    "pull_scope",
    "push_scope",
    "token_url",
]

#: The ``Authorization`` value sent first on anonymous reads, for any registry.
ANONYMOUS_AUTH_ENV = "SETUPTOOLS_GHCR_ANONYMOUS_AUTH"
#: The token service name of ghcr.io; a registry whose challenge names it is taken for ghcr.io.
GHCR_SERVICE = "ghcr.io"
#: ghcr.io serves public content to any bearer that is not empty ("QQ==" is base64 of "A",
#: Homebrew's default), which saves the token request of every anonymous read.
GHCR_DUMMY_BEARER = "Bearer QQ=="

#: Tokens without ``expires_in`` live 60 seconds (distribution token spec).
DEFAULT_TOKEN_LIFETIME = 60.0
#: Renew a little early, so that a token does not expire between check and use.
TOKEN_EXPIRY_MARGIN = 10.0


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: a scheme and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split())

    @property
    def error(self) -> str | None:
        return self.params.get("error")


#: RFC 7230 ``tchar``: what a scheme, a parameter name or an unquoted value is made of.
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235) into its challenges, in order.

    Parameter names and schemes are lowercased; quoted values may hold commas and escapes.
    Malformed parts are skipped rather than failing: the caller falls back to "no usable
    challenge", which it reports as an authentication error.
    """
    challenges: list[Challenge] = []
    params: dict[str, str] | None = None
    pos, end = 0, len(header)

    def read_token(start: int) -> int:
        stop = start
        while stop < end and header[stop] in _TOKEN_CHARS:
            stop += 1
        return stop

    def skip_spaces(start: int) -> int:
        while start < end and header[start] in " \t":
            start += 1
        return start

    while pos < end:
        pos = skip_spaces(pos)
        if pos < end and header[pos] == ",":
            pos += 1
            continue
        if pos >= end:
            break
        stop = read_token(pos)
        if stop == pos:
            pos += 1  # a stray character: skip it
            continue
        name = header[pos:stop]
        after = skip_spaces(stop)
        if after < end and header[after] == "=":
            value_start = skip_spaces(after + 1)
            if value_start < end and header[value_start] == '"':
                value, pos = _read_quoted(header, value_start + 1)
            elif value_start < end and header[value_start] in _TOKEN_CHARS:
                pos = read_token(value_start)
                value = header[value_start:pos]
            else:
                # The padding of a token68 credential ("Negotiate abc=="), not a parameter.
                pos = after
                while pos < end and header[pos] == "=":
                    pos += 1
                continue
            if params is not None:  # a parameter before any scheme is meaningless
                params[name.lower()] = value
            continue
        params = {}
        challenges.append(Challenge(name.lower(), params))
        pos = stop
    return challenges


def pick_challenge(header: str) -> Challenge | None:
    """The challenge to answer in a ``WWW-Authenticate`` value: Bearer with a realm, else Basic."""
    challenges = parse_challenges(header)
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme and (scheme == "basic" or challenge.realm):
                return challenge
    return None


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a quoted-string body starting after its opening quote; return (value, next pos)."""
    chars: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            chars.append(text[pos + 1])
            pos += 2
            continue
        if char == '"':
            return "".join(chars), pos + 1
        chars.append(char)
        pos += 1
    return "".join(chars), pos  # unterminated: take what there is


def _repository_scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


def pull_scope(repository: str) -> str:
    """The token scope that allows reading ``repository``."""
    return _repository_scope(repository, "pull")


def push_scope(repository: str) -> str:
    """The token scope that allows reading and writing ``repository``."""
    return _repository_scope(repository, "pull,push")


def delete_scope(repository: str) -> str:
    """The token scope that allows deleting from ``repository`` (distribution asks for it)."""
    return _repository_scope(repository, "delete")


def mount_scopes(target: str, source: str) -> tuple[str, ...]:
    """A cross-repository mount writes ``target`` and must be allowed to read ``source``."""
    return (push_scope(target), pull_scope(source))


@dataclass(frozen=True)
class AnonymousAuth:
    """What an anonymous read sends first, before any challenge: the "fast path".

    By default nothing, except to ghcr.io (the host, or a registry whose challenge names the
    service ``ghcr.io``), which gets :data:`GHCR_DUMMY_BEARER`. ``SETUPTOOLS_GHCR_ANONYMOUS_AUTH``
    sets the value for every registry (``Bearer ...`` or ``Basic ...``), or turns it off
    (``none``). A refused fast path falls back to the challenge flow.
    """

    value: str | None = field(default=None, repr=False)
    automatic: bool = True

    @classmethod
    def parse(cls, text: str | None) -> AnonymousAuth:
        """The setting from the variable's text (unset or empty: the default)."""
        if text is None or not text.strip():
            return cls()
        text = text.strip()
        if text.lower() == "none":
            return cls(None, automatic=False)
        scheme, _, credential = text.partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("bearer", "basic") or not credential or " " in credential:
            # Never echoed: the value may be a credential.
            raise ConfigError(
                f"{ANONYMOUS_AUTH_ENV} must be 'Bearer <value>', 'Basic <value>' or 'none'"
            )
        return cls(f"{scheme.capitalize()} {credential}", automatic=False)

    def value_for(self, is_ghcr: bool) -> str | None:
        """The value to send first to a registry (None: go straight to the challenge flow)."""
        if self.value is not None:
            return self.value
        return GHCR_DUMMY_BEARER if self.automatic and is_ghcr else None


@dataclass(frozen=True)
class TokenKey:
    """What a bearer token was issued for; tokens are never shared across keys."""

    realm: str
    service: str
    scopes: tuple[str, ...]
    anonymous: bool

    @classmethod
    def of(cls, realm: str, service: str, scopes: Iterable[str], anonymous: bool) -> TokenKey:
        return cls(realm, service, tuple(sorted(set(scopes))), anonymous)


def token_url(key: TokenKey) -> str:
    """Where to ask the token service of ``key.realm`` for a token for ``key``."""
    params = [("service", key.service)] if key.service else []
    params.extend(("scope", scope) for scope in key.scopes)
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params)
    if not query:
        return key.realm
    return key.realm + ("&" if urlsplit(key.realm).query else "?") + query


@dataclass(frozen=True)
class Token:
    """A bearer token and when (on the monotonic clock) to stop using it."""

    value: str = field(repr=False)
    expires_at: float

    def __repr__(self) -> str:
        return f"Token(value='***', expires_at={self.expires_at!r})"

    def valid(self, now: float) -> bool:
        return now < self.expires_at


def parse_token_response(body: bytes, now: float, what: str) -> Token:
    """Read a token endpoint's JSON answer (``token`` and/or ``access_token``)."""
    try:
        value = load_json(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise AuthenticationError(f"{what}: the token service answered something other than JSON")
    token = value.get("token") or value.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthenticationError(f"{what}: the token service answered without a token")
    lifetime = value.get("expires_in")
    if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    lifetime = max(float(lifetime) - TOKEN_EXPIRY_MARGIN, float(lifetime) / 2)
    return Token(token, now + lifetime)


class TokenCache:
    """Bearer tokens of one registry client, one per (realm, service, scopes, anonymous).

    Shared by the threads of one client (publish uploads files concurrently), hence the lock.
    """

    def __init__(self) -> None:
        self._tokens: dict[TokenKey, Token] = {}
        self._lock = threading.Lock()

    def get(self, key: TokenKey, now: float | None = None) -> Token | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is None:
                return None
            if not token.valid(time.monotonic() if now is None else now):
                del self._tokens[key]
                return None
            return token

    def put(self, key: TokenKey, token: Token) -> None:
        with self._lock:
            self._tokens[key] = token

    def discard(self, key: TokenKey) -> None:
        with self._lock:
            self._tokens.pop(key, None)
