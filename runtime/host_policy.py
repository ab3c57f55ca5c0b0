"""Host and Origin allow-lists against DNS rebinding and cross-site calls (standard library only).

Shared by the model server's request guard (runtime/guards.py) and the multi-model stack's
gateway (compose/gateway.py, which runs with the standard library alone and gets this file
beside it in the stack folder).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

LOCAL_NAMES = frozenset({"localhost", "0.0.0.0", "::"})


class HostPolicy:
    """Which Host headers and browser Origins a server answers."""

    def __init__(
        self, host: str, allowed_hosts: Iterable[str], cors_origins: Iterable[str]
    ) -> None:
        extra = {name.lower().rstrip(".") for name in allowed_hosts}
        self.any_host = "*" in extra
        self.names = extra | {host.lower().strip("[]")}
        self.origins = frozenset(o.rstrip("/") for o in cors_origins)

    def host_allowed(self, host_header: str | None) -> bool:
        """Localhost, IP literals, dotless names (a DNS-rebinding attacker needs a public,
        dotted name), the bound host and the allowed hosts; '*' allows any."""
        if self.any_host or not host_header:
            return True
        name = hostname(host_header)
        if name is None:
            return False
        if name in LOCAL_NAMES or name.endswith(".localhost") or "." not in name:
            return True
        if _is_ip(name) or name in self.names:
            return True
        return any(n.startswith("*.") and name.endswith(n[1:]) for n in self.names)

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        """No Origin (not a browser), the page's own origin, or an allowed origin."""
        if origin is None:
            return True
        origin = origin.rstrip("/")
        if "*" in self.origins or origin in self.origins:
            return True
        if not host_header:
            return False
        return urlsplit(origin).netloc.lower() == host_header.lower()

    def refusal(
        self, host: str | None, origin: str | None, *, hosts_hint: str, origins_hint: str
    ) -> tuple[int, str, str] | None:
        """(status, code, message) when Host or Origin is not allowed, else None. The hints
        name the setting that allows a name (``--allowed-hosts NAME``) or an origin."""
        if not self.host_allowed(host):
            name = hostname(host or "") or host
            return (
                400,
                "host_not_allowed",
                f"Host {host!r} is not allowed. If you reach this server by that name, "
                f"{hosts_hint.format(name=name)}.",
            )
        if not self.origin_allowed(origin, host):
            return (
                403,
                "origin_not_allowed",
                f"Origin {origin!r} may not call this server. To allow a web page on another "
                f"origin, {origins_hint}.",
            )
        return None


def hostname(host_header: str) -> str | None:
    """The name in a Host header (no port, no trailing dot); None when it is malformed."""
    try:
        return (urlsplit("//" + host_header).hostname or "").rstrip(".") or None
    except ValueError:
        return None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
