"""With no WeChat token (how `make run` starts by default) the channel is off and harmless."""
from __future__ import annotations

import requests

from bot.run import Stack
from tests.conftest import Chat


def test_wechat_channel_is_off_by_default_and_rest_still_works(stack: Stack) -> None:
    url = f"{stack.settings.rasa_url}/webhooks/wechat/webhook"
    params = {"signature": "x", "timestamp": "1", "nonce": "n", "echostr": "hello"}
    assert requests.get(url, params=params, timeout=10).status_code == 404
    assert requests.post(url, params=params, data="<xml/>", timeout=10).status_code == 404
    assert "99" in Chat(stack).say("满多少包邮")
