"""Use case: publish one file received through the PyPI upload API (twine, uv publish, hatch).

The index service has the file on disk already, with the sha256 of the bytes received. Here
the form's claims (name, version, file type, digest) are checked against those bytes and the
file against its own metadata, before anything is sent; then the file goes through the very
:func:`~setuptools_ghcr.usecases.publish.publish` that ``push`` uses, so an upload has the
same guarantees: the archive is read to its end before it is committed, the version's index
is merged (uploads of one version's wheels from a build matrix all land), the same file again
changes nothing, and other bytes under a published name are refused.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from setuptools_ghcr.core.dists import DistKind, parse_filename, scan_distribution
from setuptools_ghcr.core.oci import Digest
from setuptools_ghcr.errors import ConflictError, DigestMismatchError, InvalidDistributionError
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.publish import FileResult, PushOptions, publish

__all__ = ["SOURCE_CLASSIFIER", "ReceivedUpload", "publish_upload", "source_of"]

#: A classifier that names the source repository of one upload (ghcr.io links the package
#: to it): ``setuptools-ghcr :: source :: https://github.com/OWNER/REPO``.
SOURCE_CLASSIFIER = "setuptools-ghcr :: source :: "
#: Project URL labels that name the source repository, as PEP 753 normalizes them.
SOURCE_LABELS = ("source", "repository", "sourcecode", "github")
_FILETYPES: dict[str, DistKind] = {"bdist_wheel": "wheel", "sdist": "sdist"}
_URL_RE = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class ReceivedUpload:
    """A file as the upload API delivered it, and the text fields of its form.

    ``path`` is where the bytes were written, alone in a folder of its own: publishing
    renames it to ``filename`` there.
    """

    path: Path
    filename: str
    size: int
    sha256: Digest
    fields: Mapping[str, tuple[str, ...]]

    def first(self, name: str) -> str | None:
        values = [value.strip() for value in self.fields.get(name, ()) if value.strip()]
        return values[0] if values else None

    def all(self, name: str) -> tuple[str, ...]:
        return tuple(value.strip() for value in self.fields.get(name, ()) if value.strip())


def _bare_filename(filename: str) -> str:
    # Browsers once sent whole client paths; a name with a folder in it is refused outright.
    if not filename or filename != os.path.basename(filename) or "\\" in filename:
        raise InvalidDistributionError(f"{filename[:100]!r} is not a plain file name")
    if filename in (".", "..") or "\x00" in filename:
        raise InvalidDistributionError(f"{filename[:100]!r} is not a plain file name")
    return filename


def _check_claims(upload: ReceivedUpload, filename: str) -> None:
    """The form's name, version, file type and sha256 must agree with the file."""
    name, version, kind, _tags = parse_filename(filename)
    claimed_name = upload.first("name")
    if claimed_name is None or upload.first("version") is None:
        raise InvalidDistributionError(f"{filename}: the form lacks the name or the version")
    if canonicalize_name(claimed_name) != name:
        raise InvalidDistributionError(
            f"{filename}: the form names project {claimed_name[:100]!r}, the file {name!r}"
        )
    claimed_version = upload.first("version") or ""
    try:
        matches = Version(claimed_version) == version
    except InvalidVersion:
        matches = False
    if not matches:
        raise InvalidDistributionError(
            f"{filename}: the form says version {claimed_version[:60]!r}, the file {version}"
        )
    filetype = upload.first("filetype")
    if filetype is not None and _FILETYPES.get(filetype) != kind:
        raise InvalidDistributionError(
            f"{filename}: the form's filetype is {filetype[:40]!r}; a {kind} is "
            f"{'bdist_wheel' if kind == 'wheel' else 'sdist'} (only wheels and sdists are taken)"
        )
    claimed = upload.first("sha256_digest")
    if claimed is not None:
        if not _HEX_RE.fullmatch(claimed):
            raise InvalidDistributionError(f"{filename}: sha256_digest is not 64 hex digits")
        if claimed.lower() != upload.sha256.hex:
            raise DigestMismatchError(
                f"{filename}: the bytes received hash to sha256 {upload.sha256.short}..., "
                f"the form's sha256_digest is {claimed.lower()[:12]}...; the upload was damaged"
            )


def _metadata_values(metadata: bytes, field: str) -> list[str]:
    text = metadata.decode("utf-8", "replace")
    message = email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)
    return [str(value).strip() for value in message.get_all(field) or ()]


def _from_project_urls(entries: Iterable[str]) -> str | None:
    for entry in entries:
        label, _, url = entry.partition(",")
        normalized = re.sub(r"[^a-z0-9]", "", label.lower())
        url = url.strip()
        # A URL not fit to link to is left out, not refused: it is the project's business.
        if normalized in SOURCE_LABELS and _URL_RE.fullmatch(url):
            return url
    return None


def source_of(classifiers: Iterable[str], project_urls: Iterable[str]) -> str | None:
    """The source repository an upload names: its ``setuptools-ghcr :: source ::``
    classifier, else its project URL labelled ``Source`` (or a PEP 753 alias of it)."""
    for classifier in classifiers:
        if classifier.strip().startswith(SOURCE_CLASSIFIER):
            url = classifier.strip()[len(SOURCE_CLASSIFIER) :].strip()
            if not _URL_RE.fullmatch(url):
                raise InvalidDistributionError(
                    f"the classifier {SOURCE_CLASSIFIER.strip()} needs an http(s) URL, "
                    f"not {url[:100]!r}"
                )
            return url
    return _from_project_urls(project_urls)


def publish_upload(
    open_store: Callable[[str], Store], upload: ReceivedUpload, *, created: str | None = None
) -> FileResult:
    """Check ``upload`` and publish it; the result says where it went and what happened.

    The form's fields win over the file's own classifiers and project URLs for the source
    annotation (clients send the file's, so they agree unless someone meant otherwise).
    """
    filename = _bare_filename(upload.filename)
    _check_claims(upload, filename)
    path = upload.path.with_name(filename)
    if path != upload.path:
        os.replace(upload.path, path)
    scanned = scan_distribution(path)
    if scanned.size != upload.size:
        raise InvalidDistributionError(f"{filename} changed after it was received")
    source = source_of(upload.all("classifiers"), upload.all("project_urls")) or source_of(
        _metadata_values(scanned.metadata, "Classifier"),
        _metadata_values(scanned.metadata, "Project-URL"),
    )
    options = PushOptions(source=source, created=created, workers=1)
    try:
        [result] = publish(open_store, [scanned], options)
    except ConflictError as error:
        raise ConflictError(
            f"{filename} already exists with other contents; publish a new version "
            "(uv publish --check-url skips files that are there already)"
        ) from error
    return result
