"""Rasa's HTTP API as the desk uses it: pause and resume a conversation, say
something on the customer's own channel, hand the chat back to the bot, and
read the transcript.

Why through Rasa and not to the channel directly: a bot event appended with
``output_channel=latest&execute_side_effects=true`` goes out on whatever
channel the customer last wrote from (socket.io room, WeChat 客服消息) *and*
lands in the same tracker, so the transcript stays one story.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional
from urllib.parse import quote

import aiohttp

from bot import rasa_auth

log = logging.getLogger("kefu.desk.rasa")

MSG_RASA_DOWN = "消息未发出：机器人服务暂时不可用，请稍后重试"
HANDBACK_INTENT = "EXTERNAL_handoff_resolved"
#: Turns after the last this many are not shown (very long histories).
MAX_TURNS = 300


class RasaUnavailable(Exception):
    """Rasa did not take the request; ``str()`` is the Chinese message for staff."""

    def __init__(self, detail: str) -> None:
        super().__init__(MSG_RASA_DOWN)
        self.detail = detail


@dataclass(frozen=True)
class Turn:
    """One line of the transcript: ``who`` is customer, bot or agent."""

    who: str
    text: str
    at: datetime  # aware UTC
    agent: Optional[str] = None
    agent_name: Optional[str] = None

    def as_json(self) -> dict[str, Any]:
        return {"from": self.who, "text": self.text, "at": self.at.isoformat(),
                "agent": self.agent, "agent_name": self.agent_name}


def turn_from_event(event: dict[str, Any]) -> Optional[Turn]:
    """A tracker (or event-broker) event as a transcript turn; None for the rest."""
    kind = event.get("event")
    if kind not in ("user", "bot"):
        return None
    text = event.get("text")
    if kind == "user" and isinstance(text, str) and text.startswith("EXTERNAL: "):
        return None  # an intent the desk or scheduler triggered, not the customer's words
    if not isinstance(text, str) or not text:
        data = event.get("data") or {}
        if kind == "bot" and isinstance(data, dict) and data.get("buttons"):
            text = " / ".join(str(b.get("title", "")) for b in data["buttons"])
        if not text:
            return None
    at = datetime.fromtimestamp(float(event.get("timestamp") or 0), tz=timezone.utc)
    if kind == "user":
        return Turn("customer", text, at)
    metadata = event.get("metadata") or {}
    agent = metadata.get("agent") if isinstance(metadata, dict) else None
    if agent:
        return Turn("agent", text, at, str(agent), str(metadata.get("agent_name") or agent))
    return Turn("bot", text, at)


class RasaClient:
    """One `aiohttp.ClientSession` for the desk process (close it on shutdown)."""

    def __init__(self, base_url: str, jwt_secret: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.jwt_secret = jwt_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: Optional[aiohttp.ClientSession] = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _url(self, sender: str, tail: str) -> str:
        return f"{self.base_url}/conversations/{quote(sender, safe='')}/{tail}"

    async def _call(self, method: str, url: str, params: dict[str, str],
                    body: Optional[dict[str, Any]] = None) -> Any:
        try:
            # Signed per request, in a header: never the API token in the URL (bot/rasa_auth.py).
            async with self._http().request(method, url, params=params, json=body,
                                            headers=rasa_auth.bearer(self.jwt_secret, "kefu-desk")) as response:
                if response.status >= 400:
                    text = (await response.text())[:200]
                    raise RasaUnavailable(f"HTTP {response.status}: {text}")
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RasaUnavailable(type(exc).__name__) from exc

    async def _append(self, sender: str, event: Any, deliver: bool = False) -> dict[str, Any]:
        """POST one event (a dict) or several (a list) to the tracker."""
        params = {"output_channel": "latest", "execute_side_effects": "true"} if deliver else {}
        return await self._call("POST", self._url(sender, "tracker/events"), params, event)

    async def pause(self, sender: str) -> None:
        """Stop the bot's predictions for this conversation (its messages are still logged)."""
        await self._append(sender, {"event": "pause"})

    async def resume(self, sender: str) -> None:
        """Let the bot predict again, from a listening state.

        The escalating action paused the conversation before Rasa logged
        ``action_listen``; without one the next message (or the hand-back
        intent) would not match any rule, which all start after listening.
        """
        await self._append(sender, [{"event": "resume"}, {"event": "action", "name": "action_listen"}])

    async def say(self, sender: str, text: str, agent_username: Optional[str] = None,
                  agent_name: Optional[str] = None, system: Optional[str] = None) -> None:
        """Deliver ``text`` on the customer's latest channel and record it in the tracker.

        An agent's words carry ``metadata.agent``; the desk's own notices
        (queue place) carry ``metadata.desk`` instead and read as the bot's.
        """
        metadata: dict[str, str] = {}
        if agent_username:
            metadata = {"agent": agent_username, "agent_name": agent_name or agent_username}
        elif system:
            metadata = {"desk": system}
        await self._append(sender, {"event": "bot", "text": text, "metadata": metadata}, deliver=True)

    async def hand_back(self, sender: str, escalation_id: int) -> None:
        """The bot takes over again and asks for a CSAT rating (intent added on the bot's side)."""
        await self.resume(sender)
        await self._call("POST", self._url(sender, "trigger_intent"), {"output_channel": "latest"},
                         {"name": HANDBACK_INTENT, "entities": {"escalation_id": str(escalation_id)}})

    async def tracker(self, sender: str) -> dict[str, Any]:
        return await self._call("GET", self._url(sender, "tracker"), {"include_events": "ALL"})

    async def transcript(self, sender: str) -> list[Turn]:
        tracker = await self.tracker(sender)
        turns = [t for t in (turn_from_event(e) for e in tracker.get("events") or []) if t is not None]
        return turns[-MAX_TURNS:]

    async def status(self) -> bool:
        try:
            await self._call("GET", f"{self.base_url}/status", {})
            return True
        except RasaUnavailable:
            return False
