"""A customer asks for a person, agents take over, reply, transfer, note and
resolve — the real desk process against the real Rasa server, action server
and CRM of the test stack."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import requests

from bot.desk.flows import QUEUE_NEXT, QUEUE_NOTICE
from bot.desk.rasa_client import MSG_RASA_DOWN
from bot.run import free_port
from bot.settings import ROOT
from crm_adapter.servicedesk import MSG_NOT_YOURS
from tests.conftest import Chat

from .conftest import PASSWORD, DeskClient, new_username, wait_until

XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"


def _escalate(stack, client: DeskClient) -> tuple[Chat, int]:
    """A REST customer asks for a person; the escalation appears in the desk's queue API."""
    chat = Chat(stack)
    chat.say("我要转人工")

    def queued():
        for c in client.get("/desk/api/queue").json()["conversations"]:
            if c["sender_id"] == chat.sender:
                return c
        return None

    item = wait_until(queued, timeout=10)
    assert item["status"] == "pending" and item["channel"] == "rest"
    return chat, item["id"]


def _bot_events(chat: Chat) -> list[dict]:
    return [e for e in chat.tracker()["events"] if e.get("event") == "bot"]


def test_claim_reply_transfer_note_resolve(stack, make_agent, open_stream, stack_desk):
    a = make_agent(name="王小明")
    b = make_agent(name="李小红")
    chat, escalation_id = _escalate(stack, a)
    page = a.get("/desk/")
    assert f'data-escalation-id="{escalation_id}"' in page.text

    # A claims: the bot is paused and the customer is greeted in A's name.
    claimed = a.act(escalation_id, "claim")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["conversation"]["assigned_to"] == a.username
    tracker = chat.tracker()
    assert tracker["paused"] is True
    greeting = [e for e in _bot_events(chat) if (e.get("metadata") or {}).get("agent") == a.username]
    assert greeting and greeting[-1]["text"] == "您好，我是客服王小明，很高兴为您服务。"
    assert greeting[-1]["metadata"]["agent_name"] == "王小明"
    assert a.act(escalation_id, "claim").status_code == 200  # again: harmless, no second greeting
    assert len([e for e in _bot_events(chat) if (e.get("metadata") or {}).get("agent")]) == 1
    assert b.act(escalation_id, "claim").status_code == 409

    # The customer's next message reaches A live, and the bot stays quiet.
    stream = open_stream(a, escalation_id)
    bots_before = len(_bot_events(chat))
    assert chat.say("我的快递三天没动了") == ""
    _, turn = stream.wait_for(lambda kind, data: kind == "turn" and data["from"] == "customer")
    assert turn["text"] == "我的快递三天没动了" and turn["escalation_id"] == escalation_id
    assert len(_bot_events(chat)) == bots_before

    # A replies: a bot event carrying A's name lands in the tracker (and on A's stream).
    sent = a.act(escalation_id, "reply", {"text": "我帮您查一下物流。"})
    assert sent.status_code == 200, sent.text
    last = _bot_events(chat)[-1]
    assert last["text"] == "我帮您查一下物流。" and last["metadata"]["agent"] == a.username
    stream.wait_for(lambda kind, data: kind == "turn" and data["from"] == "agent"
                    and data["text"] == "我帮您查一下物流。")
    assert stack_desk.conversation(escalation_id).first_response_at is not None

    # B may not write to A's customer until A transfers the chat.
    refused = b.act(escalation_id, "reply", {"text": "我是B"})
    assert refused.status_code == 409 and refused.json()["error"] == MSG_NOT_YOURS
    assert all(e.get("text") != "我是B" for e in _bot_events(chat))
    assert b.act(escalation_id, "transfer", {"to": b.username}).status_code == 409
    moved = a.act(escalation_id, "transfer", {"to": b.username, "note": "物流问题，请跟进"})
    assert moved.status_code == 200 and moved.json()["conversation"]["assigned_to"] == b.username
    assert a.act(escalation_id, "reply", {"text": "A不能再回复"}).status_code == 409
    assert b.act(escalation_id, "reply", {"text": "您好，我接着为您处理。"}).status_code == 200
    assert _bot_events(chat)[-1]["metadata"]["agent"] == b.username

    # A note is in the timeline, never in the tracker.
    noted = b.act(escalation_id, "note", {"text": "内部：客户很着急，优先处理"})
    assert noted.status_code == 200
    stream.wait_for(lambda kind, data: kind == "timeline" and data["kind"] == "note")
    timeline = a.get(f"/desk/api/conversations/{escalation_id}").json()["timeline"]
    assert any(e["kind"] == "note" and e["body"] == "内部：客户很着急，优先处理" for e in timeline)
    assert "内部：客户很着急" not in str(chat.tracker()["events"])
    assert b.act(escalation_id, "note", {"text": "   "}).status_code == 400

    # HTML from the customer is text on the page and inert in the API.
    assert chat.say(XSS) == ""
    stream.wait_for(lambda kind, data: kind == "turn" and data["text"] == XSS)
    page = b.get(f"/desk/c/{escalation_id}").text
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'data-from="note"' in page and 'data-from="agent"' in page and 'data-from="customer"' in page
    raw = b.get(f"/desk/api/conversations/{escalation_id}")
    assert raw.headers["Content-Type"].startswith("application/json")
    assert "<script>" not in raw.text and "<img" not in raw.text
    assert any(t["text"] == XSS and t["from"] == "customer" for t in raw.json()["turns"])

    # Resolve: the chat is closed in the CRM and the bot is back.
    done = b.act(escalation_id, "resolve")
    assert done.status_code == 200, done.text
    assert done.json()["conversation"]["status"] == "resolved"
    assert chat.tracker()["paused"] is False
    assert stack_desk.conversation(escalation_id).resolved_by == b.username
    assert b.act(escalation_id, "reply", {"text": "结束后"}).status_code == 409


