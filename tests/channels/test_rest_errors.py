"""The REST channel's error path: the customer gets an answer, the log gets no words of theirs.

Rasa's own handler logs the message text when processing fails; a customer's
text can hold an address or a name, which the PII filter (phones, e-mails, ID
numbers) does not recognise, so ours logs its length only.
"""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from structlog.testing import capture_logs

from bot.channels.rest import LimitedRestInput
from bot.ratelimit import MemoryTokenBuckets, Rate

TEXT = "我住北京市朝阳区建国路八十八号，我叫司马晓光，快递怎么还没到"


def _receive(on_new_message):
    blueprint = LimitedRestInput(MemoryTokenBuckets(Rate(0, 0))).blueprint(on_new_message)
    return next(route.handler for route in blueprint._future_routes if route.uri == "/webhook")


@pytest.mark.parametrize("failure", [RuntimeError("the CRM said no"), asyncio.CancelledError()])
def test_a_failed_message_is_answered_and_logged_without_its_text(failure: BaseException) -> None:
    async def on_new_message(message) -> None:
        raise failure

    request = SimpleNamespace(json={"sender": "s1", "message": TEXT}, args={})
    with capture_logs() as logs:
        answer = asyncio.run(_receive(on_new_message)(request))
    assert answer.status == 200 and json.loads(answer.body) == []
    events = [e for e in logs if e["event"].startswith("rest.message.received")]
    assert len(events) == 1 and events[0]["chars"] == len(TEXT)
    assert "司马" not in repr(logs) and "建国路" not in repr(logs)
