"""Lost updates: two publishers of one version, one of whose index writes is delayed or
answered "try later". The one that reports success must have its file in the index.

Publisher A goes through a fault proxy that holds (or refuses once) its index write; the
moment the fault strikes, publisher B publishes another file of the same version straight to
the registry, and is done long before A's write lands. Registries offer no compare-and-swap,
so without care A's late write (or a re-send of its stale body) erases B's entry after B has
reported success.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from support.cli import Cli, assert_refused
from support.fault_proxy import Fault, FaultProxy
from support.registry_harness import RunningRegistry
from support.stores import ClientStores, fast_client, filenames
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.usecases.publish import FileResult, PushOptions, publish

pytestmark = pytest.mark.integration

INDEX_PUT = r"/manifests/2\.0$"


def _publish(host: str, namespace: str, path: Path) -> list[FileResult]:
    stores = ClientStores(f"{host}/{namespace}", fast_client(host, timeout=30))
    try:
        return publish(stores.open, [read_distribution(path)], PushOptions())
    finally:
        stores.client.close()


@pytest.mark.parametrize(
    "fault",
    [
        Fault("delay", "PUT", INDEX_PUT, seconds=0.6),
        Fault("delay", "PUT", INDEX_PUT, seconds=2.0),
        Fault("status", "PUT", INDEX_PUT, status=429, retry_after="1"),
        Fault("status", "PUT", INDEX_PUT, status=503, retry_after="1"),
    ],
    ids=["delayed-0.6s", "delayed-2s", "429-retry-after-1", "503-retry-after-1"],
)
def test_a_publisher_that_reports_success_has_its_file_in_the_index(
    plain_registry: RunningRegistry, tmp_path: Path, fault: Fault
) -> None:
    namespace = f"lost{os.getpid()}{fault.status}{int(fault.seconds * 10)}"
    wheel = make_wheel(tmp_path, "racing-index", "2.0")
    sdist = make_sdist(tmp_path, "racing-index", "2.0")
    results: dict[str, list[FileResult]] = {}
    failures: list[BaseException] = []

    def run(name: str, host: str, path: Path) -> None:
        try:
            results[name] = _publish(host, namespace, path)
        except BaseException as error:
            failures.append(error)

    other = threading.Thread(target=run, args=("B", plain_registry.host, sdist))
    # B starts the moment A's index write is held (or refused): after A read the index.
    fault.then = other.start
    with FaultProxy(plain_registry.host) as proxy:
        proxy.add(fault)
        run("A", proxy.host, wheel)
        other.join(timeout=60)
        assert fault.fired == 1, "the fault never struck"

    assert failures == []
    assert [r.status for r in results["A"] + results["B"]] == ["uploaded", "uploaded"]
    client = fast_client(plain_registry.host)
    store = ClientStores(f"{plain_registry.host}/{namespace}", client).open("racing-index")
    assert filenames(store, "racing-index", "2.0") == sorted([wheel.name, sdist.name])
    client.close()


def test_a_publisher_that_cannot_check_its_index_says_to_re_run_push(
    plain_registry: RunningRegistry, cli: Cli, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "unchecked-index", "2.0")
    with FaultProxy(plain_registry.host) as proxy:
        # Once the index is written, reading it back fails for good.
        broken_reads = Fault("status", "GET", INDEX_PUT, status=500, times=None)
        proxy.add(Fault("delay", "PUT", INDEX_PUT, then=lambda: proxy.add(broken_reads)))
        result = cli.run(
            "push",
            "--repository",
            f"{proxy.host}/unchecked{os.getpid()}",
            str(wheel),
            env={"SETUPTOOLS_GHCR_RETRIES": "1"},
        )

    assert_refused(result, "cannot check", "re-run push")
