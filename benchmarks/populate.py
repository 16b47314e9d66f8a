"""A project with many versions on a registry: the input of the resolve and serve scenarios."""

from __future__ import annotations

import time
from pathlib import Path

from support.registry_harness import RunningRegistry
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.usecases.publish import PushOptions, publish

__all__ = ["DEEP_PROJECT", "NAMESPACE", "WHEEL_TAGS", "credentials_env", "populate", "version_of"]

DEEP_PROJECT = "bench-deep"
NAMESPACE = "deep"
#: Three wheels and the sdist make four files a version.
WHEEL_TAGS = ("py3-none-any", "cp311-cp311-manylinux_2_17_x86_64", "cp312-abi3-win_amd64")


def version_of(number: int) -> str:
    return f"1.{number // 10}.{number % 10}"


def credentials_env(registry: RunningRegistry) -> dict[str, str]:
    """The environment that gives a child process the registry's credentials."""
    assert registry.username is not None
    assert registry.password is not None
    return {
        "SETUPTOOLS_GHCR_USERNAME": registry.username,
        "SETUPTOOLS_GHCR_PASSWORD": registry.password,
    }


def populate(registry: RunningRegistry, folder: Path, versions: int) -> str:
    """Publish ``versions`` versions of four files each; returns the target."""
    target = f"{registry.host}/{NAMESPACE}"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    paths: list[Path] = []
    for number in range(versions):
        version = version_of(number)
        for tag in WHEEL_TAGS:
            paths.append(
                make_wheel(
                    folder,
                    DEEP_PROJECT,
                    version,
                    tag=tag,
                    requires_python=">=3.8",
                    summary="a project with many versions",
                )
            )
        paths.append(make_sdist(folder, DEEP_PROJECT, version, requires_python=">=3.8"))
    with StoreFactory(
        parse_target(target),
        username=registry.username,
        password=registry.password,
        environ={},
    ) as stores:
        publish(stores.open, [read_distribution(p) for p in paths], PushOptions(workers=8))
    print(
        f"  published {versions} versions x {len(WHEEL_TAGS) + 1} files "
        f"in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    return target