def test_queued_customer_hears_their_place(stack, make_agent, stack_desk):
    client = make_agent()
    chat, escalation_id = _escalate(stack, client)
    chat.say("还要等多久")
    prefix = os.path.commonprefix([QUEUE_NOTICE, QUEUE_NEXT])
    assert prefix == "您正在排队等待人工客服，"

    def notice():
        return [e for e in _bot_events(chat) if e.get("text", "").startswith(prefix)]

    told = wait_until(notice, timeout=15)
    metadata = told[-1]["metadata"]
    assert metadata["desk"] == "queue_notice" and "agent" not in metadata  # the desk's voice, not an agent's
    # Chats left queued by earlier tests may be ahead of this one, or none.
    ahead = stack_desk.queue_place(escalation_id).ahead
    expected = QUEUE_NOTICE if ahead else QUEUE_NEXT
    assert told[-1]["text"].startswith(expected.split("{")[0]) and "分钟" in told[-1]["text"]
    assert (f"前面还有{ahead}位" if ahead else "您是下一位") in told[-1]["text"]


def test_new_escalations_show_on_open_streams(stack, make_agent, open_stream):
    client = make_agent()
    stream = open_stream(client)
    chat = Chat(stack)
    chat.say("我要转人工")

    def ours(kind: str, data: dict) -> bool:  # earlier tests' escalations may still be announced
        if kind != "queue" or data["kind"] != "created":
            return False
        queue = client.get("/desk/api/queue").json()["conversations"]
        return any(c["id"] == data["escalation_id"] and c["sender_id"] == chat.sender for c in queue)

    stream.wait_for(ours)


def test_customer_panel_for_a_known_customer(stack, make_agent, stack_desk):
    crm = stack_desk._crm
    view = crm.create_escalation(crm.resolve_identity("rest", "demo-zhangwei").id, "rest", f"panel-{uuid.uuid4().hex[:8]}", "request_human", uuid.uuid4().hex)
    client = make_agent()
    data = client.get(f"/desk/api/conversations/{view.id}").json()
    panel = data["customer"]
    assert panel["known"] is True and panel["profile"]["tier_label"]
    assert panel["orders"] is not None and panel["consents"]
    page = client.get(f"/desk/c/{view.id}").text
    side = page.split('data-testid="customer-panel"')[1]
    assert 'id="cust-tier"' in side and "未识别客户" not in side
    assert "built-in method" not in side and "×" in side  # order lines name their products
    assert all(o["products"] for o in panel["orders"])


