"""Uploads through the index service with the real clients (twine, uv publish, hatch publish)
into real registries (plain, htpasswd and token auth), then installs with pip and uv.

Every upload pushes with the caller's own credentials: the service's (given for reading
pages) are never lent to an upload.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support.cli import user_environment
from support.http import serving
from support.registry_harness import RunningRegistry, free_port
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.core.targets import RegistryTarget, parse_target
from setuptools_ghcr.core.wire_format import OCI_SOURCE
from setuptools_ghcr.serve.app import make_app
from setuptools_ghcr.serve.server import IndexServer
from setuptools_ghcr.serve.upload import Uploads
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.usecases.versions import list_versions, read_file_manifest, read_version

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
#: No keyring, no user configuration: the clients use what the test gives them, nothing else.
CLIENT_ENV = user_environment(
    PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
    UV_NO_CONFIG="1",
    TWINE_NON_INTERACTIVE="1",
)


@dataclass
class Service:
    """An index service over one namespace of a registry, taking uploads."""

    server: IndexServer
    target: RegistryTarget
    reader: StoreFactory
    registry: RunningRegistry

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def index(self) -> str:
        return self.server.url

    def files(self, project: str) -> list[str]:
        """The files published of ``project``, read with the server's own credentials."""
        return published_files(self.reader, project)


def published_files(stores: StoreFactory, project: str) -> list[str]:
    """The files of every published version of ``project``, by name."""
    store = stores.open(project)
    names = []
    for version in list_versions(store):
        found = read_version(store, project, version)
        names += [entry.filename for entry in found.files] if found else []
    return sorted(names)


_COUNTER = iter(range(1_000_000))


@pytest.fixture
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    """A service over a fresh namespace of the registry ``request.param`` names (by fixture,
    then ``:SIZE`` for an upload cap), reading pages with that registry's known user."""
    fixture, _, cap = str(request.param).partition(":")
    registry: RunningRegistry = request.getfixturevalue(fixture)
    target = parse_target(f"{registry.host}/up{os.getpid()}-{next(_COUNTER)}")
    assert isinstance(target, RegistryTarget)
    reader = StoreFactory(
        target, username=registry.username, password=registry.password, environ={}, home=tmp_path
    )
    uploads = Uploads(max_size=int(cap) if cap else None, environ={})
    try:
        with serving(make_app(reader, cache_ttl=0, uploads=uploads)) as server:
            yield Service(server, target, reader, registry)
    finally:
        reader.close()


