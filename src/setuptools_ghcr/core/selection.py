"""Pure selection: which version a requirement picks, and which file of it fits a target.

Nothing here does I/O. The rules follow pip's, so that what ``download`` picks is what
``pip install`` would have picked from an index holding the same files:

- versions: PEP 440 specifiers through ``packaging``; pre-releases only when asked for
  (``--pre``), when a specifier names one, or when nothing else matches;
- files of a version: wheels whose tags the target supports, best first by the earliest
  position of any of their tags in the target's tag list, then by build tag; the sdist
  only when no wheel fits; files whose ``Requires-Python`` excludes the target never.
"""

from __future__ import annotations

import logging
import platform as _platform
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from packaging import tags as _tags
from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    BuildTag,
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from setuptools_ghcr.errors import InvalidReferenceError

__all__ = [
    "parse_requirement",
    "reachable_projects",
    "Candidate",
    "TargetEnvironment",
    "applicable_requirements",
    "is_pinned",
    "matching_versions",
    "parse_python_version",
    "pinned_version",
    "python_compatible",
    "rank_files",
    "requirement_applies",
    "sdist_notice",
]

logger = logging.getLogger(__name__)


class Candidate(Protocol):
    """What selection needs of a file (``artifact.FileEntry`` is one)."""

    @property
    def filename(self) -> str: ...

    @property
    def requires_python(self) -> str | None: ...


C = TypeVar("C", bound=Candidate)


# -- the target ---------------------------------------------------------------------------------


