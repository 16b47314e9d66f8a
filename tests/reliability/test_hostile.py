"""A registry that lies: every hostile answer is refused cleanly, and nothing is written
outside the output folder.

The command line downloads ``evil`` from a :class:`HostileRegistry` that serves one of the
cases below. Each must end with exit status 1 and one error line, leave the output folder
empty, put nothing unverified in the cache, change nothing else on disk, and send no
credentials to any host but the registry.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from support.cli import Cli, Result, assert_refused
from support.folders import no_partial_files, tree
from support.hostile_registry import (
    HostileRegistry,
    OtherHost,
    PublishedVersion,
    publish_version,
    redirect,
    respond,
    stream_forever,
)
from support.http import get, serving
from support.registry_harness import SECRET_MARKER
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.core.dists import Distribution
from setuptools_ghcr.core.oci import OCI_INDEX, OCI_MANIFEST
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.core.wire_format import FILENAME, OCI_TITLE
from setuptools_ghcr.errors import DigestMismatchError
from setuptools_ghcr.serve.app import make_app
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.store import BytesBlob, Store

pytestmark = pytest.mark.integration

NAMESPACE = "ns"
REPOSITORY = f"{NAMESPACE}/evil"
USER = "victim"
PASSWORD = f"{SECRET_MARKER}hostile-case"
#: Short, so that cases that retry do not wait long.
QUICK = {"SETUPTOOLS_GHCR_RETRIES": "1", "SETUPTOOLS_GHCR_TIMEOUT": "5"}
#: Not routable from here, and refused before any connection is tried.
FOREIGN = "203.0.113.7"
#: Entries without a safe file name are skipped with this warning; the error then says that no
#: file is left.
UNUSABLE = "has no usable file name"


@dataclass
class Scene:
    """What a case works with."""

    hostile: HostileRegistry
    other: OtherHost
    root: Path
    wheel: Path
    sdist: Path

    def publish(self, **tampering: Any) -> PublishedVersion:
        return publish_version(self.hostile, REPOSITORY, [self.wheel, self.sdist], **tampering)


Setup = Callable[[Scene], None]


def _entry(mutate: Callable[[dict[str, Any], Scene], None]) -> Setup:
    """A case that tampers with the index entry of every file."""

    def setup(scene: Scene) -> None:
        def entry(value: dict[str, Any], _dist: Distribution) -> None:
            mutate(value, scene)

        scene.publish(entry=entry)

    return setup


def _name(make: Callable[[Scene, str], str]) -> Setup:
    """Our file name annotation replaced by a hostile one."""

    def mutate(value: dict[str, Any], scene: Scene) -> None:
        value["annotations"][FILENAME] = make(scene, value["annotations"][FILENAME])

    return _entry(mutate)


def _architecture(make: Callable[[Scene, str], str]) -> Setup:
    """A PyOCI-style entry (no file name annotation) with a hostile platform architecture."""

    def mutate(value: dict[str, Any], scene: Scene) -> None:
        del value["annotations"][FILENAME]
        value["platform"]["architecture"] = make(scene, value["platform"]["architecture"])

    return _entry(mutate)


def _title_only(make: Callable[[Scene, str], str]) -> Setup:
    """No name in the index at all; only the layer's title (oras' name) is hostile."""

    def setup(scene: Scene) -> None:
        def manifest(value: dict[str, Any], _dist: Distribution) -> None:
            layer = value["layers"][0]
            layer["annotations"][OCI_TITLE] = make(scene, layer["annotations"][OCI_TITLE])

        def entry(value: dict[str, Any], _dist: Distribution) -> None:
            del value["annotations"][FILENAME]
            del value["platform"]

        scene.publish(manifest=manifest, entry=entry)

    return setup


def _tags(*tags: str) -> Setup:
    def setup(scene: Scene) -> None:
        scene.publish()
        scene.hostile.tag_lists[REPOSITORY] = list(tags)

    return setup


def _route(method: str, pattern: str, handler: Callable[[Scene], Any]) -> Setup:
    """A published version, with one route answered by a hostile handler."""

    def setup(scene: Scene) -> None:
        scene.publish()
        layer = "sha256:" + hashlib.sha256(scene.wheel.read_bytes()).hexdigest()
        scene.hostile.route(method, pattern.replace("{layer}", layer), handler(scene))

    return setup


def _blob_bytes(change: Callable[[bytes], bytes]) -> Setup:
    def setup(scene: Scene) -> None:
        scene.publish(layer_data=lambda data, _dist: change(data))

    return setup


def _nested_index(depth: int) -> Setup:
    """An index (raw bytes: too deep for json.dumps) nested ``depth`` lists deep."""

    def setup(scene: Scene) -> None:
        published = scene.publish()
        raw = scene.hostile.manifests[published.index_digest][0]
        nested = b"[" * depth + b"]" * depth
        deep = raw[:-1] + b',"x":' + nested + b"}"
        digest = scene.hostile.add_manifest(deep, OCI_INDEX)
        scene.hostile.tag(REPOSITORY, published.tag, digest)

    return setup


def _nested_manifest(depth: int) -> Setup:
    def setup(scene: Scene) -> None:
        def entry(value: dict[str, Any], _dist: Distribution) -> None:
            raw = scene.hostile.manifests[value["digest"]][0]
            deep = raw[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
            value["digest"] = scene.hostile.add_manifest(deep, OCI_MANIFEST)
            value["size"] = len(deep)

        scene.publish(entry=entry)

    return setup


def _wrong_manifest(scene: Scene) -> None:
    """The manifest served under a digest is other bytes than the digest names."""
    published = scene.publish()
    for digest in published.manifest_digests.values():
        raw, media_type = scene.hostile.manifests[digest]
        scene.hostile.manifests[digest] = (
            raw.replace(b'"schemaVersion":2', b'"schemaVersion":2 '),
            media_type,
        )


def _wrong_metadata(scene: Scene) -> None:
    """The core metadata blob (the manifest's config) is other bytes than its digest."""
    published = scene.publish()
    for dist in published.dists:
        digest = "sha256:" + hashlib.sha256(dist.metadata).hexdigest()
        scene.hostile.blobs[digest] = dist.metadata.replace(b"Name: evil", b"Name: good")


def _too_big(media_type: str) -> Callable[[Scene], Any]:
    return lambda _scene: respond(200, b"{" + b" " * (4 << 20) + b"}", {"Content-Type": media_type})


def _next_link(url: str) -> Callable[[Scene], Any]:
    def handler(scene: Scene) -> Any:
        body = json.dumps({"name": REPOSITORY, "tags": ["0.1"]}).encode()
        link = url.format(other=scene.other.url)
        return respond(
            200, body, {"Content-Type": "application/json", "Link": f'<{link}>; rel="next"'}
        )

    return handler


def _realm(realm: str) -> Setup:
    def setup(scene: Scene) -> None:
        scene.publish()
        scene.hostile.bearer_realm = realm.format(registry=scene.hostile.url, other=scene.other.url)

    return setup


def _endless_token(scene: Scene) -> None:
    scene.publish()
    scene.hostile.bearer_realm = f"{scene.hostile.url}/token"
    scene.hostile.route(
        "GET", r"^/token", stream_forever(200, {"Content-Type": "application/json"})
    )


_DEEP = b'{"tags":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
_JSON = {"Content-Type": "application/json"}


def _nested_token(scene: Scene) -> None:
    scene.publish()
    scene.hostile.bearer_realm = f"{scene.hostile.url}/token"
    scene.hostile.route("GET", r"^/token", respond(200, _DEEP, _JSON))


def _echo(scene: Scene) -> Any:
    """An error whose message repeats the credentials and carries terminal escapes."""

    def handle(handler: BaseHTTPRequestHandler, _match: re.Match[str]) -> None:
        given = handler.headers.get("Authorization", "")
        bare = given.split(" ", 1)[-1]
        message = f"denied for {given} ({bare}) \x1b]0;pwned\x07\x1b[2J\x00\r\nforged: line"
        body = json.dumps({"errors": [{"code": "NAME_INVALID", "message": message}]}).encode()
        respond(400, body, {"Content-Type": "application/json"})(handler, _match)

    return handle


def _to_other_host(scene: Scene, data: bytes | None = None, status: int = 200) -> Any:
    scene.other.body = data if data is not None else b"not the file"
    scene.other.status = status
    if status == 401:
        scene.other.headers = {"WWW-Authenticate": 'Basic realm="cdn"'}
    return redirect(lambda match: f"{scene.other.url}/cdn/{match.group(0).rsplit('/', 1)[1]}")


@dataclass(frozen=True)
class Case:
    id: str
    setup: Setup
    expect: tuple[str, ...]
    #: What the warnings before the error line must say.
    warns: str | None = None
    credentials: bool = True


CASES = [
    # File names, from every field a name can come from.
    Case("name-dotdot", _name(lambda _s, n: "../../../../" + n), ("found: no files",), UNUSABLE),
    Case("name-absolute", _name(lambda s, n: f"{s.root}/{n}"), ("found: no files",), UNUSABLE),
    Case("name-slash", _name(lambda _s, n: "sub/" + n), ("found: no files",), UNUSABLE),
    Case("name-backslash", _name(lambda _s, n: "..\\..\\" + n), ("found: no files",), UNUSABLE),
    Case("name-nul", _name(lambda _s, n: n + "\x00.pth"), ("found: no files",), UNUSABLE),
    Case("name-dotdot-alone", _name(lambda _s, _n: ".."), ("found: no files",), UNUSABLE),
    Case(
        "architecture-dotdot",
        _architecture(lambda _s, a: "../../../../" + a),
        ("found: no files",),
        UNUSABLE,
    ),
    Case(
        "architecture-absolute",
        _architecture(lambda s, a: f"{s.root}/{a}"),
        ("found: no files",),
        UNUSABLE,
    ),
    Case(
        "architecture-nul", _architecture(lambda _s, a: a + "\x00"), ("found: no files",), UNUSABLE
    ),
    Case(
        "title-dotdot",
        _title_only(lambda _s, t: "../../../../" + t),
        ("found: no files",),
        UNUSABLE,
    ),
    Case(
        "title-absolute", _title_only(lambda s, t: f"{s.root}/{t}"), ("found: no files",), UNUSABLE
    ),
    Case("title-nul", _title_only(lambda _s, t: t + "\x00"), ("found: no files",), UNUSABLE),
    Case(
        "tags",
        _tags("../../../../1.0", "1.0/../../x", "/1.0", "1.0\x00", "..", "%2e%2e", "1.0/"),
        ("not found",),
    ),
    # Documents too big or too deep.
    Case(
        "index-over-4mib",
        _route("GET", r"/manifests/1\.0$", _too_big(OCI_INDEX)),
        ("over the",),
    ),
    Case(
        "index-endless",
        _route(
            "GET", r"/manifests/1\.0$", lambda _s: stream_forever(200, {"Content-Type": OCI_INDEX})
        ),
        ("over the",),
    ),
    Case(
        "manifest-over-4mib",
        _route("GET", r"/manifests/sha256:", _too_big(OCI_MANIFEST)),
        ("over the",),
    ),
    Case("index-nested-deep", _nested_index(100_000), ("json",)),
    Case("index-nested-40", _nested_index(40), ("nested too deeply",)),
    Case("manifest-nested-deep", _nested_manifest(100_000), ("json",)),
    # JSON nested past the parser's recursion limit, wherever a registry may send it.
    Case(
        "tag-list-nested-deep",
        _route("GET", r"/tags/list", lambda _s: respond(200, _DEEP, _JSON)),
        ("not json",),
    ),
    Case(
        "error-body-nested-deep",
        _route("GET", r"/tags/list", lambda _s: respond(400, _DEEP, _JSON)),
        ("400",),
    ),
    Case("token-answer-nested-deep", _nested_token, ("other than json",)),
    # A compressed blob would be inflated in memory before its digest could refuse it.
    Case(
        "blob-content-encoding-gzip",
        _route(
            "GET",
            r"/blobs/{layer}",
            lambda s: respond(
                200, gzip.compress(s.wheel.read_bytes()), {"Content-Encoding": "gzip"}
            ),
        ),
        ("content-encoding",),
    ),
    Case(
        "tag-list-endless",
        _route(
            "GET",
            r"/tags/list",
            lambda _s: stream_forever(200, {"Content-Type": "application/json"}),
        ),
        ("over the",),
    ),
    # Bytes that disagree with their descriptors.
    Case(
        "blob-other-bytes",
        _blob_bytes(lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:]),
        ("hashes to",),
    ),
    Case("blob-longer", _blob_bytes(lambda d: d + b"tail"), ("more than the expected",)),
    Case("blob-shorter", _blob_bytes(lambda d: d[:-10]), ("expected",)),
    Case(
        "blob-content-length-short",
        _route(
            "GET",
            r"/blobs/{layer}",
            lambda s: respond(200, s.wheel.read_bytes(), content_length=s.wheel.stat().st_size - 7),
        ),
        ("expected",),
    ),
    Case(
        "blob-content-length-long",
        _route(
            "GET",
            r"/blobs/{layer}",
            lambda s: respond(
                200, s.wheel.read_bytes()[:-7], content_length=s.wheel.stat().st_size
            ),
        ),
        ("connection lost",),
    ),
    Case("manifest-other-bytes", _wrong_manifest, ("hashes to",)),
    Case("metadata-other-bytes", _wrong_metadata, ("hashes to",)),
    # Redirects.
    Case(
        "blob-redirect-loop",
        _route("GET", r"/blobs/{layer}", lambda _s: redirect(lambda m: m.string)),
        ("redirected too often",),
    ),
    Case(
        "manifest-redirect-loop",
        _route("GET", r"/manifests/1\.0$", lambda _s: redirect(lambda m: m.string, 307)),
        ("redirected too often",),
    ),
    Case(
        "blob-redirect-to-file",
        _route("GET", r"/blobs/{layer}", lambda _s: redirect("file:///etc/passwd")),
        ("non-http",),
    ),
    Case(
        "blob-redirect-elsewhere-wrong-bytes",
        _route("GET", r"/blobs/{layer}", _to_other_host),
        ("expected",),
    ),
    Case(
        "blob-redirect-elsewhere-asks-credentials",
        _route("GET", r"/blobs/{layer}", lambda s: _to_other_host(s, b"{}", 401)),
        ("401",),
    ),
    # Token realms and pagination that point elsewhere.
    Case("realm-http-elsewhere", _realm(f"http://{FOREIGN}/token"), ("not https",)),
    Case("realm-file", _realm("file:///etc/passwd"), ("not https",)),
    Case("realm-ftp", _realm("ftp://127.0.0.1/token"), ("not https",)),
    Case("realm-javascript", _realm("javascript:alert(1)"), ("not https",)),
    Case(
        "next-page-elsewhere",
        _route("GET", r"/tags/list", _next_link("{other}/v2/ns/evil/tags/list?last=0.1")),
        ("another host",),
    ),
    Case(
        "next-page-foreign-http",
        _route("GET", r"/tags/list", _next_link(f"http://{FOREIGN}/v2/ns/evil/tags/list")),
        ("another host",),
    ),
    Case(
        "next-page-file",
        _route("GET", r"/tags/list", _next_link("file:///etc/passwd")),
        ("another host",),
    ),
    # Error bodies without end, and errors that try to leak or forge output.
    Case(
        "error-500-endless",
        _route("GET", r"/tags/list", lambda _s: stream_forever(500)),
        ("500",),
    ),
    Case(
        "error-400-endless",
        _route("GET", r"/blobs/{layer}", lambda _s: stream_forever(400)),
        ("400",),
    ),
    Case(
        "error-401-endless",
        _route(
            "GET",
            r"/manifests/",
            lambda _s: stream_forever(401, {"WWW-Authenticate": 'Basic realm="x"'}),
        ),
        ("401",),
    ),
    Case("token-answer-endless", _endless_token, ("over the",)),
    Case("error-echoes-secrets", _route("GET", r"/tags/list", _echo), ("400", "denied for")),
]


