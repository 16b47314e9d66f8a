"""Routes, callers, Host checks and settings of the index service: pure parts, table-driven."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from setuptools_ghcr.core.targets import RegistryTarget, parse_target
from setuptools_ghcr.errors import ConfigError, InvalidReferenceError
from setuptools_ghcr.serve.access import AccessLedger
from setuptools_ghcr.serve.callers import ANONYMOUS, Caller, ClientPool, caller_of
from setuptools_ghcr.serve.hosts import HostPolicy, split_host
from setuptools_ghcr.serve.routes import Router, parse_registry_host
from setuptools_ghcr.serve.server import escape_log
from setuptools_ghcr.serve.settings import parse_fallback_index, serve_settings
from setuptools_ghcr.storage.registry.credentials import Credentials

SECRET = b"k" * 32


@pytest.mark.parametrize(
    ("path", "prefix", "target", "rest"),
    [
        ("/simple/", "", "fixed", ("simple", "")),
        ("/ghcr.io/acme/simple/demo/", "/ghcr.io/acme", "ghcr.io/acme", ("simple", "demo", "")),
        (
            "/ghcr.io/acme/tools/simple/",
            "/ghcr.io/acme/tools",
            "ghcr.io/acme/tools",
            ("simple", ""),
        ),
        (
            "/GHCR.IO/acme/files/demo/1.0/demo-1.0.tar.gz",
            "/ghcr.io/acme",
            "ghcr.io/acme",
            ("files", "demo", "1.0", "demo-1.0.tar.gz"),
        ),
        ("/ghcr.io/acme/", "/ghcr.io/acme", "ghcr.io/acme", ("",)),
        ("/ghcr.io/acme", "/ghcr.io/acme", "ghcr.io/acme", ()),
        ("/ghcr.io/acme/legacy/", "/ghcr.io/acme", "ghcr.io/acme", ("legacy", "")),
        ("/ghcr.io/acme/pypi/demo/json", "/ghcr.io/acme", "ghcr.io/acme", ("pypi", "demo", "json")),
        (
            "/127.0.0.1:5000/team/simple/",
            "/127.0.0.1:5000/team",
            "127.0.0.1:5000/team",
            ("simple", ""),
        ),
        ("/127.0.0.1:5000/simple/", "/127.0.0.1:5000", "127.0.0.1:5000", ("simple", "")),
    ],
)
def test_routes(path: str, prefix: str, target: str, rest: tuple[str, ...]) -> None:
    router = Router(parse_target("oci:/srv/fixed"), ["ghcr.io", "127.0.0.1:5000"])
    route = router.route(path)
    assert route is not None
    assert route.mount.prefix == prefix
    assert route.rest == rest
    if target == "fixed":
        assert not route.mount.passthrough
    else:
        assert route.mount.passthrough
        assert isinstance(route.mount.target, RegistryTarget)
        assert str(route.mount.target) == target


@pytest.mark.parametrize(
    "path",
    [
        "/evil.example.com/acme/simple/demo/",  # not listed
        "/127.0.0.1:5001/team/simple/",  # another port of a listed host
        "/ghcr.io/Acme/simple/",  # not a valid namespace
        "/ghcr.io/a..b/simple/",
    ],
)
def test_paths_no_mount_serves(path: str) -> None:
    router = Router(parse_target("oci:/srv/fixed"), ["ghcr.io", "127.0.0.1:5000"])
    assert router.route(path) is None


def test_registries_named_insecure_are_read_over_http() -> None:
    router = Router(
        None, ["registry.lan:5000", "ghcr.io"], has_fixed=False, insecure=["registry.lan:5000"]
    )
    insecure = router.route("/registry.lan:5000/team/simple/")
    secure = router.route("/ghcr.io/acme/simple/")
    assert insecure is not None and secure is not None
    assert isinstance(insecure.mount.target, RegistryTarget)
    assert insecure.mount.target.scheme == "http"
    assert isinstance(secure.mount.target, RegistryTarget)
    assert secure.mount.target.scheme == "https"


def test_without_a_fixed_target_only_listed_registries_route() -> None:
    router = Router(None, ["ghcr.io"], has_fixed=False)
    assert router.route("/simple/") is None
    assert router.route("/ghcr.io/acme/simple/") is not None
    assert router.unlisted_host("/quay.io/acme/simple/") == "quay.io"
    assert router.unlisted_host("/ghcr.io/acme/simple/") is None


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("ghcr.io", "ghcr.io"),
        ("GHCR.io", "ghcr.io"),
        ("https://ghcr.io/", "ghcr.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("[::1]:5000", "[::1]:5000"),
    ],
)
def test_registry_hosts(text: str, host: str) -> None:
    assert parse_registry_host(text) == host


@pytest.mark.parametrize("text", ["", "ghcr.io/acme", "user@ghcr.io", "a b", "ghcr.io:x"])
def test_bad_registry_hosts(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_registry_host(text)


def _basic(pair: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(pair.encode()).decode()}


def test_callers_are_read_from_the_authorization_header() -> None:
    assert caller_of({}, SECRET) == Caller(None, ANONYMOUS)
    alice = caller_of(_basic("alice:tok-1"), SECRET)
    assert alice.credentials == Credentials("alice", "tok-1")
    assert not alice.credentials.bearer
    bearer = caller_of({"HTTP_AUTHORIZATION": "Bearer abc.def"}, SECRET)
    assert bearer.credentials is not None and bearer.credentials.bearer
    assert bearer.credentials.authorization() == "Bearer abc.def"
    # Unusable credentials are no credentials: the caller is anonymous.
    assert caller_of(_basic("tok-2:"), SECRET).anonymous
    assert caller_of({"HTTP_AUTHORIZATION": "Digest abc"}, SECRET).anonymous


def test_caller_keys_tell_credentials_apart_and_hide_them() -> None:
    keys = {
        caller_of(_basic(pair), SECRET).key for pair in ("alice:tok-1", "alice:tok-2", "bob:tok-1")
    }
    keys.add(caller_of({"HTTP_AUTHORIZATION": "Bearer tok-1"}, SECRET).key)
    assert len(keys) == 4 and ANONYMOUS not in keys
    assert all("tok" not in key for key in keys)
    # Another process (another secret) gives other keys.
    assert caller_of(_basic("alice:tok-1"), b"x" * 32).key not in keys
    assert "tok-1" not in repr(caller_of(_basic("alice:tok-1"), SECRET))


class _Client:
    def __init__(self, host: str, credentials: Credentials | None) -> None:
        self.host = host
        self.credentials = credentials
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_client_pool_keeps_one_client_per_caller_and_drops_idle_ones() -> None:
    now = [0.0]
    made: list[_Client] = []

    def make(host: str, credentials: Credentials | None) -> _Client:
        made.append(_Client(host, credentials))
        return made[-1]

    pool = ClientPool(make, max_clients=2, idle=60, clock=lambda: now[0])  # type: ignore[arg-type]
    alice = caller_of(_basic("alice:a"), SECRET)
    bob = caller_of(_basic("bob:b"), SECRET)
    assert pool.client("r", alice) is pool.client("r", alice)
    assert pool.client("r", bob) is not pool.client("r", alice)
    assert pool.client("other", alice) is made[-1]
    # bob was the least recently used (alice was asked for after him): he went.
    assert len(pool) == 2 and made[1].closed and not made[0].closed
    now[0] = 100.0
    pool.client("r", Caller(None))
    assert len(pool) == 1 and all(client.closed for client in made[:3])
    pool.close()
    assert made[-1].closed


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("localhost:8000", ("localhost", 8000)),
        ("Example.COM.", ("example.com", None)),
        ("[::1]:80", ("::1", 80)),
        ("[::1]", ("::1", None)),
        ("::1", None),
        ("a b", None),
        ("x:99999", None),
        ("user@host", None),
    ],
)
def test_host_values(value: str, parsed: tuple[str, int | None] | None) -> None:
    assert split_host(value) == parsed


@pytest.mark.parametrize(
    ("allowed", "host", "answered"),
    [
        ((), "localhost:8000", True),
        ((), "127.0.0.1", True),
        ((), "127.3.4.5:80", True),
        ((), "[::1]:8000", True),
        ((), "attacker.example:8000", False),
        ((), "10.0.0.1", False),
        ((), "bad host", False),
        (("pkgs.example.com",), "pkgs.example.com:8443", True),
        (("pkgs.example.com:443",), "pkgs.example.com:443", True),
        (("pkgs.example.com:443",), "pkgs.example.com:80", False),
        (("pkgs.example.com:443",), "pkgs.example.com", False),
        (("*",), "anything.example", True),
    ],
)
def test_host_policy(allowed: tuple[str, ...], host: str, answered: bool) -> None:
    assert HostPolicy.parse(allowed).allows(host) is answered


def test_the_bound_address_is_answered() -> None:
    policy = HostPolicy().with_address("192.0.2.7")
    assert policy.allows("192.0.2.7:8000")
    assert HostPolicy().with_address("0.0.0.0") == HostPolicy()
    assert HostPolicy().allows(None)  # HTTP/1.0 without Host


def test_bad_allowed_hosts_are_refused() -> None:
    with pytest.raises(ConfigError, match="--allowed-host"):
        HostPolicy.parse(["a/b"])


def test_access_ledger_remembers_answers_for_the_lifetime() -> None:
    now = [0.0]
    ledger = AccessLedger(30, lambda: now[0], max_entries=2)
    assert ledger.answer("r", "alice") is None
    ledger.record("r", "alice")
    ledger.record("gone", "alice", found=False)
    assert ledger.proved("r", "alice") and not ledger.proved("r", "bob")
    assert ledger.answer("gone", "alice") is False
    now[0] = 30.0
    assert ledger.answer("r", "alice") is None
    ledger.record("a", "x")
    ledger.record("b", "x")
    ledger.record("c", "x")  # the oldest goes
    assert ledger.answer("a", "x") is None and ledger.proved("c", "x")
    ledger.forget("c")
    assert ledger.answer("c", "x") is None
    never = AccessLedger(0, lambda: 0.0)
    never.record("r", "alice")
    assert never.answer("r", "alice") is None


def test_serve_settings_from_options_and_environment(tmp_path: Path) -> None:
    settings = serve_settings(
        {
            "SETUPTOOLS_GHCR_SERVE_REGISTRIES": "ghcr.io, 127.0.0.1:5000,,GHCR.IO",
            "SETUPTOOLS_GHCR_ALLOWED_HOSTS": "pkgs.example.com",
            "SETUPTOOLS_GHCR_FALLBACK_INDEX": "https://pypi.org/simple",
            "SETUPTOOLS_GHCR_CACHE_DIR": str(tmp_path),
        },
        registries=["quay.io"],
        allowed_hosts=["other.example.com:443"],
    )
    assert settings.registries == ("quay.io", "ghcr.io", "127.0.0.1:5000")
    assert settings.fallback_index == "https://pypi.org/simple/"
    assert settings.hosts.allows("pkgs.example.com") and settings.hosts.allows(
        "other.example.com:443"
    )
    assert settings.cache_dir == tmp_path
    with pytest.raises(ConfigError, match="SETUPTOOLS_GHCR_SERVE_REGISTRIES"):
        serve_settings({"SETUPTOOLS_GHCR_SERVE_REGISTRIES": "ghcr.io/acme"})


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/simple", "http"),
        ("http://pypi.example.com/simple/", "https"),
        ("https://user:secret@pypi.example.com/simple/", "credentials"),
        ("https://pypi.example.com/simple/?x=1", "query"),
    ],
)
def test_bad_fallback_indexes(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        parse_fallback_index(url)
    assert "secret" not in str(caught.value)


def test_fallback_over_http_on_loopback() -> None:
    assert parse_fallback_index("http://127.0.0.1:3141/simple") == "http://127.0.0.1:3141/simple/"


def test_log_lines_escape_control_characters() -> None:
    assert escape_log('GET /\x1b[31mred\r\nFAKE 200 "') == 'GET /\\x1b[31mred\\r\\nFAKE 200 "'
