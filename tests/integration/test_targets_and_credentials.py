"""Where requests and credentials go: plain http off loopback only when asked, credentials
only to a registry the user named, secrets masked without mangling the message.

Host names other than loopback ones resolve to 127.0.0.1 through an in-process resolver
(``loopback_names``): no test sends anything off loopback.
"""

from __future__ import annotations

import base64
import io
import secrets
from pathlib import Path

import pytest
from support.hostile_registry import HostileRegistry
from support.loopback_names import names_on_loopback
from support.registry_harness import RunningRegistry
from support.stores import publish_files
from support.wheels import make_wheel

from setuptools_ghcr.cli import main
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.storage.factory import StoreFactory

pytestmark = pytest.mark.integration

LAN_NAME = "registry.lan.test"


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment of the user's own: no credentials, stores or targets of the machine."""
    import os

    for name in list(os.environ):
        if name.startswith(("SETUPTOOLS_GHCR_", "DOCKER_", "XDG_", "REGISTRY_AUTH", "GITHUB_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    monkeypatch.setenv("SETUPTOOLS_GHCR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SETUPTOOLS_GHCR_RETRIES", "0")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_plain_http_off_loopback_only_with_insecure_registry(
    plain_registry: RunningRegistry,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = plain_registry.port
    namespace = f"insecure{secrets.token_hex(4)}"
    wheel = make_wheel(clean_env, "lan-pkg", "1.0")
    target = f"http://{LAN_NAME}:{port}/{namespace}"
    with names_on_loopback(LAN_NAME):
        # Refused, not silently turned into https.
        assert main(["push", "-r", target, str(wheel)]) == 1
        err = capsys.readouterr().err
        assert f"plain http to {LAN_NAME}:{port} is refused" in err
        assert f"--insecure-registry {LAN_NAME}:{port}" in err
        # Named as insecure, it is spoken to over plain http.
        pushed = main(
            ["push", "-r", target, "--insecure-registry", f"{LAN_NAME}:{port}", str(wheel)]
        )
        captured = capsys.readouterr()
        assert pushed == 0, captured.err
        assert (
            f"uploaded: {wheel.name} -> {LAN_NAME}:{port}/{namespace}/lan_pkg:1.0" in captured.out
        )
        # The variable does the same, for every port of a host named without one.
        monkeypatch.setenv("SETUPTOOLS_GHCR_INSECURE_REGISTRIES", f"other.test,{LAN_NAME}")
        dest = clean_env / "got"
        assert (
            main(["download", "-r", f"{LAN_NAME}:{port}/{namespace}", "-d", str(dest), "lan-pkg"])
            == 0
        )
        assert (dest / wheel.name).read_bytes() == wheel.read_bytes()
    # The registry really was the one on loopback.
    store = StoreFactory(parse_target(f"{plain_registry.host}/{namespace}"), environ={})
    assert store.open("lan-pkg").list_tags() == ["1.0"]


def _published_on(registry: HostileRegistry, tmp_path: Path) -> None:
    """demo-pkg 1.0 on ``registry``, published with the credentials it wants."""
    folder = tmp_path / "made"
    folder.mkdir()
    user, password = registry.basic or ("", "")
    factory = StoreFactory(
        parse_target(f"{registry.host}/ns"), username=user, password=password, environ={}
    )
    publish_files(factory, make_wheel(folder, "demo-pkg", "1.0"))
    factory.close()


def _authorizations(registry: HostileRegistry) -> list[str]:
    return [
        seen.headers["authorization"]
        for seen in registry.requests
        if "authorization" in seen.headers
    ]


@pytest.mark.parametrize("verb", ["download", "install", "inspect"])
def test_credentials_do_not_follow_a_checkout_to_its_registry(
    verb: str,
    htpasswd_registry: RunningRegistry,
    clean_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert htpasswd_registry.username and htpasswd_registry.password
    # The user's credentials, for their own registry, in the environment of a CI job...
    monkeypatch.setenv("SETUPTOOLS_GHCR_USERNAME", htpasswd_registry.username)
    monkeypatch.setenv("SETUPTOOLS_GHCR_PASSWORD", htpasswd_registry.password)
    monkeypatch.setenv("SETUPTOOLS_GHCR_REPOSITORY", f"{htpasswd_registry.host}/mine")
    # ...and a checkout whose pyproject.toml names another registry, which asks for Basic
    # credentials and records whatever it is sent.
    hostile = HostileRegistry(basic=("collector", "anything"))
    try:
        _published_on(hostile, tmp_path)
        seen_before = len(hostile.requests)
        (clean_env / "pyproject.toml").write_text(
            f'[tool.setuptools-ghcr]\nrepository = "{hostile.host}/ns"\n'
        )
        args = {"download": ["-d", "out"], "install": [], "inspect": []}[verb]
        status = main([verb, *args, "demo-pkg"])
        err = capsys.readouterr().err
        assert status == 1
        hits = hostile.requests[seen_before:]
        assert hits, "the command never reached the checkout's registry"
        assert all("authorization" not in seen.headers for seen in hits), err
        assert htpasswd_registry.password not in err
        assert "are not sent to" in caplog.text and "SETUPTOOLS_GHCR_REGISTRY" in caplog.text
        assert f"using {hostile.host}/ns (from [tool.setuptools-ghcr] repository" in err

        # Named by the user, the same registry gets them.
        monkeypatch.setenv("SETUPTOOLS_GHCR_REGISTRY", hostile.host)
        main(["inspect", "demo-pkg"])
        capsys.readouterr()
        expected = base64.b64encode(
            f"{htpasswd_registry.username}:{htpasswd_registry.password}".encode()
        ).decode()
        assert f"Basic {expected}" in _authorizations(hostile)
    finally:
        hostile.stop()


def test_password_stdin_and_whole_value_masking(
    htpasswd_registry: RunningRegistry,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert htpasswd_registry.username and htpasswd_registry.password
    wheel = make_wheel(clean_env, "stdin-pkg", "1.0")
    target = f"{htpasswd_registry.host}/stdin{secrets.token_hex(4)}"
    monkeypatch.setattr("sys.stdin", io.StringIO(htpasswd_registry.password + "\n"))
    args = ["push", "-r", target, "-u", htpasswd_registry.username, "--password-stdin"]
    assert main([*args, str(wheel)]) == 0, capsys.readouterr().err
    assert "uploaded:" in capsys.readouterr().out

    # A wrong password that is also part of words in the message: only the value is masked.
    status = main(["inspect", "-r", target, "-u", htpasswd_registry.username, "-p", "pass", "x"])
    err = capsys.readouterr().err
    assert status == 1
    assert "--password" in err and "***word" not in err

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["inspect", "-r", target, "--password-stdin", "x"]) == 1
    assert "stdin held no password" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["inspect", "-r", target, "-p", "x", "--password-stdin", "x"])
    assert stopped.value.code == 2
