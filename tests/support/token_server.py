"""A small ghcr-like token service for tests: issues registry JWTs per requested scope.

A real ``docker-registry`` configured with ``auth: token`` trusts the self-signed certificate
written by :meth:`TokenServer.write_certificate`; the JWTs carry it in their ``x5c`` header.
Anonymous callers get ``pull`` only; the known user with the right password gets what it
asks for among ``pull``, ``push`` and ``delete``; a wrong password gets 401. Every request is
recorded so that tests can check which scopes were asked for, and with which credentials.

More users and a per-repository rule (``access``) model a team: private repositories that
anonymous callers cannot read, and users who see different things. A token then grants
what the rule allows, like ghcr.io, which issues tokens without the refused actions.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.loopback import Loopback

__all__ = ["Access", "TokenRequest", "TokenServer"]

GRANTABLE = ("pull", "push", "delete")

#: Whether a user (None: anonymous) may do an action ("pull", "push") on a repository.
Access = Callable[[str | None, str, str], bool]


@dataclass(frozen=True)
class TokenRequest:
    """What one call to the token endpoint asked for and how it was answered."""

    scopes: tuple[str, ...]
    service: str | None
    username: str | None
    authenticated: bool
    status: int


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


class TokenServer:
    """A threaded HTTP token endpoint at ``http://127.0.0.1:<port>/token``."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        service: str = "test-registry",
        issuer: str = "test-token-issuer",
        lifetime: int = 300,
        users: Mapping[str, str] | None = None,
        access: Access | None = None,
    ) -> None:
        self.username = username
        self.password = password
        #: Like ghcr.io: any user name goes, only the password (a token) counts.
        self.any_username = False
        #: Every known user and password (the main user among them).
        self.users = {**(users or {}), username: password}
        self.access = access
        self.service = service
        self.issuer = issuer
        self.lifetime = lifetime
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._certificate = _self_signed(self._key)
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._loopback = Loopback(self._handler_class(), "token-server", start=False)
        #: Repositories that anonymous callers may not pull (a private package on ghcr.io).
        self.private: set[str] = set()
        self._readers: dict[str, tuple[str, frozenset[str]]] = {}

    @property
    def port(self) -> int:
        return self._loopback.port

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def write_certificate(self, path: Path) -> Path:
        """Write the certificate the registry must trust (its ``rootcertbundle``)."""
        path.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def start(self) -> None:
        self._loopback.start()

    def stop(self) -> None:
        self._loopback.stop()

    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def issue(self, access: list[dict[str, object]], subject: str) -> str:
        """A signed registry token granting ``access``."""
        now = int(time.time())
        der = self._certificate.public_bytes(serialization.Encoding.DER)
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now - 5,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        headers = {"x5c": [base64.b64encode(der).decode("ascii")]}
        return jwt.encode(claims, self._key, algorithm="ES256", headers=headers)

    def add_reader(self, username: str, password: str, repositories: set[str]) -> None:
        """A user (a CI token, say) who may pull ``repositories`` and nothing else."""
        with self._lock:
            self._readers[username] = (password, frozenset(repositories))

    def _denied(self, scopes: tuple[str, ...], username: str | None, valid: bool | None) -> bool:
        """Whether a request asks for a repository its caller may not read."""
        names = {scope.split(":")[1] for scope in scopes if scope.startswith("repository:")}
        if valid:
            return False
        if username in self._readers:
            return bool(names - self._readers[username][1])
        return bool(names & self.private)

    def _grant(self, scopes: tuple[str, ...], user: str | None) -> list[dict[str, object]]:
        access: list[dict[str, object]] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            if self.access is not None:
                rule = self.access
                allowed = tuple(action for action in GRANTABLE if rule(user, name, action))
            else:
                allowed = GRANTABLE if user is not None else ("pull",)
            granted = [action for action in actions.split(",") if action in allowed]
            if granted:
                access.append({"type": "repository", "name": name, "actions": granted})
        return access

    def _check_credentials(self, header: str | None) -> tuple[str | None, bool | None]:
        """(user name, True/False for right/wrong password), or (None, None) if anonymous."""
        if not header or not header.lower().startswith("basic "):
            return None, None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, False
        username, _, password = decoded.partition(":")
        reader = self._readers.get(username)
        if reader is not None:
            # A reader is not the known user: right password means "anonymous, plus its own".
            return (username, None) if password == reader[0] else (username, False)
        if username not in self.users:
            return username, self.any_username and password == self.password
        return username, password == self.users[username]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/token":
                    self._answer(404, {"error": "not found"})
                    return
                query = parse_qsl(parts.query, keep_blank_values=True)
                scopes = tuple(
                    scope for key, value in query if key == "scope" for scope in value.split()
                )
                service = next((value for key, value in query if key == "service"), None)
                username, valid = server._check_credentials(self.headers.get("Authorization"))
                if valid is False:
                    server._record(TokenRequest(scopes, service, username, False, 401))
                    self._answer(401, {"details": "incorrect username or password"}, basic=True)
                    return
                if server._denied(scopes, username, valid):
                    server._record(TokenRequest(scopes, service, username, False, 403))
                    denied = {"code": "DENIED", "message": "requested access is denied"}
                    self._answer(403, {"errors": [denied]})
                    return
                authenticated = bool(valid)
                user = username if authenticated else None
                token = server.issue(server._grant(scopes, user), username or "")
                server._record(TokenRequest(scopes, service, username, authenticated, 200))
                issued = datetime.datetime.now(datetime.timezone.utc).isoformat()
                self._answer(
                    200,
                    {
                        "token": token,
                        "access_token": token,
                        "expires_in": server.lifetime,
                        "issued_at": issued,
                    },
                )

            def _answer(self, status: int, value: object, basic: bool = False) -> None:
                body = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if basic:
                    self.send_header("WWW-Authenticate", 'Basic realm="test token service"')
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def scopes_requested(self) -> Iterator[tuple[tuple[str, ...], bool]]:
        """(scopes, authenticated) of every successful token request, in order."""
        for request in self.requests:
            if request.status == 200:
                yield request.scopes, request.authenticated
