"""The streaming multipart reader: what twine and uv send, split anywhere, and what it refuses."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3 import encode_multipart_formdata

from setuptools_ghcr.serve import multipart
from setuptools_ghcr.serve.multipart import FormError, FormLimits, read_form

BOUNDARY = "b9c2f39f820b1ce7-b235de4f"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes a read, and fails past its end."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step
        self.read_past_end = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._pos >= len(self._data):
            self.read_past_end = True
        size = self._step if size < 0 else min(size, self._step)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk


def body(parts: list[tuple[str, bytes, str | None]], boundary: str = BOUNDARY) -> bytes:
    """A form as twine lays it out: CRLF lines, the file part with a Content-Type."""
    out = bytearray()
    for name, value, filename in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
            out += f"{disposition}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        else:
            out += f"{disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def read(data: bytes, step: int = 1 << 20, **kwargs: object) -> tuple[multipart.UploadForm, bytes]:
    sink = io.BytesIO()
    stream = Trickle(data, step)
    form = read_form(stream, len(data), CONTENT_TYPE, lambda: sink, **kwargs)  # type: ignore[arg-type]
    assert not stream.read_past_end
    return form, sink.getvalue()


WHEEL = b"PK\x03\x04" + bytes(range(256)) * 40


def test_reads_fields_and_file_as_twine_sends_them() -> None:
    data = body(
        [
            ("name", b"demo-pkg", None),
            ("version", b"1.0", None),
            (":action", b"file_upload", None),
            ("classifiers", b"A :: B", None),
            ("classifiers", b"C :: D", None),
            ("content", WHEEL, "demo_pkg-1.0-py3-none-any.whl"),
        ]
    )
    form, written = read(data)
    assert written == WHEEL
    assert form.file is not None
    assert form.file.filename == "demo_pkg-1.0-py3-none-any.whl"
    assert form.file.size == len(WHEEL)
    assert form.file.sha256.hex == hashlib.sha256(WHEEL).hexdigest()
    assert form.first("name") == "demo-pkg"
    assert form.first(":action") == "file_upload"
    assert form.all("classifiers") == ("A :: B", "C :: D")
    assert form.first("missing") is None


def test_reads_what_urllib3_encodes() -> None:
    encoded, content_type = encode_multipart_formdata(
        [("name", "demo"), ("content", ("demo-1.0.tar.gz", WHEEL, "application/gzip"))]
    )
    sink = io.BytesIO()
    form = read_form(io.BytesIO(encoded), len(encoded), content_type, lambda: sink)
    assert form.first("name") == "demo"
    assert sink.getvalue() == WHEEL


def test_a_quoted_boundary() -> None:
    data = body([("name", b"demo", None)], boundary="x;y=z")
    sink = io.BytesIO()
    content_type = 'multipart/form-data; boundary="x;y=z"'
    form = read_form(io.BytesIO(data), len(data), content_type, lambda: sink)
    assert form.first("name") == "demo"


@settings(max_examples=60, deadline=None)
@given(
    content=st.binary(max_size=3000),
    step=st.integers(min_value=1, max_value=700),
    summary=st.text(max_size=50),
)
def test_any_split_of_any_content_reads_the_same(content: bytes, step: int, summary: str) -> None:
    # Content that nearly holds the delimiter must come through whole.
    tricky = content + f"\r\n--{BOUNDARY[:-1]}!".encode() + content[:7]
    data = body([("summary", summary.encode(), None), ("content", tricky, "a-1.0.tar.gz")])
    form, written = read(data, step)
    assert written == tricky
    assert form.fields.get("summary", ("",)) == (summary,)


def test_empty_file_and_empty_field() -> None:
    form, written = read(body([("requires_python", b"", None), ("content", b"", "a-1.whl")]))
    assert written == b""
    assert form.file is not None and form.file.size == 0
    assert form.fields["requires_python"] == ("",)
    assert form.first("requires_python") is None


def test_preamble_and_epilogue_are_ignored() -> None:
    data = b"preamble\r\n" + body([("name", b"x", None)]) + b"epilogue" * 100
    form, _ = read(data)
    assert form.first("name") == "x"


def test_other_file_parts_are_dropped() -> None:
    data = body([("gpg_signature", b"sig", "a.whl.asc"), ("content", b"abc", "a-1.whl")])
    form, written = read(data)
    assert written == b"abc"
    assert "gpg_signature" not in form.fields


def test_no_file_at_all() -> None:
    form, written = read(body([("name", b"x", None)]))
    assert form.file is None and written == b""


def test_big_file_is_written_in_chunks_not_held() -> None:
    writes: list[int] = []

    class Sink:
        def write(self, data: bytes) -> int:
            writes.append(len(data))
            return len(data)

    content = b"\x00" * (8 << 20)
    data = body([("content", content, "a-1.whl")])
    form = read_form(io.BytesIO(data), len(data), CONTENT_TYPE, Sink)
    assert form.file is not None and form.file.size == len(content)
    assert sum(writes) == len(content)
    assert max(writes) <= multipart.READ_SIZE + len(BOUNDARY) + 8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (body([("name", b"x", None)])[:-10], "ends in the middle"),
        (b"--" + BOUNDARY.encode() + b"\r\nContent-Type: x\r\n\r\nv\r\n", "no Content-Disposition"),
        (
            b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data\r\n\r\nv\r\n",
            "no field name",
        ),
        (b"--" + BOUNDARY.encode() + b"junk\r\n", "malformed delimiter"),
        (b"no boundary anywhere", "ends in the middle"),
        (
            body([("content", b"a", "a-1.whl"), ("content", b"b", "a-1.whl")]),
            "more than one 'content' file",
        ),
        (body([("name", b"\xff\xfe", None)]), "not UTF-8"),
    ],
)
def test_malformed_bodies_are_refused_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(FormError, match=message) as caught:
        read(data)
    assert "\n" not in str(caught.value)


def test_limits() -> None:
    limits = FormLimits(field_size=10, fields_size=15, parts=3, header_size=200)
    with pytest.raises(FormError, match="larger than 10 bytes"):
        read(body([("description", b"x" * 11, None)]), limits=limits)
    with pytest.raises(FormError, match="fields are larger than 15"):
        read(body([("a", b"x" * 8, None), ("b", b"y" * 8, None)]), limits=limits)
    with pytest.raises(FormError, match="more than 3 parts"):
        read(body([(f"f{i}", b"", None) for i in range(4)]), limits=limits)
    long_name = "n" * 300
    with pytest.raises(FormError, match="headers are longer than 200"):
        read(body([(long_name, b"", None)]), limits=limits)


def test_a_body_shorter_than_its_length_is_cut_short() -> None:
    data = body([("name", b"x", None)])
    with pytest.raises(FormError, match="cut short"):
        read_form(io.BytesIO(data[:20]), len(data), CONTENT_TYPE, io.BytesIO)


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("application/x-www-form-urlencoded", "not application/x-www-form-urlencoded"),
        ("multipart/form-data", "no usable boundary"),
        ("", "not none"),
    ],
)
def test_other_content_types_are_refused(content_type: str, message: str) -> None:
    with pytest.raises(FormError, match=message):
        read_form(io.BytesIO(b""), 0, content_type, io.BytesIO)
