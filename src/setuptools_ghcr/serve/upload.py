"""The PyPI upload API of the index service: what ``twine upload``, ``uv publish``,
``hatch publish``, ``poetry publish`` and ``pdm publish`` send, published to the registry.

A ``POST`` of a ``multipart/form-data`` form (``:action=file_upload``, ``content``, ``name``,
``version``, ``filetype``, ``sha256_digest`` and the core metadata fields). The caller's own
credentials push (see ``serve.upload_auth``): an anonymous upload is asked for some (401 with a
Basic challenge), and the server's credentials are never lent. The body streams to a file in
a private temporary folder (``tempfile``'s, so ``TMPDIR`` moves it), removed when the request
ends; :func:`~setuptools_ghcr.usecases.upload.publish_upload` then checks and publishes it.

Answers: 200 with a line saying where the file went (also when it was there already, byte
for byte); 400 with one line for anything wrong with the form or the file; 401/403 when the
registry refuses the caller; 409 when the name is taken by other bytes; 411 without a
``Content-Length``; 413 over the size cap, before any of the body is read. The line is the
body and, as Warehouse does, the reason phrase, since twine shows only that.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from setuptools_ghcr.core.targets import LayoutTarget, Target
from setuptools_ghcr.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    DigestMismatchError,
    GhcrError,
    InvalidDistributionError,
    InvalidReferenceError,
    TooLargeError,
)
from setuptools_ghcr.serve.multipart import FormError, FormLimits, Readable, UploadForm, read_form
from setuptools_ghcr.serve.upload_auth import caller_credentials, challenge_header
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.registry.credentials import Credentials
from setuptools_ghcr.usecases.publish import FileResult
from setuptools_ghcr.usecases.upload import ReceivedUpload, publish_upload

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["MAX_UPLOAD_SIZE_ENV", "UPLOAD_PATHS", "Uploads", "max_upload_size", "parse_size"]

logger = logging.getLogger(__name__)

#: Where uploads are taken, relative to a target's root (``/`` and PyPI's ``/legacy/``).
UPLOAD_PATHS = ("", "legacy", "legacy/")
#: What a route answers: status, headers, body.
Response = tuple[str, list[tuple[str, str]], Iterable[bytes]]
_ACTION = "file_upload"
_SAYS = {"uploaded": "uploaded", "exists": "already there (same sha256)"}
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
#: How long the unread rest of a refused upload is still read and dropped, and in what bites.
DRAIN_SECONDS = 10.0
DRAIN_CHUNK = 256 << 10
#: The size cap of uploads when ``--max-upload-size`` is not given (``serve`` and WSGI).
MAX_UPLOAD_SIZE_ENV = "SETUPTOOLS_GHCR_MAX_UPLOAD_SIZE"


class _CountingInput:
    """The request body, counting what was read of it."""

    def __init__(self, stream: Readable | None) -> None:
        self._stream = stream
        self.consumed = 0

    def read(self, size: int = -1, /) -> bytes:
        if self._stream is None:
            return b""
        data = self._stream.read(size)
        self.consumed += len(data)
        return data


class _ThenDrain:
    """An answer's body which, once sent (``close``), reads and drops the rest of the request.

    An answer given before the body was read (401, 413, a malformed form) must still reach a
    client that is busy sending: closing a connection with unread data resets it, and the
    client then reports a broken connection instead of the answer. So the rest is read and
    dropped, a chunk at a time, for at most ``seconds``: after that the connection goes.
    """

    def __init__(
        self, body: Iterable[bytes], source: _CountingInput, remaining: int, seconds: float
    ) -> None:
        self._body = body
        self._source = source
        self._remaining = remaining
        self._seconds = seconds

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        deadline = time.monotonic() + self._seconds
        while self._remaining > 0 and time.monotonic() < deadline:
            try:
                data = self._source.read(min(DRAIN_CHUNK, self._remaining))
            except OSError:
                return
            if not data:
                return
            self._remaining -= len(data)


class _Refusal(Exception):
    def __init__(self, code: int, reason: str, message: str, *headers: tuple[str, str]) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.headers = list(headers)


def parse_size(text: str) -> int:
    """A size such as ``500M``, ``2G``, ``1048576`` (binary units; a trailing B or iB is ok)."""
    cleaned = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = cleaned[-1:] if cleaned[-1:] in _UNITS and cleaned[-1:] else ""
    number = cleaned[: len(cleaned) - len(unit)].strip()
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        value = -1
    if not 1 <= value < 1 << 50:
        raise ValueError(f"{text!r} is not a size (e.g. 500M, 2G or a number of bytes)")
    return int(value)


def max_upload_size(given: int | None, environ: Mapping[str, str]) -> int | None:
    """The upload size cap: ``given`` (the option), else the environment's, else none."""
    if given is not None:
        return given
    text = environ.get(MAX_UPLOAD_SIZE_ENV, "").strip()
    if not text:
        return None
    try:
        return parse_size(text)
    except ValueError as error:
        raise ConfigError(f"{MAX_UPLOAD_SIZE_ENV}: {error}") from None


def _answer(code: int, reason: str, message: str, headers: list[tuple[str, str]]) -> Response:
    # The line doubles as the reason phrase: ASCII, one line, not too long.
    phrase = message.encode("ascii", "replace").decode("ascii").replace("\r", " ")
    phrase = phrase.replace("\n", " ")[:300] or reason
    body = (message + "\n").encode("utf-8")
    headers = [
        *headers,
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ]
    return f"{code} {phrase}", headers, [body]


