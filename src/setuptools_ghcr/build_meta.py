"""A PEP 517 backend: ``setuptools.build_meta``, plus publishing when asked.

After ``build_wheel`` / ``build_sdist`` the built file is pushed only with
``python -m build -C ghcr-upload=true`` or ``SETUPTOOLS_GHCR_UPLOAD=1``: pip builds sdists
through the same hooks, and an install must never publish anything. For the same reason the
variable counts for nothing under pip (``pip install .`` in a job that exports it for its
build step); a config setting is explicit (``pip wheel -C ghcr-upload=true``) and counts.
Other settings: ``-C ghcr-repository=TARGET`` and ``-C ghcr-skip-existing=true``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - the whole backend is re-exported
from setuptools.build_meta import __all__ as _setuptools_all

__all__ = list(_setuptools_all)

UPLOAD_ENV = "SETUPTOOLS_GHCR_UPLOAD"
_TRUE = {"1", "true", "yes", "on"}
#: pip exports one of these to every build it runs (PIP_REQ_TRACKER before pip 22.1).
_PIP_MARKERS = ("PIP_BUILD_TRACKER", "PIP_REQ_TRACKER")


def _setting(config_settings: Mapping[str, Any] | None, key: str) -> str | None:
    value = (config_settings or {}).get(key)
    if isinstance(value, list):
        value = value[-1] if value else None
    return None if value is None else str(value)


def upload_requested(config_settings: Mapping[str, Any] | None, environ: Mapping[str, str]) -> bool:
    """Whether this build was asked to publish its result."""
    setting = _setting(config_settings, "ghcr-upload")
    if setting is not None:
        return setting.strip().lower() in _TRUE
    if environ.get(UPLOAD_ENV, "").strip().lower() not in _TRUE:
        return False
    if any(environ.get(marker) for marker in _PIP_MARKERS):
        _say(
            f"{UPLOAD_ENV} is ignored in a build that pip runs (pip install, pip wheel); "
            "nothing is published. Set it on the build step only, or pass "
            "-C ghcr-upload=true to publish from pip wheel"
        )
        return False
    return True


def _project_base(output_directory: Path) -> Path:
    # `python -m build` makes the wheel from an unpacked sdist in a temporary folder, whose
    # path means nothing to the user; relative oci: paths then count from the output
    # folder's parent, which is the project folder for the default `dist/`.
    if Path("PKG-INFO").is_file():
        return output_directory.resolve().parent
    return Path.cwd()


def _publish(built: Path, config_settings: Mapping[str, Any] | None) -> None:
    environ = dict(os.environ)
    if not upload_requested(config_settings, environ):
        return
    import dataclasses

    from setuptools_ghcr.config import load_settings
    from setuptools_ghcr.errors import GhcrError
    from setuptools_ghcr.usecases.push import push_files

    try:
        settings = load_settings(Path("pyproject.toml"))
        settings = dataclasses.replace(settings, base=_project_base(built.parent))
        skip = _setting(config_settings, "ghcr-skip-existing")
        report = push_files(
            [built],
            settings,
            environ,
            repository=_setting(config_settings, "ghcr-repository"),
            skip_existing=None if skip is None else skip.strip().lower() in _TRUE,
            announce=_say,
            skip_option="-C ghcr-skip-existing=true",
        )
    except GhcrError as error:
        # A build frontend shows this message; a traceback would bury it.
        raise SystemExit(f"setuptools-ghcr: {error}") from None
    for line in report.lines():
        print(line)


def _say(line: str) -> None:
    print(f"setuptools-ghcr: {line}", file=sys.stderr, flush=True)


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    name: str = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    _publish(Path(wheel_directory) / name, config_settings)
    return name


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    name: str = _setuptools.build_sdist(sdist_directory, config_settings)
    _publish(Path(sdist_directory) / name, config_settings)
    return name
