"""Parsing targets, the loopback rule and the repository naming rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from setuptools_ghcr.core.targets import (
    LayoutTarget,
    RegistryTarget,
    is_loopback_host,
    nested_project_warning,
    parse_target,
    repository_name,
)
from setuptools_ghcr.errors import InvalidReferenceError


@pytest.mark.parametrize(
    ("text", "host", "namespace", "scheme"),
    [
        ("ghcr.io/acme", "ghcr.io", "acme", "https"),
        ("ghcr.io/acme/tools", "ghcr.io", "acme/tools", "https"),
        ("GHCR.IO/acme", "ghcr.io", "acme", "https"),
        ("ghcr.io/acme/", "ghcr.io", "acme", "https"),
        ("  ghcr.io/acme  ", "ghcr.io", "acme", "https"),
        ("registry.example.com:8443/a-b/c_d", "registry.example.com:8443", "a-b/c_d", "https"),
        ("127.0.0.1:5000/team", "127.0.0.1:5000", "team", "http"),
        ("127.1.2.3:5000/team", "127.1.2.3:5000", "team", "http"),
        ("localhost:5000/x", "localhost:5000", "x", "http"),
        ("localhost/x", "localhost", "x", "http"),
        ("[::1]:5000/x", "[::1]:5000", "x", "http"),
        ("[::1]/x", "[::1]", "x", "http"),
        ("docker://ghcr.io/acme", "ghcr.io", "acme", "https"),
        ("docker://127.0.0.1:5000/team", "127.0.0.1:5000", "team", "http"),
        ("https://ghcr.io/acme", "ghcr.io", "acme", "https"),
        ("ghcr.io", "ghcr.io", "", "https"),
        ("http://127.0.0.1:5000/team", "127.0.0.1:5000", "team", "http"),
        ("registry:5000/x", "registry:5000", "x", "https"),
        ("10.0.0.1:5000/x", "10.0.0.1:5000", "x", "https"),
        ("[2001:db8::1]:5000/x", "[2001:db8::1]:5000", "x", "https"),
    ],
)
def test_parse_registry_target(text: str, host: str, namespace: str, scheme: str) -> None:
    target = parse_target(text)
    assert target == RegistryTarget(host, namespace)
    assert isinstance(target, RegistryTarget)
    assert target.scheme == scheme
    assert target.base_url == f"{scheme}://{host}"


def test_registry_target_repository_and_str() -> None:
    target = parse_target("ghcr.io/acme/tools")
    assert isinstance(target, RegistryTarget)
    assert target.repository("My.Pkg") == "acme/tools/my_pkg"
    assert str(target) == "ghcr.io/acme/tools"
    bare = RegistryTarget("localhost:5000", "")
    assert bare.repository("demo") == "demo"
    assert str(bare) == "localhost:5000"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "oci:",
        "ghcr.io/Acme",
        "ghcr.io/acme/Tools",
        "ghcr.io/acme//x/_y",
        "ghcr.io/acme tools",
        "ghcr.io/ac@me",
        "user@ghcr.io/acme",
        "user:secret@ghcr.io/acme",
        "not a target",
        "ghcr.io:port/acme",
        "-ghcr.io/acme",
        "ghcr..io/acme",
        "ghcr.io/acme:latest",
        "ghcr.io:99999999/acme",
        "ghcr.io/acme/../x",
        "/acme",
    ],
)
def test_parse_target_refuses(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_target(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # Read as a path, oci://packages would be /packages at the root of the file system.
        ("oci://packages", "write oci:packages for a folder"),
        ("oci:///srv/packages", "write oci:/srv/packages for a folder"),
        # Without its colon, a folder looks like a registry named "oci".
        ("oci/packages", "for a folder write oci:packages"),
        ("acme/tools", "for a folder write oci:acme/tools"),
        # A scheme never downgrades a remote registry to plain http, nor silently upgrades.
        ("http://ghcr.io/acme", "plain http to ghcr.io is refused"),
        ("http://10.0.0.1:5000/x", "--insecure-registry 10.0.0.1:5000"),
        ("https://127.0.0.1:5000/x", "on loopback, which is spoken to over plain http"),
    ],
)
def test_targets_that_would_go_wrong_are_refused_with_a_way_out(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_target(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("text", "insecure", "host", "scheme"),
    [
        ("http://reg.lan:5000/ns", ["reg.lan:5000"], "reg.lan:5000", "http"),
        ("reg.lan:5000/ns", ["reg.lan"], "reg.lan:5000", "http"),
        ("REG.LAN/ns", ["reg.lan"], "reg.lan", "http"),
        ("registry/ns", ["registry"], "registry", "http"),
        ("reg.lan:5001/ns", ["reg.lan:5000"], "reg.lan:5001", "https"),
        ("other.lan:5000/ns", ["reg.lan"], "other.lan:5000", "https"),
    ],
)
def test_insecure_registries_are_spoken_to_over_http(
    text: str, insecure: list[str], host: str, scheme: str
) -> None:
    target = parse_target(text, insecure=insecure)
    assert isinstance(target, RegistryTarget)
    assert (target.host, target.namespace, target.scheme) == (host, "ns", scheme)


def test_an_insecure_registry_refuses_https() -> None:
    with pytest.raises(InvalidReferenceError, match="named as an insecure registry"):
        parse_target("https://reg.lan:5000/ns", insecure=["reg.lan:5000"])


@pytest.mark.parametrize(
    ("target", "project", "warned"),
    [
        ("ghcr.io/acme/mypkg", "mypkg", "give ghcr.io/acme as the target"),
        ("ghcr.io/acme/my_pkg", "My-Pkg", "goes to ghcr.io/acme/my_pkg/my_pkg"),
        ("ghcr.io/mypkg", "mypkg", "give ghcr.io as the target"),
        ("oci:/srv/pkgs/mypkg", "mypkg", "give oci:/srv/pkgs as the target"),
        ("ghcr.io/acme", "mypkg", None),
        ("ghcr.io", "mypkg", None),
        ("ghcr.io/mypkg/tools", "mypkg", None),
    ],
)
def test_nested_project_warning(target: str, project: str, warned: str | None) -> None:
    warning = nested_project_warning(parse_target(target), project)
    if warned is None:
        assert warning is None
    else:
        assert warning is not None and warned in warning


@pytest.mark.parametrize(
    "text", ["user:hunter2@ghcr.io/acme", "docker://user:hunter2@localhost:5000/x", "hunter2@x"]
)
def test_refusal_never_echoes_credentials(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match="cannot hold credentials") as caught:
        parse_target(text)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "relative"),
    [
        ("oci:./dist", "dist"),
        ("oci:dist", "dist"),
        ("oci:dist/../packages", "packages"),
        ("oci:a/b/", "a/b"),
    ],
)
def test_parse_layout_target_relative(tmp_path: Path, text: str, relative: str) -> None:
    target = parse_target(text, base=tmp_path)
    assert target == LayoutTarget(tmp_path / relative)
    assert isinstance(target, LayoutTarget)
    assert target.path.is_absolute()
    assert str(target) == f"oci:{tmp_path / relative}"


def test_parse_layout_target_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_target("oci:./dist") == LayoutTarget(tmp_path / "dist")


def test_parse_layout_target_absolute_and_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse_target(f"oci:{tmp_path}/x", base=Path("/elsewhere")) == LayoutTarget(
        tmp_path / "x"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_target("oci:~/packages") == LayoutTarget(tmp_path / "packages")


def test_layout_target_layout_path(tmp_path: Path) -> None:
    target = LayoutTarget(tmp_path)
    assert target.repository("Foo-Bar") == "foo_bar"
    assert target.layout_path("Foo-Bar") == tmp_path / "foo_bar"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST:5000", True),
        ("127.0.0.1", True),
        ("127.0.0.1:5000", True),
        ("127.255.255.254:80", True),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("ghcr.io", False),
        ("localhost.example.com", False),
        ("128.0.0.1:5000", False),
        ("10.0.0.1", False),
        ("[2001:db8::1]:5000", False),
        ("0.0.0.0:5000", False),
        ("[::1", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("project", "repository"),
    [
        ("My.Pkg", "my_pkg"),
        ("foo-bar", "foo_bar"),
        ("foo_bar", "foo_bar"),
        ("Foo__Bar", "foo_bar"),
        ("foo.-_bar", "foo_bar"),
        ("FOO", "foo"),
        ("a1", "a1"),
        ("setuptools-ghcr", "setuptools_ghcr"),
    ],
)
def test_repository_name(project: str, repository: str) -> None:
    assert repository_name(project) == repository


@pytest.mark.parametrize("project", ["", "-foo", "foo-", "foo bar", "foo/bar", "f\u00f6\u00f6"])
def test_repository_name_refuses(project: str) -> None:
    with pytest.raises(InvalidReferenceError):
        repository_name(project)
