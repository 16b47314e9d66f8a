"""Secrets never leave: every command of a session, run with ``--verbose`` against registries
with Basic and Bearer auth, succeeding and failing, is searched for the password, its Basic
encoding and every token the token service issued.

``--verbose`` turns on the ``setuptools_ghcr.http`` and ``urllib3`` debug logs and prints the
traceback of a failure, so the search covers logs and exception messages too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from support.cli import Cli, Result
from support.hostile_registry import HostileRegistry, OtherHost, publish_version, redirect
from support.registry_harness import SECRET_MARKER, RunningRegistry
from support.wheels import make_sdist, make_wheel

pytestmark = pytest.mark.integration

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
#: A credential header value that was not masked.
_UNMASKED = re.compile(r"(?i)\b(bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{6,}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}")


@pytest.fixture
def issued_tokens(token_registry: RunningRegistry) -> Iterator[list[str]]:
    """Every token the token service hands out during the test."""
    server = token_registry.token_server
    assert server is not None
    tokens: list[str] = []
    original = server.issue

    def recording(access: list[dict[str, object]], subject: str) -> str:
        token = original(access, subject)
        tokens.append(token)
        return token

    server.issue = recording  # type: ignore[method-assign]
    try:
        yield tokens
    finally:
        server.issue = original  # type: ignore[method-assign]


def _basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def _serve_once(cli: Cli, target: str, credentials: list[str], log: Path) -> str:
    """Run ``serve --verbose``, fetch a page, a file and its metadata, stop it; its output."""
    with log.open("w") as stderr:
        process = cli.start(
            ["serve", "--verbose", "--repository", target, *credentials, "--port", "0"], stderr
        )
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            match = re.search(r"Serving \S+ at (http://\S+/simple/)", log.read_text())
            url = match.group(1) if match else None
            time.sleep(0.05)
        assert url is not None, log.read_text()
        page_url = url + "leaky-pkg/"
        request = urllib.request.Request(page_url, headers={"Accept": JSON_TYPE})
        with urllib.request.urlopen(request, timeout=30) as response:
            page = json.loads(response.read())
        for item in page["files"]:
            for suffix in ("", ".metadata"):
                with urllib.request.urlopen(urljoin(page_url, item["url"]) + suffix) as answer:
                    assert answer.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    return log.read_text()


@pytest.mark.parametrize("flavour", ["htpasswd", "token"])
def test_no_secret_in_any_output_of_a_verbose_session(
    flavour: str,
    request: pytest.FixtureRequest,
    issued_tokens: list[str],
    cli: Cli,
    tmp_path: Path,
) -> None:
    registry: RunningRegistry = request.getfixturevalue(f"{flavour}_registry")
    assert registry.username is not None and registry.password is not None
    user, password = registry.username, registry.password
    wrong = f"{SECRET_MARKER}wrong-{flavour}"
    target = f"{registry.host}/leak{flavour}"
    given = ["--username", user, "--password", password]
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = make_wheel(dist, "leaky-pkg", "1.0")
    sdist = make_sdist(dist, "leaky-pkg", "1.0")
    other = tmp_path / "other"
    other.mkdir()
    clash = make_wheel(other, "leaky-pkg", "1.0", module_code="CHANGED = True\n")
    (cli.home / ".docker").mkdir()
    (cli.home / ".docker" / "config.json").write_text(
        json.dumps({"auths": {registry.host: {"auth": _basic(user, password)}}})
    )
    environment_login = {"SETUPTOOLS_GHCR_USERNAME": user, "SETUPTOOLS_GHCR_PASSWORD": password}
    v = "--verbose"
    out = str(cli.cwd / "out")

    expected_status = [
        (cli.run("push", v, "--repository", target, *given, str(wheel), str(sdist)), 0),
        (cli.run("push", v, "--repository", target, str(wheel), env=environment_login), 0),
        (cli.run("push", v, "--repository", target, *given, str(clash)), 1),
        (cli.run("push", v, "--repository", target, "-u", user, "-p", wrong, str(clash)), 1),
        (cli.run("inspect", v, "--json", "--repository", target, *given, "leaky-pkg"), 0),
        (cli.run("download", v, "--repository", target, "-d", out, "leaky-pkg"), 0),  # docker
        (cli.run("download", v, "--repository", target, *given, "leaky-pkg==9"), 1),
        (
            cli.run("download", v, "--repository", target, "-u", user, "-p", wrong, "leaky-pkg"),
            1 if flavour == "htpasswd" else 0,  # a token registry lets anyone read
        ),
        (
            cli.run(
                "install",
                v,
                "--repository",
                target,
                *given,
                "--no-cache-dir",
                "leaky-pkg",
                "--",
                "--no-index",
                "--no-deps",
                "--target",
                str(cli.cwd / "site"),
                "--disable-pip-version-check",
            ),
            0,
        ),
    ]
    for result, status in expected_status:
        assert result.returncode == status, str(result)
    served = _serve_once(cli, target, given, tmp_path / "serve.log")

    # What the commands printed (not their arguments, which hold the password on purpose).
    everything = "\n".join([*(r.stdout + r.stderr for r in cli.history), served])
    # The search means something only if the logs really are verbose.
    assert "DEBUG setuptools_ghcr.http: GET http://" in everything
    assert "DEBUG setuptools_ghcr.http: PUT http://" in everything
    assert "Traceback" in everything, "no failure's traceback was logged"
    secrets = [password, wrong, _basic(user, password), _basic(user, wrong), *issued_tokens]
    if flavour == "token":
        assert issued_tokens, "the token service was not used"
    for secret in secrets:
        assert secret not in everything
    assert SECRET_MARKER not in everything
    assert _UNMASKED.search(everything) is None, _UNMASKED.search(everything)
    assert _JWT.search(everything) is None
    for written in [*cli.cache.rglob("*"), *(cli.cwd / "out").rglob("*")]:
        if written.is_file():
            assert SECRET_MARKER.encode() not in written.read_bytes(), written


def test_a_registry_echoing_credentials_cannot_make_them_print(
    hostile: HostileRegistry, cli: Cli, tmp_path: Path
) -> None:
    password = f"{SECRET_MARKER}echoed"
    hostile.basic = ("victim", password)
    publish_version(hostile, "ns/leaky_pkg", [make_wheel(tmp_path, "leaky-pkg", "1.0")])

    def echo(handler: object, _match: object) -> None:
        from http.server import BaseHTTPRequestHandler

        assert isinstance(handler, BaseHTTPRequestHandler)
        given = handler.headers.get("Authorization", "")
        body = json.dumps(
            {"errors": [{"code": "DENIED", "message": f"{given} / {given.split()[-1]}"}]}
        ).encode()
        handler.send_response(400)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    hostile.route("GET", r"/blobs/", echo)

    result: Result = cli.run(
        "download",
        "--verbose",
        "--repository",
        f"{hostile.host}/ns",
        "--username",
        "victim",
        "--password",
        password,
        "leaky-pkg",
        env={"SETUPTOOLS_GHCR_RETRIES": "0"},
    )

    assert result.returncode == 1, str(result)
    assert "answered 400" in result.stderr
    for secret in (password, SECRET_MARKER, _basic("victim", password)):
        assert secret not in result.stderr + result.stdout
    assert _UNMASKED.search(result.stderr) is None


def test_signed_blob_urls_stay_out_of_verbose_logs(
    hostile: HostileRegistry, other_host: OtherHost, cli: Cli, tmp_path: Path
) -> None:
    """A CDN redirect carries a signature that works like a password for that blob."""
    wheel = make_wheel(tmp_path, "leaky-pkg", "1.0")
    publish_version(hostile, "ns/leaky_pkg", [wheel])
    signature = f"{SECRET_MARKER}signature"
    signed = (
        f"{other_host.url}/blob?X-Amz-Credential=AKIA%2F{SECRET_MARKER}&X-Amz-Signature={signature}"
    )
    hostile.route(
        "GET", r"/blobs/sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest(), redirect(signed)
    )
    other_host.body = wheel.read_bytes()

    result = cli.run(
        "download", "--verbose", "--repository", f"{hostile.host}/ns", "--no-deps", "leaky-pkg"
    )

    assert result.returncode == 0, str(result)
    assert other_host.requests, "the blob did not come through the signed URL"
    assert "DEBUG setuptools_ghcr.http: GET http://localhost" in result.stderr
    assert SECRET_MARKER not in result.stderr + result.stdout
