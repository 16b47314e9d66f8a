"""Keeping secrets out of text meant for people: messages, logs, URLs."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["ANYWHERE_FROM", "Redactor", "redact_url"]

#: Secrets this long are masked even inside other words; shorter ones only as whole values.
ANYWHERE_FROM = 8

#: Query parameters that are safe to show; every other value is replaced, because upload
#: locations and CDN redirects carry signatures and state that act as bearer secrets.
_PUBLIC_QUERY_KEYS = frozenset({"digest", "mount", "from", "n", "last", "service", "scope"})
_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),  # JWTs
    re.compile(
        r"(?i)\b(token|access_token|refresh_token|password|secret|signature|sig|"
        r"x-amz-signature|x-amz-credential|x-amz-security-token|_state)=[^&\s\"']+"
    ),
)


def redact_url(url: str) -> str:
    """``url`` without user info and with the values of non-public query parameters hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(
        [
            (key, value if key in _PUBLIC_QUERY_KEYS else "***")
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe=":*,/",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class Redactor:
    """Scrubs known secrets and secret-looking fragments out of text meant for people.

    A known secret is masked where it stands as a value of its own, not where its letters
    happen to be part of another word: the password ``pass`` must not turn ``--password``
    into ``--***word``. A secret of :data:`ANYWHERE_FROM` characters or more is masked
    wherever it appears, since no ordinary word contains one.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = {secret for secret in secrets if secret}
        # Upload threads add tokens while others format errors.
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if secret:
            with self._lock:
                self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        # Longest first, so that a secret containing another is hidden whole.
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if len(secret) >= ANYWHERE_FROM:
                text = text.replace(secret, "***")
            else:
                text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", "***", text)
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(_mask, text)
        return text


def _mask(match: re.Match[str]) -> str:
    whole = match.group(0)
    # Whitespace first: "Basic <base64>=" must lose its padded value, not keep it before "=".
    for separator in (" ", "\t", "="):
        if separator in whole:
            return whole.split(separator, 1)[0] + separator + "***"
    return "***"