def parse_python_version(text: str) -> tuple[int, ...]:
    """``3``, ``3.12``, ``312`` or ``3.12.1`` as a version tuple, as ``pip --python-version``."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+){0,2}", text) is None:
        raise InvalidReferenceError(
            f"python version {text!r} is not of the form 3, 3.12, 312 or 3.12.1"
        )
    if "." in text:
        return tuple(int(part) for part in text.split("."))
    # pip's reading of a dotless version: the first digit is the major, the rest the minor.
    return (int(text[0]),) if len(text) == 1 else (int(text[0]), int(text[1:]))


def _expand_platform(name: str) -> list[str]:
    """A ``--platform`` value and the older platforms it implies, as pip expands them."""
    mac = re.fullmatch(r"macosx_(\d+)_(\d+)_(.+)", name)
    if mac is not None:
        version = (int(mac.group(1)), int(mac.group(2)))
        return list(_tags.mac_platforms(version, mac.group(3)))
    prefix, _, arch = name.partition("_")
    if prefix == "manylinux2014" and arch in ("i686", "x86_64"):
        return [name, f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    if prefix == "manylinux2010":
        return [name, f"manylinux1_{arch}"]
    return [name]


def _default_markers() -> dict[str, str]:
    return {key: str(value) for key, value in default_environment().items()}


def _platform_markers(platform_tag: str) -> dict[str, str]:
    """Marker values implied by a platform tag, so dependencies are chosen for that platform."""
    if platform_tag.startswith("win"):
        machine = {"win32": "x86", "win_amd64": "AMD64", "win_arm64": "ARM64"}
        return {
            "sys_platform": "win32",
            "os_name": "nt",
            "platform_system": "Windows",
            "platform_machine": machine.get(platform_tag, ""),
        }
    if platform_tag.startswith("macosx"):
        arch = platform_tag.rsplit("_", 1)[-1]
        return {
            "sys_platform": "darwin",
            "os_name": "posix",
            "platform_system": "Darwin",
            "platform_machine": "arm64" if arch == "arm64" else "x86_64",
        }
    linux = re.fullmatch(r"(?:linux|manylinux\w*?|musllinux_\d+_\d+)_(\w+)", platform_tag)
    if linux is not None:
        arch = re.sub(r"^\d+_\d+_", "", linux.group(1))
        return {
            "sys_platform": "linux",
            "os_name": "posix",
            "platform_system": "Linux",
            "platform_machine": arch,
        }
    return {}


@dataclass(frozen=True)
class TargetEnvironment:
    """The interpreter and platform files are chosen for.

    ``tags`` are best first, as ``packaging.tags.sys_tags()``; ``python_version`` is what
    ``Requires-Python`` is checked against; ``markers`` evaluate ``Requires-Dist`` markers.
    """

    tags: tuple[Tag, ...]
    python_version: Version
    markers: Mapping[str, str]
    _priority: Mapping[Tag, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        priority: dict[Tag, int] = {}
        for position, tag in enumerate(self.tags):
            priority.setdefault(tag, position)
        object.__setattr__(self, "_priority", priority)

    def priority(self, tag: Tag) -> int | None:
        """The tag's position in the target's list (0 is best), None when unsupported."""
        return self._priority.get(tag)

    @classmethod
    def current(cls) -> TargetEnvironment:
        """The running interpreter, as pip sees it."""
        return cls(
            tags=tuple(_tags.sys_tags()),
            python_version=Version(_platform.python_version()),
            markers=_default_markers(),
        )

    @classmethod
    def for_target(
        cls,
        *,
        python_version: str | None = None,
        platforms: Sequence[str] = (),
        implementation: str | None = None,
        abis: Sequence[str] = (),
    ) -> TargetEnvironment:
        """Another target, as ``pip download --python-version/--platform/--implementation/--abi``.

        Without any option this is :meth:`current`.
        """
        if python_version is None and not platforms and implementation is None and not abis:
            return cls.current()
        version = parse_python_version(python_version) if python_version is not None else None
        if version is not None and len(version) < 2:
            version_nodot = str(version[0])
        elif version is not None:
            version_nodot = f"{version[0]}{version[1]}"
        else:
            version_nodot = _tags.interpreter_version()
        impl = implementation or _tags.interpreter_name()
        expanded: list[str] | None = None
        if platforms:
            expanded = []
            for name in platforms:
                expanded.extend(p for p in _expand_platform(name) if p not in expanded)
        abi_list = list(abis) or None
        short_version = version[:2] if version is not None else None
        found: list[Tag] = []
        if impl == "cp":
            found.extend(_tags.cpython_tags(short_version, abi_list, expanded))
        else:
            found.extend(_tags.generic_tags(f"{impl}{version_nodot}", abi_list, expanded))
        found.extend(_tags.compatible_tags(short_version, f"{impl}{version_nodot}", expanded))

        markers = _default_markers()
        if version is not None:
            # pip pads a short --python-version with zeros to check Requires-Python.
            full = (*version, 0, 0)[:3]
            markers["python_version"] = f"{full[0]}.{full[1]}"
            markers["python_full_version"] = ".".join(map(str, full))
            target_python = Version(markers["python_full_version"])
        else:
            target_python = Version(_platform.python_version())
        if implementation is not None:
            names = {"cp": "CPython", "pp": "PyPy", "ip": "IronPython", "jy": "Jython"}
            markers["platform_python_implementation"] = names.get(impl, impl)
            markers["implementation_name"] = names.get(impl, impl).lower()
        if platforms:
            markers.update(_platform_markers(platforms[0]))
        return cls(tags=tuple(found), python_version=target_python, markers=markers)


# -- versions -----------------------------------------------------------------------------------


def matching_versions(
    versions: Iterable[Version], specifier: SpecifierSet, *, pre: bool = False
) -> list[Version]:
    """The versions ``specifier`` allows, newest first.

    Pre-releases count only with ``pre``, when the specifier names one, or when no final
    release matches (packaging's and pip's rule).
    """
    return sorted(specifier.filter(versions, prereleases=True if pre else None), reverse=True)


def is_pinned(specifier: SpecifierSet) -> bool:
    """Whether ``specifier`` names a version exactly (``==`` without ``.*``, or ``===``):
    the only requirements that may pick a yanked version (PEP 592)."""
    return any(
        spec.operator == "===" or (spec.operator == "==" and not spec.version.endswith(".*"))
        for spec in specifier
    )


def pinned_version(specifier: SpecifierSet, what: str) -> Version:
    """The one version ``specifier`` pins (``==1.0``), for commands that act on one version."""
    specs = list(specifier)
    if len(specs) != 1 or not is_pinned(specifier):
        raise InvalidReferenceError(f"{what}: name one version, as PROJECT==VERSION")
    try:
        return Version(specs[0].version)
    except InvalidVersion:
        raise InvalidReferenceError(f"{what}: {specs[0].version!r} is not a version") from None


# -- files --------------------------------------------------------------------------------------


def python_compatible(requires_python: str | None, python_version: Version) -> bool:
    """Whether ``Requires-Python`` admits the target; an unreadable one is ignored, as pip does."""
    if not requires_python:
        return True
    try:
        specifier = SpecifierSet(requires_python)
    except InvalidSpecifier:
        logger.debug("ignoring invalid Requires-Python %r", requires_python)
        return True
    return specifier.contains(python_version, prereleases=True)


_SDIST_KEY: tuple[int, int, BuildTag] = (0, 0, ())


def _sort_key(filename: str, env: TargetEnvironment) -> tuple[int, int, BuildTag] | None:
    """Higher is better; None when the file cannot be used on the target."""
    if filename.endswith(".whl"):
        try:
            _name, _version, build, tags = parse_wheel_filename(filename)
        except (InvalidWheelFilename, InvalidVersion):
            return None
        positions = [p for p in map(env.priority, tags) if p is not None]
        if not positions:
            return None
        return (1, -min(positions), build)
    if filename.endswith(".tar.gz"):
        try:
            parse_sdist_filename(filename)
        except (InvalidSdistFilename, InvalidVersion):
            return None
        return _SDIST_KEY
    return None


def rank_files(files: Iterable[C], env: TargetEnvironment, *, only_binary: bool = False) -> list[C]:
    """The files usable on ``env``, best first: wheels in pip's order, then sdists."""
    keyed: list[tuple[tuple[int, int, BuildTag], C]] = []
    for file in files:
        key = _sort_key(file.filename, env)
        if key is None or (only_binary and key[0] == 0):
            continue
        if not python_compatible(file.requires_python, env.python_version):
            continue
        keyed.append((key, file))
    # Stable on the file name, so equal candidates always come out in the same order.
    keyed.sort(key=lambda item: item[1].filename)
    keyed.sort(key=lambda item: item[0], reverse=True)
    return [file for _key, file in keyed]


