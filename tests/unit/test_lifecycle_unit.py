"""Yanks and prunes as pure rules: the index annotations, exact pins, which versions go."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version
from support.wheels import make_wheel

from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.oci import Index
from setuptools_ghcr.core.selection import is_pinned, pinned_version
from setuptools_ghcr.core.wire_format import (
    YANKED,
    YANKED_REASON,
    build_index,
    file_entries,
    file_manifest,
    index_entry,
    yank_state,
    yanked_index,
)
from setuptools_ghcr.errors import InvalidReferenceError
from setuptools_ghcr.usecases.retire import Removal, prune_choice

CREATED = "2026-01-02T03:04:05Z"


def _index(tmp_path: Path) -> Index:
    wheel = read_distribution(make_wheel(tmp_path, "demo", "1.0"))
    entry = index_entry(wheel, file_manifest(wheel, created=CREATED), created=CREATED)
    return build_index([entry], version=Version("1.0"), annotations={"other": "kept"})


def test_a_yank_is_two_index_annotations_and_nothing_else(tmp_path: Path) -> None:
    index = _index(tmp_path)
    yanked = yanked_index(
        index, version=Version("1.0"), reason="  broken\n on Windows ", undo=False
    )
    assert yanked.manifests == index.manifests
    assert yanked.annotations[YANKED] == "true"
    assert yanked.annotations[YANKED_REASON] == "broken on Windows"
    assert yanked.annotations["other"] == "kept"
    assert yank_state(yanked.annotations) == "broken on Windows"
    (entry,) = file_entries(yanked, "demo", Version("1.0"))
    assert entry.yanked == "broken on Windows"

    plain = yanked_index(yanked, version=Version("1.0"), reason=None, undo=False)
    assert YANKED_REASON not in plain.annotations
    assert yank_state(plain.annotations) == ""
    undone = yanked_index(yanked, version=Version("1.0"), reason=None, undo=True)
    assert undone.raw == index.raw
    assert yank_state(undone.annotations) is None
    assert file_entries(undone, "demo", Version("1.0"))[0].yanked is None


def test_a_yank_reason_has_a_limit(tmp_path: Path) -> None:
    with pytest.raises(InvalidReferenceError, match="at most 1000"):
        yanked_index(_index(tmp_path), version=Version("1.0"), reason="x" * 1001, undo=False)


def test_only_true_means_yanked() -> None:
    assert yank_state({YANKED: "false", YANKED_REASON: "no"}) is None
    assert yank_state({}) is None


@pytest.mark.parametrize(
    ("specifier", "pinned"),
    [
        ("==1.0", True),
        ("===1.0", True),
        ("==1.0,>=0.5", True),
        ("==1.*", False),
        (">=1.0", False),
        ("~=1.0", False),
        ("", False),
    ],
)
def test_is_pinned(specifier: str, pinned: bool) -> None:
    assert is_pinned(SpecifierSet(specifier)) is pinned


@pytest.mark.parametrize("specifier", ["", ">=1", "==1.*", "==1.0,==1.0.0", "===foo"])
def test_pinned_version_wants_one_exact_version(specifier: str) -> None:
    with pytest.raises(InvalidReferenceError, match=r"PROJECT==VERSION|not a version"):
        pinned_version(SpecifierSet(specifier), "demo" + specifier)
    assert pinned_version(SpecifierSet("==1.0.post1"), "demo") == Version("1.0.post1")


VERSIONS = [Version(v) for v in ["1.0", "1.1.dev3", "1.1.dev10", "1.1", "1.2.dev1", "0.9"]]


@pytest.mark.parametrize(
    ("keep", "only_dev", "doomed", "kept"),
    [
        (2, False, ["1.1.dev10", "1.1.dev3", "1.0", "0.9"], ["1.2.dev1", "1.1"]),
        (0, False, ["1.2.dev1", "1.1", "1.1.dev10", "1.1.dev3", "1.0", "0.9"], []),
        (1, True, ["1.1.dev10", "1.1.dev3"], ["1.2.dev1"]),
        (5, True, [], ["1.2.dev1", "1.1.dev10", "1.1.dev3"]),
    ],
)
def test_prune_keeps_the_newest(
    keep: int, only_dev: bool, doomed: list[str], kept: list[str]
) -> None:
    gone, stay = prune_choice(VERSIONS, keep=keep, only_dev=only_dev)
    assert [str(v) for v in gone] == doomed
    assert [str(v) for v in stay] == kept


def test_removal_lines() -> None:
    removal = Removal(
        NormalizedName("demo"),
        Version("1.0"),
        "ghcr.io/acme/demo:1.0",
        "not deleted",
        ("latest",),
        "GitHub answered 400 (You cannot delete the last tagged version of a package.)",
    )
    assert removal.line() == (
        "not deleted: demo 1.0 -> ghcr.io/acme/demo:1.0 (and latest): GitHub answered 400 "
        "(You cannot delete the last tagged version of a package.)"
    )
