"""Bad input, one row each: exit 1, one error line a user can act on, and nothing published.

Files that are not distributions or disagree with themselves, invalid names and versions,
bad ``[tool.setuptools-ghcr]`` tables, targets that are malformed or unreachable (DNS
failure, refused connection, TLS error), missing or wrong credentials, and projects or
versions that do not exist.
"""

from __future__ import annotations

import os
import socketserver
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support.cli import Cli, assert_refused
from support.loopback_names import ENV as LOOPBACK_NAMES
from support.registry_harness import SECRET_MARKER, RunningRegistry, free_port
from support.stores import ClientStores, fast_client, publish_files
from support.wheels import core_metadata, make_sdist, make_wheel, write_tar_gz, write_zip

pytestmark = pytest.mark.integration

#: Network rows try once more, not four times: the point is the message, not the patience.
QUICK = {"SETUPTOOLS_GHCR_RETRIES": "1", "SETUPTOOLS_GHCR_TIMEOUT": "10"}
WRONG_PASSWORD = f"{SECRET_MARKER}not-the-password"


@dataclass
class Bench:
    """What the rows work with."""

    root: Path
    cli: Cli
    plain: RunningRegistry
    htpasswd: RunningRegistry
    token: RunningRegistry
    namespace: str
    #: A namespace of the plain registry holding demo-pkg 1.0.
    published: str
    tls_host: str

    def file(self, name: str, data: bytes) -> str:
        path = self.root / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return str(path)

    def wheel(self, **options: object) -> Path:
        folder = self.root / "files"
        folder.mkdir(parents=True, exist_ok=True)
        return make_wheel(folder, "demo-pkg", "1.0", **options)  # type: ignore[arg-type]

    def pyproject(self, table: str) -> None:
        (self.cli.cwd / "pyproject.toml").write_text(f"[tool.setuptools-ghcr]\n{table}\n")

    def target(self, registry: RunningRegistry | None = None) -> list[str]:
        return ["--repository", f"{(registry or self.plain).host}/{self.namespace}"]


Args = Callable[[Bench], list[str]]


@dataclass(frozen=True)
class Row:
    id: str
    args: Args
    expect: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


def _push(make_file: Callable[[Bench], str]) -> Args:
    return lambda b: ["push", *b.target(), make_file(b)]


