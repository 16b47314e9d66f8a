"""Pass-through routes: one index URL for a team, each caller reading with its own credentials.

The registry is a token registry with a team's rules (``team_registry``): ``team/public``
is readable by anyone, ``team/private`` by every user but not anonymously, ``team/alice``
and ``team/bob`` by that user only. A local PEP 503 index stands in for PyPI as the
fallback; it also offers same-named "attacker" versions of the team's private projects.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import pytest
from support.registry_harness import RunningRegistry
from support.wheels import make_wheel

from setuptools_ghcr.core.dists import Distribution, read_distribution
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.serve.app import IndexApp, make_app
from setuptools_ghcr.serve.hosts import HostPolicy
from setuptools_ghcr.serve.server import IndexServer, make_server
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.usecases.publish import PushOptions, publish

pytestmark = pytest.mark.integration

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
CREATED = "2026-01-02T03:04:05Z"


class Fallback:
    """A tiny PEP 503 index over a folder (``simple/<project>/<files>``), like PyPI here."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = partial(_QuietFiles, directory=str(root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple/"

    def add(self, dist: Distribution) -> None:
        folder = self.root / "simple" / dist.project
        folder.mkdir(parents=True, exist_ok=True)
        (folder / dist.filename).write_bytes(dist.path.read_bytes())

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Team:
    registry: RunningRegistry
    server: IndexServer
    app: IndexApp
    fallback: Fallback
    dists: dict[str, Distribution]

    @property
    def root(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def index(self, area: str, auth: str = "") -> str:
        """The shared index URL of ``team/<area>``, with ``user:password@`` when given."""
        root = self.root.replace("http://", f"http://{auth}@") if auth else self.root
        return f"{root}{self.registry.host}/team/{area}/simple/"

    def login(self, user: str) -> str:
        return f"{user}:{self.registry.users[user]}"


def _publish(registry: RunningRegistry, area: str, dists: list[Distribution], home: Path) -> None:
    factory = StoreFactory(
        parse_target(f"{registry.host}/team/{area}"),
        username="tester",
        password=registry.password,
        environ={},
        home=home,
    )
    with factory:
        publish(factory.open, dists, PushOptions(created=CREATED))


@pytest.fixture(scope="module")
def team(
    team_registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Team]:
    work = tmp_path_factory.mktemp("team")
    build = work / "dist"
    build.mkdir()

    def wheel(name: str, version: str, **kwargs: object) -> Distribution:
        return read_distribution(make_wheel(build, name, version, **kwargs))  # type: ignore[arg-type]

    dists = {
        "alice-tool": wheel("alice-tool", "1.0", module_code="WHO = 'alice'\n"),
        "bob-tool": wheel("bob-tool", "1.0", module_code="WHO = 'bob'\n"),
        "acme-lib": wheel(
            "acme-lib",
            "1.0",
            requires_dist=["fallback-dep>=1"],
            module_code="from fallback_dep import WORD\nVALUE = 'acme ' + WORD\n",
        ),
        "pub-lib": wheel("pub-lib", "1.0", module_code="VALUE = 'public'\n"),
    }
    for area, name in (
        ("alice", "alice-tool"),
        ("bob", "bob-tool"),
        ("private", "acme-lib"),
        ("public", "pub-lib"),
    ):
        _publish(team_registry, area, [dists[name]], work)
    fallback = Fallback(work / "fallback")
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    fallback.add(
        read_distribution(
            make_wheel(elsewhere, "fallback-dep", "1.0", module_code="WORD = 'from the fallback'\n")
        )
    )
    # Same names as the team's private projects, higher versions: never to be installed.
    for name in ("alice-tool", "acme-lib"):
        fallback.add(
            read_distribution(make_wheel(elsewhere, name, "99.0", module_code="WHO = 'attacker'\n"))
        )
    app = make_app(
        None,
        registries=[team_registry.host],
        fallback_index=fallback.url,
        cache_dir=work / "cache",
    )
    server = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Team(team_registry, server, app, fallback, dists)
    finally:
        server.shutdown()
        server.server_close()
        app.close()
        fallback.close()


def _get(
    url: str,
    *,
    user: tuple[str, str] | None = None,
    bearer: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    sent = {"Accept": JSON_TYPE, **(headers or {})}
    if user is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(":".join(user).encode()).decode()
    if bearer is not None:
        sent["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(url, headers=sent)
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=30) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _user(team: Team, name: str) -> tuple[str, str]:
    return name, team.registry.users[name]


def _refused(status: int, headers: dict[str, str], body: bytes, team: Team) -> None:
    assert status == 401, body
    assert headers["www-authenticate"].startswith("Basic ")
    assert body.count(b"\n") == 1
    for secret in team.registry.users.values():
        assert secret.encode() not in body


def test_a_page_is_read_with_the_callers_own_credentials(team: Team) -> None:
    status, _, body = _get(team.index("alice") + "alice-tool/", user=_user(team, "alice"))
    assert status == 200, body
    page = json.loads(body)
    (item,) = page["files"]
    assert item["filename"] == team.dists["alice-tool"].filename
    file_url = urljoin(team.index("alice") + "alice-tool/", item["url"])
    status, _, data = _get(file_url, user=_user(team, "alice"))
    assert status == 200
    assert data == team.dists["alice-tool"].path.read_bytes()
    status, _, metadata = _get(file_url + ".metadata", user=_user(team, "alice"))
    assert status == 200 and b"Name: alice-tool" in metadata


def test_a_page_warmed_by_one_user_is_refused_to_anonymous_and_to_the_other_user(
    team: Team,
) -> None:
    page_url = team.index("alice") + "alice-tool/"
    status, _, body = _get(page_url, user=_user(team, "alice"))
    assert status == 200
    (item,) = json.loads(body)["files"]
    file_url = urljoin(page_url, item["url"])
    # The page and its file are warm now; neither is handed to anyone else.
    for caller in ({}, {"user": _user(team, "bob")}, {"user": ("alice", "wrong-password")}):
        _refused(*_get(page_url, **caller), team)  # type: ignore[arg-type]
        _refused(*_get(file_url, **caller), team)  # type: ignore[arg-type]
        _refused(*_get(file_url + ".metadata", **caller), team)  # type: ignore[arg-type]
    # ...while bob reads his own, which alice may not.
    assert _get(team.index("bob") + "bob-tool/", user=_user(team, "bob"))[0] == 200
    _refused(*_get(team.index("bob") + "bob-tool/", user=_user(team, "alice")), team)


def test_a_private_namespace_is_read_by_users_only(team: Team) -> None:
    page_url = team.index("private") + "acme-lib/"
    _refused(*_get(page_url), team)
    assert _get(page_url, user=_user(team, "alice"))[0] == 200
    assert _get(page_url, user=_user(team, "bob"))[0] == 200
    _refused(*_get(page_url), team)


def test_anonymous_callers_read_public_namespaces(team: Team) -> None:
    status, _, body = _get(team.index("public") + "pub-lib/")
    assert status == 200
    assert json.loads(body)["versions"] == ["1.0"]


def test_a_bearer_token_is_presented_to_the_registry(team: Team) -> None:
    server = team.registry.token_server
    assert server is not None
    repository = "team/alice/alice_tool"
    token = server.issue([{"type": "repository", "name": repository, "actions": ["pull"]}], "ci")
    page_url = team.index("alice") + "alice-tool/"
    status, _, body = _get(page_url, bearer=token)
    assert status == 200, body
    (item,) = json.loads(body)["files"]
    status, _, data = _get(urljoin(page_url, item["url"]), bearer=token)
    assert data == team.dists["alice-tool"].path.read_bytes()
    useless = server.issue([], "ci")
    _refused(*_get(page_url, bearer=useless), team)


def test_unusable_credentials_are_no_credentials(team: Team) -> None:
    # A blank password: read as an anonymous caller, refused a private namespace (never read
    # with anything the server has).
    page_url = team.index("private") + "acme-lib/"
    _refused(*_get(page_url, user=(team.registry.users["bob"], "")), team)
    assert _get(team.index("public") + "pub-lib/", user=("bob", ""))[0] == 200


def test_an_unlisted_registry_is_refused_without_a_connection(team: Team) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        port = listener.getsockname()[1]
        status, _, body = _get(f"{team.root}127.0.0.1:{port}/team/simple/anything/")
        assert status == 404
        assert b"does not serve the registry" in body
        readable, _, _ = select.select([listener], [], [], 0.5)
        assert readable == [], "the service connected to a registry nobody listed"
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost", 200),
        ("127.0.0.1", 200),
        ("attacker.example", 421),  # a page that rebound its DNS name to 127.0.0.1
        ("attacker.example:8000", 421),
        ("pkgs.example.com", 200),  # allowed by the operator
        ("pkgs.example.com:443", 200),
        ("other.example.com", 421),
    ],
)
def test_only_the_hosts_it_serves_get_answers(team: Team, host: str, status: int) -> None:
    team.app.hosts = HostPolicy.parse(["pkgs.example.com"]).with_address("127.0.0.1")
    answer, headers, body = _get(team.index("public") + "pub-lib/", headers={"Host": host})
    assert answer == status, body
    assert headers["x-content-type-options"] == "nosniff"
    # Whatever the Host, health checks from a load balancer are answered.
    assert _get(team.root + "health", headers={"Host": host})[0] == 200


