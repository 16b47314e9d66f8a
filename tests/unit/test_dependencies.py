"""Which dependencies must come from the target: patterns, the publisher's record, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version
from support.wheels import make_wheel

from setuptools_ghcr.config import internal_projects, parse_settings
from setuptools_ghcr.core.dependencies import ProjectPatterns, dependency_names
from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.oci import Index
from setuptools_ghcr.core.wire_format import (
    TARGET_DEPENDENCIES,
    file_entries,
    file_manifest,
    format_names,
    index_entry,
    parse_names,
)
from setuptools_ghcr.errors import ConfigError

CREATED = "2025-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("patterns", "name", "matches"),
    [
        (["acme-*"], "acme-billing", True),
        (["acme-*"], "Acme_Billing", True),
        (["Acme_*"], "acme.billing", True),
        (["acme-*"], "acme", False),
        (["acme-?"], "acme-b", True),
        (["acme-?"], "acme-bb", False),
        (["internal-dep"], "internal_dep", True),
        (["internal-dep"], "internal-dep2", False),
        (["other", "internal-*"], "internal-dep", True),
        ([], "anything", False),
    ],
)
def test_patterns_match_normalized_names(patterns: list[str], name: str, matches: bool) -> None:
    assert ProjectPatterns.parse(patterns, "test").matches(name) is matches


@pytest.mark.parametrize("bad", ["", "  ", "acme/*", "acme pkg", "é*", "---", "a,b"])
def test_a_bad_pattern_is_an_error_that_names_its_source(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"somewhere: .* is not a project name pattern"):
        ProjectPatterns.parse([bad], "somewhere")


def test_dependency_names_cover_every_marker_and_extra_but_no_url() -> None:
    requires = [
        "Requests>=2",
        "tomli; python_version < '3.11'",
        "rich[jupyter]; extra == 'fancy'",
        "pkg @ https://example.com/pkg.whl",
        "App[other]",  # the project itself, for an extra
        "not a requirement !!",
    ]
    assert dependency_names(requires, "app") == ["requests", "rich", "tomli"]


def test_names_round_trip_through_the_annotation() -> None:
    assert format_names(["b_pkg", "A.Pkg", "a-pkg"]) == "a-pkg,b-pkg"
    assert parse_names("a-pkg, B_Pkg,,") == {"a-pkg", "b-pkg"}
    assert parse_names(None) == frozenset()


def test_the_record_is_on_the_manifest_and_on_the_index_entry(tmp_path: Path) -> None:
    wheel = read_distribution(
        make_wheel(tmp_path, "app", "1.0", requires_dist=["internal-dep", "requests"])
    )
    manifest = file_manifest(wheel, created=CREATED, target_dependencies=["Internal_Dep"])
    assert json.loads(manifest.raw)["annotations"][TARGET_DEPENDENCIES] == "internal-dep"
    entry = index_entry(wheel, manifest, created=CREATED)
    assert entry.annotations[TARGET_DEPENDENCIES] == "internal-dep"
    index = Index.build((entry,))
    (listed,) = file_entries(index, "app", Version("1.0"))
    assert listed.target_dependencies == {"internal-dep"}


def test_no_record_leaves_the_documents_as_before(tmp_path: Path) -> None:
    wheel = read_distribution(make_wheel(tmp_path, "app", "1.0", requires_dist=["requests"]))
    plain = file_manifest(wheel, created=CREATED)
    assert file_manifest(wheel, created=CREATED, target_dependencies=()).raw == plain.raw
    assert TARGET_DEPENDENCIES not in index_entry(wheel, plain, created=CREATED).annotations


def test_internal_projects_setting_is_validated_and_joined_with_the_others() -> None:
    settings = parse_settings({"internal-projects": ["acme-*"]})
    patterns = internal_projects(
        settings, {"SETUPTOOLS_GHCR_INTERNAL_PROJECTS": "tools, billing_*"}, ["Other.Pkg"]
    )
    assert patterns.patterns == ("acme-*", "tools", "billing-*", "other-pkg")
    for value, message in (
        ("acme-*", "internal-projects must be a list"),
        ([1], r"internal-projects\[\] must be a string"),
        (["acme/x"], "internal-projects: 'acme/x' is not a project name pattern"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_settings({"internal-projects": value})
    with pytest.raises(ConfigError, match="SETUPTOOLS_GHCR_INTERNAL_PROJECTS"):
        internal_projects(settings, {"SETUPTOOLS_GHCR_INTERNAL_PROJECTS": "a b"})
