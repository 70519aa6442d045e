"""Which addresses the crawler may connect to: http(s) only, public IPs unless allowed.

The host is resolved here and the caller connects to the address that was checked, never
resolving the name again, so a DNS answer that changes between check and connect (DNS
rebinding) cannot steer a request to a private address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import SplitResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services; most are link-local already, named here so none is missed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


class UnsafeURLError(ValueError):
    """A URL the crawler refuses to fetch; the message says why ('unsafe: ...')."""


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address that is no metadata service."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and address not in METADATA_ADDRESSES
    )


def _allowed(host: str, address: IPAddress, allow: Iterable[str]) -> bool:
    """Whether `host` or `address` is on the allow-list (host names, IPs or CIDR ranges)."""
    for entry in allow:
        if entry.lower() == host:
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:  # a host name entry
            continue
    return False


def checked_address(parts: SplitResult, allow_private: Iterable[str]) -> tuple[str, int]:
    """The (ip, port) to connect to for `parts`, after checking scheme and every resolved
    address; raise UnsafeURLError if any is private and not allowed."""
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURLError(f"unsafe: scheme {scheme or '(none)'!r} is not http or https")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeURLError("unsafe: URL has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as err:
        raise UnsafeURLError(f"unsafe: bad port: {err}") from err
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise OSError(f"dns: {host}: {err}") from err
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    allow = list(allow_private)
    for address in addresses:
        if not is_public(address) and not _allowed(host, address, allow):
            raise UnsafeURLError(
                f"unsafe: {host} resolves to non-public address {address} "
                "(allow it with crawl.allow_private_hosts)"
            )
    return str(addresses[0]), port
