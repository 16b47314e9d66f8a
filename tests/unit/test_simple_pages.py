"""The simple repository renderers and content negotiation (pure)."""

from __future__ import annotations

import json
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from packaging.utils import NormalizedName
from packaging.version import Version

from setuptools_ghcr.core.oci import OCI_MANIFEST, Descriptor, Digest
from setuptools_ghcr.core.wire_format import FileEntry
from setuptools_ghcr.serve.pages import (
    SIMPLE_HTML,
    SIMPLE_JSON,
    TEXT_HTML,
    PageFile,
    ProjectPage,
    file_url,
    negotiate,
    project_page,
    render_project,
    render_project_list,
)

WHEEL_SHA = "a" * 64
SDIST_SHA = "b" * 64
META_SHA = "c" * 64
MANIFEST = Descriptor(OCI_MANIFEST, Digest.sha256("d" * 64), 500)

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


def _entry(
    filename: str,
    version: str,
    *,
    sha: str | None = WHEEL_SHA,
    size: int | None = 1234,
    requires_python: str | None = None,
    metadata: str | None = None,
    upload_time: str | None = None,
) -> FileEntry:
    return FileEntry(
        filename=filename,
        project=NormalizedName("demo-pkg"),
        version=Version(version),
        manifest=MANIFEST,
        sha256=Digest.sha256(sha) if sha else None,
        size=size,
        requires_python=requires_python,
        metadata=Descriptor("x", Digest.sha256(metadata), -1) if metadata else None,
        upload_time=upload_time,
    )


