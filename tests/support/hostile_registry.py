"""A fake, hostile registry for tests: enough of the distribution API to be believed, and
hooks to make it lie.

:class:`HostileRegistry` serves blobs, manifests, tags and uploads from memory on loopback,
optionally behind Basic auth or a Bearer challenge whose realm the test chooses, and over
TLS when given a server context. A test adds
content (:func:`publish_version` builds a version the way this tool would, then lets the test
tamper with each manifest, index entry and the index as JSON) and overrides any route with a
handler (:func:`redirect`, :func:`stream_forever`, :func:`respond`...). :class:`OtherHost` is a
second listener that records what reaches it, to prove that credentials never do.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from setuptools_ghcr.core.dists import Distribution, read_distribution
from setuptools_ghcr.core.oci import OCI_INDEX, OCI_MANIFEST, Digest, canonical_json
from setuptools_ghcr.core.wire_format import (
    ARTIFACT_TYPE,
    OCI_VERSION,
    file_manifest,
    index_entry,
    version_to_tag,
)
from support.loopback import Loopback

__all__ = [
    "CREATED",
    "Handler",
    "HostileRegistry",
    "OtherHost",
    "PublishedVersion",
    "Seen",
    "publish_version",
    "redirect",
    "respond",
    "stream_forever",
]

CREATED = "2026-01-02T03:04:05Z"
_API = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs|tags)/(?P<ref>.*)$")


def _empty_match() -> re.Match[str]:
    match = re.match("", "")
    assert match is not None
    return match


#: What handlers that are not routes get for a match.
_NO_MATCH = _empty_match()

#: A route handler: writes a whole answer for the request it is given.
Handler = Callable[[BaseHTTPRequestHandler, "re.Match[str]"], None]
#: Mutates a JSON value in place (a manifest, an index entry or the index).
Tamper = Callable[[dict[str, Any], Distribution], None]


@dataclass(frozen=True)
class Seen:
    """A request a fake server received (header names lowercased)."""

    method: str
    path: str
    headers: dict[str, str]


class _Recording:
    """A threaded HTTP/1.1 server on loopback that records every request."""

    def __init__(
        self, name: str, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._name = host
        self._scheme = "https" if tls is not None else "http"
        self._loopback = Loopback(self._handler_class(), name, start=False)
        if tls is not None:
            server = self._loopback.server
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        self._loopback.start()

    @property
    def port(self) -> int:
        return self._loopback.port

    @property
    def host(self) -> str:
        return f"{self._name}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self._scheme}://{self.host}"

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def stop(self) -> None:
        self._loopback.stop()

    def _record(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._seen.append(
                Seen(
                    handler.command,
                    handler.path,
                    {k.lower(): v for k, v in handler.headers.items()},
                )
            )

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                owner._record(self)
                try:
                    owner._dispatch(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        return RequestHandler


class OtherHost(_Recording):
    """Another host (``localhost:<port>``, not the registry's ``127.0.0.1``): records what
    reaches it and answers every GET with ``body`` (404 when None) and every PUT with 201."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.status = 200
        self.headers: dict[str, str] = {}
        super().__init__("other-host", host="localhost")

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        _drain(handler)
        if handler.command == "PUT":
            respond(201, b"")(handler, _NO_MATCH)
            return
        if self.body is None:
            respond(404, b"not here\n")(handler, _NO_MATCH)
            return
        respond(self.status, self.body, self.headers)(handler, _NO_MATCH)

    def got_authorization(self) -> bool:
        """Whether any request that reached this host carried credentials."""
        return any(
            "authorization" in seen.headers or "cookie" in seen.headers for seen in self.requests
        )


class HostileRegistry(_Recording):
    """A registry fake: content from memory, routes that tests override."""

    def __init__(
        self,
        *,
        basic: tuple[str, str] | None = None,
        bearer_realm: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.basic = basic
        self.bearer_realm = bearer_realm
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        #: Per repository, a tag list to answer instead of the real tags.
        self.tag_lists: dict[str, list[str]] = {}
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        super().__init__("hostile-registry", tls=tls)

    # -- content ---------------------------------------------------------------------------

    def add_blob(self, data: bytes) -> str:
        digest = str(Digest.of_bytes(data))
        self.blobs[digest] = data
        return digest

    def add_manifest(self, raw: bytes, media_type: str) -> str:
        digest = str(Digest.of_bytes(raw))
        self.manifests[digest] = (raw, media_type)
        return digest

    def tag(self, repository: str, tag: str, digest: str) -> None:
        self.tags.setdefault(repository, {})[tag] = digest

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Answer requests with ``method`` whose path matches ``pattern`` with ``handler``."""
        self._routes.insert(0, (method.upper(), re.compile(pattern), handler))

    # -- serving ---------------------------------------------------------------------------

    def _authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        given = handler.headers.get("Authorization", "")
        if self.basic is not None:
            expected = base64.b64encode(":".join(self.basic).encode()).decode()
            return given == f"Basic {expected}"
        if self.bearer_realm is not None:
            return given.startswith("Bearer ")
        return True

    def _challenge(self, handler: BaseHTTPRequestHandler) -> None:
        match = _API.match(handler.path.split("?", 1)[0])
        if self.bearer_realm is not None:
            scope = f"repository:{match.group('name')}:pull" if match else ""
            header = f'Bearer realm="{self.bearer_realm}",service="hostile",scope="{scope}"'
        else:
            header = 'Basic realm="hostile"'
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        respond(401, body, {"WWW-Authenticate": header})(handler, _NO_MATCH)

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if path.startswith("/v2") and not self._authorized(handler):
            _drain(handler)
            self._challenge(handler)
            return
        for method, pattern, route in list(self._routes):
            match = pattern.search(handler.path)
            if method in (handler.command, "*") and match is not None:
                route(handler, match)
                return
        if path in ("/v2", "/v2/"):
            respond(200, b"{}", {"Content-Type": "application/json"})(handler, _NO_MATCH)
            return
        match = _API.match(path)
        if match is None:
            _error(handler, 404, "NOT_FOUND")
            return
        name, kind, ref = match.group("name", "kind", "ref")
        if kind == "tags":
            self._tags(handler, name)
        elif kind == "manifests":
            self._manifest(handler, name, ref)
        elif ref.startswith("uploads"):
            self._upload(handler, name, ref)
        else:
            self._blob(handler, ref)

    def _tags(self, handler: BaseHTTPRequestHandler, name: str) -> None:
        tags = self.tag_lists.get(name)
        if tags is None:
            if name not in self.tags:
                _error(handler, 404, "NAME_UNKNOWN")
                return
            tags = sorted(self.tags[name])
        body = json.dumps({"name": name, "tags": tags}).encode()
        respond(200, body, {"Content-Type": "application/json"})(handler, _NO_MATCH)

    def _manifest(self, handler: BaseHTTPRequestHandler, name: str, ref: str) -> None:
        if handler.command == "PUT":
            raw = _drain(handler)
            media_type = handler.headers.get("Content-Type", OCI_MANIFEST)
            digest = self.add_manifest(raw, media_type)
            if not ref.startswith("sha256:"):
                self.tag(name, ref, digest)
            respond(201, b"", {"Docker-Content-Digest": digest})(handler, _NO_MATCH)
            return
        wanted = ref if ref.startswith("sha") else self.tags.get(name, {}).get(ref, "")
        found = self.manifests.get(wanted)
        if found is None:
            _error(handler, 404, "MANIFEST_UNKNOWN")
            return
        raw, media_type = found
        headers = {"Content-Type": media_type, "Docker-Content-Digest": wanted}
        respond(200, raw, headers)(handler, _NO_MATCH)

    def _blob(self, handler: BaseHTTPRequestHandler, digest: str) -> None:
        data = self.blobs.get(digest)
        if data is None:
            _error(handler, 404, "BLOB_UNKNOWN")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
        if match and int(match.group(1)) < len(data):
            start = int(match.group(1))
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            respond(206, data[start:], headers)(handler, _NO_MATCH)
            return
        respond(200, data, {"Content-Type": "application/octet-stream"})(handler, _NO_MATCH)

    def _upload(self, handler: BaseHTTPRequestHandler, name: str, ref: str) -> None:
        data = _drain(handler)
        if handler.command == "POST":
            location = f"/v2/{name}/blobs/uploads/{uuid.uuid4()}"
            respond(202, b"", {"Location": location})(handler, _NO_MATCH)
            return
        digest = re.search(r"digest=(sha256(?::|%3A)[0-9a-f]{64})", handler.path)
        if handler.command != "PUT" or digest is None:
            _error(handler, 400, "DIGEST_INVALID")
            return
        stored = self.add_blob(data)
        if stored != digest.group(1).replace("%3A", ":"):
            _error(handler, 400, "DIGEST_INVALID")
            return
        respond(201, b"", {"Docker-Content-Digest": stored})(handler, _NO_MATCH)


# -- route handlers ---------------------------------------------------------------------------


def _drain(handler: BaseHTTPRequestHandler) -> bytes:
    length = handler.headers.get("Content-Length", "")
    return handler.rfile.read(int(length)) if length.isdigit() else b""


def _error(handler: BaseHTTPRequestHandler, status: int, code: str) -> None:
    body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
    respond(status, body, {"Content-Type": "application/json"})(handler, _NO_MATCH)


def respond(
    status: int,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    content_length: int | None = None,
) -> Handler:
    """Answer ``status`` with ``body``; ``content_length`` may disagree with the body."""

    def handle(handler: BaseHTTPRequestHandler, _match: re.Match[str]) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        length = len(body) if content_length is None else content_length
        handler.send_header("Content-Length", str(length))
        if content_length is not None and content_length != len(body):
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    return handle


def redirect(location: str | Callable[[re.Match[str]], str], status: int = 302) -> Handler:
    """Answer with a redirect to ``location`` (or to what it computes from the match)."""

    def handle(handler: BaseHTTPRequestHandler, match: re.Match[str]) -> None:
        target = location(match) if callable(location) else location
        respond(status, b"", {"Location": target})(handler, match)

    return handle


def stream_forever(
    status: int, headers: Mapping[str, str] | None = None, piece: bytes = b"x" * 65536
) -> Handler:
    """Answer ``status`` with a chunked body that never ends (until the client hangs up)."""

    def handle(handler: BaseHTTPRequestHandler, _match: re.Match[str]) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        for _ in range(1 << 20):  # 64 GiB: "forever" for any client that does not stop
            handler.wfile.write(frame)

    return handle


# -- content that looks published -------------------------------------------------------------


@dataclass
class PublishedVersion:
    """What :func:`publish_version` put in the registry."""

    repository: str
    tag: str
    index_digest: str
    dists: list[Distribution]
    manifest_digests: dict[str, str] = field(default_factory=dict)


def _noop(_value: dict[str, Any], _dist: Distribution) -> None:
    return None


def publish_version(
    registry: HostileRegistry,
    repository: str,
    paths: Sequence[Path],
    *,
    manifest: Tamper = _noop,
    entry: Tamper = _noop,
    index: Callable[[dict[str, Any]], None] | None = None,
    layer_data: Callable[[bytes, Distribution], bytes] | None = None,
) -> PublishedVersion:
    """Put the files of one version in ``registry`` as this tool publishes them, letting the
    test tamper with each manifest, index entry and the index (JSON values) on the way.

    ``layer_data`` replaces the bytes served for a file's blob (the descriptors keep the real
    digest and size, so the blob then disagrees with them).
    """
    dists = [read_distribution(path) for path in paths]
    version = dists[0].version
    entries: list[dict[str, Any]] = []
    published = PublishedVersion(repository, version_to_tag(version), "", dists)
    for dist in dists:
        built = file_manifest(dist, created=CREATED)
        value = json.loads(built.raw)
        manifest(value, dist)
        raw = canonical_json(value)
        digest = registry.add_manifest(raw, OCI_MANIFEST)
        data = dist.path.read_bytes()
        served = layer_data(data, dist) if layer_data is not None else data
        registry.blobs[str(dist.sha256)] = served
        registry.blobs[str(Digest.of_bytes(dist.metadata))] = dist.metadata
        described = index_entry(dist, built, created=CREATED).to_json()
        described["digest"], described["size"] = digest, len(raw)
        entry(described, dist)
        entries.append(described)
        published.manifest_digests[dist.filename] = digest
    value = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": ARTIFACT_TYPE,
        "manifests": entries,
        "annotations": {OCI_VERSION: str(version)},
    }
    if index is not None:
        index(value)
    published.index_digest = registry.add_manifest(canonical_json(value), OCI_INDEX)
    registry.tag(repository, published.tag, published.index_digest)
    return published
