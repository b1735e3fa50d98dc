"""The client's address behind reverse proxies we run, and only those.

Anyone can write an X-Forwarded-For header, so a client could name any
address there and dodge a per-address limit (or get someone else locked
out). Only the entries our own proxies appended are believed: walking the
header from the right (the nearest hop first), every address that is one of
``KEFU_TRUSTED_PROXIES`` (IPs or CIDR networks, comma-separated) is a proxy
of ours, and the first that is not is the client. With none configured, the
default, the header is ignored and the peer is the client.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Mapping, Optional, Sequence, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def trusted_proxies(env: Optional[Mapping[str, str]] = None) -> tuple[Network, ...]:
    """``KEFU_TRUSTED_PROXIES``; a malformed entry stops start-up rather than being skipped."""
    env = os.environ if env is None else env
    raw = env.get("KEFU_TRUSTED_PROXIES", "")
    try:
        return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in raw.split(",") if item.strip())
    except ValueError as exc:
        raise ValueError(f"KEFU_TRUSTED_PROXIES: {exc}") from None


def _trusted_ip(address: str, trusted: Sequence[Network]) -> Optional[bool]:
    """Whether ``address`` is one of our proxies; None when it is not an IP at all."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return any(ip in network for network in trusted)


def client_address(peer: Optional[str], forwarded_for: Optional[str], trusted: Sequence[Network]) -> str:
    """The nearest address that is not one of our proxies; the peer when it is not one."""
    address = peer or "unknown"
    if not trusted or not _trusted_ip(address, trusted) or not forwarded_for:
        return address
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        ours = _trusted_ip(hop, trusted)
        if ours is None:
            return address  # a hop our proxy would never write: believe nothing beyond it
        if not ours:
            return hop
        address = hop
    return address
