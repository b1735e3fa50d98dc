"""Bad input at scale: every HTTP endpoint we own, fuzzed against the real running servers.

Properties, for every example: never a 5xx (a refusal is a 4xx with a reason),
a customer's text message always gets a readable Chinese answer, and at the
end every process is still running and answers a normal message.  Servers:
Rasa (REST webhook, /model/parse behind the token, socket.io, the WeChat
webhook), the widget server and the desk.  Example counts: tests/security/strategies.py.
"""
from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st

from tests.channels.wechat_peer import ACCOUNT, new_openid, sign
from tests.security.conftest import SecurityStack
from tests.security.strategies import (
    FUZZ,
    FUZZ_SLOW,
    any_text,
    json_values,
    json_with_surrogates,
    nasty_text,
    readable_chinese,
    surrogate_escape,
)

TIMEOUT = 60


def sender() -> str:
    return f"fuzz-{uuid.uuid4().hex[:12]}"


def assert_no_5xx(response: requests.Response) -> None:
    assert response.status_code < 500, f"{response.status_code} {response.request.method} " \
                                       f"{response.request.url[:200]}: {response.text[:300]}"


# --- Rasa: REST webhook and NLU ---------------------------------------------------------

@FUZZ
@given(text=any_text)
def test_rest_webhook_answers_any_text_in_chinese(security: SecurityStack, text: str) -> None:
    response = requests.post(f"{security.settings.rasa_url}/webhooks/rest/webhook",
                             json={"sender": sender(), "message": text}, timeout=TIMEOUT)
    assert_no_5xx(response)
    assert response.status_code == 200
    assert readable_chinese([m.get("text", "") for m in response.json()]), (text[:80], response.json())


