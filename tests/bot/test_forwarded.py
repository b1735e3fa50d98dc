"""Whose address a request behind our proxies comes from, and why a client cannot choose it."""
from __future__ import annotations

import pytest

from bot.forwarded import client_address, trusted_proxies

PROXIES = trusted_proxies({"KEFU_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.5"})


@pytest.mark.parametrize("peer, header, client", [
    ("203.0.113.9", None, "203.0.113.9"),                       # no proxy
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),                  # forged by a client: ignored
    ("10.1.2.3", "203.0.113.9", "203.0.113.9"),                 # our proxy says who
    ("10.1.2.3", "1.2.3.4, 203.0.113.9", "203.0.113.9"),        # the client's own prefix is not believed
    ("10.1.2.3", "203.0.113.9, 192.168.1.5", "203.0.113.9"),    # two of our proxies in a row
    ("10.1.2.3", "10.9.9.9", "10.9.9.9"),                       # only proxies: the farthest one
    ("10.1.2.3", "", "10.1.2.3"),
    ("10.1.2.3", "not-an-ip, 203.0.113.9", "203.0.113.9"),
    ("10.1.2.3", "203.0.113.9, junk", "10.1.2.3"),              # our proxy never writes junk: stop
    ("10.1.2.3", "2001:db8::7", "2001:db8::7"),
    (None, "203.0.113.9", "unknown"),
])
def test_client_address(peer, header, client) -> None:
    assert client_address(peer, header, PROXIES) == client


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address("10.1.2.3", "203.0.113.9", trusted_proxies({})) == "10.1.2.3"


def test_a_malformed_setting_stops_start_up() -> None:
    with pytest.raises(ValueError, match="KEFU_TRUSTED_PROXIES"):
        trusted_proxies({"KEFU_TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"})
