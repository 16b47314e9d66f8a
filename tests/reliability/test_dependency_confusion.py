"""Dependency confusion: a dependency that lives in the target never comes from another index.

``app`` requires ``internal-dep``; the target (a token-auth registry with per-repository
access, as on ghcr.io) holds both, but the caller may read only ``app``. pip's index (a PEP 503
folder here) offers ``internal-dep 99.0``, as an attacker's upload to a public index would.
Whoever runs the install, 99.0 must never be installed: the install fails with one line
naming the dependency and why.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import Cli, Result, assert_refused
from support.registry_harness import SECRET_MARKER, RunningRegistry
from support.wheels import make_wheel

pytestmark = pytest.mark.integration

READER = "ci-reader"
READER_PASSWORD = f"{SECRET_MARKER}reader"


@pytest.fixture
def scene(token_registry: RunningRegistry, tmp_path: Path) -> Iterator[Scene]:
    server = token_registry.token_server
    assert server is not None
    made = Scene(token_registry, f"confusion{secrets.token_hex(4)}", tmp_path)
    try:
        yield made
    finally:
        server.private.discard(made.repository("internal-dep"))


class Scene:
    """A namespace of the token registry, the publisher's files and the attacker's index."""

    def __init__(self, registry: RunningRegistry, namespace: str, root: Path) -> None:
        self.registry = registry
        self.namespace = namespace
        self.dist = root / "dist"
        self.index = root / "public-index"
        self.installed = root / "site"
        self.dist.mkdir()
        # The attacker's package: same name, a version that beats every real one.
        _index_project(self.index, "internal-dep", "99.0")
        _index_project(self.index, "public-dep", "1.0")

    @property
    def target(self) -> str:
        return f"{self.registry.host}/{self.namespace}"

    def repository(self, project: str) -> str:
        return f"{self.namespace}/{project.replace('-', '_')}"

    def publish(self, cli: Cli, *paths: Path) -> None:
        assert self.registry.username is not None and self.registry.password is not None
        result = cli.run(
            "push",
            "--repository",
            self.target,
            "--username",
            self.registry.username,
            "--password",
            self.registry.password,
            *map(str, paths),
        )
        assert result.returncode == 0, str(result)

    def make_private(self, project: str) -> None:
        assert self.registry.token_server is not None
        self.registry.token_server.private.add(self.repository(project))

    def install(self, cli: Cli, *options: str, caller: str = "anonymous") -> Result:
        credentials: list[str] = []
        if caller == "reader":
            assert self.registry.token_server is not None
            self.registry.token_server.add_reader(READER, READER_PASSWORD, {self.repository("app")})
            credentials = ["--username", READER, "--password", READER_PASSWORD]
        pip = ["--target", str(self.installed), "--disable-pip-version-check", "--quiet"]
        return cli.run(
            "install",
            "--repository",
            self.target,
            *credentials,
            *options,
            "app",
            "--",
            *pip,
            env={"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": self.index.as_uri()},
        )

    def attacker_won(self) -> bool:
        return (self.installed / "internal_dep").exists()


def _index_project(index: Path, project: str, version: str) -> None:
    """Add a project with one wheel to a PEP 503 index folder (pip reads it by file: URL)."""
    folder = index / project
    folder.mkdir(parents=True)
    wheel = make_wheel(folder, project, version, module_code="FROM_THE_INDEX = True\n")
    (folder / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')


@pytest.mark.parametrize("caller", ["anonymous", "reader"])
def test_a_dependency_the_publisher_recorded_never_comes_from_another_index(
    scene: Scene, cli: Cli, caller: str
) -> None:
    internal = make_wheel(scene.dist, "internal-dep", "1.0")
    app = make_wheel(scene.dist, "app", "1.0", requires_dist=["internal-dep>=1"])
    scene.publish(cli, internal)
    scene.publish(cli, app)  # a later push: the record comes from what the target lists
    scene.make_private("internal-dep")

    result = scene.install(cli, caller=caller)

    line = assert_refused(result, "internal-dep", "required by app", "refuses")
    assert scene.target in line
    assert not scene.attacker_won()


def test_a_dependency_published_in_the_same_push_is_recorded(scene: Scene, cli: Cli) -> None:
    internal = make_wheel(scene.dist, "internal-dep", "1.0")
    app = make_wheel(scene.dist, "app", "1.0", requires_dist=["internal-dep"])
    scene.publish(cli, app, internal)
    scene.make_private("internal-dep")

    assert_refused(scene.install(cli), "internal-dep", "must come from")
    assert not scene.attacker_won()


@pytest.mark.parametrize("source", ["option", "environment", "config"])
def test_internal_patterns_keep_an_unrecorded_dependency_in_the_target(
    scene: Scene, cli: Cli, source: str
) -> None:
    # app was published before internal-dep existed: nothing was recorded.
    app = make_wheel(scene.dist, "app", "1.0", requires_dist=["internal-dep"])
    scene.publish(cli, app)
    scene.publish(cli, make_wheel(scene.dist, "internal-dep", "1.0"))
    scene.make_private("internal-dep")
    options: list[str] = []
    if source == "option":
        options = ["--internal-project", "Internal_*"]
    elif source == "environment":
        cli.env["SETUPTOOLS_GHCR_INTERNAL_PROJECTS"] = "other, internal-*"
    else:
        (cli.cwd / "pyproject.toml").write_text(
            '[tool.setuptools-ghcr]\ninternal-projects = ["internal-dep"]\n'
        )

    assert_refused(scene.install(cli, *options), "internal-dep", "refuses")
    assert not scene.attacker_won()


def test_dependencies_left_to_pip_are_named_on_stderr(scene: Scene, cli: Cli) -> None:
    # Not recorded, not matched, and refused: the one case left to pip, and it says so.
    app = make_wheel(scene.dist, "app", "1.0", requires_dist=["internal-dep", "public-dep"])
    scene.publish(cli, app)
    scene.publish(cli, make_wheel(scene.dist, "internal-dep", "1.0"))
    scene.make_private("internal-dep")

    result = scene.install(cli)

    assert result.returncode == 0, str(result)
    lines = result.stderr.splitlines()
    assert f"WARNING: left to pip's indexes (not there in {scene.target}): public-dep" in lines
    readable = f"WARNING: left to pip's indexes (not readable there in {scene.target}): "
    assert readable + "internal-dep" in lines, result.stderr


def test_target_only_runs_pip_without_any_index(scene: Scene, cli: Cli) -> None:
    app = make_wheel(scene.dist, "app", "1.0", requires_dist=["public-dep"])
    scene.publish(cli, app)
    # Without --target-only, pip takes public-dep from its index ...
    assert scene.install(cli).returncode == 0
    assert (scene.installed / "public_dep").exists()

    # ... with it, pip is given --no-index, and the dependency the target lacks stops it.
    scene.installed = scene.installed.with_name("site-target-only")
    result = scene.install(cli, "--target-only", "--verbose")

    assert result.returncode != 0, str(result)
    running = [line for line in result.stderr.splitlines() if "-m pip install" in line]
    assert running and "--no-index" in running[0].split(), str(result)
    assert not (scene.installed / "public_dep").exists()