def run(*command: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        check=False,
        env=CLIENT_ENV,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def twine(url: str, user: str, password: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return run(
        BIN / "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        url,
        "-u",
        user,
        "-p",
        password,
        *files,
    )


def uv_publish(
    url: str, user: str, password: str, *files: Path, check_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    check = ["--check-url", check_url] if check_url else []
    return run(
        BIN / "uv",
        "publish",
        "--trusted-publishing",
        "never",
        "--publish-url",
        url,
        "-u",
        user,
        "-p",
        password,
        *check,
        *files,
    )


def hatch_publish(
    url: str, user: str, password: str, *files: Path
) -> subprocess.CompletedProcess[str]:
    return run(BIN / "hatch", "publish", "-n", "-r", url, "-u", user, "-a", password, *files)


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def post(
    url: str, dist: Path, headers: dict[str, str], **fields: str | list[str]
) -> requests.Response:
    """Upload ``dist`` the way twine lays out its form, ``fields`` added or replacing."""
    data = dist.read_bytes()
    name, version = dist.name.split("-")[:2]
    form: dict[str, str | list[str]] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name.replace("_", "-"),
        "version": version.removesuffix(".tar.gz"),
        "filetype": "bdist_wheel" if dist.name.endswith(".whl") else "sdist",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        **fields,
    }
    return requests.post(
        url,
        data=form,
        files={"content": (dist.name, data, "application/octet-stream")},
        headers=headers,
        timeout=120,
    )


def venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def imports(python: Path, code: str) -> str:
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# --- the clients ----------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["htpasswd_registry"], indirect=True)
def test_twine_uploads_and_pip_and_uv_install_them(service: Service, tmp_path: Path) -> None:
    registry = service.registry
    assert registry.username is not None and registry.password is not None
    dep = make_wheel(tmp_path, "up-dep", "0.3", module_code="WORD = 'dependency'\n")
    demo = make_wheel(
        tmp_path,
        "up-demo",
        "1.0",
        requires_dist=["up-dep>=0.2"],
        module_code="from up_dep import WORD\nVALUE = 10\n",
    )
    sdist = make_sdist(tmp_path, "up-demo", "1.0")
    result = twine(service.base + "legacy/", registry.username, registry.password, dep, demo, sdist)
    assert result.returncode == 0, result.stdout + result.stderr
    assert service.files("up-demo") == sorted([demo.name, sdist.name])
    assert service.files("up-dep") == [dep.name]
    # The same files again: nothing to do, and twine is told so with a 200.
    again = twine(service.base, registry.username, registry.password, dep, demo, sdist)
    assert again.returncode == 0, again.stdout + again.stderr

    python = venv(tmp_path / "pip-venv")
    pip = run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--index-url",
        service.index,
        "up-demo",
    )
    assert pip.returncode == 0, pip.stderr
    assert imports(python, "import up_demo; print(up_demo.WORD, up_demo.VALUE)") == "dependency 10"

    python = venv(tmp_path / "uv-venv")
    uv = run(
        BIN / "uv", "pip", "install", "--no-cache", "--python", python,
        "--index-url", service.index, "up-demo==1.0",
    )  # fmt: skip
    assert uv.returncode == 0, uv.stderr
    assert imports(python, "import up_demo; print(up_demo.VALUE)") == "10"


@pytest.fixture
def ghcr_like(token_registry: RunningRegistry) -> Iterator[RunningRegistry]:
    """The token registry, its token service taking any user name (as ghcr.io does)."""
    assert token_registry.token_server is not None
    token_registry.token_server.any_username = True
    try:
        yield token_registry
    finally:
        token_registry.token_server.any_username = False


@pytest.mark.parametrize("service", ["token_registry"], indirect=True)
def test_twine_with_a_token_or_a_user_name_on_token_auth(
    service: Service, ghcr_like: RunningRegistry, tmp_path: Path
) -> None:
    assert ghcr_like.token_server is not None and ghcr_like.password is not None
    ghcr_like.token_server.clear()
    wheel = make_wheel(tmp_path, "up-token", "1.0")
    result = twine(service.base, "__token__", ghcr_like.password, wheel)
    assert result.returncode == 0, result.stdout + result.stderr
    users = {r.username for r in ghcr_like.token_server.requests if r.authenticated}
    # __token__ means "a token, no user name": never passed on as one.
    assert users == {"token"}
    ghcr_like.token_server.clear()
    sdist = make_sdist(tmp_path, "up-token", "1.0")
    named = twine(service.base + "legacy/", "tester", ghcr_like.password, sdist)
    assert named.returncode == 0, named.stdout + named.stderr
    assert {r.username for r in ghcr_like.token_server.requests if r.authenticated} == {"tester"}
    assert service.files("up-token") == sorted([wheel.name, sdist.name])


@pytest.mark.parametrize("service", ["token_registry"], indirect=True)
def test_uv_publish_with_and_without_check_url(service: Service, tmp_path: Path) -> None:
    user, password = service.registry.username, service.registry.password
    assert user is not None and password is not None
    wheel = make_wheel(tmp_path, "up-uv", "1.0", module_code="VALUE = 1\n")
    sdist = make_sdist(tmp_path, "up-uv", "1.0")
    first = uv_publish(service.base, user, password, wheel, sdist)
    assert first.returncode == 0, first.stderr
    assert service.files("up-uv") == sorted([wheel.name, sdist.name])
    store = service.reader.open("up-uv")
    index_before = store.get_manifest("1.0")

    # Again without --check-url: the service answers 200, nothing is written.
    again = uv_publish(service.base, user, password, wheel)
    assert again.returncode == 0, again.stderr
    # With --check-url at the service's own index, uv skips what is there already.
    skipped = uv_publish(service.base, user, password, wheel, sdist, check_url=service.index)
    assert skipped.returncode == 0, skipped.stderr
    assert "already exists" in skipped.stderr

    (tmp_path / "other").mkdir()
    other = make_wheel(tmp_path / "other", "up-uv", "1.0", module_code="VALUE = 2\n")
    refused = uv_publish(service.base, user, password, other)
    assert refused.returncode != 0
    assert "409" in refused.stderr and "already exists with other contents" in refused.stderr
    mismatch = uv_publish(service.base, user, password, other, check_url=service.index)
    assert mismatch.returncode != 0
    assert "do not match" in mismatch.stderr
    assert store.get_manifest("1.0") == index_before


@pytest.mark.parametrize("service", ["htpasswd_registry"], indirect=True)
def test_hatch_publish(service: Service, tmp_path: Path) -> None:
    user, password = service.registry.username, service.registry.password
    assert user is not None and password is not None
    wheel = make_wheel(tmp_path, "up-hatch", "1.0")
    sdist = make_sdist(tmp_path, "up-hatch", "1.0")
    result = hatch_publish(service.base + "legacy/", user, password, wheel, sdist)
    assert result.returncode == 0, result.stdout + result.stderr
    assert service.files("up-hatch") == sorted([wheel.name, sdist.name])


# --- pass-through routes --------------------------------------------------------------------


@dataclass
class Route:
    """A pass-through route ``/<registry>/<namespace>/`` of a service with no fixed target."""

    server: IndexServer
    registry: RunningRegistry
    namespace: str

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{self.registry.host}/{self.namespace}/"

    def index(self, user: str = "", password: str = "") -> str:
        host, port = self.server.server_address[:2]
        login = f"{user}:{password}@" if user else ""
        return f"http://{login}{host}:{port}/{self.registry.host}/{self.namespace}/simple/"

    def files(self, project: str, home: Path) -> list[str]:
        target = parse_target(f"{self.registry.host}/{self.namespace}")
        user, password = self.registry.username, self.registry.password
        with StoreFactory(target, username=user, password=password, environ={}, home=home) as f:
            return published_files(f, project)


@pytest.fixture
def route(request: pytest.FixtureRequest) -> Iterator[Route]:
    """A service with pass-through routes to the registry ``request.param`` names; pages are
    kept 30 s, so a page read before an upload shows the upload only if it was forgotten."""
    registry: RunningRegistry = request.getfixturevalue(str(request.param))
    app = make_app(None, registries=[registry.host], uploads=Uploads(environ={}), environ={})
    with serving(app) as server:
        yield Route(server, registry, f"pass{os.getpid()}-{next(_COUNTER)}/tools")


@pytest.mark.parametrize("route", ["token_registry"], indirect=True)
def test_twine_and_uv_publish_through_a_pass_through_route(
    route: Route, ghcr_like: RunningRegistry, tmp_path: Path
) -> None:
    password = ghcr_like.password
    assert password is not None
    wheel = make_wheel(tmp_path, "up-pass", "1.0", module_code="VALUE = 'passed'\n")
    sdist = make_sdist(tmp_path, "up-pass", "1.0")
    by_twine = twine(route.base + "legacy/", "__token__", password, wheel)
    assert by_twine.returncode == 0, by_twine.stdout + by_twine.stderr
    # The page is read (and kept) before the sdist arrives ...
    before = requests.get(route.index() + "up-pass/", headers=basic("tester", password), timeout=30)
    assert before.status_code == 200 and sdist.name not in before.text
    by_uv = uv_publish(route.base, "tester", password, sdist)
    assert by_uv.returncode == 0, by_uv.stderr
    # ... and an upload makes the service read it again.
    after = requests.get(route.index() + "up-pass/", headers=basic("tester", password), timeout=30)
    assert sdist.name in after.text
    assert route.files("up-pass", tmp_path) == sorted([wheel.name, sdist.name])

    # uv's --check-url at the route's own index, read with the caller's credentials.
    skipped = uv_publish(route.base, "__token__", password, wheel, sdist, check_url=route.index())
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stderr.count("already exists") == 2

    python = venv(tmp_path / "pip-venv")
    pip = run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-cache-dir",
        "--disable-pip-version-check", "--index-url", route.index("tester", password),
        "up-pass",
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    assert imports(python, "import up_pass; print(up_pass.VALUE)") == "passed"
    python = venv(tmp_path / "uv-venv")
    uv = run(
        BIN / "uv", "pip", "install", "--no-cache", "--python", python,
        "--index-url", route.index("__token__", password), "up-pass==1.0",
    )  # fmt: skip
    assert uv.returncode == 0, uv.stderr
    assert imports(python, "import up_pass; print(up_pass.VALUE)") == "passed"


@pytest.mark.parametrize("route", ["htpasswd_registry"], indirect=True)
def test_hatch_publishes_through_a_pass_through_route(route: Route, tmp_path: Path) -> None:
    user, password = route.registry.username, route.registry.password
    assert user is not None and password is not None
    wheel = make_wheel(tmp_path, "up-pass-hatch", "1.0")
    result = hatch_publish(route.base + "legacy/", user, password, wheel)
    assert result.returncode == 0, result.stdout + result.stderr
    assert route.files("up-pass-hatch", tmp_path) == [wheel.name]
    # Without credentials: asked for some, nothing written.
    (tmp_path / "other").mkdir()
    other = make_wheel(tmp_path / "other", "up-pass-other", "1.0")
    anonymous = post(route.base, other, {})
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    assert route.files("up-pass-other", tmp_path) == []


# --- who may upload -------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["htpasswd_registry"], indirect=True)
def test_the_callers_credentials_push_never_the_servers(service: Service, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "up-who", "1.0")
    anonymous = post(service.base, wheel, {})
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    wrong = post(service.base + "legacy/", wheel, basic("tester", "wrong"))
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic ")
    assert wrong.text.count("\n") == 1 and "wrong" not in wrong.text
    # The server itself could push (it reads with the known user): it did not.
    assert service.files("up-who") == []
    user, password = service.registry.username, service.registry.password
    assert user is not None and password is not None
    right = post(service.base, wheel, basic(user, password))
    assert right.status_code == 200, right.text
    assert service.files("up-who") == [wheel.name]


@pytest.mark.parametrize("service", ["token_registry"], indirect=True)
def test_a_bearer_token_pushes_as_it_is(service: Service, tmp_path: Path) -> None:
    token_server = service.registry.token_server
    assert token_server is not None
    repository = service.target.repository("up-bearer")
    wheel = make_wheel(tmp_path, "up-bearer", "1.0")
    pull_only = token_server.issue(
        [{"type": "repository", "name": repository, "actions": ["pull"]}], "reader"
    )
    refused = post(service.base, wheel, {"Authorization": f"Bearer {pull_only}"})
    assert refused.status_code in (401, 403), refused.text
    assert pull_only not in refused.text
    assert service.files("up-bearer") == []
    token_server.clear()
    pusher = token_server.issue(
        [{"type": "repository", "name": repository, "actions": ["pull", "push"]}], "ci"
    )
    accepted = post(service.base, wheel, {"Authorization": f"Bearer {pusher}"})
    assert accepted.status_code == 200, accepted.text
    assert service.files("up-bearer") == [wheel.name]
    # The token went to the registry as it was: the token service was never asked.
    assert token_server.requests == []


# --- what is refused ------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["htpasswd_registry"], indirect=True)
def test_bad_uploads_are_refused_with_one_line_and_publish_nothing(
    service: Service, tmp_path: Path
) -> None:
    user, password = service.registry.username, service.registry.password
    assert user is not None and password is not None
    auth = basic(user, password)
    wheel = make_wheel(tmp_path, "up-bad", "1.0", module_code="x = 1\n" * 500)
    broken = tmp_path / "broken" / wheel.name
    broken.parent.mkdir()
    data = bytearray(wheel.read_bytes())
    data[80:120] = b"\x00" * 40
    broken.write_bytes(bytes(data))
    cases = [
        (post(service.base, wheel, auth, sha256_digest="0" * 64), "upload was damaged"),
        (post(service.base, wheel, auth, name="other-name"), "form names project"),
        (post(service.base, wheel, auth, version="2.0"), "form says version"),
        (post(service.base, wheel, auth, filetype="sdist"), "filetype"),
        (post(service.base, wheel, auth, **{":action": "submit"}), ":action=file_upload"),
        (post(service.base, broken, auth), "not a readable wheel"),
        (
            requests.post(service.base, data={"name": "x"}, headers=auth, timeout=30),
            "multipart/form-data",
        ),
    ]
    for response, message in cases:
        assert response.status_code == 400, response.text
        assert message in response.text
        assert response.text.count("\n") == 1
    assert service.files("up-bad") == []


@pytest.mark.parametrize("service", [f"htpasswd_registry:{1 << 20}"], indirect=True)
def test_uploads_over_the_cap_are_413(service: Service, tmp_path: Path) -> None:
    user, password = service.registry.username, service.registry.password
    assert user is not None and password is not None
    big = make_wheel(tmp_path, "up-big", "1.0", extra_files={"up_big/blob": os.urandom(3 << 20)})
    by_twine = twine(service.base, user, password, big)
    assert by_twine.returncode != 0
    assert "413" in by_twine.stdout + by_twine.stderr
    by_uv = uv_publish(service.base, user, password, big)
    assert by_uv.returncode != 0
    assert "413" in by_uv.stderr and "at most 1048576" in by_uv.stderr
    small = make_wheel(tmp_path, "up-small", "1.0")
    assert twine(service.base, user, password, small).returncode == 0
    assert service.files("up-big") == []


# --- what lands -----------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["plain_registry"], indirect=True)
def test_concurrent_uploads_of_one_version_all_land(service: Service, tmp_path: Path) -> None:
    tags = [
        f"cp3{minor}-cp3{minor}-{platform}"
        for minor in (10, 11, 12)
        for platform in ("manylinux_2_17_x86_64", "macosx_11_0_arm64")
    ]
    wheels = [make_wheel(tmp_path, "up-matrix", "1.0", tag=tag) for tag in tags]
    wheels.append(make_sdist(tmp_path, "up-matrix", "1.0"))
    auth = basic("ci", "anything")  # a registry without auth takes any credentials
    with ThreadPoolExecutor(len(wheels)) as pool:
        answers = list(pool.map(lambda dist: post(service.base, dist, auth), wheels))
    assert [answer.status_code for answer in answers] == [200] * len(wheels)
    assert service.files("up-matrix") == sorted(wheel.name for wheel in wheels)


@pytest.mark.parametrize("service", ["plain_registry"], indirect=True)
def test_the_answer_says_where_it_went_and_the_source_is_recorded(
    service: Service, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "up-linked", "1.0")
    auth = basic("ci", "anything")
    urls = ["Homepage, https://example.org", "Source, https://github.com/acme/linked"]
    answer = post(service.base, wheel, auth, project_urls=urls)
    assert answer.status_code == 200
    where = f"{service.target}/up_linked:1.0"
    assert answer.text == f"uploaded: {wheel.name} -> {where}\n"
    again = post(service.base, wheel, auth)
    assert again.text == f"already there (same sha256): {wheel.name} -> {where}\n"
    sdist = make_sdist(tmp_path, "up-linked", "1.0")
    classifier = "setuptools-ghcr :: source :: https://github.com/acme/other"
    assert post(service.base, sdist, auth, classifiers=[classifier]).status_code == 200
    store = service.reader.open("up-linked")
    found = read_version(store, "up-linked", list_versions(store)[0])
    assert found is not None
    sources = {
        entry.filename: read_file_manifest(store, entry).annotations.get(OCI_SOURCE)
        for entry in found.files
    }
    assert sources == {
        wheel.name: "https://github.com/acme/linked",
        sdist.name: "https://github.com/acme/other",
    }


# --- memory ---------------------------------------------------------------------------------


def _peak_rss(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def _big_wheel(folder: Path, size: int) -> Path:
    """A wheel of about ``size`` bytes (stored, incompressible), written without holding it."""
    small = make_wheel(folder, "up-huge", "1.0")
    path = folder / small.name
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as archive,
        archive.open("up_huge/blob.bin", "w", force_zip64=True) as out,
    ):
        chunk = os.urandom(1 << 20)
        for _ in range(size >> 20):
            out.write(chunk)
    return path


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_big_upload_streams_with_flat_memory(
    plain_registry: RunningRegistry, tmp_path: Path
) -> None:
    target = f"{plain_registry.host}/up-memory{os.getpid()}"
    process = subprocess.Popen(
        [BIN / "setuptools-ghcr", "serve", "--repository", target, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=user_environment(HOME=str(tmp_path)),
    )
    try:
        assert process.stderr is not None
        url = process.stderr.readline().rsplit(" ", 1)[1].strip().removesuffix("simple/")
        small = make_wheel(tmp_path, "up-tiny", "1.0")
        assert uv_publish(url, "ci", "x", small).returncode == 0
        time.sleep(0.5)
        after_small = _peak_rss(process.pid)
        huge = _big_wheel(tmp_path, 200 << 20)
        started = time.monotonic()
        result = uv_publish(url, "ci", "x", huge)
        assert result.returncode == 0, result.stderr
        elapsed = time.monotonic() - started
        growth = _peak_rss(process.pid) - after_small
    finally:
        process.terminate()
        process.wait(timeout=15)
    print(f"200 MiB upload: {elapsed:.1f} s, peak RSS grew {growth / (1 << 20):.1f} MiB")
    # The body and the push both stream in chunks of a MiB or so; holding the file would
    # add 200 MiB.
    assert growth < 40 << 20
    reader = StoreFactory(parse_target(target), environ={}, home=tmp_path)
    store = reader.open("up-huge")
    found = read_version(store, "up-huge", list_versions(store)[0])
    assert found is not None
    assert [(e.filename, e.size) for e in found.files] == [(huge.name, huge.stat().st_size)]


# --- under gunicorn -------------------------------------------------------------------------


def test_uploads_under_gunicorn_workers(htpasswd_registry: RunningRegistry, tmp_path: Path) -> None:
    """Several worker processes take a matrix's uploads at once; all land, the cap holds."""
    user, password = htpasswd_registry.username, htpasswd_registry.password
    assert user is not None and password is not None
    namespace = f"gunicorn{os.getpid()}"
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = user_environment(
        SETUPTOOLS_GHCR_REPOSITORY=f"{htpasswd_registry.host}/{namespace}",
        SETUPTOOLS_GHCR_MAX_UPLOAD_SIZE="1M",
        SETUPTOOLS_GHCR_CACHE_DIR=str(tmp_path / "cache"),
        HOME=str(tmp_path),
    )
    command = [
        sys.executable, "-m", "gunicorn", "--workers", "3", "--bind", f"127.0.0.1:{port}",
        "--timeout", "60", "setuptools_ghcr.wsgi:application",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(base + "health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            pytest.fail(f"gunicorn did not answer: {log.read_text()[-3000:]}", pytrace=False)
        tags = [f"cp31{minor}-cp31{minor}-manylinux_2_17_x86_64" for minor in range(6)]
        wheels = [make_wheel(tmp_path, "up-gunicorn", "1.0", tag=tag) for tag in tags]
        with ThreadPoolExecutor(len(wheels)) as pool:
            answers = list(pool.map(lambda w: post(base, w, basic(user, password)), wheels))
        assert [a.status_code for a in answers] == [200] * len(wheels), [a.text for a in answers]
        big = make_wheel(
            tmp_path, "up-gunicorn-big", "1.0", extra_files={"x/blob": os.urandom(3 << 20)}
        )
        refused = uv_publish(base, user, password, big)
        assert refused.returncode != 0 and "413" in refused.stderr, refused.stderr
        by_twine = twine(
            base + "legacy/", user, password, make_sdist(tmp_path, "up-gunicorn", "1.0")
        )
        assert by_twine.returncode == 0, by_twine.stdout + by_twine.stderr
    finally:
        process.terminate()
        process.wait(timeout=30)
    target = parse_target(f"{htpasswd_registry.host}/{namespace}")
    with StoreFactory(target, username=user, password=password, environ={}, home=tmp_path) as f:
        assert published_files(f, "up-gunicorn") == sorted(
            [w.name for w in wheels] + ["up_gunicorn-1.0.tar.gz"]
        )
        assert published_files(f, "up-gunicorn-big") == []
