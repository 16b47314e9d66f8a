"""``setuptools_ghcr.wsgi:application`` under gunicorn with several workers, under load.

Sixteen clients for thirty seconds, each a different mix of callers (two users, anonymous)
and requests (pages, files, metadata files, the JSON API), against a token registry with a
team's rules: every answer must be the right one, refusals included. The workers share the
disk cache, and each keeps its own pages and proofs of access.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import pytest
from support.registry_harness import RunningRegistry, free_port
from support.wheels import make_wheel

from setuptools_ghcr.core.dists import Distribution, read_distribution
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.usecases.publish import PushOptions, publish

pytestmark = pytest.mark.integration

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
CLIENTS = 16
SECONDS = 30.0
WORKERS = 4


@dataclass
class Service:
    url: str
    registry: RunningRegistry
    dists: dict[str, Distribution]
    process: subprocess.Popen[bytes] = field(repr=False)


def _publish(registry: RunningRegistry, area: str, dists: list[Distribution], home: Path) -> None:
    factory = StoreFactory(
        parse_target(f"{registry.host}/team/{area}"),
        username="tester",
        password=registry.password,
        environ={},
        home=home,
    )
    with factory:
        publish(factory.open, dists, PushOptions(created="2026-01-02T03:04:05Z"))


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited: {log.read_text()[-3000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(url + "health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer: {log.read_text()[-3000:]}", pytrace=False)


@pytest.fixture(scope="module")
def service(
    team_registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    work = tmp_path_factory.mktemp("gunicorn")

    def wheel(name: str, version: str) -> Distribution:
        return read_distribution(make_wheel(work, name, version, summary=f"{name} {version}"))

    dists = {
        "alice": wheel("gun-alice", "1.0"),
        "private": wheel("gun-shared", "2.0"),
        "public": wheel("gun-public", "3.0"),
    }
    older = wheel("gun-public", "2.9")
    for area, dist in dists.items():
        _publish(team_registry, area, [dist] + ([older] if area == "public" else []), work)
    port = free_port()
    log = work / "gunicorn.log"
    env = {
        **os.environ,
        "SETUPTOOLS_GHCR_SERVE_REGISTRIES": team_registry.host,
        "SETUPTOOLS_GHCR_CACHE_DIR": str(work / "cache"),
        "SETUPTOOLS_GHCR_ALLOWED_HOSTS": "pkgs.example.com",
        "HOME": str(work),
    }
    for name in ("SETUPTOOLS_GHCR_REPOSITORY", "SETUPTOOLS_GHCR_USERNAME", "GITHUB_TOKEN"):
        env.pop(name, None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(WORKERS),
                "--bind",
                f"127.0.0.1:{port}",
                "--timeout",
                "60",
                "setuptools_ghcr.wsgi:application",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_healthy(url, process, log)
        yield Service(url, team_registry, dists, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _request(
    url: str, user: str | None, service: Service, accept: str | None = JSON_TYPE
) -> tuple[int, bytes]:
    headers = {"Accept": accept} if accept else {}
    if user is not None:
        pair = f"{user}:{service.registry.users[user]}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


Check = Callable[[Service, random.Random], str | None]


def _page(area: str, user: str | None, allowed: bool) -> Check:
    """A project page (and, when allowed, one of its files): right content, or refused."""

    def check(service: Service, rng: random.Random) -> str | None:
        dist = service.dists[area]
        page_url = f"{service.url}{service.registry.host}/team/{area}/simple/{dist.project}/"
        status, body = _request(page_url, user, service)
        if not allowed:
            return None if status == 401 else f"{user} got {status} for {page_url}"
        if status != 200:
            return f"{user} got {status} for {page_url}"
        files = {item["filename"]: item for item in json.loads(body)["files"]}
        item = files.get(dist.filename)
        if item is None or item["hashes"]["sha256"] != dist.sha256.hex:
            return f"{user} got a wrong page for {page_url}"
        suffix = rng.choice(["", ".metadata"])
        status, data = _request(urljoin(page_url, item["url"]) + suffix, user, service, None)
        expected = item["core-metadata"]["sha256"] if suffix else dist.sha256.hex
        if status != 200 or hashlib.sha256(data).hexdigest() != expected:
            return f"{user} got {status} or wrong bytes for {item['filename']}{suffix}"
        return None

    return check


def _json_api(service: Service, rng: random.Random) -> str | None:
    url = f"{service.url}{service.registry.host}/team/public/pypi/gun-public/json"
    status, body = _request(url, None, service, None)
    if status != 200:
        return f"the JSON API answered {status}"
    document = json.loads(body)
    if document["info"]["version"] != "3.0" or sorted(document["releases"]) != ["2.9", "3.0"]:
        return "the JSON API answered a wrong document"
    return None


CHECKS: list[Check] = [
    _page("alice", "alice", True),
    _page("alice", "bob", False),
    _page("alice", None, False),
    _page("private", "alice", True),
    _page("private", "bob", True),
    _page("private", None, False),
    _page("public", None, True),
    _page("public", "bob", True),
    _json_api,
]


def test_sixteen_clients_for_thirty_seconds_get_only_right_answers(service: Service) -> None:
    wrong: list[str] = []
    counts = [0] * CLIENTS
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS

    def client(number: int) -> None:
        rng = random.Random(number)
        while time.monotonic() < stop:
            check = rng.choice(CHECKS)
            try:
                problem = check(service, rng)
            except Exception as error:  # every failure is a wrong answer
                problem = f"{type(error).__name__}: {error}"
            with lock:
                counts[number] += 1
                if problem is not None:
                    wrong.append(problem)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 120)
    assert not any(thread.is_alive() for thread in threads)
    assert wrong == [], f"{len(wrong)} wrong answers of {sum(counts)}: {wrong[:5]}"
    assert all(count > 0 for count in counts)
    # Enough requests that caches, proofs and refusals were all exercised many times.
    assert sum(counts) >= 200, counts
    assert service.process.poll() is None, "gunicorn died under load"


def test_workers_answer_only_the_hosts_allowed(service: Service) -> None:
    url = f"{service.url}{service.registry.host}/team/public/simple/gun-public/"
    for host, status in (("pkgs.example.com", 200), ("attacker.example", 421)):
        request = urllib.request.Request(url, headers={"Host": host, "Accept": JSON_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answered = response.status
        except urllib.error.HTTPError as error:
            answered = error.code
        assert answered == status, host
