"""Credentials, authentication challenges, per-scope tokens, and keeping secrets out of text.

Everything here is pure or reads local files and credential helpers; the HTTP side of the
token flow lives in ``registry``. Where credentials are looked for is fixed by the public
interface: explicit options or ``SETUPTOOLS_GHCR_USERNAME``/``SETUPTOOLS_GHCR_PASSWORD``, then the
docker/skopeo/oras stores, then ``GITHUB_TOKEN`` for ghcr.io, else anonymous.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import shutil
import string
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from setuptools_ghcr.errors import AuthenticationError, ConfigError

__all__ = [
    "Challenge",
    "Credentials",
    "Redactor",
    "Token",
    "TokenCache",
    "TokenKey",
    "find_credentials",
    "mount_scopes",
    "parse_challenges",
    "parse_token_response",
    "pull_scope",
    "push_scope",
    "redact_url",
]

_log = logging.getLogger(__name__)

GHCR_HOST = "ghcr.io"
#: A credential helper that has not answered in this long is stuck (a locked keychain that
#: waits for a GUI prompt, say); going on without it beats hanging a CI job.
HELPER_TIMEOUT = 20.0
#: Tokens without ``expires_in`` live 60 seconds (distribution token spec).
DEFAULT_TOKEN_LIFETIME = 60.0
#: Renew a little early, so that a token does not expire between check and use.
TOKEN_EXPIRY_MARGIN = 10.0

_HELPER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token); ``source`` says where they came from."""

    username: str
    password: str = field(repr=False)
    source: str = field(default="", compare=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***', source={self.source!r})"

    def basic_header(self) -> str:
        """The value of an ``Authorization: Basic`` header for these credentials."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


# --------------------------------------------------------------------------- credentials


def find_credentials(
    host: str,
    *,
    username: str | None = None,
    password: str | None = None,
    environ: Mapping[str, str],
    home: Path | None = None,
    helper_timeout: float = HELPER_TIMEOUT,
) -> Credentials | None:
    """The credentials to use for ``host`` (``name[:port]``), or None for anonymous access."""
    host = host.lower()
    explicit = _explicit(username, password, "--username/--password")
    if explicit is None:
        explicit = _explicit(
            environ.get("SETUPTOOLS_GHCR_USERNAME") or None,
            environ.get("SETUPTOOLS_GHCR_PASSWORD") or None,
            "SETUPTOOLS_GHCR_USERNAME/SETUPTOOLS_GHCR_PASSWORD",
        )
    if explicit is not None:
        return explicit
    if home is None:
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    docker_dir = Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else None
    docker_config = (docker_dir or home / ".docker") / "config.json"
    found = _from_docker_config(docker_config, host, environ, helper_timeout)
    if found is None and environ.get("XDG_RUNTIME_DIR"):
        containers_auth = Path(environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
        found = _from_docker_config(containers_auth, host, environ, helper_timeout)
    if found is None and host == GHCR_HOST and environ.get("GITHUB_TOKEN"):
        # ghcr.io ignores the user name of a token login, but it must not be empty.
        found = Credentials(
            environ.get("GITHUB_ACTOR") or "token", environ["GITHUB_TOKEN"], "GITHUB_TOKEN"
        )
    return found


def _explicit(username: str | None, password: str | None, source: str) -> Credentials | None:
    if username is None and password is None:
        return None
    if password is None:
        raise ConfigError(f"a user name was given without a password ({source})")
    # A token alone is enough for registries such as ghcr.io, which ignore the user name.
    return Credentials(username or "token", password, source)


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        _log.warning("cannot read %s (%s); ignoring it", path, error.strerror)
        return None
    try:
        value = json.loads(text)
    except ValueError:
        _log.warning("%s is not valid JSON; ignoring it", path)
        return None
    return value if isinstance(value, dict) else None


def _key_host(key: str) -> str:
    """The host of an ``auths`` key: ``https://ghcr.io/v1/`` and ``ghcr.io/acme`` -> ghcr.io."""
    for prefix in ("https://", "http://"):
        if key.lower().startswith(prefix):
            key = key[len(prefix) :]
            break
    return key.split("/", 1)[0].lower()


def _host_aliases(host: str) -> set[str]:
    if host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return {"docker.io", "index.docker.io", "registry-1.docker.io"}
    return {host}


def _from_docker_config(
    path: Path, host: str, environ: Mapping[str, str], timeout: float
) -> Credentials | None:
    config = _read_config(path)
    if config is None:
        return None
    aliases = _host_aliases(host)
    helpers = config.get("credHelpers")
    helper: Any = None
    if isinstance(helpers, dict):
        helper = next((name for key, name in helpers.items() if _key_host(key) in aliases), None)
    if helper is None:
        helper = config.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _from_helper(helper, host, environ, timeout)
        if found is not None:
            return found
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    # An exact key beats a key that names a repository inside the host (containers' style).
    matches = sorted(
        (key for key in auths if isinstance(key, str) and _key_host(key) in aliases),
        key=lambda key: (key.lower().rstrip("/") not in aliases, len(key)),
    )
    for key in matches:
        found = _from_auth_entry(auths[key], f"{path} ({_key_host(key)})")
        if found is not None:
            return found
    return None


def _from_auth_entry(entry: Any, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            _log.warning("an auth entry in %s is not valid base64; ignoring it", source)
            return None
        username, sep, password = decoded.partition(":")
        if sep and username and password:
            return Credentials(username, password, source)
        return None
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str) and name and secret:
        return Credentials(name, secret, source)
    return None


def _from_helper(
    name: str, host: str, environ: Mapping[str, str], timeout: float
) -> Credentials | None:
    """Ask ``docker-credential-<name> get``; any failure means "no credentials from it"."""
    program_name = f"docker-credential-{name}"
    if not _HELPER_NAME_RE.fullmatch(name):
        _log.warning("ignoring credential helper with an odd name %r", name[:40])
        return None
    program = shutil.which(program_name, path=environ.get("PATH"))
    if program is None:
        _log.debug("credential helper %s is not installed", program_name)
        return None
    try:
        completed = subprocess.run(
            [program, "get"],
            input=host.encode(),
            capture_output=True,
            timeout=timeout,
            env=dict(environ),
            check=False,
        )
    except subprocess.TimeoutExpired:
        _log.warning("credential helper %s did not answer in %.0f s", program_name, timeout)
        return None
    except OSError as error:
        _log.warning("cannot run credential helper %s (%s)", program_name, error.strerror)
        return None
    if completed.returncode != 0:
        # "credentials not found" is the helper's normal way to say it has nothing.
        _log.debug("credential helper %s has no credentials for %s", program_name, host)
        return None
    try:
        answer = json.loads(completed.stdout)
    except ValueError:
        _log.warning("credential helper %s answered something other than JSON", program_name)
        return None
    if not isinstance(answer, dict):
        return None
    username, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None
    if username == "<token>":
        # An identity (OAuth refresh) token needs a flow no OCI registry we target requires.
        _log.debug("credential helper %s holds an identity token; not used", program_name)
        return None
    return Credentials(username or "token", secret, f"credential helper {program_name}")


# --------------------------------------------------------------------------- challenges


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


# --------------------------------------------------------------------------- scopes and tokens


def _repository_scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


def pull_scope(repository: str) -> str:
    """The token scope that allows reading ``repository``."""
    return _repository_scope(repository, "pull")


def push_scope(repository: str) -> str:
    """The token scope that allows reading and writing ``repository``."""
    return _repository_scope(repository, "pull,push")


def mount_scopes(target: str, source: str) -> tuple[str, ...]:
    """A cross-repository mount writes ``target`` and must be allowed to read ``source``."""
    return (push_scope(target), pull_scope(source))


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
        value = json.loads(body)
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


# --------------------------------------------------------------------------- redaction

#: Query parameters that are safe to show; every other value is replaced, because upload
#: locations and CDN redirects carry signatures and state that act as bearer secrets.
_PUBLIC_QUERY_KEYS = frozenset({"digest", "mount", "from", "n", "last", "service", "scope"})
_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),  # JWTs
    re.compile(
        r"(?i)\b(token|access_token|refresh_token|password|secret|signature|sig|"
        r"x-amz-signature|x-amz-credential|x-amz-security-token|_state)=[^&\s\"']+"
    ),
)


def redact_url(url: str) -> str:
    """``url`` without user info and with the values of non-public query parameters hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(
        [
            (key, value if key in _PUBLIC_QUERY_KEYS else "***")
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe=":*,/",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class Redactor:
    """Scrubs known secrets and secret-looking fragments out of text meant for people."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = {secret for secret in secrets if len(secret) >= 3}
        # Upload threads add tokens while others format errors.
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if len(secret) >= 3:
            with self._lock:
                self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        # Longest first, so that a secret containing another is hidden whole.
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "***")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(_mask, text)
        return text


def _mask(match: re.Match[str]) -> str:
    whole = match.group(0)
    # Whitespace first: "Basic <base64>=" must lose its padded value, not keep it before "=".
    for separator in (" ", "\t", "="):
        if separator in whole:
            return whole.split(separator, 1)[0] + separator + "***"
    return "***"
