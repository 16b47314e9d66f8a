"""Start real ``docker-registry`` processes on loopback for tests and benchmarks.

Three flavours: ``plain`` (no auth), ``htpasswd`` (Basic auth, bcrypt) and ``token`` (Bearer
tokens from :class:`token_server.TokenServer`). Each runs on a free port with its storage in a
given folder, and can be stopped and started again on the same port and storage.
A missing ``docker-registry`` binary or a registry that does not come up raises
:class:`RegistryStartError`: tests must fail, not skip, when their registry is absent.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Literal

from setuptools_ghcr.storage.registry.credentials import Credentials
from support.loopback import Loopback
from support.token_server import Access, TokenServer

__all__ = [
    "SECRET_MARKER",
    "CdnServer",
    "RegistryKind",
    "RegistryStartError",
    "RunningRegistry",
    "free_port",
    "start_registry",
]

RegistryKind = Literal["plain", "htpasswd", "token", "redirect", "ghcr"]

#: Every test password contains this, so a test can search any output for leaked secrets.
SECRET_MARKER = "s3cret-"
READY_TIMEOUT = 15.0


class RegistryStartError(RuntimeError):
    """The registry binary is missing or the process did not become ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RegistryStartError(
            f"{name} is not installed; the integration tests need it "
            "(Debian: apt-get install docker-registry apache2-utils)"
        )
    return path


