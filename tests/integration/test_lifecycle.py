"""A package's whole life: yank, delete, prune, on an ``oci:`` folder, a docker-registry and
the ghcr.io emulator with GitHub's REST API double, through the command line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from packaging.version import Version
from support.cli import Cli, Result
from support.ghcr_emulator import GhcrRegistry
from support.github_api import LAST_VERSION, POPULAR_VERSION, GitHubApi
from support.http import get, serving
from support.registry_harness import RegistryStartError, RunningRegistry, start_registry
from support.stores import publish_files
from support.wheels import make_wheel

from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.core.wire_format import YANKED, YANKED_REASON, file_entries
from setuptools_ghcr.serve.app import make_app
from setuptools_ghcr.serve.pages import SIMPLE_JSON, project_page, render_project
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.versions import read_index, read_version

pytestmark = pytest.mark.integration

CREATED = "2026-03-01T00:00:00Z"


@dataclass
class Place:
    """Where a test's packages live, and how the command line reaches them."""

    kind: str
    target: str
    cli: Cli
    username: str | None = None
    password: str | None = None
    registry: RunningRegistry | None = None
    api: GitHubApi | None = None
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str) -> Result:
        options = ["-r", self.target]
        if self.username and self.password:
            options += ["-u", self.username, "-p", self.password]
        return self.cli.run(args[0], *options, *args[1:], env=self.env)

    def stores(self) -> StoreFactory:
        return StoreFactory(
            parse_target(self.target), username=self.username, password=self.password, environ={}
        )

    def publish(self, tmp_path: Path, version: str, **options: object) -> Path:
        folder = tmp_path / "dist" / version
        folder.mkdir(parents=True, exist_ok=True)
        wheel = make_wheel(folder, "life-demo", version)
        with self.stores() as stores:
            publish_files(stores, wheel, created=options.pop("created", CREATED), **options)
        return wheel

    def store(self, stores: StoreFactory) -> Store:
        return stores.open("life-demo")


def _cli(tmp_path: Path) -> Cli:
    runner = Cli(home=tmp_path / "home", cwd=tmp_path / "work", cache=tmp_path / "cache")
    for folder in (runner.home, runner.cwd):
        folder.mkdir()
    return runner


