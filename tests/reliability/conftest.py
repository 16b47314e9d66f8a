"""Fixtures of the reliability tests: a fault proxy, hostile registries, a command runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import Cli
from support.fault_proxy import FaultProxy
from support.hostile_registry import HostileRegistry, OtherHost
from support.registry_harness import RegistryStartError, RunningRegistry, start_registry


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The command line, run in ``tmp_path/work`` with its own home and cache."""
    runner = Cli(home=tmp_path / "home", cwd=tmp_path / "work", cache=tmp_path / "cache")
    for folder in (runner.home, runner.cwd):
        folder.mkdir()
    return runner


@pytest.fixture
def proxy(plain_registry: RunningRegistry) -> Iterator[FaultProxy]:
    """A fault proxy in front of the shared plain registry."""
    with FaultProxy(plain_registry.host) as running:
        yield running


@pytest.fixture(params=["plain_registry", "token_registry"])
def proxied(request: pytest.FixtureRequest) -> Iterator[tuple[FaultProxy, RunningRegistry]]:
    """A fault proxy in front of the plain registry, then of the token registry."""
    registry: RunningRegistry = request.getfixturevalue(request.param)
    with FaultProxy(registry.host) as running:
        yield running, registry


@pytest.fixture
def own_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A plain registry of this test alone, which the test may stop and start."""
    try:
        registry = start_registry("plain", tmp_path / "own-registry")
    except RegistryStartError as error:
        pytest.fail(f"cannot start a registry: {error}", pytrace=False)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture
def other_host() -> Iterator[OtherHost]:
    host = OtherHost()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    registry = HostileRegistry()
    try:
        yield registry
    finally:
        registry.stop()