class CdnServer:
    """A stand-in for a blob CDN: serves files of a registry's storage, with ``Range``.

    It records the headers of every request (to check that no ``Authorization`` reaches
    it) and can cut the connection short once (``cut_next_after`` bytes) to test resuming.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cut_next_after: int | None = None
        self.ignore_range = False
        self._lock = threading.Lock()
        self._seen: list[dict[str, str]] = []
        self._loopback = Loopback(self._handler_class(), "cdn-server")

    @property
    def port(self) -> int:
        return self._loopback.port

    @property
    def requests(self) -> list[dict[str, str]]:
        """The headers of every request received (names lowercased)."""
        with self._lock:
            return list(self._seen)

    def stop(self) -> None:
        self._loopback.stop()

    def _take_cut(self) -> int | None:
        with self._lock:
            cut, self.cut_next_after = self.cut_next_after, None
            return cut

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        cdn = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with cdn._lock:
                    cdn._seen.append({k.lower(): v for k, v in self.headers.items()})
                path = (cdn.root / self.path.split("?", 1)[0].lstrip("/")).resolve()
                if not path.is_relative_to(cdn.root.resolve()) or not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if match and not cdn.ignore_range and int(match.group(1)) < len(data):
                    start = int(match.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                cut = cdn._take_cut()
                if cut is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.close_connection = True

        return Handler


@dataclass
class RunningRegistry:
    """A ``docker-registry`` process and what tests need to talk to it."""

    kind: RegistryKind
    root: Path
    port: int
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None
    cdn: CdnServer | None = None
    #: More users of a token registry, by name: their passwords.
    users: dict[str, str] = field(default_factory=dict, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage(self) -> Path:
        """The filesystem driver's root: blobs live under ``docker/registry/v2/blobs``."""
        return self.root / "storage"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    def user(self, name: str) -> Credentials:
        """The credentials of one of :attr:`users`."""
        return Credentials(name, self.users[name], "test harness")

    @property
    def credentials(self) -> Credentials | None:
        """The known user's credentials (None for a registry without auth)."""
        if self.username is None or self.password is None:
            return None
        return Credentials(self.username, self.password, "test harness")

    def blob_data_path(self, hex_digest: str) -> Path:
        """Where the registry keeps the bytes of a sha256 blob."""
        return (
            self.storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
        )

    def start(self) -> None:
        """Start (or restart) the process on the same port and storage; wait until ready."""
        if self.process is not None and self.process.poll() is None:
            return
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [_binary("docker-registry"), "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        self._wait_ready()

    def stop(self) -> None:
        """Stop the process (storage and port stay reserved for :meth:`start`)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        """Stop the registry and its token server for good."""
        self.stop()
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None
        if self.cdn is not None:
            self.cdn.stop()
            self.cdn = None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            process = self.process
            if process is None or process.poll() is not None:
                raise RegistryStartError(
                    f"docker-registry ({self.kind}) exited during start-up:\n{self._log_tail()}"
                )
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RegistryStartError(
            f"docker-registry ({self.kind}) did not answer on {self.url} within "
            f"{READY_TIMEOUT:.0f} s:\n{self._log_tail()}"
        )

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as response:
                return int(response.status) == 200
        except urllib.error.HTTPError as error:
            return error.code == 401 and self.kind != "plain"
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


def _config(
    registry: RunningRegistry, auth: dict[str, object] | None, deletes: bool = True
) -> dict[str, object]:
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(registry.storage)},
            "delete": {"enabled": deletes},
        },
        "http": {"addr": registry.host, "secret": "test-only-" + secrets.token_hex(8)},
    }
    if auth is not None:
        config["auth"] = auth
    if registry.cdn is not None:
        # Blob GETs answer with a redirect to this base URL plus the blob's storage path,
        # like a registry in front of a CDN. "localhost" makes it another host to the client.
        config["middleware"] = {
            "storage": [
                {
                    "name": "redirect",
                    "options": {"baseurl": f"http://localhost:{registry.cdn.port}/"},
                }
            ]
        }
    return config


def start_registry(
    kind: RegistryKind,
    root: Path,
    *,
    token_realm: str | None = None,
    users: Sequence[str] = (),
    access: Access | None = None,
    deletes: bool = True,
) -> RunningRegistry:
    """Configure and start a registry of the given kind with everything under ``root``.

    ``redirect`` is a Basic-auth registry whose blob downloads redirect to a
    :class:`CdnServer` on another host name (``localhost`` rather than ``127.0.0.1``).
    ``token_realm`` replaces the token server's URL in a ``token`` registry's challenges;
    ``users`` (more user names, given passwords here) and ``access`` (who may do what to
    which repository) make its token server a team's. Without ``deletes``, the registry
    refuses ``DELETE`` (distribution's default).
    """
    _binary("docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    registry = RunningRegistry(kind=kind, root=root, port=free_port())
    registry.storage.mkdir(exist_ok=True)
    if kind == "redirect":
        registry.cdn = CdnServer(registry.storage)
    auth: dict[str, object] | None = None
    if kind in ("htpasswd", "token", "redirect"):
        registry.username = "tester"
        registry.password = f"{SECRET_MARKER}{secrets.token_hex(12)}"
    if kind in ("htpasswd", "redirect"):
        assert registry.password is not None
        line = subprocess.run(
            [_binary("htpasswd"), "-Bbn", "tester", registry.password],
            capture_output=True,
            check=True,
            text=True,
        ).stdout.strip()
        htpasswd = root / "htpasswd"
        htpasswd.write_text(line + "\n")
        auth = {"htpasswd": {"realm": "test-registry", "path": str(htpasswd)}}
    elif kind == "token":
        assert registry.password is not None
        registry.users = {name: f"{SECRET_MARKER}{secrets.token_hex(12)}" for name in users}
        server = TokenServer(
            username="tester", password=registry.password, users=registry.users, access=access
        )
        server.start()
        registry.token_server = server
        auth = {
            "token": {
                "realm": token_realm or server.realm,
                "service": server.service,
                "issuer": server.issuer,
                "rootcertbundle": str(server.write_certificate(root / "token-issuer.pem")),
            }
        }
    # JSON is YAML, and quotes paths and secrets safely.
    registry.config_path.write_text(json.dumps(_config(registry, auth, deletes), indent=2))
    try:
        registry.start()
    except BaseException:
        with contextlib.suppress(Exception):
            registry.close()
        raise
    return registry
