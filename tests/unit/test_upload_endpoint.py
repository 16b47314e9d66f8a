"""The upload endpoint's answers that come before any registry is asked: routes, the caller's
credentials, the size cap (413 without reading a byte of the body), and the size syntax."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from setuptools_ghcr.core.targets import LayoutTarget, parse_target
from setuptools_ghcr.errors import ConfigError
from setuptools_ghcr.serve.app import IndexApp
from setuptools_ghcr.serve.upload import MAX_UPLOAD_SIZE_ENV, Uploads, max_upload_size, parse_size
from setuptools_ghcr.serve.upload_auth import caller_credentials
from setuptools_ghcr.storage.factory import StoreFactory

#: A registry nobody listens on: any attempt to reach it would fail the request with 502.
UNREACHABLE = parse_target("127.0.0.1:9/team")


class Untouchable(io.RawIOBase):
    """A request body that must not be read."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(
    app: IndexApp, path: str, *, method: str = "POST", **environ: Any
) -> tuple[str, dict[str, str], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"], captured["headers"] = status, dict(headers)

    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": Untouchable(),
        "CONTENT_TYPE": "multipart/form-data; boundary=x",
        **environ,
    }
    body: Iterable[bytes] = app(env, start_response)
    return captured["status"], captured["headers"], b"".join(body)


def app_for(target: Any, tmp_path: Path, max_size: int | None = None) -> IndexApp:
    factory = StoreFactory(target, environ={}, home=tmp_path)
    return IndexApp(factory, cache_ttl=0, uploads=Uploads(max_size=max_size), target=target)


def test_an_anonymous_upload_is_asked_for_credentials(tmp_path: Path) -> None:
    app = app_for(UNREACHABLE, tmp_path)
    for path in ("/", "/legacy/", "/legacy"):
        status, headers, body = call(app, path, CONTENT_LENGTH="100")
        assert status.startswith("401 ")
        assert headers["WWW-Authenticate"] == 'Basic realm="setuptools-ghcr"'
        assert body.count(b"\n") == 1 and b"credentials" in body


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!",
        basic("user", ""),
        "Bearer",
        "Bearer two words",
        "Digest abc",
        basic("user", "pass\r\nX-Injected: 1"),
    ],
)
def test_unusable_credentials_count_as_none(header: str, tmp_path: Path) -> None:
    assert caller_credentials({"HTTP_AUTHORIZATION": header}) is None  # type: ignore[typeddict-item]
    status, _, _ = call(app_for(UNREACHABLE, tmp_path), "/", HTTP_AUTHORIZATION=header)
    assert status.startswith("401 ")


def test_caller_credentials() -> None:
    token = caller_credentials({"HTTP_AUTHORIZATION": basic("__token__", "t0k")})  # type: ignore[typeddict-item]
    assert token is not None and (token.username, token.password) == ("token", "t0k")
    named = caller_credentials({"HTTP_AUTHORIZATION": basic("alice", "pw:with:colons")})  # type: ignore[typeddict-item]
    assert named is not None and (named.username, named.password) == ("alice", "pw:with:colons")
    bearer = caller_credentials({"HTTP_AUTHORIZATION": "Bearer abc.DEF-1_2~+/=="})  # type: ignore[typeddict-item]
    assert bearer is not None and bearer.bearer and bearer.password == "abc.DEF-1_2~+/=="
    assert "abc" not in repr(bearer) and "pw" not in repr(named)
    assert caller_credentials({}) is None  # type: ignore[typeddict-item]


def test_over_the_cap_is_413_before_the_body_is_read(tmp_path: Path) -> None:
    app = app_for(UNREACHABLE, tmp_path, max_size=1000)
    status, _, body = call(
        app, "/legacy/", CONTENT_LENGTH="1001", HTTP_AUTHORIZATION=basic("u", "p")
    )
    assert status.startswith("413 ")
    assert b"1001 bytes" in body and b"at most 1000" in body


