"""bench.reconcile on small hand-made soaks: a real SQLite CRM and a real Rasa
SQL tracker store, written the way the running system writes them."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, ConversationPaused, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import update
from sqlalchemy.orm import Session

from bench.reconcile import main, read_sent, reconcile
from crm_adapter import CRM
from crm_adapter.models import CareSend, Complaint, Customer, Escalation

NOW = datetime(2026, 11, 23, 8, 0, 0)


def user(text: str, intent: str = "greet", entities: list | None = None) -> UserUttered:
    return UserUttered(text, {"name": intent, "confidence": 1.0}, entities or [])


def bot(text: str) -> BotUttered:
    return BotUttered(text)


class World:
    """A CRM, a tracker store and a sent log, all under tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
        self.crm.create_schema()
        self.tracker_db = tmp_path / "tracker.sqlite3"
        self.tracker_url = f"sqlite:///{self.tracker_db}"
        self.store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(self.tracker_db))
        self.sent_path = tmp_path / "sent.jsonl"
        self.lines: list[dict] = []
        self.occasions = 0
        self.escalation_ids: dict[str, int] = {}
        with Session(self.crm.engine, future=True) as session:
            session.add(Customer(id=1, name="测试", created_at=NOW))
            session.commit()

    def conversation(self, sender: str, *events) -> None:
        tracker = DialogueStateTracker.from_events(sender, list(events))
        asyncio.run(self.store.save(tracker))

    def sent(self, sender: str, text: str, kind: str = "chat", expect: str | None = None) -> None:
        self.lines.append({"sender": sender, "channel": "rest", "kind": kind, "text": text, "expect": expect})

    def complaint(self, sender: str, number: str) -> None:
        with Session(self.crm.engine, future=True) as session:
            session.add(Complaint(ticket_number=number, category="logistics", description="快递没到",
                                  severity="low", status="open", channel="rest", sender_id=sender,
                                  sla_due_at=NOW + timedelta(days=1), created_at=NOW))
            session.commit()

    def escalation(self, sender: str, status: str = "resolved") -> None:
        with Session(self.crm.engine, future=True) as session:
            row = Escalation(status=status, priority="normal", reason="request_human", channel="rest",
                             sender_id=sender, created_at=NOW)
            session.add(row)
            session.commit()
            self.escalation_ids[sender] = row.id

    def care(self, status: str, conversation: str | None = None, **extra) -> int:
        self.occasions += 1
        with Session(self.crm.engine, future=True) as session:
            row = CareSend(campaign="soak", customer_id=1, occasion=f"occasion-{self.occasions}",
                           variant="A", purpose="service", status=status, context={}, conversation_id=conversation,
                           next_attempt_at=extra.pop("next_attempt_at", NOW), expires_at=NOW + timedelta(days=2),
                           created_at=NOW, updated_at=NOW, **extra)
            session.add(row)
            session.commit()
            return row.id

    def run(self):
        self.sent_path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in self.lines))
        return reconcile(self.crm.url, self.tracker_url, read_sent(self.sent_path), now=NOW)


@pytest.fixture()
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w
    w.crm.dispose()


def healthy(world: World) -> None:
    """A complaint, a handoff answered by an agent while paused, a care push."""
    world.sent("c1", "我要投诉", "complaint")
    world.sent("c1", "快递三天没动", "complaint", "complaint")
    world.conversation("c1", ActionExecuted("action_listen"), user("我要投诉"), bot("哪方面？"),
                       ActionExecuted("action_listen"), user("快递三天没动"), bot("已登记，工单号 TS1"))
    world.complaint("c1", "TS1")
    world.sent("h1", "转人工", "handoff", "escalation")
    world.sent("h1", "在吗")
    world.sent("h1", "好的我等你", "agent_reply", "agent_reply")
    world.conversation("h1", user("转人工"), bot("正在为您转接人工客服"), ConversationPaused(),
                       user("在吗"), bot("好的我等你"))
    world.escalation("h1", "open")
    send_id = world.care("delivered", "w1", text="积分快到期了")
    world.conversation("w1", user("你好"), bot("您好"),
                       user("EXTERNAL: EXTERNAL_care_message", "EXTERNAL_care_message",
                            [{"entity": "care_send_id", "value": str(send_id)}]),
                       bot("积分快到期了"), SlotSet("care_send_id", str(send_id)))
    world.sent("w1", "你好")
    world.care("deferred", next_attempt_at=NOW + timedelta(hours=1))
    world.care("skipped", reason="quiet")


def test_a_clean_soak_reconciles(world: World) -> None:
    healthy(world)
    report = world.run()
    assert report.ok, report.problems
    assert report.counts["complaints_expected"] == report.counts["complaints_recorded"] == 1
    assert report.counts["escalation_states"] == {"open": 1}
    assert report.counts["paused_for_agent"] == 0  # the agent answered the paused message
    assert report.counts["care_pushed_into_conversations"] == 1


