"""Pure parts of auth: challenges, credential discovery, tokens, redaction."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from setuptools_ghcr.errors import AuthenticationError, ConfigError
from setuptools_ghcr.storage.registry.challenge import (
    Challenge,
    Token,
    TokenCache,
    TokenKey,
    mount_scopes,
    parse_challenges,
    parse_token_response,
    pull_scope,
    push_scope,
)
from setuptools_ghcr.storage.registry.credentials import Credentials, find_credentials
from setuptools_ghcr.storage.registry.redact import Redactor, redact_url

# ----------------------------------------------------------------------------- challenges


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",'
            'scope="repository:acme/tool:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://ghcr.io/token",
                        "service": "ghcr.io",
                        "scope": "repository:acme/tool:pull",
                    },
                )
            ],
        ),
        (
            'Bearer realm="https://auth.example/token", service="reg", '
            'scope="repository:a/b:pull,push", error="insufficient_scope"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.example/token",
                        "service": "reg",
                        "scope": "repository:a/b:pull,push",
                        "error": "insufficient_scope",
                    },
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
        ("basic REALM=plain", [Challenge("basic", {"realm": "plain"})]),
        (
            'Basic realm="a, b", Bearer realm="https://t/x",scope="s1 s2"',
            [
                Challenge("basic", {"realm": "a, b"}),
                Challenge("bearer", {"realm": "https://t/x", "scope": "s1 s2"}),
            ],
        ),
        (
            r'Bearer realm="say \"hi\"\\", service=x',
            [Challenge("bearer", {"realm": 'say "hi"\\', "service": "x"})],
        ),
        (
            "Negotiate abc==, Basic realm=r",
            [Challenge("negotiate"), Challenge("basic", {"realm": "r"})],
        ),
        ('Bearer realm="unterminated', [Challenge("bearer", {"realm": "unterminated"})]),
        ("", []),
        ("   ,  ", []),
        ('realm="orphan"', []),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_challenge_accessors() -> None:
    (challenge,) = parse_challenges(
        'Bearer realm="r",service="s",scope="repository:a:pull repository:b:pull",'
        'error="insufficient_scope"'
    )
    assert challenge.realm == "r"
    assert challenge.service == "s"
    assert challenge.scopes == ("repository:a:pull", "repository:b:pull")
    assert challenge.error == "insufficient_scope"
    assert Challenge("basic").scopes == ()


def test_scopes() -> None:
    assert pull_scope("acme/tool") == "repository:acme/tool:pull"
    assert push_scope("acme/tool") == "repository:acme/tool:pull,push"
    assert mount_scopes("acme/b", "acme/a") == (
        "repository:acme/b:pull,push",
        "repository:acme/a:pull",
    )


# ----------------------------------------------------------------------------- tokens


def test_token_response_prefers_token_and_honours_expiry() -> None:
    token = parse_token_response(
        b'{"token": "t1", "access_token": "t2", "expires_in": 300}', 100, "x"
    )
    assert token.value == "t1"
    assert 100 + 200 < token.expires_at < 100 + 300
    only_access = parse_token_response(b'{"access_token": "t2"}', 0, "x")
    assert only_access.value == "t2"
    assert 0 < only_access.expires_at <= 60


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"token": ""}', b'{"token": 5}'])
def test_token_response_without_token(body: bytes) -> None:
    with pytest.raises(AuthenticationError):
        parse_token_response(body, 0, "reading")


def test_token_cache_is_per_scope_and_expires() -> None:
    cache = TokenCache()
    pull = TokenKey.of("https://r", "s", ["repository:a:pull"], anonymous=False)
    push = TokenKey.of("https://r", "s", ["repository:a:pull,push"], anonymous=False)
    anonymous_pull = TokenKey.of("https://r", "s", ["repository:a:pull"], anonymous=True)
    cache.put(pull, Token("p", expires_at=50))
    assert cache.get(pull, now=10) == Token("p", 50)
    assert cache.get(push, now=10) is None
    assert cache.get(anonymous_pull, now=10) is None
    assert cache.get(pull, now=50) is None  # expired and dropped
    assert cache.get(pull, now=10) is None


def test_token_key_ignores_scope_order_and_duplicates() -> None:
    one = TokenKey.of("r", "s", ["b", "a", "a"], anonymous=False)
    assert one == TokenKey.of("r", "s", ["a", "b"], anonymous=False)
    assert one.scopes == ("a", "b")


def test_secrets_are_not_in_reprs() -> None:
    credentials = Credentials("user", "s3cret-value", "here")
    token = Token("s3cret-token", 1.0)
    assert "s3cret" not in repr(credentials) and "s3cret" not in str(credentials)
    assert "s3cret" not in repr(token)
    assert credentials.basic_header() == "Basic " + base64.b64encode(b"user:s3cret-value").decode()


# ----------------------------------------------------------------------------- redaction


def test_redact_url_hides_userinfo_and_private_query_values() -> None:
    url = (
        "https://user:pw@cdn.example/blobs/x?X-Amz-Signature=abc&token=def&digest=sha256:12"
        "&_state=zzz"
    )
    redacted = redact_url(url)
    assert "pw" not in redacted and "user" not in redacted
    for secret in ("abc", "def", "zzz"):
        assert secret not in redacted
    assert "digest=sha256:12" in redacted
    assert redacted.startswith("https://cdn.example/blobs/x?")


def test_redactor_hides_known_and_secret_looking_text() -> None:
    redact = Redactor(["hunter2-pass"])
    text = redact(
        "pw hunter2-pass; Authorization: Bearer abc.def; jwt eyJhbGciOi.eyJzdWIiOi.sig;"
        " url?token=xyz&n=1"
    )
    for secret in ("hunter2-pass", "abc.def", "eyJhbGciOi", "xyz"):
        assert secret not in text
    assert "n=1" in text
    redact.add("later-secret")
    assert redact("a later-secret b") == "a *** b"


@pytest.mark.parametrize(
    ("secret", "text", "expected"),
    [
        # A short secret is masked as a value of its own, never inside another word.
        ("pass", "wrong --password for user:pass", "wrong --password for user:***"),
        ("pass", "pass", "***"),
        ("pass", "passport pass.", "passport ***."),
        ("ab", "a ab abc", "a *** abc"),
        # A long one is masked wherever it appears.
        ("s3cret-long-value", "xs3cret-long-valuey", "x***y"),
    ],
)
def test_redactor_masks_whole_values(secret: str, text: str, expected: str) -> None:
    assert Redactor([secret])(text) == expected


# ----------------------------------------------------------------------------- credentials


def docker_config(folder: Path, value: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(value))
    return folder


def encoded(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_nothing_means_anonymous(home: Path) -> None:
    assert find_credentials("ghcr.io", environ={"HOME": str(home)}) is None


def test_explicit_options_win(home: Path) -> None:
    docker_config(home / ".docker", {"auths": {"ghcr.io": {"auth": encoded("cfg", "cfgpw")}}})
    environ = {
        "HOME": str(home),
        "SETUPTOOLS_GHCR_USERNAME": "env",
        "SETUPTOOLS_GHCR_PASSWORD": "envpw",
        "GITHUB_TOKEN": "gh",
    }
    found = find_credentials("ghcr.io", username="opt", password="optpw", environ=environ)
    assert found == Credentials("opt", "optpw")
    found = find_credentials("ghcr.io", environ=environ)
    assert found == Credentials("env", "envpw")
    assert found is not None and "SETUPTOOLS_GHCR" in found.source


@pytest.mark.parametrize(
    ("options", "variables", "expected"),
    [
        ({"username": "u", "password": "p"}, {}, ("u", "p", "--username/--password")),
        ({"password": "p"}, {}, ("token", "p", "--username/--password")),
        ({}, {"USERNAME": "u", "PASSWORD": "p"}, ("u", "p", "{USER}/{PASS}")),
        ({}, {"PASSWORD": "p"}, ("token", "p", "{USER}/{PASS}")),
        ({"username": "u"}, {"PASSWORD": "p"}, ("u", "p", "--username/{PASS}")),
        ({"password": "p"}, {"USERNAME": "u"}, ("u", "p", "{USER}/--password")),
        (
            {"username": "u", "password": "p"},
            {"USERNAME": "v", "PASSWORD": "q"},
            ("u", "p", "--username/--password"),
        ),
    ],
)
def test_options_and_variables_fill_in_for_each_other_and_say_which_was_used(
    home: Path, options: dict[str, str], variables: dict[str, str], expected: tuple[str, ...]
) -> None:
    environ = {"HOME": str(home)}
    environ.update({f"SETUPTOOLS_GHCR_{name}": value for name, value in variables.items()})
    found = find_credentials("ghcr.io", environ=environ, **options)
    username, password, source = expected
    source = source.format(USER="SETUPTOOLS_GHCR_USERNAME", PASS="SETUPTOOLS_GHCR_PASSWORD")
    assert found is not None
    assert (found.username, found.password, found.source) == (username, password, source)


def test_a_user_name_from_the_environment_alone_is_blamed_on_the_variable(home: Path) -> None:
    environ = {"HOME": str(home), "SETUPTOOLS_GHCR_USERNAME": "someone"}
    with pytest.raises(ConfigError) as caught:
        find_credentials("ghcr.io", environ=environ)
    assert "SETUPTOOLS_GHCR_USERNAME" in str(caught.value)
    assert "--username" not in str(caught.value)


def test_password_alone_is_enough_but_user_alone_is_an_error(home: Path) -> None:
    found = find_credentials("ghcr.io", password="tok", environ={"HOME": str(home)})
    assert found is not None and found.password == "tok" and found.username
    with pytest.raises(ConfigError):
        find_credentials("ghcr.io", username="someone", environ={"HOME": str(home)})


@pytest.mark.parametrize("key", ["ghcr.io", "https://ghcr.io", "https://ghcr.io/v1/", "ghcr.io/"])
def test_docker_config_auths_keys(home: Path, key: str) -> None:
    docker_config(home / ".docker", {"auths": {key: {"auth": encoded("me", "pw:with:colons")}}})
    found = find_credentials("ghcr.io", environ={"HOME": str(home)})
    assert found == Credentials("me", "pw:with:colons")
    assert found is not None and "config.json" in found.source
    assert find_credentials("example.com", environ={"HOME": str(home)}) is None


def test_docker_config_username_password_and_docker_config_variable(tmp_path: Path) -> None:
    folder = docker_config(
        tmp_path / "elsewhere",
        {"auths": {"127.0.0.1:5000": {"username": "u", "password": "p"}}},
    )
    environ = {"HOME": str(tmp_path / "nohome"), "DOCKER_CONFIG": str(folder)}
    assert find_credentials("127.0.0.1:5000", environ=environ) == Credentials("u", "p")


def test_broken_docker_config_is_ignored(home: Path) -> None:
    (home / ".docker").mkdir()
    (home / ".docker" / "config.json").write_text("{not json")
    assert find_credentials("ghcr.io", environ={"HOME": str(home)}) is None
    docker_config(home / ".docker", {"auths": {"ghcr.io": {"auth": "%%%not-base64"}}})
    assert find_credentials("ghcr.io", environ={"HOME": str(home)}) is None


def test_containers_auth_json(home: Path, tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    (runtime / "containers").mkdir(parents=True)
    (runtime / "containers" / "auth.json").write_text(
        json.dumps(
            {
                "auths": {
                    "quay.io/some/repo": {"auth": encoded("narrow", "1")},
                    "quay.io": {"auth": encoded("wide", "2")},
                }
            }
        )
    )
    environ = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    assert find_credentials("quay.io", environ=environ) == Credentials("wide", "2")
    # podman's primary file comes before the docker config (containers-auth.json(5)).
    docker_config(home / ".docker", {"auths": {"quay.io": {"auth": encoded("docker", "3")}}})
    assert find_credentials("quay.io", environ=environ) == Credentials("wide", "2")
    assert find_credentials("docker.io", environ=environ) is None


def _auth_file(path: Path, host: str, user: str, password: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {host: {"auth": encoded(user, password)}}}))
    return path


def test_credential_files_in_the_order_podman_documents(home: Path, tmp_path: Path) -> None:
    run = tmp_path / "run-containers"
    environ = {"HOME": str(home)}

    def found() -> tuple[str, str] | None:
        credentials = find_credentials("reg.example", environ=environ, run_containers=run)
        return None if credentials is None else (credentials.username, credentials.password)

    docker = _auth_file(home / ".docker" / "config.json", "reg.example", "docker", "d")
    assert found() == ("docker", "d")
    _auth_file(home / ".config" / "containers" / "auth.json", "reg.example", "config", "c")
    assert found() == ("config", "c")
    # Without XDG_RUNTIME_DIR, podman login writes to /run/containers/$UID/auth.json.
    _auth_file(run / str(os.getuid()) / "auth.json", "reg.example", "run", "r")
    assert found() == ("run", "r")
    runtime = _auth_file(tmp_path / "xdg-run" / "containers" / "auth.json", "x.example", "o", "o")
    environ["XDG_RUNTIME_DIR"] = str(runtime.parent.parent)
    assert found() == ("config", "c")  # the runtime file has nothing for this host
    _auth_file(runtime, "reg.example", "runtime", "t")
    assert found() == ("runtime", "t")
    environ["REGISTRY_AUTH_FILE"] = str(_auth_file(tmp_path / "a.json", "reg.example", "f", "f"))
    assert found() == ("f", "f")
    # XDG_CONFIG_HOME moves ~/.config; DOCKER_CONFIG moves ~/.docker.
    environ = {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    docker.unlink()
    (run / str(os.getuid()) / "auth.json").unlink()
    assert found() is None
    _auth_file(tmp_path / "cfg" / "containers" / "auth.json", "reg.example", "moved", "m")
    assert found() == ("moved", "m")


def test_given_credentials_only_where_allowed(home: Path) -> None:
    _auth_file(home / ".docker" / "config.json", "reg.example", "stored", "pw")
    environ = {
        "HOME": str(home),
        "SETUPTOOLS_GHCR_USERNAME": "env",
        "SETUPTOOLS_GHCR_PASSWORD": "envpw",
    }
    allowed = find_credentials("reg.example", environ=environ)
    assert allowed is not None and allowed.username == "env"
    # For a registry the user did not name, the stores still answer for their own host.
    withheld = find_credentials("reg.example", environ=environ, given_allowed=False)
    assert withheld is not None and withheld.username == "stored"
    assert (
        find_credentials(
            "other.example", username="u", password="p", environ=environ, given_allowed=False
        )
        is None
    )


def test_github_token_only_for_ghcr(home: Path) -> None:
    environ = {"HOME": str(home), "GITHUB_TOKEN": "ghs_x", "GITHUB_ACTOR": "octocat"}
    assert find_credentials("ghcr.io", environ=environ) == Credentials("octocat", "ghs_x")
    assert find_credentials("GHCR.IO", environ=environ) == Credentials("octocat", "ghs_x")
    assert find_credentials("127.0.0.1:5000", environ=environ) is None
    without_actor = find_credentials("ghcr.io", environ={"HOME": str(home), "GITHUB_TOKEN": "t"})
    assert without_actor is not None and without_actor.username and without_actor.password == "t"
    # Stored credentials beat the token.
    docker_config(home / ".docker", {"auths": {"ghcr.io": {"auth": encoded("stored", "pw")}}})
    assert find_credentials("ghcr.io", environ=environ) == Credentials("stored", "pw")


HELPER = """#!/bin/sh
read -r host
echo "$host" >> "{log}"
case "$host" in
  {host}) printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}' "$host" ;;
  slow.example) sleep 5 ;;
  garbage.example) echo "not json" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""