@pytest.fixture(params=["layout", "plain", "ghcr"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    name = f"life{uuid.uuid4().hex[:8]}"
    if request.param == "layout":
        return Place("layout", f"oci:{tmp_path / 'packages'}", _cli(tmp_path))
    if request.param == "plain":
        registry: RunningRegistry = request.getfixturevalue("plain_registry")
        return Place("plain", f"{registry.host}/{name}", _cli(tmp_path), registry=registry)
    ghcr: GhcrRegistry = request.getfixturevalue("ghcr_registry")
    api: GitHubApi = request.getfixturevalue("github_api")
    return Place(
        "ghcr",
        f"{ghcr.host}/{name}/tools",
        _cli(tmp_path),
        username="anyone",
        password=ghcr.password,
        registry=ghcr,
        api=api,
        env={"GITHUB_API_URL": api.url},
    )


def _ok(result: Result) -> str:
    assert result.returncode == 0, str(result)
    return result.stdout


def _refused(result: Result, *fragments: str) -> str:
    assert result.returncode == 1, str(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), str(result)
    for fragment in fragments:
        assert fragment in lines[0], str(result)
    return lines[0]


# -- yank ------------------------------------------------------------------------------------


def test_yank_leaves_the_files_and_hides_the_version_unless_pinned(
    place: Place, tmp_path: Path
) -> None:
    place.publish(tmp_path, "1.0")
    newest = place.publish(tmp_path, "2.0", extra_tags=("latest",))
    with place.stores() as stores:
        before = read_index(place.store(stores), "2.0")
    assert before is not None

    said = _ok(place.run("yank", "life-demo==2.0", "--reason", "broken on Windows"))
    assert said.startswith("yanked: life-demo 2.0 -> ")
    assert said.rstrip().endswith("(broken on Windows); also moved latest")
    with place.stores() as stores:
        store = place.store(stores)
        after = read_index(store, "2.0")
        assert after is not None
        assert after.manifests == before.manifests, "file manifests and digests stay"
        assert after.annotations[YANKED] == "true"
        assert after.annotations[YANKED_REASON] == "broken on Windows"
        latest = store.get_manifest("latest")
        assert latest is not None and latest.digest == after.digest
        listed = {}
        for version in (Version("1.0"), Version("2.0")):
            published = read_version(store, "life-demo", version)
            assert published is not None
            listed[version] = published.files
    page = json.loads(render_project(project_page("life-demo", listed), SIMPLE_JSON))
    files = {item["filename"]: item["yanked"] for item in page["files"]}
    assert files[newest.name] == "broken on Windows"
    assert [v for k, v in files.items() if k != newest.name] == [False]
    # And the index service says so to pip and uv.
    with place.stores() as stores, serving(make_app(stores)) as server:
        status, _headers, body = get(f"{server.url}life-demo/", SIMPLE_JSON)
        assert status == 200
        served = {item["filename"]: item["yanked"] for item in json.loads(body)["files"]}
        assert served == files
        _status, _headers, html = get(f"{server.url}life-demo/", "text/html")
        assert b'data-yanked="broken on Windows"' in html
        root = server.url.removesuffix("simple/")
        _status, _headers, release = get(f"{root}pypi/life-demo/2.0/json")
        document = json.loads(release)
        assert document["info"]["yanked"] is True
        assert document["info"]["yanked_reason"] == "broken on Windows"
        assert [f["yanked"] for f in document["urls"]] == [True]

    out = tmp_path / "out"
    assert (
        _ok(place.run("download", "-d", str(out), "life-demo"))
        .strip()
        .endswith("life_demo-1.0-py3-none-any.whl")
    )
    pinned = place.run("download", "-d", str(out), "life-demo==2.0")
    assert _ok(pinned).strip().endswith(newest.name)
    assert "life-demo 2.0 is yanked: broken on Windows; using it as pinned" in pinned.stderr
    _refused(
        place.run("download", "-d", str(out), "life-demo>1.5"),
        "is yanked (2.0); pin one with == to use it",
    )
    inspected = _ok(place.run("inspect", "life-demo"))
    assert "2.0 (yanked)" in inspected
    assert "life-demo 2.0 is yanked: broken on Windows" in inspected
    report = json.loads(_ok(place.run("inspect", "--json", "life-demo==2.0")))
    assert report["versions"][0]["yanked"] is True
    assert report["versions"][0]["yanked_reason"] == "broken on Windows"

    assert _ok(place.run("yank", "life-demo==2.0")).startswith("yanked: ")  # reason dropped
    assert _ok(place.run("yank", "life-demo==2.0")).startswith("already yanked: ")
    assert _ok(place.run("yank", "--undo", "life-demo==2.0")).startswith("yank undone: ")
    assert _ok(place.run("yank", "--undo", "life-demo==2.0")).startswith("not yanked: ")
    with place.stores() as stores:
        undone = read_index(place.store(stores), "2.0")
    assert undone is not None and undone.raw == before.raw
    again = _ok(place.run("download", "-d", str(tmp_path / "again"), "life-demo"))
    assert again.strip().endswith(newest.name)


def test_yank_wants_one_version_that_exists(place: Place, tmp_path: Path) -> None:
    place.publish(tmp_path, "1.0")
    _refused(place.run("yank", "life-demo>=1"), "name one version, as PROJECT==VERSION")
    _refused(place.run("yank", "life-demo==3.0"), "life-demo 3.0 is not in")
    usage = place.run("yank", "--undo", "--reason", "x", "life-demo==1.0")
    assert usage.returncode == 2


# -- delete ----------------------------------------------------------------------------------


def test_delete_removes_the_version_and_only_it(place: Place, tmp_path: Path) -> None:
    kept = place.publish(tmp_path, "1.0")
    place.publish(tmp_path, "2.0", extra_tags=("latest",))
    with place.stores() as stores:
        store = place.store(stores)
        doomed = read_index(store, "2.0")
        assert doomed is not None
        children = [entry.digest for entry in doomed.manifests]
        layers = [e.sha256 for e in file_entries(doomed, "life-demo", Version("2.0"))]

    said = _ok(place.run("delete", "life-demo==2.0"))
    assert said.startswith("deleted: life-demo 2.0 -> ")
    assert said.rstrip().endswith("(and latest)")
    with place.stores() as stores:
        store = place.store(stores)
        assert store.list_tags() == ["1.0"]
        assert store.get_manifest(str(doomed.digest)) is None
        assert all(store.get_manifest(str(child)) is None for child in children)
        if place.kind == "layout":
            # A layout collects its own garbage: the version's blobs are gone, 1.0's stay.
            assert all(layer is not None and not store.blob_exists(layer) for layer in layers)
    out = tmp_path / "out"
    assert _ok(place.run("download", "-d", str(out), "life-demo")).strip().endswith(kept.name)
    _refused(place.run("delete", "life-demo==2.0"), "life-demo 2.0 is not in")


def test_a_registry_that_refuses_deletion_says_so(tmp_path: Path) -> None:
    try:
        registry = start_registry("plain", tmp_path / "registry", deletes=False)
    except RegistryStartError as error:
        pytest.fail(f"cannot start a registry: {error}", pytrace=False)
    try:
        place = Place("plain", f"{registry.host}/keep", _cli(tmp_path), registry=registry)
        place.publish(tmp_path, "1.0")
        _refused(place.run("delete", "life-demo==1.0"), "answered 405")
        with place.stores() as stores:
            assert place.store(stores).list_tags() == ["1.0"]
    finally:
        registry.close()


def test_other_registries_never_reach_githubs_api(
    plain_registry: RunningRegistry, github_api: GitHubApi, tmp_path: Path
) -> None:
    place = Place(
        "plain",
        f"{plain_registry.host}/nogithub",
        _cli(tmp_path),
        registry=plain_registry,
        env={"GITHUB_API_URL": github_api.url},
    )
    place.publish(tmp_path, "1.0")
    place.publish(tmp_path, "2.0")
    _ok(place.run("delete", "life-demo==1.0"))
    assert github_api.requests == []


# -- ghcr.io: GitHub's REST API --------------------------------------------------------------


@pytest.fixture
def ghcr_place(ghcr_registry: GhcrRegistry, github_api: GitHubApi, tmp_path: Path) -> Place:
    return Place(
        "ghcr",
        f"{ghcr_registry.host}/org{uuid.uuid4().hex[:8]}/tools",
        _cli(tmp_path),
        username="anyone",
        password=ghcr_registry.password,
        registry=ghcr_registry,
        api=github_api,
        env={"GITHUB_API_URL": github_api.url},
    )


def test_ghcr_deletes_through_githubs_api_with_the_registry_token(
    ghcr_place: Place, tmp_path: Path
) -> None:
    assert isinstance(ghcr_place.registry, GhcrRegistry)
    assert ghcr_place.api is not None
    ghcr_place.publish(tmp_path, "1.0")
    ghcr_place.publish(tmp_path, "2.0")
    owner = ghcr_place.target.split("/")[1]
    ghcr_place.api.max_per_page = 1  # every version on a page of its own: pages are followed
    ghcr_place.registry.state.clear()

    _ok(ghcr_place.run("delete", "life-demo==1.0"))
    package = ghcr_place.registry.state.packages[f"{owner}/tools/life_demo"]
    assert sorted(tag for v in package.versions.values() for tag in v.tags) == ["2.0"]
    assert len(package.versions) == 2, "2.0's index and its one file manifest are left"
    seen = [(r.method, r.path.split("?")[0], r.status) for r in ghcr_place.api.requests]
    base = f"/orgs/{owner}/packages/container/tools%2Flife_demo/versions"
    assert seen[0] == ("GET", f"/users/{owner}", 200)
    assert [s for s in seen if s[0] == "GET" and s[1] == base] == [("GET", base, 200)] * 4
    assert [s[0] for s in seen if s[0] == "DELETE"] == ["DELETE", "DELETE"]
    assert all(s[2] == 204 for s in seen if s[0] == "DELETE")
    assert {r.headers["authorization"] for r in ghcr_place.api.requests} == {
        f"Bearer {ghcr_place.password}"
    }
    assert not [s for s in ghcr_place.registry.state.requests if s.method == "DELETE"]


def test_a_users_package_is_deleted_under_users(
    ghcr_registry: GhcrRegistry, github_api: GitHubApi, tmp_path: Path
) -> None:
    folder = uuid.uuid4().hex[:8]
    place = Place(
        "ghcr",
        f"{ghcr_registry.host}/tester/{folder}",
        _cli(tmp_path),
        username="tester",
        password=ghcr_registry.password,
        registry=ghcr_registry,
        api=github_api,
        env={"GITHUB_API_URL": github_api.url},
    )
    place.publish(tmp_path, "1.0")
    place.publish(tmp_path, "2.0")
    _ok(place.run("delete", "life-demo==2.0"))
    paths = {r.path.split("?")[0] for r in github_api.requests}
    assert f"/users/tester/packages/container/{folder}%2Flife_demo/versions" in paths
    assert not [path for path in paths if path.startswith("/orgs/")]


def test_ghcr_refusals_are_reported_not_skipped(ghcr_place: Place, tmp_path: Path) -> None:
    assert isinstance(ghcr_place.registry, GhcrRegistry)
    for version in ("1.0.dev1", "1.0.dev2", "1.0.dev3"):
        ghcr_place.publish(tmp_path, version)
    owner = ghcr_place.target.split("/")[1]
    repository = f"{owner}/tools/life_demo"
    package = ghcr_place.registry.state.packages[repository]
    popular = next(v for v in package.versions.values() if "1.0.dev2" in v.tags)
    popular.downloads = 6000
    ghcr_place.registry.make_public(repository)

    result = ghcr_place.run("prune", "--keep", "0", "life-demo")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("deleted: life-demo 1.0.dev3 -> ")
    assert lines[1].startswith("not deleted: life-demo 1.0.dev2 -> ")
    assert POPULAR_VERSION in lines[1]
    assert lines[2].startswith("deleted: life-demo 1.0.dev1 -> ")
    assert lines[3].startswith("kept: 1 version(s) of life-demo in ")
    _refused(result, "1 of 3 version(s) of life-demo could not be deleted")
    assert sorted(t for v in package.versions.values() for t in v.tags) == ["1.0.dev2"]


def test_the_last_tagged_version_on_ghcr_stays(ghcr_place: Place, tmp_path: Path) -> None:
    ghcr_place.publish(tmp_path, "1.0")
    line = _refused(ghcr_place.run("delete", "life-demo==1.0"), "GitHub answered 400")
    assert LAST_VERSION in line


# -- prune -----------------------------------------------------------------------------------


def _ago(days: float) -> str:
    moment = datetime.now(timezone.utc) - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_prune_keeps_the_newest_and_the_recent(place: Place, tmp_path: Path) -> None:
    place.publish(tmp_path, "1.0", created=_ago(100))
    for number, age in ((1, 60), (2, 50), (3, 40), (4, 5), (5, 1)):
        place.publish(tmp_path, f"1.1.dev{number}", created=_ago(age))
    if place.api is not None:
        place.api.max_per_page = 3

    dry = _ok(place.run("prune", "--keep", "1", "--only-dev", "--dry-run", "life-demo"))
    assert [line.split(" ->")[0] for line in dry.splitlines()[:-1]] == [
        "would delete: life-demo 1.1.dev4",
        "would delete: life-demo 1.1.dev3",
        "would delete: life-demo 1.1.dev2",
        "would delete: life-demo 1.1.dev1",
    ]
    with place.stores() as stores:
        assert len(place.store(stores).list_tags()) == 6

    said = _ok(place.run("prune", "--keep", "1", "--only-dev", "--older-than", "30", "life-demo"))
    assert [line.split(" ->")[0] for line in said.splitlines()[:-1]] == [
        "deleted: life-demo 1.1.dev3",
        "deleted: life-demo 1.1.dev2",
        "deleted: life-demo 1.1.dev1",
    ]
    assert said.splitlines()[-1].startswith("kept: 3 version(s) of life-demo in ")
    with place.stores() as stores:
        assert sorted(place.store(stores).list_tags()) == ["1.0", "1.1.dev4", "1.1.dev5"]


def test_prune_checks_its_options(place: Place) -> None:
    assert place.run("prune", "life-demo").returncode == 2
    assert place.run("prune", "--keep", "-1", "life-demo").returncode == 2
    assert place.run("prune", "--keep", "1", "--older-than", "0", "life-demo").returncode == 2
    _refused(place.run("prune", "--keep", "1", "life-demo"), "not found")


# -- inspect: the plain commands that fetch and check each file --------------------------------


def test_inspect_prints_commands_that_fetch_and_check_each_file_without_this_tool(
    place: Place, tmp_path: Path
) -> None:
    wheel = place.publish(tmp_path, "1.0")
    if isinstance(place.registry, GhcrRegistry):
        # What curl sends is the dummy bearer: anyone may read a public package with it.
        place.registry.make_public(place.target.split("/", 1)[1] + "/life_demo")
    text = _ok(place.run("inspect", "life-demo"))
    commands = text.split("# each file without setuptools-ghcr, then its check:\n", 1)[1]
    fetch, check = commands.strip().splitlines()
    expected = "curl -fL" if place.kind != "layout" else "cp "
    assert fetch.startswith(expected)
    assert ("'Authorization: Bearer QQ=='" in fetch) is (place.kind == "ghcr")
    assert check == f"echo '{read_sha256(wheel)}  {wheel.name}' | sha256sum -c"
    folder = tmp_path / "plain"
    folder.mkdir()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f"{fetch}\n{check}"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"{wheel.name}: OK" in done.stdout
    assert (folder / wheel.name).read_bytes() == wheel.read_bytes()
    report = json.loads(_ok(place.run("inspect", "--json", "life-demo")))
    assert report["versions"][0]["files"][0]["fetch"] == fetch


def read_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