def test_a_doubled_complaint_is_caught(world: World) -> None:
    healthy(world)
    world.complaint("c1", "TS2")  # a retried message filed it twice
    report = world.run()
    assert report.problems == ["complaints of c1: expected 1, recorded 2"]


def test_a_lost_escalation_is_caught(world: World) -> None:
    healthy(world)
    world.sent("h2", "我要人工", "handoff", "escalation")
    world.conversation("h2", user("我要人工"), bot("正在为您转接人工客服"))
    report = world.run()
    assert report.problems == ["escalations of h2: expected 1, recorded 0"]


def test_an_escalation_left_open_is_caught_when_all_must_end_resolved(world: World) -> None:
    healthy(world)  # h1's escalation is still open
    assert world.run().ok
    world.sent_path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in world.lines))
    report = reconcile(world.crm.url, world.tracker_url, read_sent(world.sent_path), now=NOW,
                       require_resolved=True)
    assert report.problems == [f"escalation {world.escalation_ids['h1']} of h1 ended 'open', not resolved"]


def test_an_unanswered_message_is_caught(world: World) -> None:
    healthy(world)
    world.sent("u1", "我的快递到哪了")
    world.sent("u1", "有人吗")
    world.conversation("u1", user("我的快递到哪了"), user("有人吗"), bot("请提供订单号"))
    report = world.run()
    assert report.problems == ["1 message(s) of u1 got no bot answer and did not come while the chat was "
                               "paused for a person"]


def test_a_message_recorded_twice_or_never_is_caught(world: World) -> None:
    healthy(world)
    world.sent("d1", "谢谢")
    world.conversation("d1", user("谢谢"), bot("不客气"), user("谢谢"), bot("不客气"))
    world.sent("m1", "你好")
    world.sent("m1", "满多少包邮")
    world.conversation("m1", user("你好"), bot("您好"))
    problems = world.run().problems
    assert "messages of d1: sent 1, tracker has 2" in problems
    assert "messages of m1: sent 2, tracker has 1" in problems


def test_paused_messages_without_an_answer_are_fine(world: World) -> None:
    healthy(world)
    world.sent("p1", "转人工", "handoff", "escalation")
    world.sent("p1", "还要等多久")
    world.conversation("p1", user("转人工"), bot("正在为您转接"), ConversationPaused(), user("还要等多久"))
    world.escalation("p1", "pending")
    report = world.run()
    assert report.ok, report.problems
    assert report.counts["paused_for_agent"] == 1


def test_care_stuck_or_pushed_twice_is_caught(world: World) -> None:
    healthy(world)
    stuck = world.care("sending", claimed_until=NOW - timedelta(minutes=5))
    live = world.care("sending", claimed_until=NOW + timedelta(minutes=5))
    twice = world.care("delivered", "w2", text="生日快乐")
    entity = [{"entity": "care_send_id", "value": str(twice)}]
    world.conversation("w2", user("EXTERNAL: EXTERNAL_care_message", "EXTERNAL_care_message", entity),
                       bot("生日快乐"),
                       user("EXTERNAL: EXTERNAL_care_message", "EXTERNAL_care_message", entity), bot("生日快乐"))
    missing = world.care("delivered", "w3", text="补货提醒")
    problems = world.run().problems
    assert f"care message {stuck} is stuck in 'sending' (no retry due, no live claim)" in problems
    assert not any(f"care message {live} " in p for p in problems)
    assert f"care message {twice} is in conversation w2 2 times, expected once" in problems
    assert f"care message {missing} is in conversation w3 0 times, expected once" in problems


def test_an_agent_reply_missing_from_the_tracker_is_caught(world: World) -> None:
    healthy(world)
    world.sent("h1", "马上为您处理", "agent_reply", "agent_reply")
    assert "agent reply to h1 is in the tracker 0 times, expected 1" in world.run().problems


def test_command_line_exit_status(world: World, tmp_path: Path) -> None:
    healthy(world)
    world.run()
    args = ["--crm-url", world.crm.url, "--tracker-url", world.tracker_url, "--sent", str(world.sent_path),
            "--out", str(tmp_path / "report.json")]
    assert main(args) == 0
    world.complaint("c1", "TS9")
    assert main(args) == 1
    assert json.loads((tmp_path / "report.json").read_text())["ok"] is False


def test_a_malformed_log_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "sent.jsonl"
    path.write_text('{"sender": "a", "kind": "chat", "text": "x"}\n{"sender": "b"}\n')
    with pytest.raises(ValueError, match="sent.jsonl:2"):
        read_sent(path)
    path.write_text('{"sender": "a", "kind": "chat", "text": "x", "expect": "refund"}\n')
    with pytest.raises(ValueError, match="unknown expect"):
        read_sent(path)