@FUZZ
@given(text=nasty_text, escapes=st.lists(surrogate_escape, min_size=1, max_size=3))
def test_rest_webhook_with_lone_surrogates(security: SecurityStack, text: str, escapes: list[str]) -> None:
    body = json_with_surrogates({"sender": sender()}, "message", text, escapes)
    response = requests.post(f"{security.settings.rasa_url}/webhooks/rest/webhook", data=body,
                             headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert_no_5xx(response)
    if response.status_code == 200:
        assert readable_chinese([m.get("text", "") for m in response.json()])


@FUZZ
@given(body=json_values)
def test_rest_webhook_with_any_json_body(security: SecurityStack, body: Any) -> None:
    response = requests.post(f"{security.settings.rasa_url}/webhooks/rest/webhook", json=body,
                             timeout=TIMEOUT)
    assert_no_5xx(response)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_rest_webhook_with_bytes_that_are_not_json(security: SecurityStack, raw: bytes) -> None:
    response = requests.post(f"{security.settings.rasa_url}/webhooks/rest/webhook", data=raw,
                             headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert_no_5xx(response)


@FUZZ
@given(text=any_text, escapes=st.lists(surrogate_escape, max_size=2))
def test_model_parse_behind_the_token(security: SecurityStack, text: str, escapes: list[str]) -> None:
    s = security.settings
    body = json_with_surrogates({}, "text", text, escapes)
    url = f"{s.rasa_url}/model/parse"
    anonymous = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert anonymous.status_code == 401
    wrong = requests.post(url, params={"token": "x" + s.rasa_token}, data=body,
                          headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert wrong.status_code == 401
    response = requests.post(url, params={"token": s.rasa_token}, data=body,
                             headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert_no_5xx(response)
    if response.status_code == 200:
        assert "intent" in response.json()


# --- Rasa: the WeChat webhook -----------------------------------------------------------

query_values = st.dictionaries(
    st.sampled_from(["signature", "timestamp", "nonce", "encrypt_type", "msg_signature", "openid",
                     "echostr", "x"]),
    st.one_of(st.text(max_size=40), st.integers().map(str)), max_size=7)


@FUZZ
@given(query=query_values, body=st.one_of(st.binary(max_size=400), any_text.map(str.encode)))
def test_wechat_webhook_with_random_queries_and_bodies(security: SecurityStack, query: dict,
                                                        body: bytes) -> None:
    url = f"{security.settings.rasa_url}/webhooks/wechat/webhook"
    assert_no_5xx(requests.get(url, params=query, timeout=TIMEOUT))
    response = requests.post(url, params=query, data=body, timeout=TIMEOUT)
    assert_no_5xx(response)
    assert response.status_code in (400, 403, 413)  # nothing unsigned is ever processed


def _signed_post(security: SecurityStack, body: bytes, openid: str, aes: bool = False) -> requests.Response:
    query = security.peer.signed_query(openid)
    if aes:
        query.update(encrypt_type="aes", msg_signature=sign(security.peer.token, query["timestamp"],
                                                            query["nonce"], body.decode("utf-8", "replace")))
    return requests.post(security.peer.url, params=query, data=body, timeout=TIMEOUT)


xml_fragments = st.lists(st.sampled_from([
    "<xml>", "</xml>", "<ToUserName>", "</ToUserName>", f"<![CDATA[{ACCOUNT}]]>", "<FromUserName>",
    "</FromUserName>", "<CreateTime>", "</CreateTime>", "<MsgType>", "</MsgType>", "<![CDATA[text]]>",
    "<![CDATA[event]]>", "<Content>", "</Content>", "<MsgId>", "</MsgId>", "<Event>", "</Event>",
    "<Encrypt>", "</Encrypt>", "<![CDATA[", "]]>", "&amp;", "&lt;", "&#0;", "&#x1F600;", "<!-- -->",
    "<?xml version='1.0'?>", "<a b='c'>", "</a>", "1234", "oFUZZ12345", "\x00", "你好"]), max_size=30).map("".join)


@FUZZ
@given(xml=st.one_of(xml_fragments, any_text))
def test_wechat_signed_callbacks_with_malformed_xml(security: SecurityStack, xml: str) -> None:
    response = _signed_post(security, xml.encode("utf-8", "surrogatepass"), new_openid())
    assert_no_5xx(response)


BOMBS = {
    "billion laughs": ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                       '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                       '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                       '<xml><Content>&lol3;</Content></xml>'),
    "external entity": ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                        '<xml><FromUserName>oFUZZ12345</FromUserName><MsgType>text</MsgType>'
                        '<Content>&xxe;</Content><MsgId>1</MsgId></xml>'),
    "parameter entity": '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x"> %p;]><xml/>',
    "deep nesting": "<xml>" + "<a>" * 50_000 + "</a>" * 50_000 + "</xml>",
    "huge": "<xml><Content>" + "长" * 200_000 + "</Content></xml>",
}


@pytest.mark.parametrize("name", sorted(BOMBS))
@pytest.mark.parametrize("aes", [False, True])
def test_wechat_refuses_entity_bombs_and_huge_bodies(security: SecurityStack, name: str, aes: bool) -> None:
    openid = new_openid()
    xml = BOMBS[name]
    if aes and len(xml) < 60_000:  # the same inside a correctly encrypted envelope
        response = security.peer.post(xml, openid, aes=True)
        assert response.status in (400, 413), response.body[:200]
        return
    response = _signed_post(security, xml.encode("utf-8"), openid)
    assert response.status_code in (400, 413), response.text[:200]


def _text_xml(openid: str, content: str, msg_id: str) -> str:
    from xml.sax.saxutils import escape

    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>1700000000</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content>{escape(content)}</Content>"
            f"<MsgId>{msg_id}</MsgId></xml>")


# Characters XML 1.0 cannot carry at all; WeChat never sends them.
XML_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff",
                          min_codepoint=0x20)
xml_text = st.one_of(st.text(XML_CHARS, min_size=1, max_size=120),
                     st.lists(st.sampled_from(["\U0001f600", "\u202e", "עברית", "\u200b", "我要退货", "订单",
                                               "<>&\"'", "]]>", "\n", "\t", "𠀀"]), min_size=1, max_size=10)
                     .map("".join))


@FUZZ
@given(content=xml_text, aes=st.booleans())
def test_wechat_customer_gets_chinese_for_any_text(security: SecurityStack, content: str, aes: bool) -> None:
    openid = new_openid()
    answer = security.peer.post(_text_xml(openid, content, security.peer.next_msg_id()), openid, aes=aes)
    assert answer.status == 200, answer.body[:300]
    if content.strip():
        if answer.text is None:  # answered later by 客服消息 (slow turn)
            texts = security.wechat.wait_for(openid, 1, timeout=60)
        else:
            texts = [answer.text]
        assert readable_chinese(texts), (content[:60], texts)
    else:
        assert answer.body == "success"


