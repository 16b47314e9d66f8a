"""``python setup.py ... ghcr_upload``: the setuptools face of ``push``.

setuptools imports this module whenever it lists commands, so it imports nothing heavy at
module level: the publishing machinery is loaded only when the command runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import ClassVar

from setuptools import Command

__all__ = ["ghcr_upload"]


class ghcr_upload(Command):
    """Publish the sdists and wheels built in this run (else the current version's, in dist/)."""

    description = "publish built distributions to an OCI registry (ghcr.io) or an oci: folder"
    user_options: ClassVar[list[tuple[str, str | None, str]]] = [
        ("repository=", "r", "REGISTRY/NAMESPACE or oci:PATH (default: pyproject.toml)"),
        ("username=", "u", "registry user name"),
        ("password=", "p", "registry password or token"),
        ("skip-existing", None, "leave files already published with other contents"),
        ("tag=", None, "also tag the version's index (comma-separated)"),
        ("dist-dir=", "d", "where to look for built files when none was built in this run"),
    ]
    boolean_options: ClassVar[list[str]] = ["skip-existing"]

    def initialize_options(self) -> None:
        self.repository: str | None = None
        self.username: str | None = None
        self.password: str | None = None
        self.skip_existing: bool | None = None
        self.tag: str | None = None
        self.dist_dir: str | None = None

    def finalize_options(self) -> None:
        if self.dist_dir is None:
            self.dist_dir = "dist"

    def _files(self) -> list[Path]:
        built = [Path(name) for _command, _python, name in self.distribution.dist_files]
        if built:
            return list(dict.fromkeys(built))
        from setuptools_ghcr.usecases.push import version_files

        return version_files(
            Path(str(self.dist_dir)),
            self.distribution.get_name(),
            self.distribution.get_version(),
        )

    def run(self) -> None:
        from distutils.errors import DistutilsError

        from setuptools_ghcr.config import load_settings
        from setuptools_ghcr.errors import GhcrError
        from setuptools_ghcr.progress import transfer_progress
        from setuptools_ghcr.usecases.push import push_files

        files = self._files()
        if not files:
            raise DistutilsError(
                f"ghcr_upload: nothing to publish; build first (setup.py sdist bdist_wheel "
                f"ghcr_upload) or put this version's files in {self.dist_dir}/"
            )
        try:
            report = push_files(
                files,
                load_settings(Path("pyproject.toml")),
                dict(os.environ),
                repository=self.repository,
                username=self.username,
                password=self.password,
                skip_existing=True if self.skip_existing else None,
                extra_tags=[t for t in (self.tag or "").split(",") if t],
                progress=transfer_progress,
                announce=lambda line: print(f"ghcr_upload: {line}", file=sys.stderr),
            )
        except GhcrError as error:
            raise DistutilsError(f"ghcr_upload: {error}") from None
        for line in report.lines():
            print(line)
