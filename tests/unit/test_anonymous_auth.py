"""The anonymous fast path and ghcr.io's ``retry-after`` messages, without a network.

The emulator (``tests/integration/test_ghcr.py``) runs on loopback, so it cannot be the host
``ghcr.io``: what the transport does for that host name is checked here, against a fake
requests adapter that answers as ghcr.io does.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from setuptools_ghcr.errors import AuthenticationError, ConfigError
from setuptools_ghcr.storage.registry.challenge import GHCR_DUMMY_BEARER, AnonymousAuth
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.registry.credentials import Credentials
from setuptools_ghcr.storage.registry.retry import retry_after_in_message

CHALLENGE = 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"'


@pytest.mark.parametrize(
    ("text", "value", "automatic"),
    [
        (None, None, True),
        ("", None, True),
        ("  ", None, True),
        ("none", None, False),
        ("NONE", None, False),
        ("Bearer QQ==", "Bearer QQ==", False),
        ("bearer abc", "Bearer abc", False),
        ("Basic dXNlcjpwYXNz", "Basic dXNlcjpwYXNz", False),
        ("  Bearer   xyz  ", "Bearer xyz", False),
    ],
)
def test_anonymous_auth_parses_the_variable(
    text: str | None, value: str | None, automatic: bool
) -> None:
    setting = AnonymousAuth.parse(text)
    assert (setting.value, setting.automatic) == (value, automatic)


@pytest.mark.parametrize("text", ["QQ==", "Token abc", "Bearer", "Bearer a b", "Digest x"])
def test_anonymous_auth_refuses_other_values_without_echoing_them(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AnonymousAuth.parse(text)
    assert "SETUPTOOLS_GHCR_ANONYMOUS_AUTH" in str(caught.value)
    assert text not in str(caught.value) or text in ("Bearer",)


def test_the_default_sends_the_dummy_bearer_to_ghcr_only() -> None:
    default = AnonymousAuth.parse(None)
    assert default.value_for(is_ghcr=True) == GHCR_DUMMY_BEARER == "Bearer QQ=="
    assert default.value_for(is_ghcr=False) is None
    assert AnonymousAuth.parse("none").value_for(is_ghcr=True) is None
    configured = AnonymousAuth.parse("Basic Zm9vOmJhcg==")
    assert configured.value_for(is_ghcr=False) == "Basic Zm9vOmJhcg=="
    assert "Zm9v" not in repr(configured)


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("toomanyrequests: retry-after: 30s", 30.0),
        ("TOOMANYREQUESTS: retry-after: 1m30s, allowed: 44000/minute", 90.0),
        ("retry-after: 250ms", 0.25),
        ("Retry After: 2.5s", 2.5),
        ("retry-after: 1h", 3600.0),
        ("slow down", None),
        ("retry-after: soon", None),
    ],
)
def test_retry_after_in_an_error_message(message: str, seconds: float | None) -> None:
    assert retry_after_in_message(message) == seconds


# -- the transport against a fake ghcr.io ------------------------------------------------------


class FakeGhcr(requests.adapters.BaseAdapter):
    """Answers as ghcr.io does: any bearer reads a public package, tokens for public ones."""

    def __init__(self, *, public: bool) -> None:
        super().__init__()
        self.public = public
        self.sent: list[tuple[str, str, str | None]] = []

    def send(self, request: requests.PreparedRequest, **_kwargs: object) -> requests.Response:
        url = request.url or ""
        authorization = request.headers.get("Authorization")
        self.sent.append((request.method or "", url, authorization))
        if url.startswith("https://ghcr.io/token"):
            if self.public:
                return self._answer(request, 200, {"token": "issued-token"})
            return self._answer(request, 401, _errors("DENIED"))
        if authorization == "Bearer issued-token" or (
            authorization and authorization.startswith("Bearer ") and self.public
        ):
            return self._answer(request, 200, {"name": "a/b", "tags": ["1.0"]})
        if authorization:
            return self._answer(request, 403, _errors("DENIED"))
        return self._answer(request, 401, _errors("UNAUTHORIZED"), CHALLENGE)

    def _answer(
        self,
        request: requests.PreparedRequest,
        status: int,
        value: object,
        challenge: str | None = None,
    ) -> requests.Response:
        body = json.dumps(value).encode()
        response = requests.Response()
        response.status_code = status
        response.request = request
        response.url = request.url or ""
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        if challenge:
            headers["WWW-Authenticate"] = challenge
        response.headers = CaseInsensitiveDict(headers)
        response.raw = io.BytesIO(body)
        return response

    def close(self) -> None:
        pass


def _errors(code: str) -> dict[str, object]:
    return {"errors": [{"code": code, "message": code.lower()}]}


def _client(
    adapter: FakeGhcr, setting: str | None = None, credentials: Credentials | None = None
) -> RegistryClient:
    session = requests.Session()
    session.mount("https://", adapter)
    return RegistryClient(
        "ghcr.io",
        "https",
        credentials,
        session=session,
        anonymous_auth=AnonymousAuth.parse(setting),
    )


def test_public_reads_on_ghcr_io_need_no_token(caplog: pytest.LogCaptureFixture) -> None:
    adapter = FakeGhcr(public=True)
    with caplog.at_level(logging.DEBUG, "setuptools_ghcr.http"), _client(adapter) as client:
        assert client.list_tags("a/b") == ["1.0"]
        assert client.list_tags("a/b") == ["1.0"]
        traffic = client.traffic
    assert [auth for _method, _url, auth in adapter.sent] == ["Bearer QQ==", "Bearer QQ=="]
    assert traffic.requests == 2
    assert traffic.token_requests == 0
    assert traffic.fast_path_reads == 2
    assert "anonymous fast path: ghcr.io took 'Bearer ***'" in caplog.text
    assert "QQ==" not in caplog.text


def test_a_refused_fast_path_falls_back_to_the_token_flow_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = FakeGhcr(public=False)
    with caplog.at_level(logging.DEBUG, "setuptools_ghcr.http"), _client(adapter) as client:
        for _ in range(2):
            with pytest.raises(AuthenticationError) as caught:
                client.list_tags("a/b")
            assert "requires credentials" in str(caught.value)
        traffic = client.traffic
    sent = [(url.split("?")[0], auth) for _method, url, auth in adapter.sent]
    assert sent[:3] == [
        ("https://ghcr.io/v2/a/b/tags/list", "Bearer QQ=="),
        ("https://ghcr.io/v2/a/b/tags/list", None),
        ("https://ghcr.io/token", None),
    ]
    # Refused once for these scopes: the next read goes straight to the challenge flow.
    assert ("https://ghcr.io/v2/a/b/tags/list", "Bearer QQ==") not in sent[3:]
    assert traffic.fast_path_refusals == 1
    assert "refused it (403)" in caplog.text


def test_none_turns_the_fast_path_off() -> None:
    adapter = FakeGhcr(public=True)
    with _client(adapter, "none") as client:
        assert client.list_tags("a/b") == ["1.0"]
        traffic = client.traffic
    assert [auth for _method, _url, auth in adapter.sent] == [None, None, "Bearer issued-token"]
    assert traffic.token_requests == 1
    assert traffic.fast_path_reads == 0


def test_credentials_refused_for_a_public_package_fall_back_to_the_fast_path() -> None:
    # A token issued for the credentials that the registry then refuses (a PAT without
    # read:packages, say): the read goes on anonymously, by the fast path.
    adapter = FakeGhcr(public=True)
    original = adapter.send

    def with_a_useless_token(
        request: requests.PreparedRequest, **kwargs: object
    ) -> requests.Response:
        authorization = request.headers.get("Authorization", "")
        if (request.url or "").startswith("https://ghcr.io/token") and authorization:
            adapter.sent.append((request.method or "", request.url or "", "Basic ***"))
            return adapter._answer(request, 200, {"token": "useless-token"})
        if authorization == "Bearer useless-token":
            adapter.sent.append((request.method or "", request.url or "", authorization))
            return adapter._answer(request, 403, _errors("DENIED"))
        return original(request, **kwargs)

    adapter.send = with_a_useless_token  # type: ignore[method-assign]
    stale = Credentials("someone", "a-pat", "test")
    with _client(adapter, credentials=stale) as client:
        assert client.list_tags("a/b") == ["1.0"]
        assert client.list_tags("a/b") == ["1.0"]
    assert [auth for _method, _url, auth in adapter.sent] == [
        None,
        "Basic ***",
        "Bearer useless-token",
        "Bearer QQ==",
        # Read anonymously from then on, by the fast path straight away.
        "Bearer QQ==",
    ]