# --- Rasa: socket.io (website) -------------------------------------------------------------

@FUZZ
@given(query=st.dictionaries(st.sampled_from(["EIO", "transport", "sid", "t", "j", "b64"]),
                             st.text(max_size=30), max_size=5),
       body=st.binary(max_size=200))
def test_socketio_handshake_with_random_queries(security: SecurityStack, query: dict, body: bytes) -> None:
    url = f"{security.settings.rasa_url}/socket.io/"
    headers = {"Origin": security.settings.web_url}
    assert_no_5xx(requests.get(url, params=query, headers=headers, timeout=TIMEOUT))
    assert_no_5xx(requests.post(url, params=query, data=body, headers=headers, timeout=TIMEOUT))


@FUZZ
@given(event=st.one_of(st.just("user_uttered"), st.just("session_request"), st.text(max_size=20)),
       payload=json_values)
def test_socketio_events_with_random_payloads(security: SecurityStack, event: str, payload: Any) -> None:
    """The server survives any event: the next visitor still gets a session.

    A fresh connection per example: on a machine this busy a long-polling
    client shared by every example can miss a ping and be dropped.  The
    sending connection itself may be closed by the server (a packet over
    ``MAX_PACKET_BYTES`` ends it, by design), so what is checked is the server.
    """
    from tests.channels.web_peer import WebPeer

    if event in ("connect", "disconnect", "message") or not event:
        event = "user_uttered"
    with WebPeer(security.stack).open() as peer:
        peer.client.emit(event, payload)
        peer.client.sleep(0.2)
    with WebPeer(security.stack).open() as after:
        assert after.client.connected and after.session_id


@FUZZ_SLOW
@given(text=st.one_of(st.text(max_size=200), nasty_text), token=st.one_of(st.none(), st.text(max_size=60)))
@example(text="\x07x\u2028\x07人工nil", token="")  # found by a CI run: hands the chat to a person
def test_socketio_customer_gets_chinese_for_any_text(security: SecurityStack, text: str,
                                                     token: Any) -> None:
    from tests.channels.web_peer import WebPeer

    with WebPeer(security.stack, token=token).open() as peer:
        replies = peer.say(text, timeout=90)
    assert readable_chinese([r.get("text", "") for r in replies]), (text[:60], replies)


# --- the widget server ------------------------------------------------------------------

@FUZZ
@given(path=st.text(max_size=60), query=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3))
def test_widget_server_paths(security: SecurityStack, path: str, query: dict) -> None:
    base = security.settings.web_url
    for prefix in ("/", "/widget/", "/widget/static/", "/widget/static/../../"):
        response = requests.get(base + prefix + quote(path, safe="/.%"), params=query, timeout=TIMEOUT)
        assert_no_5xx(response)
        assert "BEGIN" not in response.text and "root:" not in response.text  # no file outside static/
    assert_no_5xx(requests.post(base + "/", data=path.encode("utf-8", "surrogatepass"), timeout=TIMEOUT))


# --- the desk -------------------------------------------------------------------------------

GET_ROUTES = ["/desk/", "/desk/c/{id}", "/desk/manager", "/desk/complaints", "/desk/complaints/{id}",
              "/desk/complaints/export.csv", "/desk/complaints/export.xlsx", "/desk/kpis", "/desk/api/kpis",
              "/desk/api/me", "/desk/api/queue", "/desk/api/staff", "/desk/api/canned",
              "/desk/api/conversations/{id}", "/desk/api/manager/overview", "/desk/static/{id}",
              "/desk/login", "/desk/health"]
POST_ROUTES = ["/desk/api/status", "/desk/api/conversations/{id}/claim", "/desk/api/conversations/{id}/reply",
               "/desk/api/conversations/{id}/note", "/desk/api/conversations/{id}/transfer",
               "/desk/api/conversations/{id}/resolve", "/desk/api/manager/assign", "/desk/api/manager/canned",
               "/desk/complaints/{id}/assign", "/desk/complaints/{id}/status", "/desk/complaints/{id}/note",
               "/desk/complaints/{id}/reopen", "/desk/complaints/{id}/{id}", "/desk/logout"]

