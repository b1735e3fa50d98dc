"""Every process of the stack listens on KEFU_HOST (127.0.0.1) only.

The action server has no authentication of its own: whoever reaches it can
run any action on a tracker they make up.  rasa_sdk listens on 0.0.0.0
unless SANIC_HOST says otherwise, which it did here until this test.
"""
from __future__ import annotations

import psutil

from tests.security.conftest import SecurityStack


def test_no_process_of_the_stack_listens_beyond_kefu_host(security: SecurityStack) -> None:
    host = security.settings.host
    assert host == "127.0.0.1"
    listening = {}
    for name, proc in security.stack.named.items():
        family = psutil.Process(proc.pid)
        for p in [family, *family.children(recursive=True)]:
            for conn in p.connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.setdefault(name, set()).add(conn.laddr.ip)
    assert {"actions", "rasa", "web", "desk"} <= set(listening), listening
    assert all(addresses == {host} for addresses in listening.values()), listening
