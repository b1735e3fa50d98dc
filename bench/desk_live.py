"""How fast the desk follows a handed-off chat: the customer's message to the
agent's open event stream, and an agent's reply through Rasa into the tracker.

    python -m bench.desk_live [--rounds 20]

The stream latency is bounded below by the desk's 0.5 s polling of the event
broker table; the reply latency is the desk's POST (CRM check, Rasa append
with side effects, timeline write).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.rest_load import percentile
from bench.stack import running_stack
from bot.settings import ROOT
from tests.conftest import Chat
from tests.desk.conftest import PASSWORD, DeskClient, EventStream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp), customers=300) as (stack, crm):
        crm.desk.create_staff("bench", "压测客服", "agent", PASSWORD, max_open=50)
        client = DeskClient(stack.settings.desk_url)
        client.login("bench")
        to_stream, replies = [], []
        for i in range(args.rounds):
            chat = Chat(stack, sender=f"bench-desk-{i}")
            chat.say("我要转人工")
            escalation = None
            while escalation is None:
                escalation = crm.desk.active_for("rest", chat.sender)
            client.act(escalation.id, "claim").raise_for_status()
            stream = EventStream(client, escalation.id)
            stream.wait_for(lambda kind, _: kind == "hello")
            start = time.perf_counter()
            chat.say(f"第{i}条消息")
            stream.wait_for(lambda kind, data: kind == "turn" and data["from"] == "customer")
            to_stream.append(time.perf_counter() - start)
            start = time.perf_counter()
            client.act(escalation.id, "reply", {"text": f"回复{i}"}).raise_for_status()
            replies.append(time.perf_counter() - start)
            stream.close()
            client.act(escalation.id, "resolve")
    result = {
        "rounds": args.rounds,
        "customer_to_stream_s": {"median": statistics.median(to_stream), "p95": percentile(to_stream, 0.95)},
        "agent_reply_s": {"median": statistics.median(replies), "p95": percentile(replies, 0.95)},
    }
    out = ROOT / "var" / "bench" / "desk_live.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
