"""A streaming reader of ``multipart/form-data`` request bodies (RFC 7578), for uploads.

The one file part goes straight to a file as it arrives, hashed on the way; the text fields
are kept, each and all together capped. Whatever the body's size, what is held is one read
chunk plus a delimiter's length: a 2 GiB wheel costs no more memory than a 2 KiB one. Nothing
past the body's ``Content-Length`` is ever read (a WSGI server's input is the connection).
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from setuptools_ghcr.core.oci import Digest, DigestWriter
from setuptools_ghcr.errors import GhcrError

__all__ = ["FormError", "FormLimits", "Readable", "ReceivedFile", "UploadForm", "read_form"]

#: Bytes asked of the input at a time.
READ_SIZE = 256 << 10


class FormError(GhcrError):
    """The body is not a well-formed multipart form, or breaks a limit."""


@dataclass(frozen=True)
class FormLimits:
    """What a form may hold besides its file: the core metadata fields it repeats."""

    #: One text field (a description is the longest, and core metadata is capped at 1 MiB).
    field_size: int = 1 << 20
    #: All text fields together.
    fields_size: int = 4 << 20
    #: Parts of any kind.
    parts: int = 1000
    #: The header lines of one part.
    header_size: int = 16 << 10


@dataclass(frozen=True)
class ReceivedFile:
    """The file part as written: the name the client gave it, its size and sha256."""

    field: str
    filename: str
    size: int
    sha256: Digest


@dataclass(frozen=True)
class UploadForm:
    """A form's text fields (every value of each, in order) and its file, if it had one."""

    fields: Mapping[str, tuple[str, ...]]
    file: ReceivedFile | None = None

    def first(self, name: str) -> str | None:
        """The first value of field ``name``, stripped; None when absent or blank."""
        values = self.fields.get(name, ())
        text = values[0].strip() if values else ""
        return text or None

    def all(self, name: str) -> tuple[str, ...]:
        """Every non-blank value of field ``name``."""
        return tuple(value for value in self.fields.get(name, ()) if value.strip())


class _Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


class Readable(Protocol):
    """What the body is read from: a WSGI server's ``wsgi.input``, a file."""

    def read(self, size: int, /) -> bytes: ...


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type; FormError for anything else."""
    message = email.message.Message()
    message["Content-Type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        shown = content_type.split(";", 1)[0].strip()[:60] or "none"
        raise FormError(f"an upload is a multipart/form-data POST, not {shown}")
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 200:
        raise FormError("the multipart body has no usable boundary")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        raise FormError("the multipart boundary is not ASCII") from None


class _Body:
    """The request body: at most ``length`` bytes of ``stream``, read a chunk at a time."""

    def __init__(self, stream: Readable, length: int) -> None:
        self._stream = stream
        self._remaining = length
        self.buffer = bytearray()

    def fill(self) -> bool:
        """Read one more chunk into the buffer; False once the body is used up."""
        if self._remaining <= 0:
            return False
        data = self._stream.read(min(READ_SIZE, self._remaining))
        if not data:
            raise FormError("the upload was cut short: the body ended before its length")
        self._remaining -= len(data)
        self.buffer += data
        return True

    def need(self, count: int) -> None:
        while len(self.buffer) < count:
            if not self.fill():
                raise FormError("the multipart body ends in the middle of a part")

    def copy_until(self, delimiter: bytes, write: Callable[[bytes], object]) -> None:
        """Pass everything before ``delimiter`` to ``write``, then drop the delimiter too."""
        keep = len(delimiter) - 1
        while True:
            index = self.buffer.find(delimiter)
            if index >= 0:
                if index:
                    write(bytes(self.buffer[:index]))
                del self.buffer[: index + len(delimiter)]
                return
            cut = len(self.buffer) - keep
            if cut > 0:
                write(bytes(self.buffer[:cut]))
                del self.buffer[:cut]
            if not self.fill():
                raise FormError("the multipart body ends in the middle of a part")

    def take_line(self, limit: int, what: str) -> bytes:
        """The bytes up to the next CRLF (dropped), at most ``limit`` of them."""
        while True:
            index = self.buffer.find(b"\r\n")
            if index >= 0:
                line = bytes(self.buffer[:index])
                del self.buffer[: index + 2]
                return line
            if len(self.buffer) > limit:
                raise FormError(f"{what} is longer than {limit} bytes")
            if not self.fill():
                raise FormError("the multipart body ends in the middle of a part")

    def drain(self) -> None:
        """Read and drop the rest of the body (the epilogue after the closing delimiter)."""
        self.buffer.clear()
        while self.fill():
            self.buffer.clear()


@dataclass
class _Fields:
    limits: FormLimits
    values: dict[str, list[str]] = field(default_factory=dict)
    total: int = 0

    def add(self, name: str, data: bytes) -> None:
        self.total += len(data)
        if self.total > self.limits.fields_size:
            raise FormError(f"the form's fields are larger than {self.limits.fields_size} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FormError(f"form field {name[:40]!r} is not UTF-8 text") from None
        self.values.setdefault(name, []).append(text)


def _part_headers(block: bytes) -> tuple[str, str | None]:
    """The field name and file name a part's ``Content-Disposition`` gives."""
    parser = email.parser.BytesParser(policy=email.policy.compat32)
    headers = parser.parsebytes(block + b"\r\n\r\n", headersonly=True)
    disposition = headers.get("Content-Disposition")
    if disposition is None:
        raise FormError("a form part has no Content-Disposition")
    message = email.message.Message()
    message["Content-Disposition"] = str(disposition)
    name = message.get_param("name", header="content-disposition")
    if not isinstance(name, str) or not name:
        raise FormError("a form part has no field name")
    filename = message.get_filename()
    return name, filename


