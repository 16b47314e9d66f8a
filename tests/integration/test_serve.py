"""The simple index served over HTTP, read by urllib, pip and uv, over a registry and a layout."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from support.http import get, serving
from support.registry_harness import RunningRegistry
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.core.dists import Distribution, read_distribution
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.serve.app import make_app
from setuptools_ghcr.serve.server import IndexServer
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.usecases.publish import PushOptions, publish

pytestmark = pytest.mark.integration

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
CREATED = "2026-01-02T03:04:05Z"


@dataclass
class Served:
    """A published target and an index server over it."""

    kind: str
    target: str
    factory: StoreFactory
    server: IndexServer
    dists: dict[str, Distribution]
    registry: RunningRegistry | None
    work: Path

    @property
    def url(self) -> str:
        return self.server.url

    def blob_path(self, hex_digest: str, project: str) -> Path:
        """Where the target keeps a blob's bytes on disk."""
        if self.registry is not None:
            return self.registry.blob_data_path(hex_digest)
        return Path(self.target[4:]) / project.replace("-", "_") / "blobs/sha256" / hex_digest


def _build(work: Path) -> list[Distribution]:
    work.mkdir(parents=True, exist_ok=True)
    files = [
        make_wheel(
            work,
            "srv-dep",
            "0.3",
            module_code="WORD = 'dependency'\n",
        ),
        make_wheel(
            work,
            "srv-demo",
            "1.0",
            requires_python=">=3.8",
            module_code="VALUE = 10\n",
        ),
        make_sdist(work, "srv-demo", "1.0", requires_python=">=3.8"),
        make_wheel(
            work,
            "srv-demo",
            "1.1",
            requires_python=">=3.8",
            requires_dist=["srv-dep>=0.2"],
            module_code="from srv_dep import WORD\nVALUE = 11\n",
        ),
        # Never installable here: pip must skip it for Requires-Python.
        make_wheel(work, "srv-demo", "2.0", requires_python="<3", module_code="VALUE = 20\n"),
    ]
    return [read_distribution(path) for path in files]


