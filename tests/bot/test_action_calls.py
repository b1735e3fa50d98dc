"""The Rasa server's calls to the action server (bot/action_calls.py), over real HTTP."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from rasa.core.actions.action import ActionExtractSlots
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import ClientResponseError, EndpointConfig

from bot import action_calls, rasa_server
from bot.settings import ROOT

rasa_server.install()
DOMAIN = Domain.load(str(ROOT / "domain.yml"))


class ActionServer:
    """An HTTP server in the action server's place, recording what reaches it."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.peers: set[Any] = set()
        self.status = 200
        self.body: Any = {"events": [], "responses": []}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.peers.add(request.transport.get_extra_info("peername"))
        self.calls.append(await request.json())
        if self.body is None:
            return web.Response(text="not json", status=self.status)
        return web.json_response(self.body, status=self.status)


async def _serve(port: int) -> tuple[ActionServer, web.AppRunner]:
    fake = ActionServer()
    app = web.Application()
    app.router.add_post("/webhook", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return fake, runner


@pytest_asyncio.fixture()
async def server(unused_tcp_port: int) -> AsyncIterator[tuple[ActionServer, EndpointConfig]]:
    fake, runner = await _serve(unused_tcp_port)
    yield fake, EndpointConfig(f"http://127.0.0.1:{unused_tcp_port}/webhook")
    await runner.cleanup()


@pytest_asyncio.fixture(autouse=True)
async def _close_pooled_sessions() -> AsyncIterator[None]:
    """The pooled session lives as long as its event loop; each test has its own loop."""
    yield
    for session in list(action_calls._sessions.values()):
        await session.close()
    action_calls._sessions.clear()


def _tracker(**slots: Any) -> DialogueStateTracker:
    tracker = DialogueStateTracker.from_events("c1", [UserUttered("你好", {"name": "greet", "confidence": 1.0})],
                                               slots=DOMAIN.slots)
    for name, value in slots.items():
        tracker.update(SlotSet(name, value))
    return tracker


async def _validate(endpoint: EndpointConfig, tracker: DialogueStateTracker, extracted: list) -> list:
    action = ActionExtractSlots(endpoint)
    return await action._execute_validation_action(extracted, None, None, tracker, DOMAIN)


@pytest.mark.asyncio
async def test_a_settled_conversation_is_not_sent_to_the_action_server(server) -> None:
    fake, endpoint = server
    extracted = [SlotSet("order_number", "260315004821")]
    result = await _validate(endpoint, _tracker(identity_checked=True), extracted)
    assert fake.calls == [] and result == extracted  # what stock returns for an action that returns []
    result = await _validate(endpoint, _tracker(verified=True, identity_checked=False), extracted)
    assert fake.calls == [] and result == extracted


@pytest.mark.asyncio
@pytest.mark.parametrize("slots, extracted", [
    ({}, []),                                                    # not identified yet
    ({"identity_checked": True, "care_reply_pending": True}, []),  # a care reply to count
    ({"identity_checked": True}, [SlotSet("identity_checked", None)]),  # the contract's slot changes
])
async def test_everything_else_still_calls_the_action(server, slots, extracted) -> None:
    fake, endpoint = server
    fake.body = {"events": [{"event": "slot", "name": "customer_id", "value": "7"}], "responses": []}
    result = await _validate(endpoint, _tracker(**slots), extracted)
    assert [c["next_action"] for c in fake.calls] == ["action_validate_slot_mappings"]
    assert SlotSet("customer_id", "7") in result


@pytest.mark.asyncio
async def test_calls_reuse_one_kept_alive_connection(server) -> None:
    fake, endpoint = server
    for i in range(5):
        assert await endpoint.request(json={"next_action": f"a{i}"}, method="post") == fake.body
    assert [c["next_action"] for c in fake.calls] == [f"a{i}" for i in range(5)]
    assert len(fake.peers) == 1


@pytest.mark.asyncio
async def test_errors_and_non_json_answers_are_what_stock_rasa_gives(server) -> None:
    fake, endpoint = server
    fake.status, fake.body = 500, {"error": "boom"}
    with pytest.raises(ClientResponseError) as failed:
        await endpoint.request(json={}, method="post")
    assert failed.value.status == 500 and b"boom" in failed.value.text
    fake.status, fake.body = 200, None
    assert await endpoint.request(json={}, method="post") is None


@pytest.mark.asyncio
async def test_a_restarted_action_server_is_reached_again(unused_tcp_port: int) -> None:
    endpoint = EndpointConfig(f"http://127.0.0.1:{unused_tcp_port}/webhook")
    for round_ in range(2):
        fake, runner = await _serve(unused_tcp_port)
        assert await endpoint.request(json={"round": round_}, method="post") == fake.body
        await runner.cleanup()  # closes the kept-alive connection from the server's side
        await asyncio.sleep(0.05)
    with pytest.raises(Exception):
        await endpoint.request(json={}, method="post")  # nobody listening: an error, not a hang


def test_the_replacements_are_installed() -> None:
    assert EndpointConfig.request is action_calls.pooled_request
    assert ActionExtractSlots._execute_validation_action is action_calls.skip_settled_identity


@pytest.mark.asyncio
async def test_a_real_action_call_reaches_the_server_as_the_standard_encoder_would_send_it(server) -> None:
    """The ujson-encoded body decodes to exactly what `json.dumps` would have sent (Chinese, emoji, floats)."""
    import json

    from rasa.core.actions.action import RemoteAction

    fake, endpoint = server
    tracker = _tracker(customer_id="7", order_number="260101000001")
    tracker.update(UserUttered("我的快递到哪了😡 </script> \u2028 \ud800", {"name": "query_order", "confidence": 0.8731},
                               entities=[{"entity": "amount", "value": 1e-7}]))
    payload = RemoteAction("action_query_order", endpoint)._action_call_format(tracker, DOMAIN)
    await endpoint.request(json=payload, method="post")
    assert fake.calls == [json.loads(json.dumps(payload))]
    assert action_calls.encode_json({"nan": float("nan")}) == json.dumps({"nan": float("nan")}).replace(" ", "")
