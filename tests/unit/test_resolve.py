"""Selection rules: versions (specifiers, pre-releases) and files (tags, build, Requires-Python)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.version import Version

from setuptools_ghcr.core.selection import (
    TargetEnvironment,
    applicable_requirements,
    matching_versions,
    parse_python_version,
    python_compatible,
    rank_files,
    requirement_applies,
    sdist_notice,
)
from setuptools_ghcr.errors import InvalidReferenceError


@dataclass(frozen=True)
class File:
    filename: str
    requires_python: str | None = None


def env(tags: str, python: str = "3.11.4", **markers: str) -> TargetEnvironment:
    """An environment whose tags are the given compressed tag sets, best first."""
    ordered: list[Tag] = []
    for part in tags.split():
        ordered.extend(sorted(parse_tag(part), key=str))
    base = {"python_version": ".".join(python.split(".")[:2]), "python_full_version": python}
    return TargetEnvironment(tuple(ordered), Version(python), {**base, **markers})


def _best(files: list[File], target: TargetEnvironment, *, only_binary: bool = False) -> str | None:
    """The file the resolver takes: the first of the ranking, None when nothing fits."""
    ranked = rank_files(files, target, only_binary=only_binary)
    return ranked[0].filename if ranked else None


LINUX_311 = env(
    "cp311-cp311-manylinux_2_28_x86_64 cp311-cp311-manylinux_2_17_x86_64 "
    "cp311-abi3-manylinux_2_17_x86_64 py3-none-manylinux_2_17_x86_64 cp311-none-any py3-none-any"
)

VERSIONS = [Version(v) for v in ["0.9", "1.0", "1.1", "2.0a1", "2.0rc2", "1.2.dev1", "3.0b1"]]


@pytest.mark.parametrize(
    ("specifier", "pre", "expected"),
    [
        ("", False, ["1.1", "1.0", "0.9"]),
        ("", True, ["3.0b1", "2.0rc2", "2.0a1", "1.2.dev1", "1.1", "1.0", "0.9"]),
        (">=1.0", False, ["1.1", "1.0"]),
        ("<1.1", False, ["1.0", "0.9"]),
        ("==1.0", False, ["1.0"]),
        ("~=1.0", False, ["1.1", "1.0"]),
        # A specifier naming a pre-release lets pre-releases in, without --pre.
        (">=2.0a1", False, ["3.0b1", "2.0rc2", "2.0a1"]),
        ("==2.0rc2", False, ["2.0rc2"]),
        # Only pre-releases match: packaging (and pip) fall back to them.
        (">=2", False, ["3.0b1"]),
        (">=5", True, []),
        ("!=1.1,>=1", False, ["1.0"]),
    ],
)
def test_matching_versions(specifier: str, pre: bool, expected: list[str]) -> None:
    got = matching_versions(VERSIONS, SpecifierSet(specifier), pre=pre)
    assert [str(v) for v in got] == expected


def test_matching_versions_only_prereleases_published() -> None:
    versions = [Version("1.0b1"), Version("1.0a2")]
    assert matching_versions(versions, SpecifierSet(""), pre=False) == [
        Version("1.0b1"),
        Version("1.0a2"),
    ]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # An incompatible platform wheel is never chosen; the best tag position wins.
        (
            [
                "demo-1.0-py3-none-any.whl",
                "demo-1.0-cp311-cp311-win_amd64.whl",
                "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                "demo-1.0.tar.gz",
            ],
            "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        ),
        # A newer manylinux comes earlier in the tag list than an older one.
        (
            [
                "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                "demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
            ],
            "demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        ),
        # A wheel with several tags ranks by the best of them.
        (
            [
                "demo-1.0-cp311-abi3-manylinux_2_17_x86_64.whl",
                "demo-1.0-py2.py3-none-any.whl",
                "demo-1.0-cp39.cp311-cp311-manylinux_2_17_x86_64.whl",
            ],
            "demo-1.0-cp39.cp311-cp311-manylinux_2_17_x86_64.whl",
        ),
        # Same tags: the higher build tag wins.
        (
            [
                "demo-1.0-1-py3-none-any.whl",
                "demo-1.0-py3-none-any.whl",
                "demo-1.0-2b-py3-none-any.whl",
            ],
            "demo-1.0-2b-py3-none-any.whl",
        ),
        # No wheel fits: the sdist.
        (
            [
                "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                "demo-1.0-py3-none-win32.whl",
                "demo-1.0.tar.gz",
            ],
            "demo-1.0.tar.gz",
        ),
        # Nothing fits at all.
        (["demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "demo-1.0-py2-none-any.whl"], None),
        # Files that are not distributions are ignored.
        (["demo-1.0.zip", "demo-1.0-py3-none-any.whl"], "demo-1.0-py3-none-any.whl"),
    ],
)
def test_best_file(files: list[str], expected: str | None) -> None:
    assert _best([File(name) for name in files], LINUX_311) == expected


def test_rank_files_full_order_and_stability() -> None:
    files = [
        File("demo-1.0.tar.gz"),
        File("demo-1.0-py3-none-any.whl"),
        File("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        File("demo-1.0-cp311-cp311-macosx_11_0_arm64.whl"),
        File("demo-1.0-py2.py3-none-any.whl"),
    ]
    assert [f.filename for f in rank_files(files, LINUX_311)] == [
        "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        # Equal ranks (both match py3-none-any) come out by file name.
        "demo-1.0-py2.py3-none-any.whl",
        "demo-1.0-py3-none-any.whl",
        "demo-1.0.tar.gz",
    ]
    assert rank_files(list(reversed(files)), LINUX_311) == rank_files(files, LINUX_311)


def test_only_binary_never_picks_the_sdist() -> None:
    files = [File("demo-1.0-py3-none-win32.whl"), File("demo-1.0.tar.gz")]
    assert _best(files, LINUX_311) == "demo-1.0.tar.gz"
    assert _best(files, LINUX_311, only_binary=True) is None


@pytest.mark.parametrize(
    ("requires_python", "python", "ok"),
    [
        (None, "3.11.4", True),
        (">=3.8", "3.11.4", True),
        (">=3.12", "3.11.4", False),
        ("<3.11", "3.11.4", False),
        ("~=3.11.0", "3.11.4", True),
        (">=3.8", "3.14.0a1", True),  # a pre-release interpreter still counts
        ("not a specifier", "3.11.4", True),  # pip ignores what it cannot read
    ],
)
def test_python_compatible(requires_python: str | None, python: str, ok: bool) -> None:
    assert python_compatible(requires_python, Version(python)) is ok


def test_requires_python_skips_files_and_falls_back() -> None:
    files = [
        File("demo-1.0-py3-none-any.whl", ">=3.12"),
        File("demo-1.0.tar.gz", ">=3.12"),
    ]
    assert _best(files, LINUX_311) is None
    files.append(File("demo-1.0-py2.py3-none-any.whl", ">=3.7"))
    assert _best(files, LINUX_311) == "demo-1.0-py2.py3-none-any.whl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", (3,)), ("3.12", (3, 12)), ("312", (3, 12)), ("38", (3, 8)), ("3.9.1", (3, 9, 1))],
)
def test_parse_python_version(text: str, expected: tuple[int, ...]) -> None:
    assert parse_python_version(text) == expected


@pytest.mark.parametrize("text", ["", "three", "3.x", "3.12.1.4", "-3"])
def test_parse_python_version_rejects(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_python_version(text)


def test_explicit_target_python_and_platform() -> None:
    target = TargetEnvironment.for_target(
        python_version="3.9", platforms=["manylinux2014_x86_64"], implementation="cp", abis=["cp39"]
    )
    files = [
        File("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        File("demo-1.0-cp39-cp39-win_amd64.whl"),
        File("demo-1.0-cp39-cp39-manylinux1_x86_64.whl"),  # implied by manylinux2014
        File("demo-1.0-py3-none-any.whl", requires_python=">=3.10"),
        File("demo-1.0.tar.gz"),
    ]
    assert [f.filename for f in rank_files(files, target)] == [
        "demo-1.0-cp39-cp39-manylinux1_x86_64.whl",
        "demo-1.0.tar.gz",
    ]
    assert target.python_version == Version("3.9.0")
    assert target.markers["python_version"] == "3.9"
    assert target.markers["sys_platform"] == "linux"
    assert target.markers["platform_machine"] == "x86_64"


def test_explicit_platform_windows_and_macos() -> None:
    windows = TargetEnvironment.for_target(python_version="3.12", platforms=["win_amd64"])
    files = [
        File("demo-1.0-cp312-cp312-win_amd64.whl"),
        File("demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
    ]
    assert _best(files, windows) == "demo-1.0-cp312-cp312-win_amd64.whl"
    assert windows.markers["sys_platform"] == "win32"

    mac = TargetEnvironment.for_target(python_version="312", platforms=["macosx_14_0_arm64"])
    older_mac = File("demo-1.0-cp312-cp312-macosx_11_0_arm64.whl")  # implied by 14.0
    intel = File("demo-1.0-cp312-cp312-macosx_11_0_x86_64.whl")
    assert rank_files([intel, older_mac], mac) == [older_mac]
    assert mac.markers["platform_system"] == "Darwin"


def test_generic_implementation_tags() -> None:
    pypy = TargetEnvironment.for_target(
        python_version="3.10",
        implementation="pp",
        platforms=["linux_x86_64"],
        abis=["pypy310_pp73"],
    )
    files = [
        File("demo-1.0-cp310-cp310-linux_x86_64.whl"),
        File("demo-1.0-pp310-pypy310_pp73-linux_x86_64.whl"),
        File("demo-1.0-py3-none-any.whl"),
    ]
    assert [f.filename for f in rank_files(files, pypy)] == [
        "demo-1.0-pp310-pypy310_pp73-linux_x86_64.whl",
        "demo-1.0-py3-none-any.whl",
    ]
    assert pypy.markers["implementation_name"] == "pypy"


def test_current_environment_matches_sys_tags() -> None:
    from packaging.tags import sys_tags

    current = TargetEnvironment.for_target()
    assert list(current.tags) == list(sys_tags())
    assert current.priority(next(iter(sys_tags()))) == 0
    assert current.priority(Tag("py1", "none", "nowhere")) is None


def test_applicable_requirements_markers_and_extras() -> None:
    markers = {"python_version": "3.11", "python_full_version": "3.11.4", "sys_platform": "linux"}
    requires = [
        "alpha>=1",
        "beta; python_version < '3.8'",
        "gamma; sys_platform == 'linux'",
        "delta; extra == 'fast'",
        "epsilon; extra == 'other'",
        "not a valid requirement !!",
    ]
    names = [r.name for r in applicable_requirements(requires, markers)]
    assert names == ["alpha", "gamma"]
    names = [r.name for r in applicable_requirements(requires, markers, {"fast"})]
    assert names == ["alpha", "gamma", "delta"]


def test_requirement_applies_for_top_level() -> None:
    markers = {"python_version": "3.11", "python_full_version": "3.11.4", "sys_platform": "linux"}
    assert requirement_applies(Requirement("demo; sys_platform == 'linux'"), markers)
    assert not requirement_applies(Requirement("demo; sys_platform == 'win32'"), markers)


def test_sdist_notice_only_when_wheels_exist_but_none_fits() -> None:
    target = env("cp311-cp311-macosx_14_0_arm64")
    wheels = [File("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")]
    sdist = File("demo-1.0.tar.gz")
    notice = sdist_notice(sdist, [*wheels, sdist], target)
    assert notice == (
        "no wheel of demo 1.0 fits Python 3.11.4 on macosx_14_0_arm64 (there are 1: "
        "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl); chose the sdist demo-1.0.tar.gz"
    )
    assert sdist_notice(sdist, [sdist], target) is None
    assert sdist_notice(wheels[0], [*wheels, sdist], target) is None