@pytest.fixture(scope="module", params=["registry", "layout"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    work = tmp_path_factory.mktemp(f"serve-{request.param}")
    registry: RunningRegistry | None = None
    if request.param == "registry":
        registry = request.getfixturevalue("plain_registry")
        assert registry is not None
        target = f"{registry.host}/serve{os.getpid()}"
    else:
        target = f"oci:{work / 'store'}"
    factory = StoreFactory(parse_target(target), environ={}, home=work)
    dists = _build(work / "dist")
    publish(factory.open, dists, PushOptions(created=CREATED))
    try:
        with serving(make_app(factory)) as server:
            yield Served(
                request.param,
                target,
                factory,
                server,
                {d.filename: d for d in dists},
                registry,
                work,
            )
    finally:
        factory.close()


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def _project_json(served: Served, project: str) -> dict[str, Any]:
    status, headers, body = get(served.url + f"{project}/", PIP_ACCEPT)
    assert status == 200
    assert headers["content-type"] == JSON_TYPE
    value: dict[str, Any] = json.loads(body)
    return value


def test_json_page_describes_every_file(served: Served) -> None:
    page = _project_json(served, "srv-demo")
    assert page["meta"] == {"api-version": "1.1"}
    assert page["name"] == "srv-demo"
    assert page["versions"] == ["1.0", "1.1", "2.0"]
    expected = {name: d for name, d in served.dists.items() if d.project == "srv-demo"}
    assert {item["filename"] for item in page["files"]} == set(expected)
    for item in page["files"]:
        dist = expected[item["filename"]]
        assert item["hashes"] == {"sha256": dist.sha256.hex}
        assert item["size"] == dist.size
        assert item["requires-python"] == dist.requires_python
        assert item["core-metadata"] == {"sha256": hashlib.sha256(dist.metadata).hexdigest()}
        assert item["upload-time"] == CREATED
        assert item["yanked"] is False


def test_html_page_matches_the_json_page(served: Served) -> None:
    page = _project_json(served, "srv-demo")
    status, headers, body = get(served.url + "srv-demo/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    parser = _Anchors()
    parser.feed(body.decode())
    by_href = {a["href"]: a for a in parser.anchors}
    for item in page["files"]:
        anchor = by_href[f"{item['url']}#sha256={item['hashes']['sha256']}"]
        assert anchor["data-requires-python"] == item["requires-python"]
        assert anchor["data-core-metadata"] == f"sha256={item['core-metadata']['sha256']}"
    assert b'data-requires-python="&gt;=3.8"' in body


def test_files_and_metadata_hash_to_what_the_page_says(served: Served) -> None:
    page_url = served.url + "srv-demo/"
    for item in _project_json(served, "srv-demo")["files"]:
        file_url = urljoin(page_url, item["url"])
        status, headers, body = get(file_url)
        assert status == 200
        assert int(headers["content-length"]) == len(body) == item["size"]
        assert hashlib.sha256(body).hexdigest() == item["hashes"]["sha256"]
        status, _, metadata = get(file_url + ".metadata")
        assert status == 200
        assert hashlib.sha256(metadata).hexdigest() == item["core-metadata"]["sha256"]
        assert metadata == served.dists[item["filename"]].metadata


def test_names_redirect_and_unknown_projects_are_404(served: Served) -> None:
    # urllib follows the redirect: the answer is the normalized page.
    status, _, body = get(served.url + "SRV_Demo/", PIP_ACCEPT)
    assert status == 200
    assert json.loads(body)["name"] == "srv-demo"
    status, _, body = get(served.url + "no-such-project/")
    assert status == 404
    assert body == b"no project no-such-project in this index\n"


def test_project_list(served: Served) -> None:
    status, _, body = get(served.url, JSON_TYPE)
    assert status == 200
    names = {item["name"] for item in json.loads(body)["projects"]}
    assert names == {"srv-demo", "srv-dep"}


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def _imports(python: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)


def test_pip_installs_from_the_index(served: Served, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--index-url",
            served.url,
            "srv-demo",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # 2.0 needs Python < 3; 1.1 pulls its dependency from the same index.
    check = _imports(python, "import srv_demo, srv_dep; print(srv_demo.VALUE, srv_dep.WORD)")
    assert check.stdout.split() == ["11", "dependency"], check.stderr


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    assert Path(found).exists(), "uv (a test extra) is not installed"
    return found


def test_uv_installs_from_the_index(served: Served, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    result = subprocess.run(
        [
            _uv(),
            "pip",
            "install",
            "--no-cache",
            "--index-url",
            served.url,
            "--python",
            str(python),
            "srv-demo==1.0",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "UV_NO_CONFIG": "1"},
    )
    assert result.returncode == 0, result.stderr
    check = _imports(python, "import srv_demo; print(srv_demo.VALUE)")
    assert check.stdout.strip() == "10", check.stderr


def test_a_corrupted_blob_is_never_installed(served: Served, tmp_path: Path) -> None:
    # Bigger than one read chunk, so the server streams it before the damage shows.
    wheel = read_distribution(
        make_wheel(
            tmp_path,
            "srv-broken",
            "1.0",
            module_code="VALUE = 'intact'\n",
            extra_files={"srv_broken/data.bin": os.urandom(6 << 20)},
        )
    )
    publish(served.factory.open, [wheel], PushOptions(created=CREATED))
    blob = served.blob_path(wheel.sha256.hex, "srv-broken")
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    python = _venv(tmp_path / "venv")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--index-url",
            served.url,
            "srv-broken",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert _imports(python, "import srv_broken").returncode != 0
    # Served directly, the body stops short of what the headers promise.
    page = _project_json(served, "srv-broken")
    (item,) = page["files"]
    url = urljoin(served.url + "srv-broken/", item["url"])
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == wheel.size
        with pytest.raises(http.client.IncompleteRead):
            response.read()


def test_command_line_serves_until_interrupted(tmp_path: Path) -> None:
    target = f"oci:{tmp_path / 'store'}"
    factory = StoreFactory(parse_target(target), environ={}, home=tmp_path)
    dep = read_distribution(make_wheel(tmp_path, "srv-dep", "0.3"))
    publish(factory.open, [dep], PushOptions(created=CREATED))
    process = subprocess.Popen(
        [sys.executable, "-m", "setuptools_ghcr", "serve", "--repository", target, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith(f"Serving {target} at http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        assert url.endswith("/simple/")
        status, _, body = get(url + "srv-dep/", PIP_ACCEPT)
        assert status == 200
        assert json.loads(body)["versions"] == ["0.3"]
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert '"GET /simple/srv-dep/ HTTP/1.1" 200' in rest
    assert "Traceback" not in rest


def test_server_reads_with_its_own_credentials(
    htpasswd_registry: RunningRegistry, tmp_path: Path
) -> None:
    target = f"{htpasswd_registry.host}/serve-auth{os.getpid()}"
    factory = StoreFactory(
        parse_target(target),
        username=htpasswd_registry.username,
        password=htpasswd_registry.password,
        environ={},
        home=tmp_path,
    )
    anonymous = StoreFactory(parse_target(target), environ={}, home=tmp_path)
    wheel = read_distribution(make_wheel(tmp_path, "srv-private", "1.0"))
    publish(factory.open, [wheel], PushOptions(created=CREATED))
    try:
        with (
            serving(make_app(factory)) as with_credentials,
            serving(make_app(anonymous)) as without,
        ):
            page = json.loads(get(with_credentials.url + "srv-private/", PIP_ACCEPT)[2])
            (item,) = page["files"]
            status, _, body = get(urljoin(with_credentials.url + "srv-private/", item["url"]))
            assert status == 200
            assert hashlib.sha256(body).hexdigest() == wheel.sha256.hex
            # Without credentials the registry refuses: 401 with a Basic challenge (so pip
            # and uv ask their keyring or prompt), one line, no secret.
            status, headers, body = get(without.url + "srv-private/", PIP_ACCEPT)
            assert status == 401
            assert headers["www-authenticate"].startswith("Basic ")
            assert body.count(b"\n") == 1
            assert str(htpasswd_registry.password).encode() not in body
    finally:
        factory.close()
        anonymous.close()
