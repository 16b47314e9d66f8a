"""Tiny, valid wheels and sdists built on the fly.

The archives are reproducible: the same arguments give the same bytes (fixed timestamps,
fixed member order), so digests can be compared across runs.

    wheel = make_wheel(tmp_path, "demo-pkg", "1.0", requires_python=">=3.10")
    sdist = make_sdist(tmp_path, "demo-pkg", "1.0")
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.tags import parse_tag
from packaging.utils import canonicalize_name

__all__ = [
    "core_metadata",
    "dist_stem",
    "make_sdist",
    "make_wheel",
    "sha256_of",
    "write_tar_gz",
    "write_zip",
]

#: Zip cannot store dates before 1980; tar and gzip get the epoch.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

Content = bytes | str


def _bytes(content: Content) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def dist_stem(name: str) -> str:
    """The project name as file names spell it: normalized, ``-`` as ``_``."""
    return canonicalize_name(name).replace("-", "_")


def core_metadata(
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    requires_dist: Iterable[str] = (),
    summary: str | None = None,
    license_expression: str | None = None,
    description: str | None = None,
    metadata_version: str = "2.4",
) -> bytes:
    """A core metadata file (``METADATA`` / ``PKG-INFO``) with the given fields."""
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    if summary is not None:
        lines.append(f"Summary: {summary}")
    if license_expression is not None:
        lines.append(f"License-Expression: {license_expression}")
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {requirement}" for requirement in requires_dist)
    text = "\n".join(lines) + "\n"
    if description is not None:
        text += "\n" + description
    return text.encode("utf-8")


def write_zip(
    path: Path,
    members: Mapping[str, Content],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write a zip holding ``members`` (name -> content) in the given order."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, content in members.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            archive.writestr(info, _bytes(content))
    return path


def write_tar_gz(path: Path, members: Mapping[str, Content]) -> Path:
    """Write a gzip-compressed tar holding ``members`` (name -> content) in the given order."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, content in members.items():
            data = _bytes(content)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return path


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _metadata(
    given: Content | None,
    name: str,
    version: str,
    requires_python: str | None,
    requires_dist: Iterable[str],
    summary: str | None,
    license_expression: str | None,
) -> bytes:
    """``given`` as it is, else core metadata made from the fields."""
    if given is not None:
        return _bytes(given)
    return core_metadata(
        name,
        version,
        requires_python=requires_python,
        requires_dist=requires_dist,
        summary=summary,
        license_expression=license_expression,
    )


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    build: str | None = None,
    requires_python: str | None = None,
    requires_dist: Iterable[str] = (),
    summary: str | None = None,
    license_expression: str | None = None,
    module_code: str | None = None,
    metadata: Content | None = None,
    extra_files: Mapping[str, Content] | None = None,
    filename: str | None = None,
) -> Path:
    """Build ``<name>-<version>[-<build>]-<tag>.whl`` in ``directory`` and return its path.

    ``metadata`` replaces the generated ``METADATA`` file verbatim; ``extra_files`` adds
    members (path in the wheel -> content); ``filename`` names the file differently from
    what its contents say (for tests of disagreeing wheels). ``version`` is written as given.
    """
    stem = dist_stem(name)
    dist_info = f"{stem}-{version}.dist-info"
    module = f"{stem}/__init__.py"
    metadata_bytes = _metadata(
        metadata, name, version, requires_python, requires_dist, summary, license_expression
    )
    wheel_lines = [
        "Wheel-Version: 1.0",
        "Generator: setuptools-ghcr-tests",
        "Root-Is-Purelib: true",
        *(f"Tag: {each}" for each in sorted(str(t) for t in parse_tag(tag))),
    ]
    if build is not None:
        wheel_lines.append(f"Build: {build}")
    members: dict[str, bytes] = {
        module: _bytes(module_code if module_code is not None else f'__version__ = "{version}"\n'),
    }
    members.update({path: _bytes(content) for path, content in (extra_files or {}).items()})
    members[f"{dist_info}/METADATA"] = metadata_bytes
    members[f"{dist_info}/WHEEL"] = ("\n".join(wheel_lines) + "\n").encode()
    record = [_record_line(path, data) for path, data in members.items()]
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    build_part = f"-{build}" if build is not None else ""
    path = Path(directory) / (filename or f"{stem}-{version}{build_part}-{tag}.whl")
    return write_zip(path, members)


def make_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    requires_dist: Iterable[str] = (),
    summary: str | None = None,
    license_expression: str | None = None,
    module_code: str | None = None,
    metadata: Content | None = None,
    extra_files: Mapping[str, Content] | None = None,
    pkg_info: bool = True,
    filename: str | None = None,
) -> Path:
    """Build ``<name>-<version>.tar.gz`` (PEP 625 naming) in ``directory``; return its path.

    ``metadata`` replaces the generated ``PKG-INFO`` verbatim; ``pkg_info=False`` leaves it
    out; ``extra_files`` adds members (path below the top folder -> content); ``filename``
    names the file differently from its top folder.
    """
    stem = dist_stem(name)
    top = f"{stem}-{version}"
    metadata_bytes = _metadata(
        metadata, name, version, requires_python, requires_dist, summary, license_expression
    )
    pyproject = (
        "[build-system]\n"
        'requires = ["setuptools>=70"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        f'name = "{name}"\n'
        f'version = "{version}"\n'
    )
    members: dict[str, bytes] = {}
    if pkg_info:
        members[f"{top}/PKG-INFO"] = metadata_bytes
    members[f"{top}/pyproject.toml"] = pyproject.encode()
    members[f"{top}/src/{stem}/__init__.py"] = _bytes(
        module_code if module_code is not None else f'__version__ = "{version}"\n'
    )
    members.update(
        {f"{top}/{path}": _bytes(content) for path, content in (extra_files or {}).items()}
    )
    path = Path(directory) / (filename or f"{top}.tar.gz")
    return write_tar_gz(path, members)


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