def _refusal_of(error: GhcrError) -> _Refusal:
    message = str(error)
    if isinstance(error, (FormError, InvalidDistributionError, DigestMismatchError)):
        return _Refusal(400, "Bad Request", message)
    if isinstance(error, InvalidReferenceError):
        return _Refusal(400, "Bad Request", message)
    if isinstance(error, ConflictError):
        return _Refusal(409, "Conflict", message)
    if isinstance(error, AuthenticationError):
        if error.status == 403:
            return _Refusal(403, "Forbidden", message)
        return _Refusal(401, "Unauthorized", message, challenge_header())
    if isinstance(error, TooLargeError):
        return _Refusal(413, "Content Too Large", message)
    return _Refusal(502, "Bad Gateway", message)


def _content_length(environ: WSGIEnvironment) -> int:
    text = str(environ.get("CONTENT_LENGTH", "") or "").strip()
    if not text:
        raise _Refusal(411, "Length Required", "an upload needs a Content-Length")
    if not text.isdigit():
        raise _Refusal(400, "Bad Request", "the Content-Length is not a number")
    return int(text)


def _check_form(form: UploadForm) -> None:
    action = form.first(":action")
    if action != _ACTION:
        shown = "none" if action is None else repr(action[:40])
        raise FormError(f"this index takes :action={_ACTION} only, not {shown}")
    protocol = form.first("protocol_version")
    if protocol not in (None, "1"):
        raise FormError(f"this index speaks upload protocol_version 1, not {protocol[:20]!r}")
    if form.file is None:
        raise FormError("the form has no file: its 'content' part is missing")


def _who(credentials: Credentials) -> str:
    return "a bearer token" if credentials.bearer else f"user {credentials.username!r}"


class Uploads:
    """Takes uploads to a registry target, as the caller, within a size cap.

    ``max_size`` caps the request body (None: no cap); ``spool_dir`` is where the temporary
    folders go (None: the system's); ``environ`` gives the registry timeouts and retries.
    """

    def __init__(
        self,
        *,
        max_size: int | None = None,
        spool_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        limits: FormLimits | None = None,
    ) -> None:
        self._max_size = max_size
        self._spool_dir = spool_dir
        self._environ = dict(environ or {})
        self._limits = limits or FormLimits()

    def handle(
        self,
        environ: WSGIEnvironment,
        target: Target,
        published: Callable[[str], None] | None = None,
    ) -> Response:
        """Answer one upload ``POST`` for ``target``; never raises for the request's faults.

        ``published(project)`` is called once a file was added to ``project`` (so that a page
        kept in memory is read again, and a client that looks right after sees the file).
        """
        source = _CountingInput(environ.get("wsgi.input"))
        status, headers, body = self._respond(environ, target, source, published)
        text = str(environ.get("CONTENT_LENGTH", "") or "").strip()
        unread = (int(text) if text.isdigit() else 0) - source.consumed
        if unread > 0:
            body = _ThenDrain(body, source, unread, DRAIN_SECONDS)
        return status, headers, body

    def _respond(
        self,
        environ: WSGIEnvironment,
        target: Target,
        source: _CountingInput,
        published: Callable[[str], None] | None,
    ) -> Response:
        try:
            result = self._upload(environ, target, source)
        except _Refusal as refusal:
            return _answer(refusal.code, refusal.reason, refusal.message, refusal.headers)
        except GhcrError as error:
            refused = _refusal_of(error)
            log = logger.warning if refused.code >= 500 else logger.info
            log("upload refused (%d): %s", refused.code, error)
            return _answer(refused.code, refused.reason, refused.message, refused.headers)
        except OSError as error:
            logger.warning("upload failed: %s", error)
            reason = error.strerror or str(error)
            return _answer(500, "Internal Server Error", f"cannot store the upload: {reason}", [])
        if published is not None and result.status == "uploaded":
            published(result.project)
        line = f"{_SAYS.get(result.status, result.status)}: {result.filename} -> {result.reference}"
        return _answer(200, "OK", line, [])

    def _upload(
        self, environ: WSGIEnvironment, target: Target, source: _CountingInput
    ) -> FileResult:
        if isinstance(target, LayoutTarget):
            raise _Refusal(
                405,
                "Method Not Allowed",
                f"this index serves a folder ({target}); uploads go to registry targets only",
                ("Allow", "GET, HEAD"),
            )
        credentials = caller_credentials(environ)
        if credentials is None:
            raise _Refusal(
                401,
                "Unauthorized",
                "an upload needs the credentials of the registry (user name and password or "
                "token; __token__ as the user name for a token alone)",
                challenge_header(),
            )
        length = _content_length(environ)
        if self._max_size is not None and length > self._max_size:
            raise _Refusal(
                413,
                "Content Too Large",
                f"the upload is {length} bytes; this index takes at most {self._max_size}",
            )
        content_type = str(environ.get("CONTENT_TYPE", "") or "")
        with tempfile.TemporaryDirectory(
            prefix="setuptools-ghcr-upload-", dir=self._spool_dir
        ) as d:
            spooled = Path(d) / "content.part"
            with spooled.open("xb") as out:
                form = read_form(source, length, content_type, lambda: out, limits=self._limits)
            _check_form(form)
            assert form.file is not None
            upload = ReceivedUpload(
                spooled, form.file.filename, form.file.size, form.file.sha256, form.fields
            )
            with StoreFactory.for_caller(target, credentials, environ=self._environ) as stores:
                result = publish_upload(stores.open, upload)
        logger.info(
            "%s %s -> %s (by %s)",
            result.status,
            result.filename,
            result.reference,
            _who(credentials),
        )
        return result