path_ids = st.one_of(st.integers(-2**63, 2**63).map(str), st.text(max_size=30),
                     st.sampled_from(["1", "0", "-1", "99999999999999999999", "..", "%00", "C-20260101-0001"]))
query_params = st.dictionaries(st.sampled_from(["week", "conversation", "after", "q", "status", "category",
                                                "from", "to", "sort", "dir", "sla", "tier", "agent", "x"]),
                               st.text(max_size=30), max_size=5)


def _path(template: str, ident: str) -> str:
    return template.replace("{id}", quote(ident, safe="") or "x")


#: Ids the client resolves as path steps: /desk/complaints/.. asks for /desk/ (requests
#: decodes even %2E%2E first), a page an agent may see.
DOT_SEGMENTS = (".", "..")


@FUZZ
@given(ident=path_ids, query=query_params, who=st.sampled_from(["anonymous", "agent", "manager"]))
def test_desk_get_routes(security: SecurityStack, ident: str, query: dict, who: str) -> None:
    http = requests.Session() if who == "anonymous" else getattr(security, who).http
    for template in GET_ROUTES:
        response = http.get(security.settings.desk_url + _path(template, ident), params=query,
                            allow_redirects=False, timeout=TIMEOUT)
        assert_no_5xx(response)
        if who == "anonymous" and not template.startswith(("/desk/login", "/desk/health", "/desk/static")):
            assert response.status_code in (302, 401), (template, response.status_code)
        if who == "agent" and template.startswith(("/desk/manager", "/desk/complaints", "/desk/kpis",
                                                   "/desk/api/kpis", "/desk/api/manager")) \
                and not ("{id}" in template and ident in DOT_SEGMENTS):
            assert response.status_code == 403, (template, response.status_code)


@FUZZ
@given(ident=path_ids, body=json_values, form=st.dictionaries(st.text(max_size=12), any_text, max_size=4),
       who=st.sampled_from(["anonymous", "agent", "manager"]),
       csrf=st.sampled_from(["session", "absent", "wrong"]), as_form=st.booleans())
def test_desk_post_routes(security: SecurityStack, ident: str, body: Any, form: dict, who: str, csrf: str,
                          as_form: bool) -> None:
    client = None if who == "anonymous" else getattr(security, who)
    http = client.http if client else requests.Session()
    headers = {}
    if client and csrf == "session":
        headers["X-CSRF-Token"] = client.csrf
    elif csrf == "wrong":
        headers["X-CSRF-Token"] = "forged-" + uuid.uuid4().hex
    for template in POST_ROUTES:
        if template == "/desk/logout" and client:
            continue  # would end the shared session
        url = security.settings.desk_url + _path(template, ident)
        if as_form:
            response = http.post(url, data={k: v.encode("utf-8", "replace") for k, v in form.items()},
                                 headers=headers, allow_redirects=False, timeout=TIMEOUT)
        else:
            response = http.post(url, json=body, headers=headers, allow_redirects=False, timeout=TIMEOUT)
        assert_no_5xx(response)
        if client is None:
            assert response.status_code in (302, 401, 404), (template, response.status_code)
        elif csrf != "session":
            assert response.status_code in (403, 404), (template, response.status_code, response.text[:200])


# --- afterwards: everything still up -------------------------------------------------------

def test_every_process_survived_and_still_answers(security: SecurityStack) -> None:
    stack = security.stack
    dead = {name: proc.returncode for name, proc in stack.named.items() if proc.poll() is not None}
    assert not dead, f"processes exited: {dead}"
    stack.wait_ready(30)
    response = requests.post(f"{stack.settings.rasa_url}/webhooks/rest/webhook",
                             json={"sender": sender(), "message": "满多少包邮"}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert "99元" in " ".join(m.get("text", "") for m in response.json())
    answer = security.peer.say(new_openid(), "你好", aes=True)
    assert answer.status == 200 and readable_chinese([answer.text or ""])
    assert security.agent.get("/desk/api/me").status_code == 200
