"""Simple repository pages (PEP 503, 691, 700, 658, 714): values in, bytes out.

Pure: no I/O. ``serve.projects`` reads a target, builds a :class:`ProjectPage` with
:func:`project_page` and renders it with the renderer :func:`negotiate` picked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from setuptools_ghcr.core.oci import Digest
from setuptools_ghcr.core.wire_format import FileEntry, version_to_tag

__all__ = [
    "API_VERSION",
    "CONTENT_TYPES",
    "SIMPLE_HTML",
    "SIMPLE_JSON",
    "TEXT_HTML",
    "PageFile",
    "ProjectPage",
    "file_url",
    "negotiate",
    "project_page",
    "render_project",
    "render_project_list",
]

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
CONTENT_TYPES = (SIMPLE_JSON, SIMPLE_HTML, TEXT_HTML)
#: 1.1 is PEP 700: ``versions``, ``size`` and ``upload-time``.
API_VERSION = "1.1"

# PEP 700 fixes this shape (UTC, "Z", optional fraction); anything else is left out.
_UPLOAD_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$")


@dataclass(frozen=True)
class PageFile:
    """One file link of a project page."""

    filename: str
    #: Relative to the project page's URL.
    url: str
    digest: Digest
    size: int
    requires_python: str | None = None
    metadata_digest: Digest | None = None
    upload_time: str | None = None
    #: PEP 592: the reason ("" for none) when the file's version is yanked, else None.
    yanked: str | None = None


@dataclass(frozen=True)
class ProjectPage:
    """What a project page lists: its files, oldest version first, and every version."""

    name: NormalizedName
    files: tuple[PageFile, ...]
    versions: tuple[str, ...]


def file_url(project: str, tag: str, filename: str) -> str:
    """A file's URL relative to its project page ``/simple/<project>/``.

    The server answers it at ``/files/<project>/<tag>/<filename>``; relative, so that the
    index also works behind a proxy that mounts it under a prefix.
    """
    parts = (canonicalize_name(project), tag, filename)
    return "../../files/" + "/".join(quote(part, safe="") for part in parts)


def project_page(project: str, versions: Mapping[Version, Sequence[FileEntry]]) -> ProjectPage:
    """The page of ``project`` from each version's files.

    Entries without a sha256 or a size cannot be offered (pip needs the hash, API 1.1 the
    size); the server completes PyOCI entries from their manifests before calling this.
    """
    name = canonicalize_name(project)
    files: list[PageFile] = []
    for version in sorted(versions):
        tag = version_to_tag(version)
        for entry in sorted(versions[version], key=lambda item: item.filename):
            if entry.sha256 is None or entry.size is None:
                continue
            upload_time = entry.upload_time
            if upload_time is not None and not _UPLOAD_TIME_RE.fullmatch(upload_time):
                upload_time = None
            files.append(
                PageFile(
                    filename=entry.filename,
                    url=file_url(name, tag, entry.filename),
                    digest=entry.sha256,
                    size=entry.size,
                    requires_python=entry.requires_python,
                    metadata_digest=entry.metadata.digest if entry.metadata else None,
                    upload_time=upload_time,
                    yanked=entry.yanked,
                )
            )
    return ProjectPage(name, tuple(files), tuple(str(v) for v in sorted(versions)))


# --- content negotiation ------------------------------------------------------------------


@dataclass(frozen=True)
class _Range:
    type: str
    subtype: str
    q: float


def _parse_accept(accept: str) -> list[_Range]:
    ranges: list[_Range] = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if "/" not in media:
            continue
        main, _, sub = media.lower().partition("/")
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append(_Range(main.strip(), sub.strip(), q))
    return ranges


def _match(ranges: Sequence[_Range], content_type: str) -> tuple[float, int]:
    """The q-value the most specific matching range gives ``content_type``, and how specific."""
    main, _, sub = content_type.partition("/")
    best: tuple[float, int] = (0.0, -1)
    for item in ranges:
        if item.type == main and item.subtype == sub:
            specificity = 2
        elif item.type == main and item.subtype == "*":
            specificity = 1
        elif item.type == "*" and item.subtype == "*":
            specificity = 0
        else:
            continue
        if specificity > best[1]:
            best = (item.q, specificity)
    return best


def negotiate(accept: str | None, requested_format: str | None = None) -> str | None:
    """The content type to answer with, or None when the client accepts none of ours (406).

    ``requested_format`` (PyPI's ``?format=``) wins when it names one of ours. Clients that
    name our types get the one they rank highest, JSON on a tie; a bare ``*/*`` or no
    ``Accept`` at all gets ``text/html``, which browsers and old tools expect.
    """
    if requested_format is not None:
        chosen = requested_format.strip().lower()
        return chosen if chosen in CONTENT_TYPES else None
    if accept is None or not accept.strip():
        return TEXT_HTML
    ranges = _parse_accept(accept)
    if not ranges:
        return TEXT_HTML
    best: tuple[float, int, int] | None = None
    chosen_type: str | None = None
    for content_type in CONTENT_TYPES:
        q, specificity = _match(ranges, content_type)
        if q <= 0.0:
            continue
        # Named types: the server prefers JSON (richer, faster to parse); wildcard only: HTML.
        rank = CONTENT_TYPES.index(content_type)
        preference = rank if specificity == 0 else len(CONTENT_TYPES) - rank
        key = (q, specificity, preference)
        if best is None or key > best:
            best, chosen_type = key, content_type
    return chosen_type


# --- renderers ----------------------------------------------------------------------------


def _json_bytes(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _html_document(title: str, body: Iterable[str]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>{escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{escape(title)}</h1>",
        *(f"    {line}" for line in body),
        "  </body>",
        "</html>",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def _file_json(item: PageFile) -> dict[str, Any]:
    value: dict[str, Any] = {
        "filename": item.filename,
        "url": item.url,
        "hashes": {item.digest.algorithm: item.digest.hex},
    }
    if item.requires_python:
        value["requires-python"] = item.requires_python
    if item.metadata_digest is not None:
        metadata = {item.metadata_digest.algorithm: item.metadata_digest.hex}
        value["core-metadata"] = metadata
        # The pre-PEP 714 name, still read by pip releases of 2023.
        value["dist-info-metadata"] = metadata
    value["size"] = item.size
    if item.upload_time:
        value["upload-time"] = item.upload_time
    # PEP 691: a reason, or true for a yank without one.
    value["yanked"] = item.yanked or item.yanked is not None
    return value


def _file_link(item: PageFile) -> str:
    href = f"{item.url}#{item.digest.algorithm}={item.digest.hex}"
    attributes = [f'href="{escape(href)}"']
    if item.requires_python:
        attributes.append(f'data-requires-python="{escape(item.requires_python)}"')
    if item.metadata_digest is not None:
        value = escape(f"{item.metadata_digest.algorithm}={item.metadata_digest.hex}")
        attributes.append(f'data-core-metadata="{value}"')
        attributes.append(f'data-dist-info-metadata="{value}"')
    if item.yanked is not None:
        attributes.append(f'data-yanked="{escape(item.yanked)}"')
    return f"<a {' '.join(attributes)}>{escape(item.filename)}</a><br>"


def render_project(page: ProjectPage, content_type: str) -> bytes:
    """A project page in ``content_type`` (one of :data:`CONTENT_TYPES`)."""
    if content_type == SIMPLE_JSON:
        return _json_bytes(
            {
                "meta": {"api-version": API_VERSION},
                "name": page.name,
                "files": [_file_json(item) for item in page.files],
                "versions": list(page.versions),
            }
        )
    return _html_document(f"Links for {page.name}", (_file_link(item) for item in page.files))


def render_project_list(
    names: Iterable[str], content_type: str, *, note: str | None = None
) -> bytes:
    """The root page listing ``names`` (normalized, sorted, duplicates dropped).

    ``note`` tells a reader why the list may be incomplete (in JSON as the private key
    ``_note`` of ``meta``, as PEP 691 reserves ``_`` names for such uses).
    """
    unique = sorted({canonicalize_name(name) for name in names})
    if content_type == SIMPLE_JSON:
        meta: dict[str, str] = {"api-version": API_VERSION}
        if note:
            meta["_note"] = note
        return _json_bytes({"meta": meta, "projects": [{"name": n} for n in unique]})
    links = [f'<a href="{escape(quote(name, safe=""))}/">{escape(name)}</a><br>' for name in unique]
    if note:
        links.append(f"<p>{escape(note)}</p>")
    return _html_document("Simple index", links)