def _scene(hostile: HostileRegistry, other_host: OtherHost, tmp_path: Path) -> Scene:
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = make_wheel(dist, "evil", "1.0", extra_files={"evil/data.bin": b"\x00" * 200_000})
    return Scene(hostile, other_host, tmp_path, wheel, make_sdist(dist, "evil", "1.0"))


def _download(cli: Cli, scene: Scene, out: Path, credentials: bool) -> Result:
    args = ["download", "--repository", f"{scene.hostile.host}/{NAMESPACE}", "-d", str(out)]
    if credentials:
        args += ["--username", USER, "--password", PASSWORD]
    return cli.run(*args, "evil", env=QUICK)


def _cache_is_verified(cache: Path) -> None:
    for path in (cache / "blobs").rglob("*") if (cache / "blobs").exists() else []:
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path


def _secrets() -> list[str]:
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return [PASSWORD, SECRET_MARKER, pair]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_answer_is_refused_cleanly(
    case: Case, hostile: HostileRegistry, other_host: OtherHost, cli: Cli, tmp_path: Path
) -> None:
    scene = _scene(hostile, other_host, tmp_path)
    hostile.basic = (USER, PASSWORD) if case.credentials and hostile.bearer_realm is None else None
    case.setup(scene)
    if hostile.bearer_realm is not None:
        hostile.basic = None
    # Deep enough that every "../" of the cases still lands inside tmp_path.
    out = cli.cwd / "d1" / "d2" / "out"
    out.mkdir(parents=True)
    cli.cache.mkdir()
    before = tree(tmp_path, skip=[out, cli.cache])

    result = _download(cli, scene, out, case.credentials)

    line = assert_refused(result, *case.expect)
    if case.warns is not None:
        assert case.warns in result.stderr, str(result)
    for secret in _secrets():
        assert secret not in result.stderr, line
    assert tree(tmp_path, skip=[out, cli.cache]) == before, "something was written outside"
    assert not out.exists() or list(out.iterdir()) == []
    assert no_partial_files(cli.cache) == []
    _cache_is_verified(cli.cache)
    assert not other_host.got_authorization()


