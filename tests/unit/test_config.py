"""``[tool.setuptools-ghcr]``: validation, loading, and where the target comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from setuptools_ghcr.config import (
    INSECURE_ENV,
    REGISTRY_ENV,
    REPOSITORY_ENV,
    Settings,
    choose_target,
    default_source,
    load_settings,
    parse_settings,
    resolve_target,
)
from setuptools_ghcr.core.targets import LayoutTarget, RegistryTarget
from setuptools_ghcr.errors import ConfigError, GhcrError


def test_parse_settings_full_table(tmp_path: Path) -> None:
    settings = parse_settings(
        {
            "repository": "ghcr.io/acme",
            "source": "https://github.com/acme/demo",
            "skip-existing": True,
            "annotations": {"org.opencontainers.image.url": "https://acme.example"},
            "tags": ["latest", "stable"],
        },
        base=tmp_path,
    )
    assert settings == Settings(
        repository="ghcr.io/acme",
        source="https://github.com/acme/demo",
        skip_existing=True,
        annotations={"org.opencontainers.image.url": "https://acme.example"},
        tags=("latest", "stable"),
        base=tmp_path,
    )


def test_parse_settings_defaults() -> None:
    assert parse_settings({}) == Settings()
    assert Settings().skip_existing is False
    assert Settings().tags == ()


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"repository": 5}, "repository"),
        ({"repository": ["ghcr.io/acme"]}, "repository"),
        ({"repository": True}, "repository"),
        ({"source": 1}, "source"),
        ({"source": {"url": "x"}}, "source"),
        ({"skip-existing": "yes"}, "skip-existing"),
        ({"skip-existing": 1}, "skip-existing"),
        ({"skip-existing": 0}, "skip-existing"),
        ({"annotations": "a=b"}, "annotations"),
        ({"annotations": ["a"]}, "annotations"),
        ({"annotations": {"team": 5}}, "annotations.team"),
        ({"annotations": {"team": True}}, "annotations.team"),
        ({"annotations": {"team": {"x": "y"}}}, "annotations.team"),
        ({"tags": "latest"}, "tags"),
        ({"tags": {"a": "b"}}, "tags"),
        ({"tags": [1]}, "tags[]"),
        ({"tags": ["latest", True]}, "tags[]"),
    ],
)
def test_wrong_types_name_the_key(table: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(table)
    message = str(caught.value)
    assert f"[tool.setuptools-ghcr] {named} must be" in message
    assert type(next(iter(table.values()))).__name__ in message or named.startswith(
        ("annotations.", "tags")
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"repo": "ghcr.io/acme"}, "'repo'"),
        ({"skip_existing": True}, "'skip_existing'"),
        ({"repository": "ghcr.io/acme", "zzz": 1, "aaa": 2}, "'aaa'"),
    ],
)
def test_unknown_keys_are_named(table: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown key {named}") as caught:
        parse_settings(table)
    assert (
        "known keys: annotations, internal-projects, repository, skip-existing, source, tags"
        in str(caught.value)
    )


@pytest.mark.parametrize(
    "key",
    [
        "com.pyoci.sha256_digest",
        "com.pyoci.anything",
        "io.github.setuptools-ghcr.filename",
        "io.github.setuptools-ghcr.custom",
    ],
)
def test_reserved_annotation_prefixes_are_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=f"annotations.{key}: this prefix is set by the tool"):
        parse_settings({"annotations": {key: "x"}})


@pytest.mark.parametrize("tag", ["", "-latest", ".x", "a+b", "1!0", "a" * 129, "two words"])
def test_invalid_tags_are_refused(tag: str) -> None:
    with pytest.raises(ConfigError, match="not a valid OCI tag"):
        parse_settings({"tags": ["latest", tag]})


@pytest.mark.parametrize("repository", ["", "oci:", "ghcr.io/Acme", "not a target"])
def test_invalid_repository_is_refused_with_the_key(repository: str) -> None:
    with pytest.raises(ConfigError, match=r"^\[tool\.setuptools-ghcr\] repository: "):
        parse_settings({"repository": repository})


@pytest.mark.parametrize("tag", ["1.0", "2.0rc1", "1.0-local", "1_2.0"])
def test_tags_that_name_a_version_are_refused(tag: str) -> None:
    with pytest.raises(ConfigError, match="is the tag of version"):
        parse_settings({"tags": [tag]})


@pytest.mark.parametrize("tag", ["latest", "stable", "v1.0", "1.x", "main"])
def test_tags_that_are_not_versions_are_accepted(tag: str) -> None:
    assert parse_settings({"tags": [tag]}).tags == (tag,)


# --- load_settings -----------------------------------------------------------------------------


def _pyproject(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_settings_reads_the_table(tmp_path: Path) -> None:
    path = _pyproject(
        tmp_path,
        '[project]\nname = "demo"\n\n'
        '[tool.setuptools-ghcr]\nrepository = "oci:./packages"\nskip-existing = true\n'
        'tags = ["latest"]\n\n[tool.setuptools-ghcr.annotations]\nteam = "tools"\n',
    )
    settings = load_settings(path)
    assert settings == Settings(
        repository="oci:./packages",
        skip_existing=True,
        annotations={"team": "tools"},
        tags=("latest",),
        base=tmp_path.resolve(),
    )


def test_load_settings_missing_file(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "pyproject.toml") == Settings(base=tmp_path.resolve())


@pytest.mark.parametrize(
    "text",
    ['[project]\nname = "demo"\n', "", "[tool.other]\nx = 1\n"],
)
def test_load_settings_missing_table(tmp_path: Path, text: str) -> None:
    assert load_settings(_pyproject(tmp_path, text)) == Settings(base=tmp_path.resolve())


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[tool.setuptools-ghcr\nrepository = 1\n", "cannot read it"),
        ('[tool.setuptools-ghcr]\nrepository = "a"\nrepository = "b"\n', "cannot read it"),
        ("tool = 1\n", "[tool] must be a table"),
        ('[tool]\nsetuptools-ghcr = "ghcr.io/acme"\n', "must be a table"),
        ("[tool.setuptools-ghcr]\nrepository = 1\n", "repository must be"),
    ],
)
def test_load_settings_refuses(tmp_path: Path, text: str, fragment: str) -> None:
    path = _pyproject(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_load_settings_refuses_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_bytes(b'[tool.setuptools-ghcr]\nsource = "\xff"\n')
    with pytest.raises(ConfigError, match="cannot read it"):
        load_settings(path)


def test_load_settings_refuses_a_folder(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").mkdir()
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "pyproject.toml")


# --- resolve_target ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "configured", "env", "expected"),
    [
        ("ghcr.io/from-option", "ghcr.io/from-config", "ghcr.io/from-env", "from-option"),
        (None, "ghcr.io/from-config", "ghcr.io/from-env", "from-config"),
        ("", "ghcr.io/from-config", "ghcr.io/from-env", "from-config"),
        (None, None, "ghcr.io/from-env", "from-env"),
        ("ghcr.io/from-option", None, None, "from-option"),
    ],
)
def test_resolve_target_precedence(
    option: str | None, configured: str | None, env: str | None, expected: str
) -> None:
    environ = {REPOSITORY_ENV: env} if env is not None else {}
    target = resolve_target(option, Settings(repository=configured), environ)
    assert target == RegistryTarget("ghcr.io", expected)


def test_config_paths_are_relative_to_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(
        _pyproject(project, '[tool.setuptools-ghcr]\nrepository = "oci:dist"\n')
    )
    assert resolve_target(None, settings, {}) == LayoutTarget(project.resolve() / "dist")
    # Options and the environment are relative to the working directory.
    assert resolve_target("oci:dist", settings, {}) == LayoutTarget(elsewhere / "dist")
    assert resolve_target(None, Settings(), {REPOSITORY_ENV: "oci:x"}) == LayoutTarget(
        elsewhere / "x"
    )


@pytest.mark.parametrize("environ", [{}, {REPOSITORY_ENV: ""}, {"OTHER": "ghcr.io/acme"}])
def test_resolve_target_without_any(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_target(None, Settings(), environ)
    message = str(caught.value)
    for hint in ("--repository", "[tool.setuptools-ghcr] repository", REPOSITORY_ENV):
        assert hint in message


def test_resolve_target_refuses_a_bad_option() -> None:
    with pytest.raises(GhcrError):
        resolve_target("ghcr.io/Acme", Settings(repository="ghcr.io/acme"), {})


# --- choose_target -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "data"),
    [
        ({"HOME": "/home/u"}, "/home/u/.local/share"),
        ({"HOME": "/home/u", "XDG_DATA_HOME": "/data"}, "/data"),
        # A relative XDG_DATA_HOME is ignored, as the XDG spec says.
        ({"HOME": "/home/u", "XDG_DATA_HOME": "data"}, "/home/u/.local/share"),
    ],
)
def test_choose_target_defaults_to_a_local_folder(environ: dict[str, str], data: str) -> None:
    choice = choose_target(None, Settings(), environ)
    assert choice.target == LayoutTarget(Path(data) / "setuptools-ghcr" / "packages")
    assert choice.origin == "default"
    assert choice.announcement() == (
        f"using oci:{data}/setuptools-ghcr/packages "
        "(the default target; choose another with --repository)"
    )
    assert not choice.credentials_allowed


def test_choose_target_announces_every_target_not_on_the_command_line(tmp_path: Path) -> None:
    settings = Settings(repository="ghcr.io/from-config", base=tmp_path)
    assert choose_target("ghcr.io/x", settings, {}).announcement() is None
    assert choose_target(None, settings, {}).announcement() == (
        "using ghcr.io/from-config (from [tool.setuptools-ghcr] repository in "
        f"{tmp_path / 'pyproject.toml'})"
    )
    assert choose_target(None, Settings(), {REPOSITORY_ENV: "ghcr.io/e"}).announcement() == (
        f"using ghcr.io/e (from {REPOSITORY_ENV})"
    )


@pytest.mark.parametrize(
    ("option", "configured", "environ", "allowed"),
    [
        ("reg.example/a", None, {}, True),
        (None, None, {REPOSITORY_ENV: "reg.example/a"}, True),
        # Only the checkout names it: no credentials from the command line or environment.
        (None, "evil.example/a", {}, False),
        (None, "evil.example/a", {REPOSITORY_ENV: "reg.example/a"}, False),
        (None, "evil.example/a", {REGISTRY_ENV: "reg.example"}, False),
        (None, "reg.example:5001/a", {REGISTRY_ENV: "reg.example"}, False),
        # ...unless the user named that registry too.
        (None, "reg.example/a", {REPOSITORY_ENV: "reg.example/b"}, True),
        (None, "reg.example/a", {REGISTRY_ENV: "REG.example"}, True),
        (None, "reg.example:5001/a", {REGISTRY_ENV: "reg.example:5001"}, True),
        ("oci:x", None, {}, False),
    ],
)
def test_choose_target_says_where_given_credentials_may_go(
    tmp_path: Path,
    option: str | None,
    configured: str | None,
    environ: dict[str, str],
    allowed: bool,
) -> None:
    choice = choose_target(option, Settings(repository=configured, base=tmp_path), environ)
    assert choice.credentials_allowed is allowed


def test_choose_target_insecure_registries_from_options_and_environment() -> None:
    environ = {INSECURE_ENV: " a.lan:5000 , b.lan,"}
    for text in ("http://a.lan:5000/x", "http://b.lan:7/x", "http://c.lan/x"):
        target = choose_target(text, Settings(), environ, insecure=["c.lan"]).target
        assert isinstance(target, RegistryTarget) and target.scheme == "http"
    with pytest.raises(GhcrError, match=r"plain http to d\.lan is refused"):
        choose_target("http://d.lan/x", Settings(), environ)
    with pytest.raises(GhcrError, match=INSECURE_ENV):
        choose_target("ghcr.io/x", Settings(), {INSECURE_ENV: "not a host"})
    # A project's configuration cannot turn https off by itself.
    with pytest.raises(ConfigError, match=r"\[tool.setuptools-ghcr\] repository: plain http"):
        choose_target(None, parse_settings({"repository": "http://d.lan/x"}), {})
    assert parse_settings({"repository": "http://d.lan/x"}).repository == "http://d.lan/x"


def test_choose_target_names_the_variable_of_a_bad_value() -> None:
    with pytest.raises(ConfigError, match=f"^{REPOSITORY_ENV}: oci: needs a folder"):
        choose_target(None, Settings(), {REPOSITORY_ENV: "oci:"})


# --- default_source ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_SERVER_URL": "https://github.com",
                "GITHUB_REPOSITORY": "acme/demo",
            },
            "https://github.com/acme/demo",
        ),
        (
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_SERVER_URL": "https://github.example.com/",
                "GITHUB_REPOSITORY": "acme/demo",
            },
            "https://github.example.com/acme/demo",
        ),
        ({"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/demo"}, None),
        ({"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/demo"}, None),
        ({"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com"}, None),
        ({}, None),
    ],
)
def test_default_source(environ: dict[str, str], expected: str | None) -> None:
    assert default_source(environ) == expected
