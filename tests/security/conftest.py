"""One running stack for the security and bad-input tests: every channel on.

REST, the website (socket.io, signed tokens), WeChat in safe mode against the
fake WeChat API, the widget server and the desk — so the fuzz tests reach
every HTTP endpoint we own, and the rate limit is on with small numbers so
its tests do not need minutes.  Started once per test session (about a
minute); tests keep apart by using fresh sender ids.
"""
from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from dataclasses import dataclass
from typing import Iterator

import pytest

from bot.run import Stack, isolated_stack
from crm_adapter import CRM
from tests.channels.wechat_peer import WeChatPeer, new_aes_key
from tests.conftest import RETENTION_OFFER_ENV, seeded_crm_url
from tests.desk_client import PASSWORD, DeskClient
from tests.fakes.wechat_api import FakeWeChatApi

APPID = "wx00fuzz000000000"
#: Small on purpose: the rate-limit tests reach them in a few messages.
RATE_PER_MINUTE = 6
RATE_BURST = 4
LOGIN_FAILURE_BURST = 5
TRUSTED_PROXY = "127.0.0.3"


@dataclass
class SecurityStack:
    stack: Stack
    peer: WeChatPeer
    wechat: FakeWeChatApi
    web_secret: str
    agent: DeskClient
    manager: DeskClient

    @property
    def settings(self):  # noqa: ANN201 (bot.settings.Settings)
        return self.stack.settings


@pytest.fixture(scope="session")
def security(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecurityStack]:
    creds = {"token": secrets.token_hex(8), "secret": secrets.token_hex(16), "aes_key": new_aes_key()}
    web_secret = secrets.token_urlsafe(32)
    var_dir = tmp_path_factory.mktemp("security_stack")
    # The desk reads its login limit from the environment it inherits.
    saved = {k: os.environ.get(k) for k in ("KEFU_DESK_LOGIN_FAILURES_BURST", "KEFU_TRUSTED_PROXIES")}
    os.environ["KEFU_DESK_LOGIN_FAILURES_BURST"] = str(LOGIN_FAILURE_BURST)
    os.environ["KEFU_TRUSTED_PROXIES"] = TRUSTED_PROXY  # as if a reverse proxy ran on 127.0.0.3
    with FakeWeChatApi(APPID, creds["secret"]) as fake:
        try:
            running = isolated_stack(var_dir, seeded_crm_url(var_dir), {
                **RETENTION_OFFER_ENV,
                "KEFU_WECHAT_TOKEN": creds["token"], "KEFU_WECHAT_APPID": APPID,
                "KEFU_WECHAT_SECRET": creds["secret"], "KEFU_WECHAT_AES_KEY": creds["aes_key"],
                "KEFU_WECHAT_API_BASE": fake.base_url, "KEFU_WEB_SECRET": web_secret,
                "KEFU_RATE_PER_MINUTE": str(RATE_PER_MINUTE), "KEFU_RATE_BURST": str(RATE_BURST),
            })
            _start(running)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        try:
            crm = CRM(running.settings.crm_url)
            clients = []
            for role in ("agent", "manager"):
                username = f"fuzz{role}{secrets.token_hex(3)}"
                crm.desk.create_staff(username, "测试" + role, role, PASSWORD)
                client = DeskClient(running.settings.desk_url)
                assert client.login(username).status_code == 302
                clients.append(client)
            crm.dispose()
            peer = WeChatPeer(f"{running.settings.rasa_url}/webhooks/wechat/webhook",
                              creds["token"], APPID, creds["aes_key"])
            yield SecurityStack(running, peer, fake, web_secret, *clients)
        finally:
            running.stop()


def _start(stack: Stack) -> None:
    """Like tests.conftest's start, with more patience: CI machines shared by other jobs
    have taken over five minutes to load the model."""
    try:
        stack.start(timeout=900)
    except Exception:
        stack.stop()
        for log in sorted((stack.log_dir or Path(".")).glob("*.log")):
            print(f"--- {log.name} ---\n{log.read_text(errors='replace')[-4000:]}")
        raise


def source_address_available(address: str) -> bool:
    """Whether this host lets a client bind another loopback address (Linux does)."""
    try:
        with socket.socket() as sock:
            sock.bind((address, 0))
        return True
    except OSError:
        return False
