"""Warehouse's JSON API (``/pypi/<project>/json``), for Renovate, Dependabot and friends.

Pure: a project's versions and files, and one version's core metadata, in; bytes out. The
shape follows PyPI's: ``info`` (the metadata of the version asked for, else of the latest
release), ``releases`` (every version and its files; the project URL only) and ``urls``
(the files of that one version). A file's ``digests`` hold its sha256 only: the registry
knows no other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from email.parser import BytesParser
from email.policy import compat32
from typing import Any

from packaging.utils import parse_wheel_filename
from packaging.version import Version

from setuptools_ghcr.core.wire_format import FileEntry

__all__ = ["latest_version", "metadata_info", "render"]

#: Core metadata fields that hold one value, and the ``info`` key each fills.
_SINGLE = {
    "Summary": "summary",
    "Home-page": "home_page",
    "Author": "author",
    "Author-email": "author_email",
    "Maintainer": "maintainer",
    "Maintainer-email": "maintainer_email",
    "License": "license",
    "License-Expression": "license_expression",
    "Keywords": "keywords",
    "Requires-Python": "requires_python",
    "Download-URL": "download_url",
    "Platform": "platform",
    "Description-Content-Type": "description_content_type",
}


def latest_version(versions: Sequence[Version]) -> Version:
    """The version PyPI calls latest: the newest final release, else the newest of all."""
    finals = [v for v in versions if not v.is_prerelease]
    return max(finals or versions)


def metadata_info(raw: bytes) -> dict[str, Any]:
    """The ``info`` fields a core metadata file (``METADATA``/``PKG-INFO``) gives."""
    message = BytesParser(policy=compat32).parsebytes(raw)
    info: dict[str, Any] = dict.fromkeys(_SINGLE.values())
    for field, key in _SINGLE.items():
        value = message.get(field)
        if value is not None:
            info[key] = str(value).strip()
    info["classifiers"] = [str(v).strip() for v in message.get_all("Classifier", [])]
    requires = [str(v).strip() for v in message.get_all("Requires-Dist", [])]
    info["requires_dist"] = requires or None
    urls: dict[str, str] = {}
    for value in message.get_all("Project-URL", []):
        label, _, url = str(value).partition(",")
        if url.strip():
            urls[label.strip()] = url.strip()
    info["project_urls"] = urls or None
    body = message.get_payload()
    description = message.get("Description")
    info["description"] = (body if isinstance(body, str) and body.strip() else description) or ""
    return info


def _upload_times(entry: FileEntry) -> tuple[str | None, str | None]:
    stamp = entry.upload_time
    if not stamp or not stamp.endswith("Z"):
        return None, None
    plain = stamp.removesuffix("Z").split(".", 1)[0]
    return plain, stamp


def _file(entry: FileEntry, url: str) -> dict[str, Any]:
    if entry.filename.endswith(".whl"):
        packagetype = "bdist_wheel"
        try:
            tags = parse_wheel_filename(entry.filename)[3]
            python_version = sorted({tag.interpreter for tag in tags})[0]
        except ValueError:
            python_version = None
    else:
        packagetype, python_version = "sdist", "source"
    upload_time, upload_time_iso = _upload_times(entry)
    return {
        "filename": entry.filename,
        "url": url,
        "digests": {"sha256": entry.sha256.hex if entry.sha256 else None},
        "size": entry.size,
        "packagetype": packagetype,
        "python_version": python_version,
        "requires_python": entry.requires_python,
        "upload_time": upload_time,
        "upload_time_iso_8601": upload_time_iso,
        "has_sig": False,
        "comment_text": "",
        "yanked": entry.yanked is not None,
        "yanked_reason": entry.yanked or None,
    }


def render(
    name: str,
    version: Version,
    info: Mapping[str, Any],
    files: Mapping[Version, Sequence[FileEntry]],
    url_of: Callable[[FileEntry], str],
    *,
    project_url: str,
    with_releases: bool = True,
) -> bytes:
    """The JSON document of ``name`` at ``version`` (``releases`` only with ``with_releases``,
    as PyPI's per-version document has none)."""
    # A version's files share its yank (see ``wire_format.yank_state``).
    yank = next((entry.yanked for entry in files.get(version, ())), None)
    body: dict[str, Any] = {
        "info": {
            **info,
            "name": name,
            "version": str(version),
            "package_url": project_url,
            "project_url": project_url,
            "release_url": f"{project_url}{version}/",
            "yanked": yank is not None,
            "yanked_reason": yank or None,
        },
        "last_serial": 0,
        "urls": [_file(entry, url_of(entry)) for entry in files.get(version, ())],
        "vulnerabilities": [],
    }
    if with_releases:
        body["releases"] = {
            str(v): [_file(entry, url_of(entry)) for entry in files[v]] for v in sorted(files)
        }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
