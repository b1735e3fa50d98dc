"""Our HTTP servers keep an idle connection open longer than their clients do.

Rasa calls the action server through an aiohttp pool that reuses a connection
for up to 15 s; Sanic's default closes it after 5 s. A call sent in the
moment the server closes fails with ServerDisconnectedError, and Rasa drops
that turn's events: a soak lost a complaint that way. Here a raw HTTP/1.1
client idles 7 s (past Sanic's default, within aiohttp's) and asks again on
the same socket; on the old setting the second answer is an empty read.
"""
from __future__ import annotations

import socket
import time

from bot.run import Stack

IDLE_S = 7.0  # > Sanic's default KEEP_ALIVE_TIMEOUT (5 s), < aiohttp's pool keep-alive (15 s)


def _ask(conn: socket.socket, path: str) -> bytes:
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n".encode())
    return conn.recv(65536)


def test_idle_connections_outlive_the_clients_pools(stack: Stack) -> None:
    s = stack.settings
    servers = {"action server": (s.action_port, "/health"), "rasa": (s.rasa_port, "/")}
    conns = {name: socket.create_connection((s.host, port), timeout=30) for name, (port, _) in servers.items()}
    try:
        for name, conn in conns.items():
            assert _ask(conn, servers[name][1]).startswith(b"HTTP/1.1 200"), name
        time.sleep(IDLE_S)
        for name, conn in conns.items():
            again = _ask(conn, servers[name][1])
            assert again.startswith(b"HTTP/1.1 200"), f"{name} closed an idle connection after < {IDLE_S} s"
    finally:
        for conn in conns.values():
            conn.close()
