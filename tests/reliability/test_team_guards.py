"""The smaller guards: no way from https down to plain http, cache entries handed out only
once verified, files with the user's umask, downloads that stop cleanly on a full disk,
damaged ``oci:`` blobs replaced by a re-push, and listings a registry cannot inflate."""

from __future__ import annotations

import datetime
import errno
import hashlib
import ipaddress
import json
import os
import ssl
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.cli import Cli
from support.hostile_registry import HostileRegistry, OtherHost, redirect, respond
from support.registry_harness import RunningRegistry
from support.stores import ClientStores, fast_client
from support.wheels import make_wheel

from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.wire_format import file_layer
from setuptools_ghcr.errors import TooLargeError, UnsafeResponseError
from setuptools_ghcr.storage import files
from setuptools_ghcr.storage.cache import BlobCache
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.registry.credentials import Credentials
from setuptools_ghcr.storage.store import BytesBlob, Store
from setuptools_ghcr.usecases.publish import PushOptions, publish
from setuptools_ghcr.usecases.resolve import ResolveOptions, download

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as _toml

pytestmark = pytest.mark.integration


def _dist(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    folder.mkdir(exist_ok=True)
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- https never leads to plain http ---------------------------------------------------------


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "registry.pem", folder / "registry.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def https_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileRegistry]:
    """A registry fake over https on loopback, which the client trusts (a remote registry)."""
    cert, key = _certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    registry = HostileRegistry(tls=context)
    try:
        yield registry
    finally:
        registry.stop()


def _blob_redirect(registry: HostileRegistry, other: OtherHost) -> Callable[[Store], object]:
    blob = BytesBlob(b"blob bytes", "application/octet-stream")
    registry.add_blob(blob.data)
    registry.route("GET", r"/blobs/", redirect(f"http://127.0.0.1:{other.port}/blob"))
    return lambda store: store.read_blob(blob.descriptor)


def _upload_location(registry: HostileRegistry, other: OtherHost) -> Callable[[Store], object]:
    location = {"Location": f"http://127.0.0.1:{other.port}/upload"}
    registry.route("POST", r"/blobs/uploads/", respond(202, b"", location))
    return lambda store: store.push_blob(BytesBlob(b"x", "application/octet-stream"))


def _token_realm(registry: HostileRegistry, other: OtherHost) -> Callable[[Store], object]:
    registry.bearer_realm = f"http://127.0.0.1:{other.port}/token"
    return lambda store: store.list_tags()


@pytest.mark.parametrize("lure", [_blob_redirect, _upload_location, _token_realm])
def test_an_https_registry_never_leads_to_plain_http_even_on_loopback(
    https_registry: HostileRegistry,
    other_host: OtherHost,
    lure: Callable[[HostileRegistry, OtherHost], Callable[[Store], object]],
) -> None:
    act = lure(https_registry, other_host)
    credentials = Credentials("user", "pass-word", "test")
    with (
        RegistryClient(https_registry.host, "https", credentials) as client,
        pytest.raises(UnsafeResponseError, match=r"plain http|not https"),
    ):
        act(client.store("ns/pkg"))
    assert other_host.requests == []


# -- cache entries and modes -------------------------------------------------------------------


@pytest.fixture
def published(
    plain_registry: RunningRegistry, tmp_path: Path
) -> Iterator[tuple[ClientStores, Path]]:
    wheel = make_wheel(
        _dist(tmp_path), "guarded", "1.0", extra_files={"guarded/d": os.urandom(300_000)}
    )
    stores = ClientStores(
        f"{plain_registry.host}/guards{os.getpid()}{tmp_path.name[-6:]}",
        fast_client(plain_registry.host),
    )
    publish(stores.open, [read_distribution(wheel)], PushOptions())
    try:
        yield stores, wheel
    finally:
        stores.client.close()


def test_a_cache_entry_swapped_right_after_its_fetch_is_not_handed_out(
    published: tuple[ClientStores, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores, wheel = published
    real_fetch = BlobCache.fetch
    swapped: list[Path] = []

    def fetch_then_swap(
        self: BlobCache, store: Store, descriptor: Any, progress: Any = None
    ) -> Path:
        path = real_fetch(self, store, descriptor, progress)
        if not swapped:
            # Another process puts other bytes under the entry's name, atomically.
            planted = path.with_name("planted")
            planted.write_bytes(b"\x00" * descriptor.size)
            os.replace(planted, path)
            swapped.append(path)
        return path

    monkeypatch.setattr(BlobCache, "fetch", fetch_then_swap)
    cache = BlobCache(tmp_path / "cache")
    (done,) = download(
        stores, ["guarded"], tmp_path / "out", cache=cache, options=ResolveOptions(deps=False)
    )

    assert swapped
    assert done.path.read_bytes() == wheel.read_bytes()


def test_downloaded_files_and_cache_entries_get_the_users_umask(
    published: tuple[ClientStores, Path], cli: Cli
) -> None:
    stores, wheel = published
    result = cli.run(
        "download", "--repository", str(stores.target), "-d", "out", "--no-deps", "guarded"
    )
    assert result.returncode == 0, str(result)
    expected = 0o666 & ~_umask()
    assert stat.S_IMODE((cli.cwd / "out" / wheel.name).stat().st_mode) == expected
    entries = [p for p in (cli.cache / "blobs").rglob("*") if p.is_file()]
    assert entries and {stat.S_IMODE(p.stat().st_mode) for p in entries} == {expected}


def test_oci_folder_files_get_the_users_umask(cli: Cli, tmp_path: Path) -> None:
    wheel = make_wheel(_dist(tmp_path), "moded", "1.0")
    assert cli.run("push", "--repository", "oci:packages", str(wheel)).returncode == 0
    written = [p for p in (cli.cwd / "packages").rglob("*") if p.is_file() and p.name != ".lock"]
    assert written
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o666 & ~_umask()}


# -- a full disk -------------------------------------------------------------------------------


def test_a_download_that_cannot_write_ends_its_threads(
    published: tuple[ClientStores, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores, wheel = published
    real_writing = files.PendingFile.writing

    class FullDisk:
        def __init__(self, out: BinaryIO) -> None:
            self._out = out
            self.written = 0

        def write(self, data: bytes) -> int:
            if self.written + len(data) > 100_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return self._out.write(data)

    @contextmanager
    def writing(self: files.PendingFile) -> Iterator[Any]:
        with real_writing(self) as out:
            yield FullDisk(out)

    monkeypatch.setattr(files.PendingFile, "writing", writing)
    before = {t for t in threading.enumerate() if t.name == "blob-worker"}
    store = stores.open("guarded")
    descriptor = read_distribution(wheel)
    with pytest.raises(OSError, match="No space left"):
        store.download_blob(file_layer(descriptor), tmp_path / "out.whl")
    left = [t for t in threading.enumerate() if t.name == "blob-worker" and t not in before]
    for thread in left:
        thread.join(timeout=5)
    assert [t for t in left if t.is_alive()] == []
    assert not (tmp_path / "out.whl").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


# -- a damaged oci: blob -------------------------------------------------------------------------


def test_re_pushing_content_whose_oci_blob_is_damaged_replaces_the_blob(
    cli: Cli, tmp_path: Path
) -> None:
    wheel = make_wheel(_dist(tmp_path), "mended", "1.0")
    assert cli.run("push", "--repository", "oci:packages", str(wheel)).returncode == 0
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    blob = cli.cwd / "packages" / "mended" / "blobs" / "sha256" / digest
    damaged = bytearray(blob.read_bytes())
    damaged[100] ^= 0xFF
    blob.write_bytes(bytes(damaged))

    again = cli.run("push", "--repository", "oci:packages", str(wheel))

    assert again.returncode == 0, str(again)
    assert "already there" in again.stdout
    assert "damaged" in again.stderr
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    fetched = cli.run("download", "--repository", "oci:packages", "-d", "out", "mended")
    assert fetched.returncode == 0, str(fetched)
    assert (cli.cwd / "out" / wheel.name).read_bytes() == wheel.read_bytes()


# -- listings a registry cannot inflate --------------------------------------------------------


def test_tag_pages_are_capped_in_all_not_each(hostile: HostileRegistry) -> None:
    # Each page is small; together 40 of them hold 2,000,000 tags.
    page = json.dumps({"tags": [f"0.{n}" for n in range(50_000)]}).encode()
    pages = {"count": 0}

    def next_page(handler: Any, match: Any) -> None:
        pages["count"] += 1
        more = pages["count"] < 40
        link = {"Link": f'</v2/ns/many/tags/list?last={pages["count"]}>; rel="next"'}
        headers = {"Content-Type": "application/json", **(link if more else {})}
        respond(200, page, headers)(handler, match)

    hostile.route("GET", r"/tags/list", next_page)
    with RegistryClient(hostile.host, "http", None) as client, pytest.raises(TooLargeError):
        client.store("ns/many").list_tags()
    assert pages["count"] <= 3


def test_the_catalog_is_read_in_bounded_steps(hostile: HostileRegistry) -> None:
    names = [f"ns/project_{n:07d}_{'x' * 200}" for n in range(6000)]
    body = json.dumps({"repositories": names}).encode()
    assert len(body) > 1 << 20
    hostile.route("GET", r"/v2/_catalog", respond(200, body, {"Content-Type": "application/json"}))
    with RegistryClient(hostile.host, "http", None) as client, pytest.raises(TooLargeError):
        client.list_repositories("ns")


def test_urllib3_that_inflates_without_bound_is_not_accepted() -> None:
    import urllib3
    from packaging.requirements import Requirement
    from packaging.version import Version

    document = _toml.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    wanted = [Requirement(r) for r in document["project"]["dependencies"]]
    (urllib3_req,) = [r for r in wanted if r.name == "urllib3"]
    assert not urllib3_req.specifier.contains("2.6.9")
    assert urllib3_req.specifier.contains(Version(urllib3.__version__))


def test_a_resolve_reads_a_bounded_number_of_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from setuptools_ghcr.core.targets import LayoutTarget
    from setuptools_ghcr.errors import NotFoundError
    from setuptools_ghcr.storage.factory import StoreFactory
    from setuptools_ghcr.usecases import resolve

    monkeypatch.setattr(resolve, "MAX_VERSIONS_READ", 5)
    factory = StoreFactory(LayoutTarget(tmp_path / "packages"), environ={})
    # Eight versions, none with a file for this interpreter: each one is read in turn.
    wheels = [
        make_wheel(_dist(tmp_path), "unfit", f"1.{n}", tag="cp27-cp27m-win32") for n in range(8)
    ]
    publish(factory.open, [read_distribution(w) for w in wheels], PushOptions())
    with pytest.raises(NotFoundError, match="read 5 versions"):
        download(factory, ["unfit"], tmp_path / "out", cache=BlobCache(tmp_path / "cache"))
    factory.close()
