"""Running the command line as a user would, in a process of its own, and checking its one
error line.

``SETUPTOOLS_GHCR_TIMEOUT`` and ``SETUPTOOLS_GHCR_RETRIES`` shorten the command line's own
patience where a test waits for a fault to outlast it.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = [
    "Cli",
    "Result",
    "assert_refused",
    "copy_example",
    "run_process",
    "user_environment",
]

#: Variables of the caller's environment that must not steer the command under test.
_SCRUBBED = (
    "SETUPTOOLS_GHCR_",
    "DOCKER_CONFIG",
    "XDG_RUNTIME_DIR",
    "GITHUB_TOKEN",
    "GITHUB_ACTOR",
    "REGISTRY_AUTH_FILE",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "VIRTUAL_ENV",
)


@dataclass(frozen=True)
class Result:
    """What one run of the command line did."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"setuptools-ghcr {' '.join(self.args)} -> {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


@dataclass
class Cli:
    """Runs ``python -m setuptools_ghcr`` in a clean environment: its own HOME (so no docker
    login of the machine is used), its own cache, and a working folder."""

    home: Path
    cwd: Path
    cache: Path
    env: dict[str, str] = field(default_factory=dict)
    #: Every run, so that a test can search all the output of a session.
    history: list[Result] = field(default_factory=list)

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
        base.update(
            {
                "HOME": str(self.home),
                "SETUPTOOLS_GHCR_CACHE_DIR": str(self.cache),
                "PYTHONDONTWRITEBYTECODE": "1",
                "NO_COLOR": "1",
            }
        )
        base.update(self.env)
        base.update(extra or {})
        return base

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 180,
    ) -> Result:
        """Run the command line in a process of its own and collect what it printed.

        The process is forked from a server that has already imported the package (a fresh
        interpreter costs half a second here, times a hundred runs); it is a process of its
        own all the same: its own environment, folder, logging, stdout and stderr files.
        """
        with tempfile.TemporaryDirectory(prefix="cli-output-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            process = _FORKS.Process(
                target=_run_main,
                args=(list(args), self.environment(env), str(cwd or self.cwd), str(out), str(err)),
            )
            process.start()
            process.join(timeout)
            if process.exitcode is None:
                process.kill()
                process.join()
                raise AssertionError(f"setuptools-ghcr {' '.join(args)} ran over {timeout} s")
            result = Result(tuple(args), process.exitcode, _text(out), _text(err))
        self.history.append(result)
        return result

    def start(self, args: Sequence[str], stderr: IO[str]) -> subprocess.Popen[str]:
        """Start a long-running command (``serve``) logging to ``stderr``; the caller ends it.

        A file rather than a pipe: a busy server logs more than a pipe holds.
        """
        return subprocess.Popen(
            [sys.executable, "-m", "setuptools_ghcr", *args],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            cwd=self.cwd,
            env=self.environment(),
        )


#: Forks each command from a process that imported the package once (and runs no threads).
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(
    [
        "setuptools_ghcr.cli",
        "setuptools_ghcr.commands.push",
        "setuptools_ghcr.usecases.push",
        "setuptools_ghcr.usecases.resolve",
        "setuptools_ghcr.serve.app",
        "setuptools_ghcr.serve.server",
        "setuptools_ghcr.usecases.publish",
        "setuptools_ghcr.storage.registry.client",
    ]
)


def _run_main(argv: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    """In the forked process: what ``python -m setuptools_ghcr ARGV`` does, into two files."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, name in ((1, out), (2, err)):
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    from setuptools_ghcr.cli import main
    from support.loopback_names import install_from_environment

    install_from_environment()

    status = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "backslashreplace")


def assert_refused(result: Result, *fragments: str) -> str:
    """Exit 1, nothing on stdout, and exactly one error line on stderr (returned).

    Log warnings (one line each) may precede it; a traceback, a second error, or a control
    character from a registry's answer (a terminal escape, a NUL) may not.
    """
    assert result.returncode == 1, str(result)
    assert result.stdout == "", str(result)
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, str(result)
    assert all(line.startswith(("error: ", "WARNING: ")) for line in lines), str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert all(char.isprintable() for char in result.stderr.replace("\n", "")), repr(result.stderr)
    line = errors[0]
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}"
    return line


#: The example project of the repository: a setuptools project using this tool.
EXAMPLE = Path(__file__).resolve().parents[2] / "example_project"


def copy_example(folder: Path) -> Path:
    """A copy of the example project in ``folder/example``, without build outputs."""
    target = folder / "example"
    shutil.copytree(
        EXAMPLE, target, ignore=shutil.ignore_patterns("dist", "build", "*.egg-info", "dist-oci")
    )
    return target


def user_environment(**extra: str) -> dict[str, str]:
    """This environment without the tool's variables (nor pip's build trackers), and ``extra``."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SETUPTOOLS_GHCR_", "PIP_BUILD_TRACKER", "PIP_REQ_TRACKER"))
    }
    environ.update(extra)
    return environ


def run_process(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to its end, its output captured as text."""
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
