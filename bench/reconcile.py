"""After a soak: is everything the customers did accounted for, once?

    python -m bench.reconcile --crm-url URL --tracker-url URL --sent var/bench/soak_sent.jsonl [--out FILE]

Compares what the load generator sent (a JSONL log, one line per customer
message or agent reply) with what the CRM and Rasa's tracker store recorded:

* complaints: every sender has exactly as many complaints as it filed
  (`"expect": "complaint"`), so none is lost and none doubled by a retry;
* escalations: likewise for `"expect": "escalation"`, and each one is in a
  known state (pending / open / resolved; `--require-resolved`: resolved);
* care messages: every row of the send log (`care_sends`) is terminal
  (delivered, sent, skipped, dead) or retrying (queued, deferred, failed with
  a next attempt, sending under a live claim); one delivered into a
  conversation (pushed, or said after the welcome of the next chat) was said
  there exactly once (its rendered text as a bot message);
* messages: each sender's customer messages are in its tracker once each, in
  order, and each got a bot answer, or came while the conversation was paused
  for a person; every agent reply (`"expect": "agent_reply"`) is in the
  tracker once.

Exits 1 when anything does not match (and says what), 0 otherwise.  The log
format (one JSON object per line):

    {"sender": "...", "channel": "rest|web|wechat", "kind": "chat|complaint|handoff|agent_reply|rating",
     "text": "...", "expect": null | "complaint" | "escalation" | "agent_reply"}

`sender` is the conversation id as the tracker knows it (REST sender, WeChat
openid, socket.io session id).  Only lines whose send succeeded are logged.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Optional

from sqlalchemy import column, create_engine, select, table
from sqlalchemy.engine import Engine

from crm_adapter.masking import mask_text
from crm_adapter.models import ESCALATION_STATUSES, CareSend, Complaint, Escalation

CARE_TERMINAL = frozenset({"delivered", "sent", "skipped", "dead"})
CARE_RETRYING = frozenset({"queued", "deferred", "failed"})
EXPECTATIONS = frozenset({None, "complaint", "escalation", "agent_reply"})

# Rasa's SQL tracker store table (rasa.core.tracker_store.SQLTrackerStore.SQLEvent).
EVENTS = table("events", column("id"), column("sender_id"), column("data"))


@dataclass(frozen=True)
class Sent:
    sender: str
    channel: str
    kind: str
    text: str
    expect: Optional[str]


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": self.counts, "problems": self.problems}


def read_sent(path: Path) -> list[Sent]:
    """The load generator's log; a malformed line is an error, not a skipped line."""
    rows: list[Sent] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            row = Sent(str(raw["sender"]), str(raw.get("channel", "")), str(raw["kind"]), str(raw["text"]),
                       raw.get("expect"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a sent-log line ({type(exc).__name__})") from None
        if row.expect not in EXPECTATIONS:
            raise ValueError(f"{path}:{number}: unknown expect {row.expect!r}")
        rows.append(row)
    return rows


def tracker_events(engine: Engine, senders: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Each conversation's stored events in order (all sessions)."""
    wanted = sorted(set(senders))
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            query = (select(EVENTS.c.sender_id, EVENTS.c.data).where(EVENTS.c.sender_id.in_(chunk))
                     .order_by(EVENTS.c.id))
            for sender_id, data in conn.execute(query):
                events[sender_id].append(json.loads(data))
    return events


def _intent(event: dict[str, Any]) -> str:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name") or ""


def _is_external(event: dict[str, Any]) -> bool:
    return _intent(event).startswith("EXTERNAL_") or (event.get("text") or "").startswith("EXTERNAL")


def check_complaints_and_escalations(crm: Engine, sent: list[Sent], report: Report,
                                     require_resolved: bool = False) -> None:
    expected: dict[str, Counter] = {"complaint": Counter(), "escalation": Counter()}
    senders = {row.sender for row in sent if row.expect != "agent_reply"}
    for row in sent:
        if row.expect in expected:
            expected[row.expect][row.sender] += 1
    with crm.connect() as conn:
        complaints = Counter(conn.execute(select(Complaint.sender_id).where(Complaint.sender_id.in_(senders)))
                             .scalars())
        escalations = list(conn.execute(select(Escalation.id, Escalation.sender_id, Escalation.status)
                                        .where(Escalation.sender_id.in_(senders))))
    by_sender = Counter(sender for _, sender, _ in escalations)
    for kind, actual in (("complaint", complaints), ("escalation", by_sender)):
        for sender in sorted(senders):
            want, got = expected[kind][sender], actual[sender]
            if want != got:
                report.problem(f"{kind}s of {mask_text(sender)}: expected {want}, recorded {got}")
        report.counts[f"{kind}s_expected"] = sum(expected[kind].values())
        report.counts[f"{kind}s_recorded"] = sum(actual.values())
    states = Counter(status for _, _, status in escalations)
    report.counts["escalation_states"] = dict(states)
    for eid, sender, status in escalations:
        if status not in ESCALATION_STATUSES:
            report.problem(f"escalation {eid} of {mask_text(sender)} is in unknown state {status!r}")
        elif require_resolved and status != "resolved":
            report.problem(f"escalation {eid} of {mask_text(sender)} ended {status!r}, not resolved")


def check_care(crm: Engine, tracker: Engine, report: Report, now: Optional[datetime] = None) -> None:
    now = now or datetime.utcnow()
    with crm.connect() as conn:
        rows = list(conn.execute(select(CareSend.id, CareSend.status, CareSend.next_attempt_at,
                                        CareSend.claimed_until, CareSend.conversation_id, CareSend.text)))
    report.counts["care_states"] = dict(Counter(row.status for row in rows))
    # Delivered into a chat: pushed (trigger_intent) or said after the welcome of the
    # customer's next chat; either way the action uttered the rendered text there.
    pushed = {row.id: (row.conversation_id, row.text) for row in rows
              if row.status == "delivered" and row.conversation_id and row.text}
    for sid, status, next_at, claimed_until, _, _ in rows:
        if status in CARE_TERMINAL:
            continue
        if status in CARE_RETRYING and next_at is not None:
            continue
        if status == "sending" and claimed_until is not None and claimed_until > now:
            continue
        report.problem(f"care message {sid} is stuck in {status!r} (no retry due, no live claim)")
    said = tracker_events(tracker, {conversation for conversation, _ in pushed.values()})
    for sid, (conversation, text) in sorted(pushed.items()):
        times = sum(1 for e in said.get(conversation, []) if e.get("event") == "bot" and e.get("text") == text)
        if times != 1:
            report.problem(f"care message {sid} is in conversation {mask_text(conversation)} "
                           f"{times} times, expected once")
    report.counts["care_pushed_into_conversations"] = len(pushed)


def check_messages(tracker: Engine, sent: list[Sent], report: Report) -> None:
    said: dict[str, list[str]] = defaultdict(list)
    agent: dict[str, Counter] = defaultdict(Counter)
    for row in sent:
        if row.expect == "agent_reply":
            agent[row.sender][row.text] += 1
        else:
            said[row.sender].append(row.text)
    answered = paused = unanswered = 0
    stored = tracker_events(tracker, set(said) | set(agent))
    for sender in sorted(set(said) | set(agent)):
        events = stored.get(sender, [])
        user_texts = [e.get("text") or "" for e in events if e.get("event") == "user" and not _is_external(e)]
        if user_texts != said[sender]:
            report.problem(f"messages of {mask_text(sender)}: sent {len(said[sender])}, "
                           f"tracker has {len(user_texts)}"
                           + ("" if len(user_texts) != len(said[sender]) else " (different text or order)"))
        bot_texts = Counter(e.get("text") or "" for e in events if e.get("event") == "bot")
        for text, count in agent[sender].items():
            if bot_texts[text] != count:
                report.problem(f"agent reply to {mask_text(sender)} is in the tracker {bot_texts[text]} times, "
                               f"expected {count}")
        turns = _turns(events)
        answered += turns["answered"]
        paused += turns["paused"]
        if turns["unanswered"]:
            unanswered += turns["unanswered"]
            report.problem(f"{turns['unanswered']} message(s) of {mask_text(sender)} got no bot answer "
                           "and did not come while the chat was paused for a person")
    report.counts.update({"customer_messages_sent": sum(len(v) for v in said.values()),
                          "answered": answered, "paused_for_agent": paused,
                          "unanswered": unanswered,
                          "agent_replies_sent": sum(sum(c.values()) for c in agent.values())})


def _turns(events: list[dict[str, Any]]) -> Counter:
    """How each customer message of one conversation ended: a bot answer, paused, or nothing.

    A turn is from a customer message to the next message of anyone (customer
    or an external intent such as a care push); an agent's reply is a `bot`
    event too, so a paused chat an agent answered counts as answered.
    """
    outcome: Counter = Counter()
    is_paused = False
    waiting: Optional[bool] = None  # None: no customer message open; else: whether it came while paused

    def close() -> None:
        if waiting is not None:
            outcome["paused" if waiting else "unanswered"] += 1

    for event in events:
        kind = event.get("event")
        if kind == "pause":
            is_paused = True
        elif kind == "resume":
            is_paused = False
        elif kind == "user":
            close()
            waiting = None if _is_external(event) else is_paused
        elif kind == "bot" and waiting is not None:
            outcome["answered"] += 1
            waiting = None
    close()
    return outcome


def reconcile(crm_url: str, tracker_url: str, sent: list[Sent], now: Optional[datetime] = None,
              require_resolved: bool = False) -> Report:
    report = Report()
    crm, tracker = create_engine(crm_url, future=True), create_engine(tracker_url, future=True)
    try:
        check_complaints_and_escalations(crm, sent, report, require_resolved)
        check_care(crm, tracker, report, now)
        check_messages(tracker, sent, report)
    finally:
        crm.dispose()
        tracker.dispose()
    return report


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm-url", required=True)
    parser.add_argument("--tracker-url", required=True, help="SQLAlchemy URL of Rasa's SQL tracker store")
    parser.add_argument("--sent", type=Path, required=True, help="the load generator's JSONL log")
    parser.add_argument("--out", type=Path, help="write the report as JSON here too")
    parser.add_argument("--require-resolved", action="store_true",
                        help="every escalation must have ended resolved (the agents drained the queue)")
    args = parser.parse_args(argv)
    report = reconcile(args.crm_url, args.tracker_url, read_sent(args.sent), require_resolved=args.require_resolved)
    text = json.dumps(report.as_dict(), ensure_ascii=False, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
