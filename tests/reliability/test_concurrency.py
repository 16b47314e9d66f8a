"""Concurrency: publishers racing on one version, downloaders racing on one file and one
cache, and ``serve`` under 16 clients for a while (``SETUPTOOLS_GHCR_SOAK_SECONDS``, 30 by
default), all in separate processes as they would be in CI."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import pytest
from support.cli import Cli
from support.fault_proxy import Fault, FaultProxy
from support.folders import no_partial_files
from support.http import get
from support.registry_harness import RunningRegistry
from support.stores import ClientStores, fast_client, filenames, missing_content, publish_files
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.core.dists import Distribution, read_distribution
from setuptools_ghcr.usecases.publish import PushOptions, publish

pytestmark = pytest.mark.integration

SOAK_ENV = "SETUPTOOLS_GHCR_SOAK_SECONDS"
CLIENTS = 16
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
TAGS = [
    "py3-none-any",
    "py2.py3-none-any",
    "cp310-cp310-manylinux_2_17_x86_64",
    "cp311-cp311-manylinux_2_17_x86_64",
    "cp312-cp312-manylinux_2_17_x86_64",
    "cp311-cp311-musllinux_1_2_x86_64",
    "py3-none-win_amd64",
]


def _credentials(registry: RunningRegistry) -> list[str]:
    if registry.username is None:
        return []
    return ["--username", registry.username, "--password", str(registry.password)]


@pytest.mark.parametrize("registry_fixture", ["plain_registry", "token_registry"])
def test_eight_publisher_processes_all_land_in_one_index(
    registry_fixture: str, request: pytest.FixtureRequest, cli: Cli, tmp_path: Path
) -> None:
    registry: RunningRegistry = request.getfixturevalue(registry_fixture)
    dist = tmp_path / "dist"
    dist.mkdir()
    files = [make_wheel(dist, "racing-pkg", "3.1", tag=tag) for tag in TAGS]
    files.append(make_sdist(dist, "racing-pkg", "3.1"))
    assert len(files) == 8
    namespace = f"race{os.getpid()}{registry_fixture[:5]}"
    # Index writes answered slowly, as by a registry busy ingesting blobs: a publisher whose
    # read came before another's write then writes long after it.
    proxy = FaultProxy(registry.host)
    proxy.add(Fault("delay", "PUT", r"/manifests/3\.1$", seconds=0.3, times=None))
    target = f"{proxy.host}/{namespace}"
    environment = cli.environment()
    processes = [
        subprocess.Popen(
            [
                *_python_m(),
                "push",
                "--repository",
                target,
                *_credentials(registry),
                str(path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cli.cwd,
            env=environment,
        )
        for path in files
    ]
    try:
        outputs = [process.communicate(timeout=180) for process in processes]
    finally:
        proxy.stop()

    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, f"{out}\n{err}"
        assert out.startswith("uploaded: "), out
    direct = f"{registry.host}/{namespace}"
    stores = ClientStores(direct, fast_client(registry.host, registry.credentials, timeout=30))
    store = stores.open("racing-pkg")
    assert filenames(store, "racing-pkg", "3.1") == sorted(path.name for path in files)
    assert missing_content(store, "racing-pkg") == []
    stores.client.close()


def _python_m() -> list[str]:
    return [sys.executable, "-m", "setuptools_ghcr"]


def test_concurrent_downloads_into_one_folder_through_one_cache(
    plain_registry: RunningRegistry, cli: Cli, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = make_wheel(
        dist, "shared-dl", "1.0", extra_files={"shared_dl/blob.bin": os.urandom(2 << 20)}
    )
    namespace = f"shared{os.getpid()}"
    stores = ClientStores(f"{plain_registry.host}/{namespace}", fast_client(plain_registry.host))
    publish_files(stores, wheel)
    stores.client.close()
    out = cli.cwd / "out"
    with FaultProxy(plain_registry.host) as proxy:
        # Slow blob transfers, so that every process is in the middle of one at once.
        proxy.add(Fault("throttle", "GET", r"/blobs/sha256:", seconds=0.015, times=None))
        environment = cli.environment()
        processes = [
            subprocess.Popen(
                [
                    *_python_m(),
                    "download",
                    "--repository",
                    f"{proxy.host}/{namespace}",
                    "-d",
                    str(out),
                    "shared-dl==1.0",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=cli.cwd,
                env=environment,
            )
            for _ in range(6)
        ]
        outputs = [process.communicate(timeout=180) for process in processes]
        layer_gets = proxy.count(
            "GET", "/blobs/sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
        )

    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, f"{stdout}\n{stderr}"
        assert stdout.strip().endswith(wheel.name), stdout
    # Each process finding the cache empty fetched the file itself, at the same time as others.
    assert layer_gets >= 3, f"only {layer_gets} downloads overlapped"
    assert [path.name for path in out.iterdir()] == [wheel.name]
    assert (out / wheel.name).read_bytes() == wheel.read_bytes()
    assert no_partial_files(out, cli.cache) == []
    cached = [path for path in (cli.cache / "blobs").rglob("*") if path.is_file()]
    assert cached, "nothing went through the cache"
    for path in cached:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name


# --------------------------------------------------------------------------- serve soak


@dataclass
class Expected:
    """What every answer of the index must be."""

    base: str
    dists: dict[str, Distribution]
    versions: list[str]
    file_urls: dict[str, str] = field(default_factory=dict)


def _check_page(expected: Expected) -> None:
    status, headers, body = get(expected.base + "soak-pkg/", JSON_TYPE)
    assert status == 200 and headers["content-type"] == JSON_TYPE, (status, body[:200])
    page = json.loads(body)
    assert page["versions"] == expected.versions
    files = {item["filename"]: item for item in page["files"]}
    assert set(files) == set(expected.dists)
    for name, dist in expected.dists.items():
        assert files[name]["hashes"]["sha256"] == dist.sha256.hex
        assert files[name]["size"] == dist.size


def _check_html(expected: Expected) -> None:
    status, _, body = get(expected.base + "soak-pkg/", "text/html")
    assert status == 200
    text = body.decode()
    for name, dist in expected.dists.items():
        assert f"{name}#sha256={dist.sha256.hex}" in text


def _check_file(expected: Expected) -> None:
    name = random.choice(sorted(expected.dists))
    status, headers, body = get(expected.file_urls[name])
    dist = expected.dists[name]
    assert status == 200
    assert int(headers["content-length"]) == len(body) == dist.size
    assert hashlib.sha256(body).hexdigest() == dist.sha256.hex


def _check_metadata(expected: Expected) -> None:
    name = random.choice(sorted(expected.dists))
    status, _, body = get(expected.file_urls[name] + ".metadata")
    assert status == 200
    assert body == expected.dists[name].metadata


def _check_head(expected: Expected) -> None:
    name = random.choice(sorted(expected.dists))
    status, headers, body = get(expected.file_urls[name], method="HEAD")
    assert status == 200 and body == b""
    assert int(headers["content-length"]) == expected.dists[name].size


def _check_unknown(expected: Expected) -> None:
    status, _, _ = get(expected.base + "no-such-project-here/", JSON_TYPE)
    assert status == 404


CHECKS = [_check_page, _check_html, _check_file, _check_file, _check_metadata, _check_head]
CHECKS.append(_check_unknown)


def _wait_for_url(log: Path, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"Serving \S+ at (http://\S+/simple/)", log.read_text())
        if match:
            return match.group(1)
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"serve did not start:\n{log.read_text()}")


def test_serve_answers_sixteen_clients_correctly_for_the_whole_soak(
    plain_registry: RunningRegistry, cli: Cli, tmp_path: Path
) -> None:
    seconds = float(os.environ.get(SOAK_ENV, "30"))
    dist = tmp_path / "dist"
    dist.mkdir()
    paths = [
        make_wheel(dist, "soak-pkg", "1.0", requires_python=">=3.8"),
        make_sdist(dist, "soak-pkg", "1.0"),
        make_wheel(dist, "soak-pkg", "1.1", extra_files={"soak_pkg/big.bin": os.urandom(1 << 20)}),
    ]
    dists = {path.name: read_distribution(path) for path in paths}
    namespace = f"soak{os.getpid()}"
    stores = ClientStores(f"{plain_registry.host}/{namespace}", fast_client(plain_registry.host))
    publish(stores.open, list(dists.values()), PushOptions())
    stores.client.close()
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = cli.start(
            [
                "serve",
                "--repository",
                f"{plain_registry.host}/{namespace}",
                "--port",
                "0",
                "--cache-ttl",
                "1",
            ],
            stderr,
        )
    try:
        base = _wait_for_url(log, process)
        expected = Expected(base, dists, ["1.0", "1.1"])
        status, _, body = get(base + "soak-pkg/", JSON_TYPE)
        assert status == 200, body
        for item in json.loads(body)["files"]:
            expected.file_urls[item["filename"]] = urljoin(base + "soak-pkg/", item["url"])

        done: Counter[str] = Counter()
        failures: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + seconds

        def client_loop() -> None:
            while time.monotonic() < deadline:
                check = random.choice(CHECKS)
                try:
                    check(expected)
                except Exception as error:
                    with lock:
                        failures.append(f"{check.__name__}: {error!r}"[:300])
                else:
                    with lock:
                        done[check.__name__] += 1

        threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 120)

        assert failures == [], failures[:10]
        assert process.poll() is None, "the server died under load"
        assert sum(done.values()) >= CLIENTS * 2, done
        assert set(done) == {check.__name__ for check in CHECKS}, done
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log.read_text()
    assert process.returncode == 0, text[-2000:]
    assert "Traceback" not in text