def test_redirects_are_relative(team: Team) -> None:
    status, headers, _ = _get(team.index("public") + "Pub_Lib/", headers={"Host": "localhost"})
    assert status == 301
    assert headers["location"] == f"/{team.registry.host}/team/public/simple/pub-lib/"


def test_a_name_the_target_does_not_hold_redirects_to_the_fallback(team: Team) -> None:
    status, headers, _ = _get(team.index("alice") + "fallback-dep/", user=_user(team, "alice"))
    assert status == 302
    assert headers["location"] == team.fallback.url + "fallback-dep/"


def test_a_held_name_never_goes_to_the_fallback_even_for_callers_refused(team: Team) -> None:
    # bob may not read alice-tool; the fallback offers an alice-tool 99.0.
    _refused(*_get(team.index("alice") + "alice-tool/", user=_user(team, "bob")), team)
    # Anonymous callers are refused both a private project and a missing name alike (as
    # ghcr.io refuses them): neither is handed to the fallback.
    _refused(*_get(team.index("private") + "acme-lib/"), team)
    _refused(*_get(team.index("private") + "no-such-project/"), team)


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def _run_python(python: Path, code: str) -> str:
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _uv() -> str:
    found = Path(sys.executable).parent / "uv"
    assert found.exists(), "uv (a test extra) is not installed"
    return str(found)


