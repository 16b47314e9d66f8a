"""The PEP 517 backend as users meet it: pip builds, conflicts, and what the backend says."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.cli import copy_example, run_process, user_environment

from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.storage.factory import StoreFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def _pip_wheel(project: Path, out: Path, *extra: str, **env: str) -> None:
    done = run_process(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-build-isolation",
            "--no-deps",
            "--no-index",
            "-w",
            str(out),
            *extra,
            str(project),
        ],
        project.parent,
        user_environment(**env),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_upload_variable_never_publishes_from_a_pip_build(
    project: Path, tmp_path: Path
) -> None:
    # A job that exports SETUPTOOLS_GHCR_UPLOAD=1 and then installs the project with pip.
    _pip_wheel(project, tmp_path / "wheels", SETUPTOOLS_GHCR_UPLOAD="1")
    assert list((tmp_path / "wheels").glob("hello_ghcr-1.0.0-*.whl"))
    assert not (project / "dist-oci").exists(), "pip's build published"
    # Asked explicitly through pip, the backend publishes.
    _pip_wheel(project, tmp_path / "again", "--config-settings", "ghcr-upload=true")
    store = StoreFactory(parse_target(f"oci:{project / 'dist-oci'}"), environ={})
    assert store.open("hello-ghcr").list_tags() == ["1.0.0", "latest"]


def test_a_conflict_names_the_backend_setting_and_the_target_is_named(
    project: Path, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "build", "--no-isolation", "--wheel", "-C", "ghcr-upload=true"]
    first = run_process(command, project, user_environment())
    assert first.returncode == 0, first.stdout + first.stderr
    # The target came from [tool.setuptools-ghcr]: the backend says which it is.
    assert (
        f"setuptools-ghcr: using oci:{project / 'dist-oci'} (from [tool.setuptools-ghcr] "
        f"repository in {project / 'pyproject.toml'})"
    ) in first.stderr
    source = project / "src" / "hello_ghcr" / "__init__.py"
    source.write_text(source.read_text() + "\n# rebuilt with other contents\n")
    second = run_process(command, project, user_environment())
    assert second.returncode != 0
    output = second.stdout + second.stderr
    assert "already published with other contents" in output
    assert "-C ghcr-skip-existing=true" in output
    assert "--skip-existing" not in output.replace("-C ghcr-skip-existing", "")
    skipping = run_process([*command, "-C", "ghcr-skip-existing=true"], project, user_environment())
    assert skipping.returncode == 0, skipping.stdout + skipping.stderr
    assert "skipped (published with other contents)" in skipping.stdout
