"""What the reliability tests share: running the command line, checking its one error line,
the filesystem and what a registry holds, and clients with short timeouts and backoff.

``SETUPTOOLS_GHCR_TIMEOUT`` and ``SETUPTOOLS_GHCR_RETRIES`` shorten the command line's own
patience where a test waits for a fault to outlast it.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from setuptools_ghcr.core.oci import Manifest
from setuptools_ghcr.core.targets import RegistryTarget, parse_target
from setuptools_ghcr.core.wire_format import file_entries, layer_of, tag_to_version
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.registry.credentials import Credentials
from setuptools_ghcr.storage.registry.repository import RegistryStore
from setuptools_ghcr.storage.registry.retry import RetryPolicy
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.versions import read_index

__all__ = [
    "Cli",
    "ClientStores",
    "Result",
    "assert_refused",
    "fast_client",
    "filenames",
    "missing_content",
    "no_partial_files",
    "tree",
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
    from loopback_names import install_from_environment

    from setuptools_ghcr.cli import main

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


def tree(root: Path, *, skip: Iterable[Path] = ()) -> dict[str, tuple[int, int]]:
    """Every file (path -> size, mtime) and folder (path -> 0, 0) under ``root``, leaving out
    ``skip`` and what is in it. Two snapshots differ when anything was written there."""
    skipped = {path.resolve() for path in skip}
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [name for name in dirs if (Path(folder) / name).resolve() not in skipped]
        for name in dirs:
            found[str((Path(folder) / name).relative_to(root))] = (0, 0)
        for name in files:
            path = Path(folder) / name
            stat = path.lstat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def no_partial_files(*folders: Path) -> list[Path]:
    """Leftovers of interrupted writes (temporary ``.part`` or hidden files) in ``folders``."""
    return [
        path
        for folder in folders
        if folder.exists()
        for path in folder.rglob("*")
        if path.name.endswith(".part") or path.name.startswith(".")
    ]


def fast_client(
    host: str,
    credentials: Credentials | None = None,
    *,
    timeout: float = 2.0,
    retries: int = 4,
) -> RegistryClient:
    """A client of a loopback registry that gives up and backs off quickly."""
    policy = RetryPolicy(retries=retries, base_delay=0.05, max_delay=0.4, max_retry_after=10)
    return RegistryClient(host, "http", credentials, timeout=timeout, retry_policy=policy)


class ClientStores:
    """The stores of a registry target over a given client (a ``StoreOpener``)."""

    def __init__(self, target: str, client: RegistryClient) -> None:
        parsed = parse_target(target)
        assert isinstance(parsed, RegistryTarget)
        self.target: RegistryTarget = parsed
        self.client = client

    def open(self, project: str) -> Store:
        return RegistryStore(self.client, self.target.repository(project))


def missing_content(store: Store, project: str) -> list[str]:
    """Everything a published index names that the store does not hold (empty when whole).

    Every tag that is a version is checked: its index, each file's manifest, and the
    manifest's config and layer blobs.
    """
    problems: list[str] = []
    for tag in store.list_tags():
        version = tag_to_version(tag)
        if version is None:
            continue
        index = read_index(store, tag)
        if index is None:
            problems.append(f"{tag}: listed but absent")
            continue
        for entry in file_entries(index, project, version):
            found = store.get_manifest(str(entry.manifest.digest))
            if found is None:
                problems.append(f"{tag}: manifest of {entry.filename} is missing")
                continue
            manifest = Manifest.from_bytes(found.raw)
            layer = layer_of(manifest, entry)
            for blob in (manifest.config, layer):
                if not store.blob_exists(blob.digest):
                    problems.append(f"{tag}: blob {blob.digest.short} of {entry.filename}")
    return problems


def filenames(store: Store, project: str, tag: str) -> list[str]:
    """The file names one version's index lists."""
    version = tag_to_version(tag)
    assert version is not None
    index = read_index(store, tag)
    return sorted(e.filename for e in file_entries(index, project, version)) if index else []
