"""Which Python environment ``install`` installs into, and the pip that does it.

Installed with pipx or ``uv tool``, this tool runs from an environment of its own, where
nothing the user runs would ever import what is installed; pip run as ``sys.executable``
would install there and report success all the same. So the environment is chosen, and
said: ``--python`` first, else the active virtual environment (``VIRTUAL_ENV``), else the
interpreter the tool runs on unless that is a tool environment, which is refused.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from setuptools_ghcr.errors import ConfigError

__all__ = ["Interpreter", "choose_interpreter", "tool_environment"]

#: Files the tool installers leave at the root of the environment they make for a tool.
TOOL_MARKERS = {"pipx_metadata.json": "pipx", "uv-receipt.toml": "uv tool"}
#: The first pip with ``--python``: it installs for another interpreter, pip-less ones too.
PIP_WITH_PYTHON_OPTION = Version("22.3")


@dataclass(frozen=True)
class Interpreter:
    """The Python that ``install`` installs for, and how pip is run for it."""

    python: str
    #: Why this one: "--python", "the active virtual environment" or "this interpreter".
    reason: str
    #: The command that runs pip for it, up to (not including) ``install``.
    pip: tuple[str, ...]

    def describe(self) -> str:
        """One line for the user: where packages go."""
        return f"installing with {self.python} ({self.reason})"


def tool_environment(prefix: Path) -> str | None:
    """The tool installer that made the environment at ``prefix`` (pipx, uv tool), if one did."""
    for marker, installer in TOOL_MARKERS.items():
        if (prefix / marker).is_file():
            return installer
    return None


def _venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _interpreter_path(text: str, environ: Mapping[str, str]) -> Path:
    """``--python``'s value: an interpreter, a virtual environment's folder, or a command."""
    path = Path(text).expanduser()
    if path.is_dir():
        path = _venv_python(path)
    elif os.sep not in text and "/" not in text and not path.exists():
        found = shutil.which(text, path=environ.get("PATH"))
        path = Path(found) if found else path
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ConfigError(f"--python {text}: no Python interpreter there")
    return path.absolute()


def _own_pip_takes_python() -> bool:
    try:
        return Version(importlib.metadata.version("pip")) >= PIP_WITH_PYTHON_OPTION
    except (importlib.metadata.PackageNotFoundError, InvalidVersion):
        return False


def _for(python: Path, reason: str, executable: str) -> Interpreter:
    # pip's own --python installs for an interpreter that has no pip (uv makes such
    # environments); an older or absent pip here leaves it to that interpreter's pip.
    pip: tuple[str, ...]
    if _own_pip_takes_python():
        pip = (executable, "-m", "pip", "--python", str(python))
    else:
        pip = (str(python), "-m", "pip")
    return Interpreter(str(python), reason, pip)


def choose_interpreter(
    option: str | None,
    environ: Mapping[str, str],
    *,
    executable: str = sys.executable,
    prefix: str = sys.prefix,
) -> Interpreter:
    """``--python``, else ``VIRTUAL_ENV``, else ``executable`` unless it runs a tool's own
    environment (then an error that says what to do)."""
    if option:
        # Never compared with ``executable`` by what it resolves to: every virtual
        # environment's python links to the same base interpreter.
        return _for(_interpreter_path(option, environ), "--python", executable)
    active = environ.get("VIRTUAL_ENV", "")
    if active and Path(active).resolve() != Path(prefix).resolve():
        python = _venv_python(Path(active))
        if not python.is_file():
            raise ConfigError(
                f"VIRTUAL_ENV is {active}, which holds no {python.name}; "
                "activate another environment or give --python PATH"
            )
        return _for(python, "the active virtual environment", executable)
    installer = tool_environment(Path(prefix))
    if installer is not None:
        raise ConfigError(
            f"setuptools-ghcr runs from the environment {installer} made for it ({prefix}), "
            "where nothing else would see what is installed; activate the virtual "
            "environment to install into, or give --python PATH"
        )
    return Interpreter(executable, "this interpreter", (executable, "-m", "pip"))
