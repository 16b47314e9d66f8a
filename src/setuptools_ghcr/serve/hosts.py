"""Which ``Host`` header values the service answers; every other one gets ``421``.

A web page can rebind its own DNS name to 127.0.0.1 and then read a local index as if it
were its own site: the browser still sends the page's name as ``Host``. Answering only
the names the operator meant (loopback names and addresses always, the bound address, and
those given with ``--allowed-host`` or ``SETUPTOOLS_GHCR_ALLOWED_HOSTS``) closes that door.
An entry is ``NAME`` (any port), ``NAME:PORT`` (that port only) or ``*`` (any host: for a
service behind a proxy that checks names itself).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from setuptools_ghcr.errors import ConfigError

__all__ = ["HostPolicy", "split_host"]


def split_host(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a ``Host`` value, the name lowercased; None when malformed."""
    value = value.strip().lower()
    port_text = ""
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:]
    elif value.count(":") == 1:
        name, _, port_text = value.partition(":")
    elif ":" in value:
        return None  # an IPv6 address must be bracketed in a Host header
    else:
        name = value
    name = name.rstrip(".")
    if not name or any(c.isspace() or c in "/@\\" for c in name):
        return None
    if port_text:
        if not port_text.isdigit() or int(port_text) > 65535:
            return None
        return name, int(port_text)
    return name, None


def _is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostPolicy:
    """The ``Host`` values answered: loopback always, then ``allowed`` (see the module)."""

    allowed: frozenset[tuple[str, int | None]] = frozenset()
    any_host: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str], where: str = "--allowed-host") -> HostPolicy:
        allowed: set[tuple[str, int | None]] = set()
        any_host = False
        for given in entries:
            entry = given.strip()
            if not entry:
                continue
            if entry == "*":
                any_host = True
                continue
            parsed = split_host(entry)
            if parsed is None:
                raise ConfigError(f"{where}: {entry[:80]!r} is not a host name (NAME or NAME:PORT)")
            allowed.add(parsed)
        return cls(frozenset(allowed), any_host)

    def with_address(self, address: str) -> HostPolicy:
        """This policy and the address a server is bound to (unless it is a wildcard)."""
        parsed = split_host(f"[{address}]" if ":" in address else address)
        if parsed is None or parsed[0] in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
            return self
        return HostPolicy(self.allowed | {(parsed[0], None)}, self.any_host)

    def allows(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header (None: none sent) is answered."""
        if host is None:
            # Only HTTP/1.0 clients omit it, and no browser does.
            return True
        parsed = split_host(host)
        if parsed is None:
            return False
        if self.any_host or _is_loopback(parsed[0]):
            return True
        name, port = parsed
        return (name, None) in self.allowed or (port is not None and (name, port) in self.allowed)