def test_layer_title_never_names_the_downloaded_file(
    hostile: HostileRegistry, other_host: OtherHost, cli: Cli, tmp_path: Path
) -> None:
    scene = _scene(hostile, other_host, tmp_path)

    def manifest(value: dict[str, Any], _dist: Distribution) -> None:
        value["layers"][0]["annotations"][OCI_TITLE] = "../../../../pwned.whl"

    scene.publish(manifest=manifest)
    out = cli.cwd / "d1" / "d2" / "out"
    out.mkdir(parents=True)
    cli.cache.mkdir()
    before = tree(tmp_path, skip=[out, cli.cache])

    result = _download(cli, scene, out, credentials=False)

    assert result.returncode == 0, str(result)
    assert [p.name for p in out.iterdir()] == [scene.wheel.name]
    assert (out / scene.wheel.name).read_bytes() == scene.wheel.read_bytes()
    assert tree(tmp_path, skip=[out, cli.cache]) == before


def test_blob_redirected_to_another_host_gets_no_credentials(
    hostile: HostileRegistry, other_host: OtherHost, cli: Cli, tmp_path: Path
) -> None:
    scene = _scene(hostile, other_host, tmp_path)
    hostile.basic = (USER, PASSWORD)
    scene.publish()
    layer = "sha256:" + hashlib.sha256(scene.wheel.read_bytes()).hexdigest()
    hostile.route("GET", f"/blobs/{layer}", _to_other_host(scene, scene.wheel.read_bytes()))
    out = cli.cwd / "out"

    result = _download(cli, scene, out, credentials=True)

    assert result.returncode == 0, str(result)
    assert (out / scene.wheel.name).read_bytes() == scene.wheel.read_bytes()
    assert other_host.requests, "the blob was not fetched from the other host"
    assert not other_host.got_authorization()
    # The registry itself did get them: the test would prove nothing otherwise.
    assert any("authorization" in seen.headers for seen in hostile.requests)


