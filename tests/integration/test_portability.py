"""Publishing and downloading work without the POSIX-only pieces Windows lacks.

Teams build and publish from Windows and macOS runners. The command line runs here in a
subprocess whose ``sitecustomize`` removes ``os.O_NOFOLLOW``, ``O_DIRECTORY``, ``O_CLOEXEC``
and ``O_NONBLOCK`` and makes ``import fcntl`` fail, as on Windows: ``push`` and ``download``
against a real registry must still work, and an ``oci:`` target (POSIX-only) must say so in
one line.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from support.registry_harness import RunningRegistry
from support.wheels import make_sdist, make_wheel

pytestmark = pytest.mark.integration

REMOVED_FLAGS = ("O_NOFOLLOW", "O_DIRECTORY", "O_CLOEXEC", "O_NONBLOCK")

SITECUSTOMIZE = f"""
import os
import sys

for name in {REMOVED_FLAGS!r}:
    if hasattr(os, name):
        delattr(os, name)
sys.modules.pop("fcntl", None)


class _NoFcntl:
    def find_spec(self, name, path=None, target=None):
        if name == "fcntl":
            raise ModuleNotFoundError("No module named 'fcntl'", name=name)
        return None


sys.meta_path.insert(0, _NoFcntl())
"""

PROBE = f"""
import os
missing = [name for name in {REMOVED_FLAGS!r} if not hasattr(os, name)]
try:
    import fcntl
except ImportError:
    missing.append("fcntl")
print(" ".join(missing))
"""

CLI = Path(sys.executable).with_name("setuptools-ghcr")


def _environment(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SETUPTOOLS_GHCR_")}
    environ.update(
        PYTHONPATH=str(site),
        HOME=str(tmp_path / "home"),
        SETUPTOOLS_GHCR_CACHE_DIR=str(tmp_path / "cache"),
    )
    return environ


def _run(environ: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args],
        env=environ,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """The environment of a platform without fcntl and those open flags (checked here)."""
    made = _environment(tmp_path)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], env=made, capture_output=True, text=True, check=True
    )
    assert probe.stdout.split() == [*REMOVED_FLAGS, "fcntl"]
    return made


@pytest.mark.parametrize("flavour", ["plain_registry", "token_registry"])
def test_push_and_download_without_posix_pieces(
    request: pytest.FixtureRequest, tmp_path: Path, environ: dict[str, str], flavour: str
) -> None:
    registry: RunningRegistry = request.getfixturevalue(flavour)
    if registry.username is not None:
        environ["SETUPTOOLS_GHCR_USERNAME"] = registry.username
        environ["SETUPTOOLS_GHCR_PASSWORD"] = str(registry.password)
    target = f"{registry.host}/portable{secrets.token_hex(4)}"
    built = tmp_path / "dist"
    built.mkdir()
    files = [make_wheel(built, "porta-pkg", "1.0"), make_sdist(built, "porta-pkg", "1.0")]

    pushed = _run(environ, tmp_path, "push", "--repository", target, *map(str, files))
    assert pushed.returncode == 0, pushed.stderr
    assert "Traceback" not in pushed.stderr

    # The first download fills the cache; the second is handed out of it (link or copy).
    for folder in ("first", "second"):
        got = _run(environ, tmp_path, "download", "--repository", target, "-d", folder, "porta-pkg")
        assert got.returncode == 0, got.stderr
        wheel = tmp_path / folder / files[0].name
        assert got.stdout.split() == [str(Path(folder) / files[0].name)]
        assert wheel.read_bytes() == files[0].read_bytes()
        assert sorted(os.listdir(tmp_path / folder)) == [files[0].name]


@pytest.mark.parametrize("verb", ["push", "download"])
def test_a_layout_target_says_it_needs_posix_in_one_line(
    tmp_path: Path, environ: dict[str, str], verb: str
) -> None:
    wheel = make_wheel(tmp_path, "porta-pkg", "1.0")
    what = str(wheel) if verb == "push" else "porta-pkg"
    store = tmp_path / "store"
    result = _run(environ, tmp_path, verb, "--repository", f"oci:{store}", what)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: oci: folders need POSIX file locks (fcntl)")
    assert f"({sys.platform})" in result.stderr
    assert not store.exists()
