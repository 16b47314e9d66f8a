"""What each caller has proved it may read, and for how long.

A page read from a registry with one caller's credentials is kept and reused, but it is
handed only to callers who proved they may read that project: a request of their own,
with their own credentials, that the registry accepted (or answered "not found") within
the cache's lifetime. The ledger records those answers by (resource, caller key); nothing
in it is a credential. It lives in one process: another worker, or a restart, asks again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["MAX_PROOFS", "AccessLedger"]

#: Answers remembered at most; the oldest go first.
MAX_PROOFS = 65536


class AccessLedger:
    """(resource, caller) -> whether the registry let the caller read it, for ``ttl`` seconds.

    ``found`` records what the caller's own request found: True for a project the registry
    showed it, False for one the registry said it does not hold. A refusal is never
    recorded: the caller is asked again on every request.
    """

    def __init__(
        self, ttl: float, clock: Callable[[], float], max_entries: int = MAX_PROOFS
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._max = max(1, max_entries)
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[str, str], tuple[float, bool]] = OrderedDict()

    def record(self, resource: str, caller: str, *, found: bool = True) -> None:
        """The registry answered ``caller``'s own request about ``resource``."""
        if self._ttl <= 0:
            return
        key = (resource, caller)
        with self._lock:
            self._answers.pop(key, None)
            while len(self._answers) >= self._max:
                self._answers.popitem(last=False)
            self._answers[key] = (self._clock() + self._ttl, found)

    def answer(self, resource: str, caller: str) -> bool | None:
        """What ``caller`` was shown of ``resource`` lately: True, False (absent), or None
        when it has not asked within the lifetime (it must ask the registry)."""
        key = (resource, caller)
        with self._lock:
            found = self._answers.get(key)
            if found is None:
                return None
            expires, value = found
            if expires <= self._clock():
                del self._answers[key]
                return None
            return value

    def forget(self, resource: str) -> None:
        """Drop every caller's answer about ``resource`` (it changed)."""
        with self._lock:
            for key in [key for key in self._answers if key[0] == resource]:
                del self._answers[key]

    def proved(self, resource: str, caller: str) -> bool:
        """Whether ``caller`` was lately allowed to read ``resource`` and found it."""
        return self.answer(resource, caller) is True