def test_upload_location_on_another_host_gets_no_credentials(
    hostile: HostileRegistry, other_host: OtherHost, cli: Cli, tmp_path: Path
) -> None:
    scene = _scene(hostile, other_host, tmp_path)
    hostile.basic = (USER, PASSWORD)
    hostile.route(
        "POST",
        r"/blobs/uploads/$",
        respond_location(f"{other_host.url}/upload/1?token=abc"),
    )

    result = cli.run(
        "push",
        "--repository",
        f"{hostile.host}/{NAMESPACE}",
        "--username",
        USER,
        "--password",
        PASSWORD,
        str(scene.wheel),
        env=QUICK,
    )

    puts = [seen for seen in other_host.requests if seen.method == "PUT"]
    assert puts, str(result)
    assert not other_host.got_authorization()
    assert PASSWORD not in result.stdout + result.stderr


def respond_location(location: str) -> Callable[[BaseHTTPRequestHandler, re.Match[str]], None]:
    return respond(202, b"", {"Location": location})


@pytest.mark.parametrize(
    "location", ["file:///tmp/upload", "gopher://127.0.0.1/x", f"ftp://{FOREIGN}/u"]
)
def test_upload_location_that_is_not_http_is_refused(
    location: str, hostile: HostileRegistry, other_host: OtherHost, cli: Cli, tmp_path: Path
) -> None:
    scene = _scene(hostile, other_host, tmp_path)
    hostile.route("POST", r"/blobs/uploads/$", respond_location(location))

    result = cli.run(
        "push", "--repository", f"{hostile.host}/{NAMESPACE}", str(scene.wheel), env=QUICK
    )

    assert_refused(result, "sent the upload to a non-http url")
    assert hostile.tags == {}, "an index was published for content that never landed"