def _half(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


def _corrupt_wheel(bench: Bench, member: str = "demo_pkg-1.0.dist-info/METADATA") -> str:
    """A wheel one of whose members no longer inflates to what its CRC says."""
    path = bench.wheel(summary="x" * 2000, module_code="VALUE = 1\n" * 300)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for offset in range(start + 10, start + 30):
        data[offset] ^= 0x55
    path.write_bytes(bytes(data))
    return str(path)


def _wheel_without_metadata(bench: Bench) -> str:
    path = bench.root / "files" / "demo_pkg-1.0-py3-none-any.whl"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_zip(path, {"demo_pkg/__init__.py": "", "demo_pkg-1.0.dist-info/WHEEL": "x"})
    return str(path)


def _sdist_with_other_top(bench: Bench) -> str:
    path = bench.root / "files" / "demo_pkg-1.0.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tar_gz(path, {"other-9/PKG-INFO": core_metadata("other", "9")})
    return str(path)


def _config(table: str, *args: str) -> Args:
    def build(bench: Bench) -> list[str]:
        bench.pyproject(table)
        return ["push", *args, str(bench.wheel())]

    return build


def _registry_push(which: str, username: str | None = None, password: str | None = None) -> Args:
    def build(bench: Bench) -> list[str]:
        registry: RunningRegistry = getattr(bench, which)
        args = ["push", *bench.target(registry)]
        if username is not None:
            args += ["--username", username]
        if password is not None:
            args += ["--password", password]
        return [*args, str(bench.wheel())]

    return build


def _download(*requirements: str, verb: str = "download") -> Args:
    def build(bench: Bench) -> list[str]:
        return [verb, "--repository", f"{bench.plain.host}/{bench.published}", *requirements]

    return build


def _tls(bench: Bench) -> list[str]:
    bench.cli.env[LOOPBACK_NAMES] = bench.tls_host.split(":")[0]
    return ["push", "--repository", f"{bench.tls_host}/ns", str(bench.wheel())]


ROWS = [
    # Files that are not distributions, or not whole ones.
    Row("text-file", _push(lambda b: b.file("notes.txt", b"hello\n")), ("notes.txt",)),
    Row(
        "random-bytes-named-wheel",
        _push(lambda b: b.file("demo_pkg-1.0-py3-none-any.whl", os.urandom(3000))),
        ("not a readable wheel",),
    ),
    Row(
        "random-bytes-named-sdist",
        _push(lambda b: b.file("demo_pkg-1.0.tar.gz", os.urandom(3000))),
        ("not a readable sdist",),
    ),
    Row(
        "truncated-wheel",
        _push(lambda b: b.file("demo_pkg-1.0-py3-none-any.whl", _half(b.wheel()))),
        ("not a readable wheel",),
    ),
    Row(
        "truncated-sdist",
        _push(
            lambda b: b.file(
                "demo_pkg-1.0.tar.gz",
                _half(make_sdist(b.root, "demo-pkg", "1.0", summary="y" * 9000)),
            )
        ),
        ("sdist",),
    ),
    Row("corrupt-wheel-metadata", _push(_corrupt_wheel), ("wheel",)),
    Row(
        "corrupt-wheel-module",
        _push(lambda b: _corrupt_wheel(b, "demo_pkg/__init__.py")),
        ("wheel",),
    ),
    Row("wheel-without-metadata", _push(_wheel_without_metadata), ("metadata",)),
    Row(
        "sdist-without-pkg-info",
        _push(lambda b: str(make_sdist(b.root, "demo-pkg", "1.0", pkg_info=False))),
        ("PKG-INFO",),
    ),
    Row("sdist-other-top-folder", _push(_sdist_with_other_top), ("top folder 'other-9'",)),
    Row(
        "directory",
        _push(lambda b: str(_mkdir(b.root / "demo_pkg-1.0-py3-none-any.whl"))),
        ("demo_pkg",),
    ),
    Row(
        "missing-file",
        _push(lambda b: str(b.root / "demo_pkg-1.0-py3-none-any.whl")),
        ("no such file",),
    ),
    # Files that disagree with themselves.
    Row(
        "metadata-names-another-project",
        _push(lambda b: str(b.wheel(metadata=core_metadata("other-pkg", "1.0")))),
        ("other-pkg",),
    ),
    Row(
        "metadata-says-another-version",
        _push(lambda b: str(b.wheel(metadata=core_metadata("demo-pkg", "2.0")))),
        ("2.0",),
    ),
    Row(
        "metadata-not-utf8",
        _push(lambda b: str(b.wheel(metadata=b"Metadata-Version: 2.1\nName: demo\xff\xfe\n"))),
        ("utf-8",),
    ),
    Row(
        "invalid-version-in-file-name",
        _push(lambda b: b.file("demo_pkg-one.two-py3-none-any.whl", b"PK")),
        ("demo_pkg-one.two",),
    ),
    Row(
        "invalid-name-in-file-name",
        _push(lambda b: b.file("demo$pkg-1.0-py3-none-any.whl", b"PK")),
        ("demo$pkg",),
    ),
    # Configuration.
    Row("config-wrong-type-skip-existing", _config('skip-existing = "yes"'), ("skip-existing",)),
    Row("config-wrong-type-tags", _config('tags = "latest"'), ("tags",)),
    Row("config-wrong-type-repository", _config("repository = 5"), ("repository",)),
    Row("config-annotation-not-a-string", _config("annotations = { a = 1 }"), ("annotations.a",)),
    Row("config-unknown-key", _config('repo = "ghcr.io/acme"'), ("unknown key 'repo'",)),
    Row("config-invalid-tag", _config('tags = ["no spaces"]'), ("not a valid oci tag",)),
    Row("config-not-toml", _config("this is = = not toml"), ("pyproject.toml",)),
    Row(
        "timeout-not-a-number",
        _registry_push("plain"),
        ("SETUPTOOLS_GHCR_TIMEOUT",),
        (("SETUPTOOLS_GHCR_TIMEOUT", "soon"),),
    ),
    # Targets: malformed, unreachable, refusing, or that would go somewhere unmeant.
    Row(
        "target-oci-double-slash",
        lambda b: ["push", "--repository", "oci://packages", str(b.wheel())],
        ("write oci:packages for a folder",),
    ),
    Row(
        "target-folder-without-colon",
        lambda b: ["push", "--repository", "oci/packages", str(b.wheel())],
        ("for a folder write oci:packages",),
    ),
    Row(
        "target-plain-http-remote",
        lambda b: ["push", "--repository", "http://registry.example.invalid/x", str(b.wheel())],
        ("plain http to registry.example.invalid is refused", "--insecure-registry"),
    ),
    Row(
        "target-malformed",
        lambda b: ["push", "--repository", "ghcr.io/Acme Corp", str(b.wheel())],
        ("not a valid oci repository",),
    ),
    Row(
        "target-with-credentials",
        lambda b: ["push", "--repository", f"me:{SECRET_MARKER}x@ghcr.io/acme", str(b.wheel())],
        ("cannot hold credentials",),
    ),
    Row(
        "dns-failure",
        lambda b: ["push", "--repository", "registry.example.invalid/acme", str(b.wheel())],
        ("cannot reach registry.example.invalid",),
        tuple(QUICK.items()),
    ),
    Row(
        "connection-refused",
        lambda b: ["push", "--repository", f"127.0.0.1:{free_port()}/acme", str(b.wheel())],
        ("connection refused",),
        tuple(QUICK.items()),
    ),
    Row("tls-error", _tls, ("tls",), tuple(QUICK.items())),
    Row("missing-credentials", _registry_push("htpasswd"), ("log in",), tuple(QUICK.items())),
    Row(
        "wrong-password",
        _registry_push("htpasswd", "tester", WRONG_PASSWORD),
        ("refused",),
        tuple(QUICK.items()),
    ),
    Row(
        "wrong-user",
        _registry_push("htpasswd", "nobody", WRONG_PASSWORD),
        ("refused",),
        tuple(QUICK.items()),
    ),
    Row(
        "token-missing-credentials",
        _registry_push("token"),
        ("401",),
        tuple(QUICK.items()),
    ),
    Row(
        "token-wrong-password",
        _registry_push("token", "tester", WRONG_PASSWORD),
        ("refused the credentials",),
        tuple(QUICK.items()),
    ),
    # Requirements.
    Row("project-does-not-exist", _download("no-such-project"), ("not found",)),
    Row("version-does-not-exist", _download("demo-pkg==9.9"), ("no version", "available: 1.0")),
    Row("requirement-invalid", _download("demo-pkg>=="), ("not a valid requirement",)),
    Row("requirement-direct-url", _download("demo-pkg @ https://x.test/d.whl"), ("direct url",)),
    Row("inspect-invalid-name", _download("bad name!!", verb="inspect"), ("bad name!!",)),
    Row("install-does-not-exist", _download("no-such-project", verb="install"), ("not found",)),
]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class _PlainHttp(socketserver.BaseRequestHandler):
    """Answers anything, a TLS handshake included, with plain HTTP."""

    def handle(self) -> None:
        try:
            self.request.recv(4096)
            self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass


@pytest.fixture(scope="module")
def tls_host() -> Iterator[str]:
    """A host the tool speaks https to (its name is not a loopback name) that answers in
    plain http; the name resolves to 127.0.0.1 in the command's process only."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _PlainHttp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"tls-registry.test:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def published(plain_registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    namespace = f"badin{os.getpid()}"
    folder = tmp_path_factory.mktemp("published")
    stores = ClientStores(f"{plain_registry.host}/{namespace}", fast_client(plain_registry.host))
    publish_files(stores, make_wheel(folder, "demo-pkg", "1.0"))
    stores.client.close()
    return namespace


def _repositories(registry: RunningRegistry, namespace: str) -> list[str]:
    """The registry's repositories under ``namespace`` (the catalog is sorted)."""
    auth = (registry.username, str(registry.password)) if registry.username else None
    query = {"n": "1000", "last": namespace}
    response = requests.get(f"{registry.url}/v2/_catalog", params=query, auth=auth, timeout=30)
    response.raise_for_status()
    names = response.json().get("repositories") or []
    return [name for name in names if name.startswith(f"{namespace}/")]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input_fails_in_one_line_and_publishes_nothing(
    row: Row,
    cli: Cli,
    tmp_path: Path,
    plain_registry: RunningRegistry,
    htpasswd_registry: RunningRegistry,
    token_registry: RunningRegistry,
    published: str,
    tls_host: str,
) -> None:
    namespace = f"bad{abs(hash(row.id)) % 10**8}"
    bench = Bench(
        tmp_path,
        cli,
        plain_registry,
        htpasswd_registry,
        token_registry,
        namespace,
        published,
        tls_host,
    )
    args = row.args(bench)

    result = cli.run(*args, env=dict(row.env))

    assert_refused(result, *row.expect)
    for secret in (SECRET_MARKER, str(htpasswd_registry.password), str(token_registry.password)):
        assert secret not in result.stderr
    # Nothing published: no repository appeared under the row's namespace.
    for registry in (plain_registry, htpasswd_registry):
        assert _repositories(registry, namespace) == []
