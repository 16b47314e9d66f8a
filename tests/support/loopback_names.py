"""Host names that are not loopback names but resolve to 127.0.0.1, inside one process.

The tool speaks plain http to loopback registries only, so what it does with any other
registry (https, ``--insecure-registry``) needs a host name it does not count as loopback.
Tests must never send traffic off loopback: not to a public address, not to a private one,
not to this machine's own. So, while :func:`names_on_loopback` is active, the process's
resolver answers the given names with 127.0.0.1 and refuses every other name that is not
a loopback name or address outright, without asking any DNS server.

A command run in a process of its own gets the same resolver when its environment names
the hosts in :data:`ENV` (comma-separated) and it calls :func:`install_from_environment`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["ENV", "install_from_environment", "names_on_loopback"]

#: The variable a child process reads its loopback names from (tests only).
ENV = "TEST_LOOPBACK_NAMES"


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _resolver(names: frozenset[str], original: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        text = host.decode() if isinstance(host, bytes) else str(host or "")
        if text.lower() in names:
            return original("127.0.0.1", port, *args, **kwargs)
        if host is None or _loopback(text):
            return original(host, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"{text}: not resolved in tests (off loopback)")

    return getaddrinfo


@contextlib.contextmanager
def names_on_loopback(*names: str) -> Iterator[None]:
    """Resolve ``names`` to 127.0.0.1 and no other non-loopback name, while active."""
    original = socket.getaddrinfo
    socket.getaddrinfo = _resolver(frozenset(n.lower() for n in names), original)
    try:
        yield
    finally:
        socket.getaddrinfo = original


def install_from_environment() -> None:
    """In a child process: the resolver of :func:`names_on_loopback` for the names in
    :data:`ENV`, for the rest of the process (nothing when the variable is not set)."""
    names = [name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()]
    if names:
        socket.getaddrinfo = _resolver(frozenset(n.lower() for n in names), socket.getaddrinfo)