def _after_the_body(
    answer: Callable[[BaseHTTPRequestHandler, re.Match[str]], None],
) -> Callable[[BaseHTTPRequestHandler, re.Match[str]], None]:
    """``answer``, once the request's body is read (the connection is then reused)."""

    def handle(handler: BaseHTTPRequestHandler, match: re.Match[str]) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        answer(handler, match)

    return handle


#: Each kind of upload, as the store is asked for it.
_COMMITS: dict[str, Callable[[Store, bytes], object]] = {
    "blob": lambda store, data: store.push_blob(BytesBlob(data, "application/octet-stream")),
    "streamed blob": lambda store, data: store.push_stream(lambda: io.BytesIO(data), len(data)),
    "manifest": lambda store, data: store.put_manifest(data, OCI_MANIFEST, "1.0"),
}


@pytest.mark.parametrize("kind", sorted(_COMMITS))
@pytest.mark.parametrize("stored", ["other", "same", "sha512"])
def test_registry_saying_it_stored_other_content_is_refused(
    hostile: HostileRegistry, kind: str, stored: str
) -> None:
    data = b'{"schemaVersion":2}'
    digest = {
        "other": "sha256:" + hashlib.sha256(b"other content").hexdigest(),
        "same": "sha256:" + hashlib.sha256(data).hexdigest(),
        # Another algorithm cannot be compared with ours: the header proves nothing then.
        "sha512": "sha512:" + hashlib.sha512(b"other content").hexdigest(),
    }[stored]
    committed = _after_the_body(respond(201, b"", {"Docker-Content-Digest": digest}))
    hostile.route("PUT", r"/blobs/uploads/", committed)
    hostile.route("PUT", r"/manifests/", committed)
    patched = _after_the_body(respond_location("/v2/ns/evil/blobs/uploads/1"))
    hostile.route("PATCH", r"/blobs/uploads/", patched)

    with RegistryClient(hostile.host, "http", None, retries=0) as client:
        store = client.store(REPOSITORY)
        if stored != "other":
            _COMMITS[kind](store, data)
            return
        with pytest.raises(DigestMismatchError) as caught:
            _COMMITS[kind](store, data)
    assert f"the registry stored it as {digest}" in str(caught.value)