def _pip_install(python: Path, index: str, *requirements: str) -> subprocess.CompletedProcess[str]:
    # Only the index under test: no pip.conf, no find-links, no extra index of this machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "--index-url",
            index,
            *requirements,
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_pip_installs_with_credentials_in_the_url_and_follows_the_fallback(
    team: Team, tmp_path: Path
) -> None:
    python = _venv(tmp_path / "venv")
    index = team.index("private", team.login("alice"))
    result = _pip_install(python, index, "acme-lib")
    assert result.returncode == 0, result.stderr
    # acme-lib from the team's registry, its dependency through the fallback redirect.
    assert _run_python(python, "import acme_lib; print(acme_lib.VALUE)") == "acme from the fallback"
    assert team.registry.users["alice"] not in result.stdout + result.stderr


def test_pip_never_installs_a_held_name_from_the_fallback(team: Team, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    result = _pip_install(python, team.index("alice", team.login("bob")), "alice-tool")
    assert result.returncode != 0
    check = subprocess.run(
        [str(python), "-c", "import alice_tool"], capture_output=True, check=False
    )
    assert check.returncode != 0, "the fallback's alice-tool 99.0 was installed"


def _uv_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("UV_") and key not in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
    }
    env.update(
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        **extra,
    )
    return env


def test_uv_installs_with_index_credentials_from_the_environment(
    team: Team, tmp_path: Path
) -> None:
    python = _venv(tmp_path / "venv")
    env = _uv_env(
        tmp_path,
        UV_INDEX_TEAM_USERNAME="alice",
        UV_INDEX_TEAM_PASSWORD=team.registry.users["alice"],
    )
    result = subprocess.run(
        [
            _uv(),
            "pip",
            "install",
            "--python",
            str(python),
            "--index",
            f"team={team.index('private')}",
            # Never the real PyPI: the stand-in is the default index.
            "--default-index",
            team.fallback.url,
            "--index-strategy",
            "first-index",
            "acme-lib",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert _run_python(python, "import acme_lib; print(acme_lib.VALUE)") == "acme from the fallback"


def _uv_lock(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The project's own [tool.uv] settings are the point here: configuration is read,
    # but only the project's (no user or system uv.toml: XDG_CONFIG_HOME is a fresh folder).
    env = {k: v for k, v in env.items() if k != "UV_NO_CONFIG"}
    env["XDG_CONFIG_HOME"] = str(project / "xdg")
    return subprocess.run(
        [_uv(), "lock", "--directory", str(project)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_uv_lock_against_the_shared_url(team: Team, tmp_path: Path) -> None:
    project = tmp_path / "app"
    project.mkdir()
    index = team.index("private")
    # The recipe of docs/serving.md: the team's names pinned to the shared index, which
    # is "explicit" (asked for nothing else); everything else from the default index.
    (project / "pyproject.toml").write_text(
        "[project]\n"
        'name = "team-app"\nversion = "0.1"\nrequires-python = ">=3.8"\n'
        'dependencies = ["acme-lib"]\n\n'
        "[[tool.uv.index]]\n"
        f'name = "team"\nurl = "{index}"\nexplicit = true\n\n'
        "[[tool.uv.index]]\n"
        f'name = "public"\nurl = "{team.fallback.url}"\ndefault = true\n\n'
        "[tool.uv.sources]\n"
        'acme-lib = { index = "team" }\n'
    )
    env = _uv_env(
        tmp_path,
        UV_INDEX_TEAM_USERNAME="bob",
        UV_INDEX_TEAM_PASSWORD=team.registry.users["bob"],
    )
    result = _uv_lock(project, env)
    assert result.returncode == 0, result.stderr
    lock = (project / "uv.lock").read_text()
    # The shared URL, without anyone's credentials, is what the lock file records; the
    # team's name comes from it (1.0), never from the public index's 99.0.
    assert f'name = "acme-lib"\nversion = "1.0"\nsource = {{ registry = "{index}" }}' in lock
    assert 'name = "fallback-dep"' in lock
    assert team.registry.users["bob"] not in lock
    assert "99.0" not in lock


def test_uv_lock_with_the_service_as_the_only_index(team: Team, tmp_path: Path) -> None:
    project = tmp_path / "app"
    project.mkdir()
    index = team.index("private")
    (project / "pyproject.toml").write_text(
        "[project]\n"
        'name = "team-app"\nversion = "0.1"\nrequires-python = ">=3.8"\n'
        'dependencies = ["acme-lib"]\n\n'
        "[[tool.uv.index]]\n"
        f'name = "team"\nurl = "{index}"\ndefault = true\n'
    )
    env = _uv_env(
        tmp_path,
        UV_INDEX_TEAM_USERNAME="alice",
        UV_INDEX_TEAM_PASSWORD=team.registry.users["alice"],
    )
    result = _uv_lock(project, env)
    assert result.returncode == 0, result.stderr
    lock = (project / "uv.lock").read_text()
    assert f'name = "acme-lib"\nversion = "1.0"\nsource = {{ registry = "{index}" }}' in lock
    # fallback-dep came through the fallback redirect.
    assert 'name = "fallback-dep"' in lock
    assert team.registry.users["alice"] not in lock


def test_a_namespace_lists_its_projects_where_the_registry_can(
    plain_registry: RunningRegistry, tmp_path: Path
) -> None:
    namespace = f"listing{os.getpid()}"
    factory = StoreFactory(
        parse_target(f"{plain_registry.host}/{namespace}"), environ={}, home=tmp_path
    )
    with factory:
        wheel = read_distribution(make_wheel(tmp_path, "listed-pkg", "1.0"))
        publish(factory.open, [wheel], PushOptions(created=CREATED))
    app = make_app(None, registries=[plain_registry.host])
    server = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, port = server.server_address[:2]
        url = f"http://{host}:{port}/{plain_registry.host}/{namespace}/simple/"
        status, _, body = _get(url)
        assert status == 200
        assert json.loads(body)["projects"] == [{"name": "listed-pkg"}]
        status, _, body = _get(url + "listed-pkg/")
        assert [item["filename"] for item in json.loads(body)["files"]] == [wheel.filename]
        document = json.loads(
            _get(f"http://{host}:{port}/{plain_registry.host}/{namespace}/pypi/listed-pkg/json")[2]
        )
        assert document["info"]["version"] == "1.0"
        assert document["urls"][0]["url"].startswith(
            f"http://{host}:{port}/{plain_registry.host}/{namespace}/files/"
        )
    finally:
        server.shutdown()
        server.server_close()
        app.close()


def test_the_fixed_target_reads_with_the_callers_credentials_when_given(
    team: Team, tmp_path: Path
) -> None:
    # The server itself has no credentials: anonymous callers get what it can read (nothing
    # here), callers with credentials what theirs can read.
    factory = StoreFactory(
        parse_target(f"{team.registry.host}/team/alice"), environ={}, home=tmp_path
    )
    app = make_app(factory)
    server = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, port = server.server_address[:2]
        page_url = f"http://{host}:{port}/simple/alice-tool/"
        _refused(*_get(page_url), team)
        status, _, body = _get(page_url, user=_user(team, "alice"))
        assert status == 200
        assert json.loads(body)["versions"] == ["1.0"]
        _refused(*_get(page_url, user=_user(team, "bob")), team)
        _refused(*_get(page_url), team)
    finally:
        server.shutdown()
        server.server_close()
        app.close()
        factory.close()