class _Links(HTMLParser):
    """The anchors of a page: (attributes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self.meta: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = dict(attrs)
        if tag == "meta":
            values = dict(attrs)
            self.meta[values.get("name") or ""] = values.get("content")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.links.append((self._open, data))
            self._open = None


def _links(body: bytes) -> _Links:
    parser = _Links()
    parser.feed(body.decode("utf-8"))
    return parser


# --- project_page ---------------------------------------------------------------------------


def test_project_page_orders_files_by_version_and_lists_every_version() -> None:
    page = project_page(
        "Demo_Pkg",
        {
            Version("1.10"): [
                _entry("demo_pkg-1.10.tar.gz", "1.10", sha=SDIST_SHA),
                _entry("demo_pkg-1.10-py3-none-any.whl", "1.10"),
            ],
            Version("1.2"): [_entry("demo_pkg-1.2-py3-none-any.whl", "1.2")],
            Version("2.0rc1"): [],
        },
    )
    assert page.name == "demo-pkg"
    assert [f.filename for f in page.files] == [
        "demo_pkg-1.2-py3-none-any.whl",
        "demo_pkg-1.10-py3-none-any.whl",
        "demo_pkg-1.10.tar.gz",
    ]
    assert page.versions == ("1.2", "1.10", "2.0rc1")
    assert page.files[2].url == "../../files/demo-pkg/1.10/demo_pkg-1.10.tar.gz"
    assert page.files[2].digest == Digest.sha256(SDIST_SHA)


def test_project_page_leaves_out_files_without_hash_or_size() -> None:
    page = project_page(
        "demo-pkg",
        {
            Version("1.0"): [
                _entry("demo_pkg-1.0-py3-none-any.whl", "1.0", sha=None),
                _entry("demo_pkg-1.0.tar.gz", "1.0", size=None),
            ]
        },
    )
    assert page.files == ()
    assert page.versions == ("1.0",)


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05.123456Z", "2026-01-02T03:04:05.123456Z"),
        ("2026-01-02T03:04:05+00:00", None),
        ("yesterday", None),
        (None, None),
    ],
)
def test_upload_time_is_passed_only_in_pep_700_form(written: str | None, shown: str | None) -> None:
    page = project_page(
        "demo-pkg",
        {Version("1.0"): [_entry("demo_pkg-1.0.tar.gz", "1.0", upload_time=written)]},
    )
    assert page.files[0].upload_time == shown


def test_file_url_quotes_each_part() -> None:
    assert file_url("Demo.Pkg", "1.0-local", "a b#c?.whl") == (
        "../../files/demo-pkg/1.0-local/a%20b%23c%3F.whl"
    )


def test_local_versions_use_the_tag_spelling_in_urls() -> None:
    page = project_page(
        "demo-pkg",
        {
            Version("1!2.0+ubuntu.1"): [
                _entry("demo_pkg-1!2.0+ubuntu.1-py3-none-any.whl", "1!2.0+ubuntu.1")
            ]
        },
    )
    assert page.files[0].url == (
        "../../files/demo-pkg/1_2.0-ubuntu.1/demo_pkg-1%212.0%2Bubuntu.1-py3-none-any.whl"
    )
    assert page.versions == ("1!2.0+ubuntu.1",)


# --- renderers ------------------------------------------------------------------------------

FULL = PageFile(
    filename="demo_pkg-1.0-py3-none-any.whl",
    url="../../files/demo-pkg/1.0/demo_pkg-1.0-py3-none-any.whl",
    digest=Digest.sha256(WHEEL_SHA),
    size=1234,
    requires_python=">=3.8,<4",
    metadata_digest=Digest.sha256(META_SHA),
    upload_time="2026-01-02T03:04:05Z",
)
BARE = PageFile(
    filename="demo_pkg-1.0.tar.gz",
    url="../../files/demo-pkg/1.0/demo_pkg-1.0.tar.gz",
    digest=Digest.sha256(SDIST_SHA),
    size=99,
)
PAGE = ProjectPage(NormalizedName("demo-pkg"), (FULL, BARE), ("1.0",))


def test_project_json_is_api_1_1_exactly() -> None:
    assert json.loads(render_project(PAGE, SIMPLE_JSON)) == {
        "meta": {"api-version": "1.1"},
        "name": "demo-pkg",
        "files": [
            {
                "filename": "demo_pkg-1.0-py3-none-any.whl",
                "url": "../../files/demo-pkg/1.0/demo_pkg-1.0-py3-none-any.whl",
                "hashes": {"sha256": WHEEL_SHA},
                "requires-python": ">=3.8,<4",
                "core-metadata": {"sha256": META_SHA},
                "dist-info-metadata": {"sha256": META_SHA},
                "size": 1234,
                "upload-time": "2026-01-02T03:04:05Z",
                "yanked": False,
            },
            {
                "filename": "demo_pkg-1.0.tar.gz",
                "url": "../../files/demo-pkg/1.0/demo_pkg-1.0.tar.gz",
                "hashes": {"sha256": SDIST_SHA},
                "size": 99,
                "yanked": False,
            },
        ],
        "versions": ["1.0"],
    }


@pytest.mark.parametrize("content_type", [SIMPLE_HTML, TEXT_HTML])
def test_project_html_carries_hash_requires_python_and_metadata(content_type: str) -> None:
    body = render_project(PAGE, content_type)
    parsed = _links(body)
    assert parsed.meta["pypi:repository-version"] == "1.1"
    (full, full_text), (bare, bare_text) = parsed.links
    assert full_text == FULL.filename
    assert full == {
        "href": f"{FULL.url}#sha256={WHEEL_SHA}",
        "data-requires-python": ">=3.8,<4",
        "data-core-metadata": f"sha256={META_SHA}",
        "data-dist-info-metadata": f"sha256={META_SHA}",
    }
    assert bare_text == BARE.filename
    assert bare == {"href": f"{BARE.url}#sha256={SDIST_SHA}"}
    # The raw text escapes what the attribute holds.
    assert b'data-requires-python="&gt;=3.8,&lt;4"' in body


def test_hostile_names_are_escaped_in_html() -> None:
    hostile = "\"><script>alert(1)</script><a x='.whl"
    page = ProjectPage(
        NormalizedName("x<y>"),
        (
            PageFile(
                filename=hostile,
                url=file_url("x", "1.0", hostile),
                digest=Digest.sha256(WHEEL_SHA),
                size=1,
                requires_python='"><b>',
            ),
        ),
        ("1.0",),
    )
    body = render_project(page, TEXT_HTML)
    assert b"<script>" not in body
    assert b"<b>" not in body
    assert b"<title>Links for x&lt;y&gt;</title>" in body
    ((attributes, text),) = _links(body).links
    assert text == hostile
    assert attributes["data-requires-python"] == '"><b>'
    href = attributes["href"] or ""
    assert href.startswith("../../files/x/1.0/%22%3E%3Cscript%3E")
    assert set(attributes) == {"href", "data-requires-python"}


def test_hostile_names_stay_data_in_json() -> None:
    hostile = 'a"b\\c\u2028.whl'
    page = ProjectPage(
        NormalizedName("x"),
        (PageFile(hostile, "u", Digest.sha256(WHEEL_SHA), 1),),
        (),
    )
    assert json.loads(render_project(page, SIMPLE_JSON))["files"][0]["filename"] == hostile


def test_project_list_json_and_html() -> None:
    names = ["Zeta", "alpha_beta", "alpha-beta"]
    assert json.loads(render_project_list(names, SIMPLE_JSON)) == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "alpha-beta"}, {"name": "zeta"}],
    }
    links = _links(render_project_list(names, TEXT_HTML)).links
    assert links == [({"href": "alpha-beta/"}, "alpha-beta"), ({"href": "zeta/"}, "zeta")]


def test_project_list_note() -> None:
    note = "cannot list <projects>"
    value = json.loads(render_project_list([], SIMPLE_JSON, note=note))
    assert value == {"meta": {"api-version": "1.1", "_note": note}, "projects": []}
    body = render_project_list([], TEXT_HTML, note=note)
    assert b"<p>cannot list &lt;projects&gt;</p>" in body
    assert _links(body).links == []


# --- negotiation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PIP_ACCEPT, SIMPLE_JSON),
        (
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
            "text/html;q=0.01",
            SIMPLE_JSON,
        ),
        (None, TEXT_HTML),
        ("", TEXT_HTML),
        ("*/*", TEXT_HTML),
        ("text/html", TEXT_HTML),
        ("text/*", TEXT_HTML),
        ("application/*", SIMPLE_JSON),
        ("application/vnd.pypi.simple.v1+html", SIMPLE_HTML),
        ("application/vnd.pypi.simple.v1+json", SIMPLE_JSON),
        ("APPLICATION/VND.PYPI.SIMPLE.V1+JSON", SIMPLE_JSON),
        # q-values decide, whatever the order.
        ("text/html;q=0.9, application/vnd.pypi.simple.v1+json;q=0.5", TEXT_HTML),
        (
            "application/vnd.pypi.simple.v1+json;q=0.5, application/vnd.pypi.simple.v1+html",
            SIMPLE_HTML,
        ),
        # Equal q: JSON first among named types.
        ("application/vnd.pypi.simple.v1+html, application/vnd.pypi.simple.v1+json", SIMPLE_JSON),
        # A browser.
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8",
            TEXT_HTML,
        ),
        # The most specific range rules: JSON refused outright, */* lets the rest in.
        ("application/vnd.pypi.simple.v1+json;q=0, */*", TEXT_HTML),
        ("text/html;q=0, */*;q=0.5", SIMPLE_HTML),
        ("application/json", None),
        ("application/vnd.pypi.simple.v2+json", None),
        ("text/html;q=0", None),
        ("*/*;q=0", None),
        ("text/html;q=oops", None),
        ("nonsense", TEXT_HTML),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (SIMPLE_JSON, SIMPLE_JSON),
        (SIMPLE_HTML, SIMPLE_HTML),
        ("text/html", TEXT_HTML),
        ("application/json", None),
        ("", None),
    ],
)
def test_format_parameter_overrides_accept(requested: str, expected: str | None) -> None:
    assert negotiate(PIP_ACCEPT if expected != SIMPLE_JSON else "text/html", requested) == expected


# --- PEP 592: yanked files --------------------------------------------------------------------


@pytest.mark.parametrize(("yanked", "shown"), [("", True), ("broken <b>", "broken <b>")])
def test_yanked_files_say_so_in_json_and_html(yanked: str, shown: bool | str) -> None:
    entry = replace(_entry("demo_pkg-1.0-py3-none-any.whl", "1.0"), yanked=yanked)
    page = project_page("demo-pkg", {Version("1.0"): [entry]})
    assert page.files[0].yanked == yanked
    (item,) = json.loads(render_project(page, SIMPLE_JSON))["files"]
    assert item["yanked"] == shown
    body = render_project(page, SIMPLE_HTML)
    ((attributes, _text),) = _links(body).links
    assert attributes["data-yanked"] == yanked
    assert b"<b>" not in body


def test_files_not_yanked_have_no_yanked_attribute() -> None:
    page = project_page("demo-pkg", {Version("1.0"): [_entry("demo_pkg-1.0.tar.gz", "1.0")]})
    ((attributes, _text),) = _links(render_project(page, SIMPLE_HTML)).links
    assert "data-yanked" not in attributes
    assert json.loads(render_project(page, SIMPLE_JSON))["files"][0]["yanked"] is False