@pytest.mark.parametrize(("length", "code"), [("", "411"), ("12x", "400"), ("-5", "400")])
def test_a_body_without_a_length_is_refused(length: str, code: str, tmp_path: Path) -> None:
    app = app_for(UNREACHABLE, tmp_path)
    status, _, _ = call(app, "/", CONTENT_LENGTH=length, HTTP_AUTHORIZATION=basic("u", "p"))
    assert status.startswith(code + " ")


def test_a_folder_target_takes_no_uploads(tmp_path: Path) -> None:
    target = LayoutTarget(tmp_path / "store")
    status, headers, body = call(
        app_for(target, tmp_path), "/", CONTENT_LENGTH="10", HTTP_AUTHORIZATION=basic("u", "p")
    )
    assert status.startswith("405 ")
    assert headers["Allow"] == "GET, HEAD"
    assert b"registry targets only" in body


def test_posts_elsewhere_are_not_allowed(tmp_path: Path) -> None:
    app = app_for(UNREACHABLE, tmp_path)
    for path in ("/simple/", "/simple/demo/", "/files/a/1.0/a.whl", "/other/"):
        status, headers, _ = call(app, path, CONTENT_LENGTH="10")
        assert status.startswith("405 ")
        assert headers["Allow"] == "GET, HEAD"
    without = IndexApp(StoreFactory(UNREACHABLE, environ={}, home=tmp_path), cache_ttl=0)
    status, _, _ = call(without, "/", CONTENT_LENGTH="10")
    assert status.startswith("405 ")


def test_the_message_is_the_reason_phrase_too(tmp_path: Path) -> None:
    data = b'--x\r\nContent-Disposition: form-data; name=":action"\r\n\r\nsubmit\r\n--x--\r\n'
    status, _, body = call(
        app_for(UNREACHABLE, tmp_path),
        "/",
        CONTENT_LENGTH=str(len(data)),
        HTTP_AUTHORIZATION=basic("u", "p"),
        **{"wsgi.input": io.BytesIO(data)},
    )
    assert status == "400 this index takes :action=file_upload only, not 'submit'"
    assert body == b"this index takes :action=file_upload only, not 'submit'\n"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1 << 20),
        ("500M", 500 << 20),
        ("500MiB", 500 << 20),
        ("2g", 2 << 30),
        ("1.5K", 1536),
        ("64kb", 64 << 10),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "0", "-1M", "ten", "5X", "1e30"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_the_cap_comes_from_the_option_else_the_environment() -> None:
    assert max_upload_size(None, {}) is None
    assert max_upload_size(None, {MAX_UPLOAD_SIZE_ENV: "2M"}) == 2 << 20
    assert max_upload_size(5, {MAX_UPLOAD_SIZE_ENV: "2M"}) == 5
    with pytest.raises(ConfigError, match=f"{MAX_UPLOAD_SIZE_ENV}: 'lots' is not a size"):
        max_upload_size(None, {MAX_UPLOAD_SIZE_ENV: "lots"})


def test_the_unread_rest_is_dropped_after_the_answer_not_before(tmp_path: Path) -> None:
    app = app_for(UNREACHABLE, tmp_path, max_size=1000)
    stream = io.BytesIO(b"x" * 6000)
    captured: list[str] = []
    env: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "CONTENT_TYPE": "multipart/form-data; boundary=x",
        "CONTENT_LENGTH": "5000",
        "HTTP_AUTHORIZATION": basic("u", "p"),
    }
    body = app(env, lambda status, headers, exc_info=None: captured.append(status))  # type: ignore[arg-type,return-value]
    assert captured[0].startswith("413 ")
    assert b"".join(body).startswith(b"the upload is 5000 bytes")
    assert stream.tell() == 0  # answered before any of it was read
    body.close()  # type: ignore[attr-defined]
    # Read to its Content-Length, so the connection closes cleanly; never beyond it.
    assert stream.tell() == 5000