# -- dependencies -------------------------------------------------------------------------------


def requirement_applies(
    requirement: Requirement, markers: Mapping[str, str], extras: Iterable[str] = ()
) -> bool:
    """Whether a requirement's marker holds on the target for any of the requested extras."""
    if requirement.marker is None:
        return True
    wanted = sorted(set(extras)) or [""]
    return any(requirement.marker.evaluate({**markers, "extra": extra}) for extra in wanted)


def applicable_requirements(
    requires_dist: Iterable[str], markers: Mapping[str, str], extras: Iterable[str] = ()
) -> list[Requirement]:
    """The ``Requires-Dist`` entries that apply on the target with ``extras`` requested."""
    extras = tuple(extras)
    found: list[Requirement] = []
    for text in requires_dist:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            logger.warning("ignoring unreadable Requires-Dist %r", text)
            continue
        if requirement_applies(requirement, markers, extras):
            found.append(requirement)
    return found


def parse_requirement(text: str) -> Requirement:
    """A PEP 508 requirement naming a project and versions (no direct URL)."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        raise InvalidReferenceError(f"{text!r} is not a valid requirement: {error}") from error
    if requirement.url:
        raise InvalidReferenceError(
            f"{text!r}: direct URL requirements are not resolved here; give a name and versions"
        )
    return requirement


def reachable_projects(
    roots: Iterable[NormalizedName], requires: Mapping[NormalizedName, Iterable[Requirement]]
) -> set[NormalizedName]:
    """The projects of ``requires`` still asked for from ``roots``, following requirements
    (a re-selection may leave a chosen project without anyone asking for it)."""
    reachable: set[NormalizedName] = set()
    stack = [name for name in roots if name in requires]
    while stack:
        name = stack.pop()
        if name in reachable:
            continue
        reachable.add(name)
        stack.extend(
            dep for dep in (canonicalize_name(r.name) for r in requires[name]) if dep in requires
        )
    return reachable


def sdist_notice(
    chosen: Candidate, files: Iterable[Candidate], env: TargetEnvironment
) -> str | None:
    """What to say when ``chosen`` is an sdist although the version has wheels: none fits
    ``env`` (a ``--platform`` of another machine, say), so pip will build the sdist."""
    if not chosen.filename.endswith(".tar.gz"):
        return None
    wheels = [file.filename for file in files if file.filename.endswith(".whl")]
    if not wheels:
        return None
    name, version = parse_sdist_filename(chosen.filename)
    where = env.tags[0].platform if env.tags else "this platform"
    shown = ", ".join(wheels[:3]) + (", ..." if len(wheels) > 3 else "")
    return (
        f"no wheel of {name} {version} fits Python {env.python_version} on {where} "
        f"(there are {len(wheels)}: {shown}); chose the sdist {chosen.filename}"
    )
