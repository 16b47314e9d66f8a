"""The route of Warehouse's JSON API: ``pypi/<project>/json`` and ``pypi/<project>/<version>/json``.

The project is read as its page is (the caller's proof of access first, see
``serve.projects``); ``info`` comes from the core metadata of one file of the version (a
wheel's, when there is one), read by digest. File URLs are absolute, as on PyPI, built from
the request's own (already checked) ``Host``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from wsgiref.util import application_uri

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from setuptools_ghcr.core.wire_format import FileEntry, version_to_tag
from setuptools_ghcr.serve.http import HTTPError, Response
from setuptools_ghcr.serve.projects import ProjectReader
from setuptools_ghcr.serve.views import View
from setuptools_ghcr.serve.warehouse import latest_version, metadata_info, render

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["json_api"]


def json_api(
    environ: WSGIEnvironment,
    projects: ProjectReader,
    view: View,
    project: str,
    version_text: str | None,
) -> Response:
    """The JSON document of ``project`` (at ``version_text``, else its latest release)."""
    name = canonicalize_name(project)
    found = projects.project(view.source, name)
    files = {} if found is None else found.versions()
    if not files:
        raise HTTPError("404 Not Found", f"no project {name} in this index")
    version = latest_version(list(files))
    if version_text is not None:
        try:
            version = Version(version_text)
        except InvalidVersion:
            raise HTTPError("404 Not Found", f"{version_text[:80]!r} is not a version") from None
        if version not in files:
            raise HTTPError("404 Not Found", f"no version {version} of {name} in this index")
    described = sorted(
        (entry for entry in files[version] if entry.metadata),
        key=lambda entry: not entry.filename.endswith(".whl"),
    )
    info: dict[str, Any] = {}
    if described:
        info = metadata_info(projects.metadata(view.source, name, described[0]))
    root = application_uri(environ).rstrip("/")
    mount = view.mount

    def url_of(entry: FileEntry) -> str:
        return root + mount.path("files", name, version_to_tag(entry.version), entry.filename)

    body = render(
        name,
        version,
        info,
        files,
        url_of,
        project_url=root + mount.path("simple", name, ""),
        with_releases=version_text is None,
    )
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return "200 OK", headers, [body]
