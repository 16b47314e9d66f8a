"""Benchmark inputs: real, valid wheels whose bytes do not compress.

A big wheel holds one ``ZIP_STORED`` member of random bytes (so a 1 GiB wheel is 1 GiB on
the wire, and the registry's gzip or dedup cannot shortcut it) and a small nonce member, so
that each fresh copy is a different blob while the expensive payload is generated once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import zipfile
from pathlib import Path

__all__ = ["BigWheels", "random_file", "small_wheel", "stem"]

_DATE = (1980, 1, 1, 0, 0, 0)
_CHUNK = 16 << 20


def stem(project: str) -> str:
    """A project name as wheel file names spell it."""
    return project.lower().replace("-", "_").replace(".", "_")


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; returns their sha256 (hex)."""
    digest = hashlib.sha256()
    with path.open("wb") as stream:
        left = size
        while left:
            chunk = os.urandom(min(left, _CHUNK))
            digest.update(chunk)
            stream.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _record_hash(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _metadata(project: str, version: str) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project}",
        f"Version: {version}",
        "Summary: benchmark input",
        "Requires-Python: >=3.8",
    ]
    return ("\n".join(lines) + "\n").encode()


def _write_wheel(
    path: Path,
    project: str,
    version: str,
    tag: str,
    small: dict[str, bytes],
    payload: tuple[str, Path, str, int] | None = None,
) -> Path:
    """A wheel with ``small`` members, one streamed ``payload`` member, and its RECORD."""
    dist_info = f"{stem(project)}-{version}.dist-info"
    members = dict(small)
    members[f"{dist_info}/METADATA"] = _metadata(project, version)
    members[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: benchmark\nRoot-Is-Purelib: true\nTag: {tag}\n"
    ).encode()
    record = [
        f"{name},{_record_hash(hashlib.sha256(data).digest())},{len(data)}"
        for name, data in members.items()
    ]
    if payload is not None:
        name, _source, hex_digest, size = payload
        record.append(f"{name},{_record_hash(bytes.fromhex(hex_digest))},{size}")
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            if name.endswith("RECORD") and payload is not None:
                _write_payload(archive, payload)
            info = zipfile.ZipInfo(name, date_time=_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path


def _write_payload(archive: zipfile.ZipFile, payload: tuple[str, Path, str, int]) -> None:
    name, source, _digest, _size = payload
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_STORED
    with source.open("rb") as data, archive.open(info, "w", force_zip64=True) as member:
        shutil.copyfileobj(data, member, _CHUNK)


class BigWheels:
    """Fresh big wheels of one project: same random payload, a new nonce (and blob) each."""

    def __init__(self, folder: Path, project: str, size: int) -> None:
        self.folder = folder
        self.project = project
        self.size = size
        folder.mkdir(parents=True, exist_ok=True)
        self._payload = folder / "payload.bin"
        print(f"  writing {size >> 20} MiB of random bytes ...", flush=True)
        self._payload_digest = random_file(self._payload, size)
        self._count = 0

    def fresh(self, version: str | None = None) -> Path:
        """A new wheel (its own version unless given) in a folder of its own."""
        self._count += 1
        version = version or f"1.0.{self._count}"
        folder = self.folder / f"w{self._count}"
        folder.mkdir()
        name = f"{stem(self.project)}-{version}-py3-none-any.whl"
        module = stem(self.project)
        return _write_wheel(
            folder / name,
            self.project,
            version,
            "py3-none-any",
            {
                f"{module}/__init__.py": b"",
                f"{module}/nonce.txt": secrets.token_hex(32).encode(),
            },
            (f"{module}/payload.bin", self._payload, self._payload_digest, self.size),
        )

    def close(self) -> None:
        self._payload.unlink(missing_ok=True)


def small_wheel(folder: Path, project: str, version: str, tag: str, size: int) -> Path:
    """A wheel holding about ``size`` random (stored) bytes."""
    module = stem(project)
    name = f"{stem(project)}-{version}-{tag}.whl"
    members = {f"{module}/__init__.py": b"", f"{module}/data.bin": os.urandom(size)}
    return _write_wheel(folder / name, project, version, tag, members)
