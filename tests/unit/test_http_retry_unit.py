"""The retry policy: which answers are retried, how long to wait."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from setuptools_ghcr.storage.registry.retry import (
    RETRYABLE_STATUSES,
    RetryPolicy,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("7", 7.0), (" 0 ", 0.0), ("soon", None), ("-3", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_retryable_statuses() -> None:
    assert {408, 429, 500, 502, 503, 504} <= RETRYABLE_STATUSES
    assert not {400, 401, 403, 404, 501, 505} & RETRYABLE_STATUSES


def test_retry_count() -> None:
    policy = RetryPolicy(retries=2)
    assert [policy.should_retry(n) for n in (1, 2, 3)] == [True, True, False]
    assert not RetryPolicy(retries=0).should_retry(1)


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    assert policy.delay(1, None, jitter=0.0) == 0.5
    assert policy.delay(1, None, jitter=0.999) == pytest.approx(1.0, abs=0.01)
    assert policy.delay(2, None, jitter=0.0) == 1.0
    assert policy.delay(3, None, jitter=0.0) == 2.0
    assert policy.delay(10, None, jitter=1.0) == 5.0


def test_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=60.0)
    assert policy.delay(1, 12.0, jitter=0.9) == 12.0
    assert policy.delay(1, 3600.0, jitter=0.0) == 60.0


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0, max_value=1))
def test_delay_is_always_within_bounds(retry: int, jitter: float) -> None:
    policy = RetryPolicy()
    delay = policy.delay(retry, None, jitter)
    assert 0 < delay <= policy.max_delay