def install_helper(folder: Path, name: str, host: str, user: str, secret: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{name}.log"
    script = folder / f"docker-credential-{name}"
    script.write_text(HELPER.format(log=log, host=host, user=user, secret=secret))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


def helper_environ(home: Path, bin_dir: Path) -> dict[str, str]:
    return {"HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}


def test_cred_helper_for_the_host(home: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    log = install_helper(bin_dir, "test", "ghcr.io", "helper-user", "helper-secret")
    docker_config(
        home / ".docker",
        {
            "credHelpers": {"ghcr.io": "test"},
            "auths": {"ghcr.io": {"auth": encoded("file", "filepw")}},
        },
    )
    environ = helper_environ(home, bin_dir)
    found = find_credentials("ghcr.io", environ=environ)
    assert found == Credentials("helper-user", "helper-secret")
    assert found is not None and "docker-credential-test" in found.source
    assert log.read_text().split() == ["ghcr.io"]


def test_creds_store_and_fallback_to_auths(home: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_helper(bin_dir, "test", "ghcr.io", "store-user", "store-secret")
    docker_config(
        home / ".docker",
        {"credsStore": "test", "auths": {"quay.io": {"auth": encoded("file", "filepw")}}},
    )
    environ = helper_environ(home, bin_dir)
    assert find_credentials("ghcr.io", environ=environ) == Credentials("store-user", "store-secret")
    # The helper knows nothing of quay.io (exit 1): the file's entry is used.
    assert find_credentials("quay.io", environ=environ) == Credentials("file", "filepw")
    assert find_credentials("example.com", environ=environ) is None


def test_broken_helpers_mean_no_credentials(home: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_helper(bin_dir, "test", "ghcr.io", "u", "s")
    docker_config(
        home / ".docker",
        {
            "credHelpers": {
                "slow.example": "test",
                "garbage.example": "test",
                "missing.example": "not-installed",
                "odd.example": "../../bin/sh",
            }
        },
    )
    environ = helper_environ(home, bin_dir)
    assert find_credentials("slow.example", environ=environ, helper_timeout=0.5) is None
    assert find_credentials("garbage.example", environ=environ) is None
    assert find_credentials("missing.example", environ=environ) is None
    assert find_credentials("odd.example", environ=environ) is None
