"""The widget server (bot/web/server.py) as a browser sees it, before any JavaScript runs."""
from __future__ import annotations

import json
import re

import requests

from bot.channels.web_token import verify
from bot.run import Stack
from crm_adapter.seed import DEMO_WEB_UID


def page_config(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="kefu-config">(.*?)</script>', html, re.S)
    assert match, html[:500]
    return json.loads(match.group(1))


def test_demo_page_carries_a_token_signed_for_zhangwei(web_stack: Stack, web_secret: str) -> None:
    s = web_stack.settings
    response = requests.get(f"{s.web_url}/", timeout=10)
    assert response.status_code == 200 and "小K商城" in response.text
    config = page_config(response.text)
    assert config["socketUrl"] == s.rasa_url
    assert verify(config["token"], web_secret) == DEMO_WEB_UID
    assert page_config(requests.get(f"{s.web_url}/?guest=1", timeout=10).text)["token"] is None
    widget = requests.get(f"{s.web_url}/widget/", timeout=10)
    assert widget.ok and page_config(widget.text) == {
        "socketUrl": s.rasa_url, "token": None, "open": True, "fullPage": True}


def test_pages_allow_only_this_server_and_rasa(web_stack: Stack) -> None:
    s = web_stack.settings
    csp = requests.get(f"{s.web_url}/", timeout=10).headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    connect = next(p for p in csp.split(";") if p.strip().startswith("connect-src")).split()[1:]
    assert connect == ["'self'", s.rasa_url, s.rasa_url.replace("http://", "ws://")]
    # No inline script and nothing from another host in the pages themselves.
    for path in ("/", "/widget/"):
        text = requests.get(f"{s.web_url}{path}", timeout=10).text
        assert not re.search(r"<script>(?!\s*</script>)", text)
        assert not re.search(r'(src|href)="(https?:)?//', text)


def test_static_files_and_nothing_else(web_stack: Stack) -> None:
    s = web_stack.settings
    for name, kind in [("kefu-widget.js", "javascript"), ("kefu-widget.css", "css"),
                       ("vendor/socket.io.min.js", "javascript")]:
        response = requests.get(f"{s.web_url}/widget/static/{name}", timeout=10)
        assert response.ok and kind in response.headers["Content-Type"], name
    assert "Socket.IO v4.8.4" in requests.get(f"{s.web_url}/widget/static/vendor/socket.io.min.js",
                                              timeout=10).text[:200]
    for path in ("/widget/static/../server.py", "/widget/static/%2e%2e/server.py",
                 "/widget/static/", "/nope"):
        assert requests.get(f"{s.web_url}{path}", timeout=10).status_code in (403, 404), path
    assert requests.get(f"{s.web_url}/health", timeout=10).json() == {"status": "ok"}
