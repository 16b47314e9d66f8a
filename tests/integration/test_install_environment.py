"""``install`` puts packages where the user works, not into the tool's own environment.

The tool environments are made the way pipx and ``uv tool`` leave them (a virtual
environment with their marker file at its root) and see this checkout's package and pip
through a ``.pth`` file; the environments installed into have no pip of their own, as
``uv venv`` makes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from support.stores import publish_files
from support.wheels import make_wheel

from setuptools_ghcr.core.targets import LayoutTarget
from setuptools_ghcr.storage.factory import StoreFactory

pytestmark = pytest.mark.integration


def _environment(folder: Path) -> Path:
    venv.EnvBuilder(with_pip=False).create(folder)
    return folder


def _site_packages(env: Path) -> Path:
    found = list(env.glob("lib/python3*/site-packages")) or list(env.glob("Lib/site-packages"))
    assert found, f"no site-packages in {env}"
    return found[0]


def _python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _tool_environment(folder: Path, marker: str) -> Path:
    env = _environment(folder)
    (env / marker).write_text("{}\n")
    ours = sysconfig.get_paths()["purelib"]
    (_site_packages(env) / "the_tool.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return env


@pytest.fixture
def published(tmp_path: Path) -> str:
    store = tmp_path / "store"
    (tmp_path / "made").mkdir()
    wheel = make_wheel(tmp_path / "made", "placed-pkg", "1.0")
    with StoreFactory(LayoutTarget(store), environ={}) as stores:
        publish_files(stores, wheel)
    return f"oci:{store}"


def _install(tool: Path, target: str, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    clean.update(env)
    return subprocess.run(
        [
            *(str(_python(tool)), "-m", "setuptools_ghcr", "install", "-r", target, *extra),
            *("placed-pkg", "--", "--no-index", "--quiet"),
        ],
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _installed(env: Path) -> bool:
    return (_site_packages(env) / "placed_pkg" / "__init__.py").is_file()


def test_install_from_a_tool_environment_goes_where_the_user_says(
    published: str, tmp_path: Path
) -> None:
    tool = _tool_environment(tmp_path / "tool", "pipx_metadata.json")
    project = _environment(tmp_path / "project")

    refused = _install(tool, published)
    assert refused.returncode == 1, refused.stderr
    assert "runs from the environment" in refused.stderr
    assert "--python" in refused.stderr
    assert not _installed(tool)

    active = _install(tool, published, VIRTUAL_ENV=str(project))
    assert active.returncode == 0, active.stderr
    assert f"installing with {_python(project)} (the active virtual environment)" in active.stderr
    assert _installed(project) and not _installed(tool)

    other = _environment(tmp_path / "other")
    chosen = _install(tool, published, "--python", str(other), VIRTUAL_ENV=str(project))
    assert chosen.returncode == 0, chosen.stderr
    assert f"installing with {_python(other)} (--python)" in chosen.stderr
    assert _installed(other) and not _installed(tool)


def test_install_says_which_interpreter_it_used(published: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "setuptools_ghcr", "install", "-r", published, "placed-pkg"),
            *("--", "--no-index", "--quiet", "--target", str(tmp_path / "site")),
        ],
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"installing with {sys.executable} (this interpreter)" in done.stderr
    assert (tmp_path / "site" / "placed_pkg" / "__init__.py").is_file()


def test_python_option_that_names_nothing(published: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "setuptools_ghcr", "install", "-r", published, "placed-pkg"),
            *("--python", str(tmp_path / "nowhere")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        f"--python {tmp_path / 'nowhere'}: no Python interpreter there"
    )
