"""The push use case every face publishes through: files checked, target and options settled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.config import Settings
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.errors import ConfigError, InvalidDistributionError, InvalidReferenceError
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.store import ProgressCallback, ProgressFactory
from setuptools_ghcr.usecases.push import push_files, push_options, version_files
from setuptools_ghcr.usecases.versions import read_index

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/tool",
}


def test_options_come_from_the_flags_then_the_settings_then_the_environment() -> None:
    settings = Settings(tags=("latest", "stable"), annotations={"team": "x"})
    options = push_options(settings, GITHUB, extra_tags=["nightly", "latest"])
    assert options.extra_tags == ("latest", "stable", "nightly")
    assert options.annotations == {"team": "x"}
    assert options.source == "https://github.com/acme/tool"
    assert options.skip_existing is False
    skipping = Settings(skip_existing=True)
    assert push_options(skipping, {}).skip_existing is True
    assert push_options(skipping, {}, skip_existing=False).skip_existing is False
    assert push_options(Settings(source="https://example.org/x"), GITHUB).source == (
        "https://example.org/x"
    )


def _bars(opened: list[str]) -> Iterator[ProgressFactory]:
    opened.append("open")

    def factory(name: str, total: int) -> ProgressCallback:
        opened.append(name)
        return lambda _count: None

    yield factory


def test_push_files_publishes_to_the_settings_target_and_reports(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    sdist = make_sdist(tmp_path, "demo-pkg", "1.0")
    settings = Settings(repository="oci:out", tags=("latest",), base=tmp_path)
    opened: list[str] = []
    report = push_files(
        [wheel, sdist], settings, {}, progress=contextmanager(lambda: _bars(opened))
    )
    assert str(report.target) == str(parse_target(f"oci:{tmp_path / 'out'}"))
    assert [r.status for r in report.results] == ["uploaded", "uploaded"]
    assert opened[0] == "open" and wheel.name in opened and sdist.name in opened
    location = report.results[0].location
    assert report.lines() == [
        f"uploaded: {wheel.name} -> {location}:1.0",
        f"uploaded: {sdist.name} -> {location}:1.0",
    ]
    store = StoreFactory(report.target, environ={}).open("demo-pkg")
    assert read_index(store, "latest") is not None

    again = push_files([wheel], settings, {}, repository=f"oci:{tmp_path / 'out'}")
    assert again.lines() == [f"already there (same sha256): {wheel.name} -> {location}:1.0"]


def test_push_files_checks_everything_before_opening_the_progress(tmp_path: Path) -> None:
    bad = tmp_path / "demo_pkg-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    opened: list[str] = []
    bars = contextmanager(lambda: _bars(opened))
    with pytest.raises(InvalidDistributionError):
        push_files([bad], Settings(repository="oci:out", base=tmp_path), {}, progress=bars)
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    with pytest.raises(InvalidReferenceError, match=r"plain http to 10\.0\.0\.1:5000 is refused"):
        push_files([wheel], Settings(), {}, repository="http://10.0.0.1:5000/x", progress=bars)
    with pytest.raises(ConfigError, match="SETUPTOOLS_GHCR_REPOSITORY"):
        push_files([wheel], Settings(), {"SETUPTOOLS_GHCR_REPOSITORY": "oci:"}, progress=bars)
    assert opened == []
    assert not (tmp_path / "out").exists()


def test_push_files_without_a_target_publishes_to_the_default_and_says_so(
    tmp_path: Path,
) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    said: list[str] = []
    environ = {"XDG_DATA_HOME": str(tmp_path / "data")}
    report = push_files([wheel], Settings(), environ, announce=said.append)
    default = tmp_path / "data" / "setuptools-ghcr" / "packages"
    assert str(report.target) == f"oci:{default}"
    assert said == [f"using oci:{default} (the default target; choose another with --repository)"]
    assert (default / "demo_pkg" / "index.json").is_file()
    # Named on the command line, the target is not announced.
    said.clear()
    push_files([wheel], Settings(), environ, repository=f"oci:{default}", announce=said.append)
    assert said == []


def test_version_files_finds_one_version_of_one_project(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    mine = [make_wheel(dist, "Demo.Pkg", "1.0"), make_sdist(dist, "demo-pkg", "1.0")]
    make_wheel(dist, "demo-pkg", "1.1")
    make_wheel(dist, "other", "1.0")
    (dist / "notes.txt").write_text("not a distribution")
    assert version_files(dist, "demo_pkg", "1.0.0") == sorted(mine)
    assert version_files(tmp_path / "missing", "demo-pkg", "1.0") == []
