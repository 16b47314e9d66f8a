"""When and how long to wait before trying a registry request again.

Pure policy: the registry client asks it whether an answer is worth another try and how long to
sleep first, so the numbers can be tested without a network.
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "parse_retry_after", "retry_after_in_message"]

#: Answers that say "later": timeouts, rate limits and server-side trouble. 501 and 505 are
#: permanent, so they are left out.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


#: ``retry-after: 1m30s`` in an error message (ghcr.io's 429s): a Go duration.
_MESSAGE_RETRY_AFTER = re.compile(r"(?i)retry[- ]after:?\s*((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def retry_after_in_message(text: str) -> float | None:
    """Seconds to wait named in an error message (``toomanyrequests: retry-after: 30s``)."""
    match = _MESSAGE_RETRY_AFTER.search(text)
    if match is None:
        return None
    return sum(
        float(number) * _UNIT_SECONDS[unit]
        for number, unit in _DURATION_PART.findall(match.group(1))
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded, honouring ``Retry-After`` up to a cap."""

    retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    #: A registry asking for a longer pause than this is not worth waiting for in a CLI.
    max_retry_after: float = 60.0

    def should_retry(self, retry_number: int) -> bool:
        """Whether retry number ``retry_number`` (1 for the first retry) is allowed."""
        return retry_number <= self.retries

    def delay(self, retry_number: int, retry_after: float | None, jitter: float) -> float:
        """Seconds to sleep before retry ``retry_number``; ``jitter`` is uniform in [0, 1).

        Half of the backoff is fixed and half random ("equal jitter"), so that parallel
        clients spread out yet none retries immediately.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        backoff = min(self.max_delay, self.base_delay * 2.0 ** max(retry_number - 1, 0))
        return backoff / 2 + backoff / 2 * min(max(jitter, 0.0), 1.0)