def _read_headers(body: _Body, limits: FormLimits) -> bytes:
    body.need(2)
    if body.buffer.startswith(b"\r\n"):
        del body.buffer[:2]
        return b""
    while True:
        index = body.buffer.find(b"\r\n\r\n", 0, limits.header_size + 4)
        if index >= 0:
            block = bytes(body.buffer[:index])
            del body.buffer[: index + 4]
            return block
        if len(body.buffer) >= limits.header_size + 4:
            raise FormError(f"a form part's headers are longer than {limits.header_size} bytes")
        if not body.fill():
            raise FormError("the multipart body ends in the middle of a part")


def _read_field(body: _Body, delimiter: bytes, name: str, limits: FormLimits) -> bytes:
    data = bytearray()

    def collect(chunk: bytes) -> None:
        data.extend(chunk)
        if len(data) > limits.field_size:
            raise FormError(f"form field {name[:40]!r} is larger than {limits.field_size} bytes")

    body.copy_until(delimiter, collect)
    return bytes(data)


def _read_file(
    body: _Body, delimiter: bytes, name: str, filename: str, out: _Writer
) -> ReceivedFile:
    hasher = DigestWriter()

    def write(chunk: bytes) -> None:
        hasher.update(chunk)
        out.write(chunk)

    body.copy_until(delimiter, write)
    return ReceivedFile(name, filename, hasher.size, hasher.digest())


def read_form(
    stream: Readable,
    length: int,
    content_type: str,
    open_file: Callable[[], _Writer],
    *,
    file_field: str = "content",
    limits: FormLimits | None = None,
) -> UploadForm:
    """Read a ``multipart/form-data`` body of ``length`` bytes from ``stream``.

    The part named ``file_field`` that carries a file name is written to what ``open_file()``
    returns (called once, when that part begins); other file parts are read and dropped.
    Anything malformed, or beyond ``limits``, raises :class:`FormError` with one line.
    """
    limits = limits or FormLimits()
    boundary = boundary_of(content_type)
    delimiter = b"\r\n--" + boundary
    body = _Body(stream, length)
    # A CRLF in front lets the first delimiter (at the very start) be found like the others.
    body.buffer += b"\r\n"
    body.copy_until(delimiter, lambda _preamble: None)
    fields = _Fields(limits)
    received: ReceivedFile | None = None
    for _ in range(limits.parts + 1):
        body.need(2)
        if body.buffer.startswith(b"--"):
            body.drain()
            return UploadForm({k: tuple(v) for k, v in fields.values.items()}, received)
        # Transport padding (spaces, tabs) may follow a delimiter before its line ends.
        if body.take_line(256, "a multipart delimiter line").strip(b" \t"):
            raise FormError("the multipart body has a malformed delimiter line")
        name, filename = _part_headers(_read_headers(body, limits))
        if filename is None:
            fields.add(name, _read_field(body, delimiter, name, limits))
        elif name != file_field:
            body.copy_until(delimiter, lambda _ignored: None)
        elif received is not None:
            raise FormError(f"the form holds more than one {file_field!r} file")
        else:
            received = _read_file(body, delimiter, name, filename, open_file())
    raise FormError(f"the form has more than {limits.parts} parts")