def test_anonymous_customer_panel(stack, make_agent, stack_desk):
    view = stack_desk._crm.create_escalation(None, "rest", f"anon-{uuid.uuid4().hex[:8]}", "request_human",
                                             uuid.uuid4().hex)
    client = make_agent()
    assert client.get(f"/desk/api/conversations/{view.id}").json()["customer"] == {"known": False,
                                                                                  "label": "未识别客户"}
    assert 'id="customer-unknown"' in client.get(f"/desk/c/{view.id}").text


def test_desk_restart_keeps_sessions_and_queue(stack, make_agent, stack_desk):
    client = make_agent()
    view = stack_desk._crm.create_escalation(None, "rest", f"restart-{uuid.uuid4().hex[:8]}", "request_human",
                                             uuid.uuid4().hex)
    stack.stop_process("desk")
    with pytest.raises(requests.ConnectionError):
        client.get("/desk/health")
    stack.start_process("desk")
    me = client.get("/desk/api/me")
    assert me.status_code == 200 and me.json()["csrf_token"] == client.csrf
    assert any(c["id"] == view.id for c in client.get("/desk/api/queue").json()["conversations"])
    assert client.act(view.id, "note", {"text": "重启后仍可操作"}).status_code == 200


def _second_desk(stack, tmp_path, **env_extra: str):
    """Another desk process on the stack's CRM and Rasa, with its own settings."""
    port = free_port()
    env = {**stack.settings.child_env(), **env_extra}
    log = open(tmp_path / "desk.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "bot.desk.server", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(base), timeout=60)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


@pytest.fixture()
def desk_without_rasa(stack, tmp_path):
    """A second desk process on the same CRM whose Rasa URL answers nobody."""
    yield from _second_desk(stack, tmp_path, KEFU_RASA_URL=f"http://127.0.0.1:{free_port()}")


@pytest.fixture()
def desk_auto_assigning(stack, tmp_path):
    yield from _second_desk(stack, tmp_path, KEFU_DESK_AUTO_ASSIGN="1")


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/desk/health", timeout=2).ok
    except requests.RequestException:
        return False


def test_reply_refused_when_rasa_is_unreachable(stack, stack_desk, desk_without_rasa):
    username = new_username()
    stack_desk.create_staff(username, "赵客服", "agent", PASSWORD)
    view = stack_desk._crm.create_escalation(None, "rest", f"down-{uuid.uuid4().hex[:8]}", "request_human",
                                             uuid.uuid4().hex)
    stack_desk.claim(view.id, username)
    client = DeskClient(desk_without_rasa)
    assert client.login(username).status_code == 302
    response = client.act(view.id, "reply", {"text": "这条发不出去"})
    assert response.status_code == 502
    assert response.json()["error"] == MSG_RASA_DOWN
    assert [e.kind for e in stack_desk.timeline(view.id)] == ["created", "claimed"]
    assert stack_desk.conversation(view.id).first_response_at is None
    # Resolving needs the bot back first, so it is refused too and the chat stays with the agent.
    assert client.act(view.id, "resolve").status_code == 502
    assert stack_desk.conversation(view.id).status == "open"
    page = client.get(f"/desk/c/{view.id}")
    assert page.status_code == 200 and "机器人服务暂时不可用" in page.text


def test_manager_assigns_a_queued_chat_and_manages_canned_replies(stack, make_agent, stack_desk):
    manager = make_agent("manager", name="陈主管")
    agent = make_agent("agent", name="孙小美")
    chat, escalation_id = _escalate(stack, manager)
    assigned = manager.post("/desk/api/manager/assign", {"escalation_id": str(escalation_id), "to": agent.username})
    assert assigned.status_code == 200, assigned.text
    assert stack_desk.conversation(escalation_id).assigned_to == agent.username
    assert chat.tracker()["paused"] is True
    assert _bot_events(chat)[-1]["text"] == "您好，我是客服孙小美，很高兴为您服务。"
    assert agent.act(escalation_id, "reply", {"text": "您好"}).status_code == 200
    again = manager.post("/desk/api/manager/assign", {"escalation_id": str(escalation_id), "to": agent.username})
    assert again.status_code == 409

    code = "/r" + uuid.uuid4().hex[:6]
    saved = manager.post("/desk/api/manager/canned", {"code": code, "title": "退款", "body": "退款1-3个工作日到账。"})
    assert saved.status_code == 200
    edited = manager.post("/desk/api/manager/canned", {"code": code, "title": "退款", "body": "退款已受理。"})
    assert edited.status_code == 200
    assert {"code": code, "title": "退款", "body": "退款已受理。"} in agent.get("/desk/api/canned").json()["canned"]
    bad = manager.post("/desk/api/manager/canned", {"code": "有 空格", "title": "x", "body": "y"})
    assert bad.status_code == 400 and "空格" in bad.json()["error"]
    # Manager resolves someone else's chat (allowed for managers).
    assert manager.act(escalation_id, "resolve").status_code == 200
    assert chat.tracker()["paused"] is False


def test_auto_assignment_pauses_and_greets(stack, stack_desk, desk_auto_assigning):
    username = new_username()
    stack_desk.create_staff(username, "钱客服", "agent", PASSWORD, max_open=50)
    client = DeskClient(desk_auto_assigning)
    assert client.login(username).status_code == 302  # signed in: online and present
    chat = Chat(stack)
    chat.say("我要转人工")
    escalation = wait_until(lambda: stack_desk.active_for("rest", chat.sender), timeout=10)
    assigned = wait_until(lambda: stack_desk.conversation(escalation.id).assigned_to, timeout=20)
    agent = next(s for s in stack_desk.list_staff() if s.username == assigned)
    greeting = f"您好，我是客服{agent.display_name}，很高兴为您服务。"
    wait_until(lambda: any(e.get("text") == greeting and e["metadata"].get("agent") == assigned
                           for e in _bot_events(chat)), timeout=10)
    assert chat.tracker()["paused"] is True
    assert any(e.kind == "assigned" and e.actor == "system" for e in stack_desk.timeline(escalation.id))


def test_rasa_restart_mid_handoff_keeps_the_chat_paused_and_the_queue(stack, make_agent):
    """Paused is part of the stored conversation, the queue lives in the CRM:
    neither depends on the Rasa process that was running."""
    agent = make_agent()
    chat, eid = _escalate(stack, agent)
    _, waiting_id = _escalate(stack, agent)  # a second chat, still queued
    assert agent.act(eid, "claim").status_code == 200
    stack.stop_process("rasa")
    stack.start_process("rasa", timeout=300)
    assert chat.tracker()["paused"] is True
    assert chat.say("你们还在吗？满多少包邮") == ""  # still with the agent: the bot stays quiet
    queue = {c["id"]: c for c in agent.get("/desk/api/queue").json()["conversations"]}
    assert queue[eid]["status"] == "open" and queue[eid]["assigned_to"] == agent.username
    assert queue[waiting_id]["status"] == "pending"
    assert agent.act(eid, "reply", {"text": "在的，我继续为您处理。"}).status_code == 200
    assert agent.act(eid, "resolve").status_code == 200
    assert "打分" in "\n".join(e.get("text") or "" for e in _bot_events(chat))
    assert "99" in chat.say("满多少包邮")


def test_ids_beyond_the_database_integer_are_not_found_not_a_500(stack, make_agent):
    """Found by fuzzing: 2**63 overflowed the database integer and answered 500."""
    client = make_agent()
    for huge in (2**31, 2**63, 10**30):
        assert client.act(huge, "claim").status_code == 400
        assert client.get(f"/desk/api/conversations/{huge}").status_code == 400
        assert client.get(f"/desk/c/{huge}").status_code == 404
