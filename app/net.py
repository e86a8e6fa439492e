"""Outbound URL safety (SSRF guard): where Casehook may connect on someone's behalf.

``check_url`` resolves a URL's host once and says which address to connect to, or raises
``UnsafeURL`` naming the class of address it refused. The caller connects to that very
address (``pinned_request``), so a DNS answer that changes between the check and the
connection (DNS rebinding) cannot send the request somewhere else.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata services (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba, Oracle).
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")


class UnsafeURL(ValueError):
    """The URL may not be used; ``reason`` is the address class ("loopback", "private",
    "link-local", "cgnat", "multicast", "unspecified", "metadata", "reserved") or "invalid",
    ``address`` the address refused (None for "invalid")."""

    def __init__(self, reason: str, message: str, address: str | None = None) -> None:
        super().__init__(message)
        self.reason, self.address = reason, address


@dataclass(frozen=True)
class Target:
    """A checked URL: its ``host`` (as written), ``port`` and the ``address`` to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str


def address_class(address: IPAddress) -> str | None:
    """The class that makes ``address`` unsafe to connect to, or None for a public one.
    IPv4-mapped and IPv4-compatible IPv6 addresses are judged as the IPv4 they carry."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or _ipv4_compatible(address)
        if embedded is not None:
            address = embedded
    if address in METADATA:
        return "metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "cgnat"
    if address.is_private:
        return "private"
    if not address.is_global or address.is_reserved:
        return "reserved"
    return None


def _ipv4_compatible(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # ::a.b.c.d (deprecated, but some stacks still route it to the IPv4 address); not :: or ::1.
    value = int(address)
    if value >> 32 == 0 and value > 1:
        return ipaddress.IPv4Address(value)
    return None


def parse_allow(value: str | Iterable[str] | None) -> tuple[frozenset[str], tuple]:
    """``(hosts, networks)`` from ``CASEHOOK_OUTBOUND_ALLOW`` ("hooks.internal,10.0.0.0/8,::1")."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    hosts, networks = set(), []
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
        except ValueError:
            hosts.add(item)
    return frozenset(hosts), tuple(networks)


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_url(url: str, allow: str | Iterable[str] | None = None) -> Target:
    """Check ``url`` (http or https) and resolve its host once.

    Every address the host resolves to must be public, or allowed by ``allow`` (hosts
    matched by name, networks by address); returns a ``Target`` with the first address.
    Raises ``UnsafeURL``: reason "invalid" (not an http(s) URL with a host, or the host does
    not resolve), or the class of the refused address.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("invalid", f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("invalid", "give an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise UnsafeURL("invalid", "credentials in the URL are not allowed; use headers")
    host = parts.hostname.lower()
    hosts, networks = parse_allow(allow)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in _resolve(host, port)]
        except (OSError, UnicodeError) as exc:
            raise UnsafeURL("invalid", f"{host} does not resolve: {exc}") from None
    if not addresses:
        raise UnsafeURL("invalid", f"{host} does not resolve")
    if host not in hosts:
        for address in addresses:
            reason = address_class(address)
            if reason and not _allowed(address, networks):
                shown = host if str(address) == host.strip("[]") else f"{host} ({address})"
                raise UnsafeURL(
                    reason,
                    f"{shown}: {reason} address refused; outbound requests go to public "
                    "addresses only (CASEHOOK_OUTBOUND_ALLOW lists exceptions)",
                    str(address),
                )
    return Target(url, parts.scheme, host, port, str(addresses[0]))


def _allowed(address: IPAddress, networks: tuple) -> bool:
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        candidates.append(address.ipv4_mapped)
    return any(a in n for a in candidates for n in networks if n.version == a.version)


def pinned_request_args(target: Target, url: str | None = None) -> dict:
    """Arguments for ``httpx.Client.request`` that connect to ``target.address`` while the
    request still names the host (Host header, TLS server name and certificate check)."""
    parts = urlsplit(url or target.url)
    address = target.address
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return {
        "url": parts._replace(netloc=netloc).geturl(),
        "headers": {"Host": host_header},
        "extensions": {"sni_hostname": target.host} if target.scheme == "https" else {},
    }