def test_serve_lists_only_files_with_safe_names(hostile: HostileRegistry, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    wheels = [make_wheel(dist, "evil", "1.0", tag=tag) for tag in ("py3-none-any", "py2-none-any")]
    pyoci = make_wheel(dist, "evil", "1.0", tag="cp311-cp311-linux_x86_64")
    sdist = make_sdist(dist, "evil", "1.0")
    poison: dict[str, Callable[[dict[str, Any]], object]] = {
        wheels[0].name: lambda v: v["annotations"].update({FILENAME: "../../../etc/evil.whl"}),
        wheels[1].name: lambda v: v["annotations"].update({FILENAME: "evil\x00.whl"}),
        pyoci.name: lambda v: (
            v["annotations"].pop(FILENAME),
            v["platform"].update(architecture="../../x.whl"),
        ),
    }

    def entry(value: dict[str, Any], dist_: Distribution) -> None:
        if dist_.filename in poison:
            poison[dist_.filename](value)

    publish_version(hostile, REPOSITORY, [*wheels, pyoci, sdist], entry=entry)
    factory = StoreFactory(parse_target(f"{hostile.host}/{NAMESPACE}"), environ={})
    try:
        with serving(make_app(factory, cache_ttl=0)) as server:
            page = json.loads(get(server.url + "evil/", "application/vnd.pypi.simple.v1+json")[2])
            html = get(server.url + "evil/", "text/html")[2].decode()
            base = server.url.removesuffix("simple/") + "files/evil/1.0/"
            probes = [
                get(base + quote("../../../etc/evil.whl", safe=""))[0],
                get(base + "..%2F..%2Fx.whl")[0],
                get(base + "evil%00.whl")[0],
            ]
    finally:
        factory.close()

    assert [item["filename"] for item in page["files"]] == [sdist.name]
    assert re.findall(r">([^<>]+)</a>", html) == [sdist.name]
    assert "\x00" not in html and "etc/evil" not in html and "x.whl" not in html
    assert probes == [404, 404, 404]
