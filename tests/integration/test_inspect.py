"""``inspect``: a project's versions, files, sizes, digests and annotations."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import pytest
from support.documents import publish_like_pyoci
from support.registry_harness import RunningRegistry
from support.stores import publish_files
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.cli import main
from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.targets import LayoutTarget, RegistryTarget, parse_target
from setuptools_ghcr.core.wire_format import (
    OCI_VERSION,
    PYOCI_SHA256,
    REQUIRES_PYTHON,
)
from setuptools_ghcr.errors import NotFoundError
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.usecases.inspect import inspect_project, table_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def built(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "built"
    folder.mkdir()
    return [
        make_wheel(folder, "shown-pkg", "1.0", requires_python=">=3.9", summary="Shown."),
        make_sdist(folder, "shown-pkg", "1.0", requires_python=">=3.9"),
        make_wheel(folder, "shown-pkg", "1.1rc1"),
    ]


def test_cli_inspect_json(
    plain_registry: RunningRegistry,
    built: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = f"{plain_registry.host}/ins{secrets.token_hex(4)}"
    parsed = parse_target(target)
    assert isinstance(parsed, RegistryTarget)
    factory = StoreFactory(parsed, environ={})
    publish_files(factory, *built)
    factory.close()

    assert main(["inspect", "-r", target, "--json", "shown-pkg"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["project"] == "shown-pkg"
    assert [v["version"] for v in document["versions"]] == ["1.1rc1", "1.0"]
    assert document["tags"] == ["1.0", "1.1rc1"]
    files = {f["filename"]: f for v in document["versions"] for f in v["files"]}
    assert sorted(files) == sorted(path.name for path in built)
    for path in built:
        file = files[path.name]
        assert file["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert file["size"] == path.stat().st_size
        assert file["manifest_digest"].startswith("sha256:")
        assert file["index_annotations"][PYOCI_SHA256] == file["sha256"]
        assert file["manifest_annotations"][OCI_VERSION] == str(read_distribution(path).version)
        assert file["config_media_type"] == "application/vnd.setuptools-ghcr.core-metadata.v1"
    assert files[built[0].name]["requires_python"] == ">=3.9"
    assert files[built[0].name]["index_annotations"][REQUIRES_PYTHON] == ">=3.9"
    assert document["versions"][1]["annotations"][OCI_VERSION] == "1.0"
    assert document["versions"][1]["index_digest"].startswith("sha256:")

    assert main(["inspect", "-r", target, "--json", "shown-pkg==1.0"]) == 0
    pinned = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in pinned["versions"]] == ["1.0"]


def test_cli_inspect_table_and_errors(
    tmp_path: Path, built: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    factory = StoreFactory(LayoutTarget(tmp_path / "pkgs"), environ={})
    publish_files(factory, *built)
    target = f"oci:{tmp_path / 'pkgs'}"

    assert main(["inspect", "-r", target, "shown-pkg"]) == 0
    output = capsys.readouterr().out
    # The table, then after a blank line each version's annotations.
    table, annotations = output.split("\n\n", 1)
    lines = table.splitlines()
    assert lines[0].split() == ["VERSION", "FILE", "SIZE", "SHA256", "REQUIRES-PYTHON", "UPLOADED"]
    assert len(lines) == 4
    shown = annotations.splitlines()
    assert shown[0] == "1.1rc1 annotations:"
    assert "1.0 annotations:" in shown
    assert "  org.opencontainers.image.version: 1.0" in shown
    # Only the wheel of 1.0 has a summary.
    assert "  org.opencontainers.image.description: (differs by file; see --json)" in shown
    # Last, how to fetch and check each file without this tool: one command and one check.
    commands = shown[shown.index("# each file without setuptools-ghcr, then its check:") + 1 :]
    assert len(commands) == 2 * len(built)
    assert all(line.startswith("cp ") for line in commands[::2])
    assert all(line.endswith("| sha256sum -c") for line in commands[1::2])
    wheel = built[0]
    row = next(line for line in lines if wheel.name in line).split()
    assert row[:5] == [
        "1.0",
        wheel.name,
        str(wheel.stat().st_size),
        hashlib.sha256(wheel.read_bytes()).hexdigest(),
        ">=3.9",
    ]
    # Columns line up: every file name starts at the same offset.
    starts = {line.index("shown") for line in lines[1:]}
    assert len(starts) == 1

    assert main(["inspect", "-r", target, "shown-pkg==9"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no version of shown-pkg" in captured.err
    assert "available: 1.1rc1, 1.0" in captured.err

    assert main(["inspect", "-r", target, "nothing-here"]) == 1
    assert "project nothing-here not found" in capsys.readouterr().err


def test_inspect_pyoci_package_reads_the_manifest(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "old-style", "0.1")
    factory = StoreFactory(LayoutTarget(tmp_path / "pkgs"), environ={})
    store = factory.open("old-style")
    publish_like_pyoci(store, read_distribution(wheel))
    info = inspect_project(store, "old-style")
    assert [str(v.version) for v in info.versions] == ["0.1"]
    (file,) = info.versions[0].files
    assert file.filename == wheel.name
    # The index has no size: it came from the manifest's layer.
    assert file.size == wheel.stat().st_size
    assert file.sha256 is not None
    assert file.sha256.hex == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert file.metadata_digest is None
    assert table_rows(info)[0][:3] == ("0.1", wheel.name, str(wheel.stat().st_size))


def test_inspect_missing_project(tmp_path: Path) -> None:
    factory = StoreFactory(LayoutTarget(tmp_path / "empty"), environ={})
    with pytest.raises(NotFoundError, match="project ghost not found"):
        inspect_project(factory.open("ghost"), "ghost")


def test_cli_inspect_shows_configured_annotations_without_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[tool.setuptools-ghcr]\nrepository = "oci:pkgs"\n'
        '[tool.setuptools-ghcr.annotations]\n"com.example.team" = "platform"\n'
    )
    monkeypatch.chdir(project)
    wheel = make_wheel(tmp_path, "annotated-pkg", "2.0")
    assert main(["push", str(wheel)]) == 0
    capsys.readouterr()
    assert main(["inspect", "annotated-pkg"]) == 0
    captured = capsys.readouterr()
    assert "2.0 annotations:\n  com.example.team: platform\n" in captured.out
    assert captured.err.startswith("using oci:")
