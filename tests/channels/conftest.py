"""A stack with the WeChat channel on, talking to a fake WeChat API, and WeChat's side."""
from __future__ import annotations

import secrets
from typing import Iterator

import pytest

from bot.run import Stack
from crm_adapter import CRM
from tests.channels.wechat_peer import WeChatPeer, new_aes_key
from tests.conftest import _start_stack, seeded_crm_url
from tests.fakes.wechat_api import FakeWeChatApi

APPID = "wx0123456789abcdef"


@pytest.fixture(scope="session")
def wechat_creds() -> dict[str, str]:
    return {"token": secrets.token_hex(8), "appid": APPID, "secret": secrets.token_hex(16),
            "aes_key": new_aes_key()}


@pytest.fixture(scope="session")
def fake_wechat(wechat_creds: dict[str, str]) -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi(wechat_creds["appid"], wechat_creds["secret"]) as api:
        yield api


@pytest.fixture(scope="session")
def wechat_stack(tmp_path_factory: pytest.TempPathFactory, wechat_creds: dict[str, str],
                 fake_wechat: FakeWeChatApi) -> Iterator[Stack]:
    """Action server + Rasa server with the WeChat channel pointed at the fake API."""
    var_dir = tmp_path_factory.mktemp("wechat_stack")
    running = _start_stack(var_dir, seeded_crm_url(var_dir), {
        "KEFU_WECHAT_TOKEN": wechat_creds["token"],
        "KEFU_WECHAT_APPID": wechat_creds["appid"],
        "KEFU_WECHAT_SECRET": wechat_creds["secret"],
        "KEFU_WECHAT_AES_KEY": wechat_creds["aes_key"],
        "KEFU_WECHAT_API_BASE": fake_wechat.base_url,
    })
    yield running
    running.stop()


@pytest.fixture(scope="session")
def peer(wechat_stack: Stack, wechat_creds: dict[str, str]) -> WeChatPeer:
    return WeChatPeer(f"{wechat_stack.settings.rasa_url}/webhooks/wechat/webhook",
                      wechat_creds["token"], wechat_creds["appid"], wechat_creds["aes_key"])


@pytest.fixture()
def wechat_crm(wechat_stack: Stack) -> CRM:
    return CRM(wechat_stack.settings.crm_url)


# --- the website channel -------------------------------------------------------

WEB_SECRET = secrets.token_urlsafe(32)  # what the shop's backend and Kefu share


@pytest.fixture(scope="session")
def web_secret() -> str:
    return WEB_SECRET


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory, web_secret: str) -> Iterator[Stack]:
    """Action server + Rasa server (socket.io channel) + widget server, signing for 张伟."""
    var_dir = tmp_path_factory.mktemp("web_stack")
    running = _start_stack(var_dir, seeded_crm_url(var_dir), {"KEFU_WEB_SECRET": web_secret})
    yield running
    running.stop()
