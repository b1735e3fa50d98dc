"""Customer PII never appears unmasked in any log of the stack.

A conversation gives a phone number, a name, an address and an e-mail on
every channel (REST profile changes by bound customers, free text on REST,
WeChat and the website); afterwards every log file of the running stack is
scanned for them.
"""
from __future__ import annotations

import random
import uuid

import requests

from tests.channels.wechat_peer import new_openid
from tests.security.conftest import SecurityStack

NAME = "司马晓光"
ADDRESS_DETAIL = "建国路八十八号华贸中心三号楼"


def test_no_phone_name_address_or_email_in_any_log(security: SecurityStack) -> None:
    from tests.channels.web_peer import WebPeer

    phone = f"139{random.randrange(10**7, 10**8)}"
    email = f"pii{uuid.uuid4().hex[:8]}@example.com"
    free_text = f"我叫{NAME}，手机{phone}，邮箱{email}，地址北京市朝阳区{ADDRESS_DETAIL}，帮我查下订单"
    url = f"{security.settings.rasa_url}/webhooks/rest/webhook"

    def say(sender: str, text: str) -> str:
        response = requests.post(url, json={"sender": sender, "message": text}, timeout=60)
        assert response.status_code == 200
        return " ".join(m.get("text", "") for m in response.json())

    say("demo-lina", "我想改一下邮箱")
    say("demo-lina", email)
    assert "已为您更新邮箱" in say("demo-lina", "确认")
    say("demo-zhangwei", "我想改一下手机号")
    say("demo-zhangwei", phone)
    say("demo-zhangwei", "确认")
    say(f"pii-{uuid.uuid4().hex[:8]}", free_text)
    assert security.peer.say(new_openid(), free_text, aes=True).status == 200
    with WebPeer(security.stack).open() as peer:
        peer.say(free_text)

    logs = sorted((security.stack.log_dir or security.stack.settings.model_path).glob("*.log"))
    assert {p.stem for p in logs} >= {"rasa", "actions", "web", "desk"}
    found = []
    for path in logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in (phone, email, NAME, ADDRESS_DETAIL):
            if secret in text:
                line = next(l for l in text.splitlines() if secret in l)
                found.append(f"{path.name}: {secret!r} in {line[:200]!r}")
    assert not found, "\n".join(found)
