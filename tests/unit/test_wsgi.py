"""``setuptools_ghcr.wsgi``: the application configured by the environment alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from setuptools_ghcr.errors import ConfigError
from setuptools_ghcr.serve.app import IndexApp
from setuptools_ghcr.wsgi import create_application


def _app(environ: dict[str, str]) -> IndexApp:
    app = create_application(environ)
    app.close()
    return app


def test_pass_through_routes_only(tmp_path: Path) -> None:
    app = _app(
        {
            "SETUPTOOLS_GHCR_SERVE_REGISTRIES": "ghcr.io,127.0.0.1:5000",
            "SETUPTOOLS_GHCR_CACHE_DIR": str(tmp_path),
            "SETUPTOOLS_GHCR_ALLOWED_HOSTS": "pkgs.example.com",
        }
    )
    assert app.router.fixed is None
    assert app.router.registries == {"ghcr.io", "127.0.0.1:5000"}
    assert app.hosts.allows("pkgs.example.com") and not app.hosts.allows("other.example")


def test_a_fixed_target_from_the_environment(tmp_path: Path) -> None:
    app = _app({"SETUPTOOLS_GHCR_REPOSITORY": f"oci:{tmp_path}", "HOME": str(tmp_path)})
    assert app.router.fixed is not None
    assert str(app.router.fixed.target) == f"oci:{tmp_path}"
    assert app.router.registries == frozenset()


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({}, "nothing to serve"),
        (
            {"SETUPTOOLS_GHCR_SERVE_REGISTRIES": "ghcr.io", "SETUPTOOLS_GHCR_FALLBACK_INDEX": "x"},
            "SETUPTOOLS_GHCR_FALLBACK_INDEX",
        ),
        (
            {
                "SETUPTOOLS_GHCR_SERVE_REGISTRIES": "ghcr.io",
                "SETUPTOOLS_GHCR_MAX_UPLOAD_SIZE": "lots",
            },
            "SETUPTOOLS_GHCR_MAX_UPLOAD_SIZE",
        ),
    ],
)
def test_configuration_errors_name_the_variable(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        create_application(environ)


def test_a_worker_without_configuration_stops_with_one_line() -> None:
    code = "import setuptools_ghcr.wsgi as w; w.application"
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "setuptools-ghcr: nothing to serve: set SETUPTOOLS_GHCR_REPOSITORY (a target) and/or "
        "SETUPTOOLS_GHCR_SERVE_REGISTRIES (registries of pass-through routes)"
    ]


def test_importing_the_module_builds_nothing() -> None:
    code = "import setuptools_ghcr.wsgi; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={}, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr
