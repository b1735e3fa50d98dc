"""The website chat channel: `credentials.yml` key `bot.channels.web.WebChatInput`.

Rasa's socket.io channel (``rasa.core.channels.socketio``) with what a shop's
website needs on top:

* **Signed customer token.**  The host page passes the token its backend
  signed (bot.channels.web_token) in the message metadata
  (``customData.token``).  A valid token's uid goes to the bot under
  `VERIFIED_UID_KEY`, which the channel first strips from whatever the client
  sent, so only this code can set it; the token itself is dropped so it never
  reaches the tracker, the event broker or a log.  A missing, expired or
  forged token makes the visitor anonymous (logged in English, without the
  token); the customer never sees an error.  actions/session.py then
  resolves the CRM customer by the channel identity ("web", uid).
* **Session persistence that works.**  Rasa 3.6's handler calls
  ``sio.enter_room()`` without awaiting it, and in python-socketio 5.x that is
  a coroutine, so the socket never joins the session's room and replies
  addressed to the session id are lost.  Here it is awaited: a reload (or a
  reconnect) that asks for the same session id continues the conversation.
* **CORS for the widget's origin only** (``cors_allowed_origins``), not ``*``
  and not Rasa's "any origin" workaround.
* **Rate limit per session** (bot.ratelimit): a session over it reads
  "您发送得太快了，请稍后再试" and the model is not run.
* **A message is delivered once, even over a bad connection.**  The widget
  gives each message an id (``message_id``) and keeps it until the server
  acknowledges it, which happens once the turn is processed and stored.  A
  socket that drops before that re-sends it after reconnecting.  A message
  id already stored is not processed again: its stored answer is sent to the
  re-sending socket, marked ``replay_of``, and a re-send that arrives while the
  first is still being processed waits for it.  Every answer carries the id
  it answers (``in_reply_to``), so the widget shows a replayed answer only
  when it never got the original.  The id also reaches the actions, whose CRM
  writes are keyed by it (actions/common.py).  Without an id (older widgets,
  other clients) a message is processed as before.
* **Bad input is not an exception**: non-dict payloads, malformed session
  ids and metadata are ignored or cleaned; the bot itself answers empty or
  odd text (bot.nlu.normalizer).

The input channel is named "web" so trackers, the desk and the CRM all call
the website by one name.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import uuid
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncRedisManager, AsyncServer

from bot.channels import web_token
from bot.channels.rest import MESSAGE_ID, stored_answer
from bot.ratelimit import RateLimiter, limit_messages, shared_message_limiter

logger = logging.getLogger(__name__)

CHANNEL_NAME = "web"
# Where the verified shop uid travels in message metadata (actions/session.py reads it).
VERIFIED_UID_KEY = "kefu_web_uid"
TOKEN_KEY = "token"
# Session ids are the conversation id: opaque, random (uuid4 hex from the widget or us).
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_METADATA_KEYS = 20
# 5,000 Chinese characters are ~15 kB; a socket.io packet much larger is abuse.
MAX_PACKET_BYTES = 64 * 1024


def server_options(environ: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """How the socket.io server reaches sockets held by the other Rasa workers or servers.

    With KEFU_REDIS_URL every emit goes through Redis (python-socketio's
    AsyncRedisManager), so an agent's reply or a care message that reaches one
    worker over HTTP is delivered to a socket another worker holds.  Several
    workers of one server share its port with nothing to keep a visitor on one
    of them, so there the server speaks WebSocket only (one connection, one
    worker): a long-polling session's next request could land on a worker
    that never saw it.  Behind nginx (scale-out) ip_hash keeps polling sticky.
    """
    environ = os.environ if environ is None else environ
    options: Dict[str, Any] = {}
    redis_url = environ.get("KEFU_REDIS_URL", "").strip()
    if redis_url:
        options["client_manager"] = AsyncRedisManager(redis_url)
    workers = environ.get("SANIC_WORKERS", "1").strip()
    if workers.isdigit() and int(workers) > 1:
        options["transports"] = ["websocket"]
    return options


class WebChatOutput(SocketIOOutput):
    def __init__(self, sio: AsyncServer, bot_message_evt: Text, in_reply_to: Optional[str] = None,
                 replay: bool = False) -> None:
        super().__init__(sio, bot_message_evt)
        self.in_reply_to = in_reply_to
        self.replay = replay

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    async def _send_message(self, socket_id: Text, response: Any) -> None:
        """As Rasa's, naming the customer message this answers (see the module docstring)."""
        if self.in_reply_to and isinstance(response, dict):
            response = {**response, ("replay_of" if self.replay else "in_reply_to"): self.in_reply_to}
        await super()._send_message(socket_id, response)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        """As Rasa's, plus the agent's display name on a desk agent's reply
        (the bot event's metadata ``agent_name``), so the widget can show who is answering."""
        agent = kwargs.get("agent_name")
        if not isinstance(agent, str) or not agent:
            await super().send_text_message(recipient_id, text, **kwargs)
            return
        for part in text.strip().split("\n\n"):
            await self._send_message(recipient_id, {"text": part, "agent": agent[:32]})


def _origins(value: Any) -> list[str]:
    """Allowed browser origins from credentials: a list, or a comma-separated string."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = []
    return [item.strip().rstrip("/") for item in items if item and item.strip()]


class WebChatInput(SocketIOInput):
    """socket.io for the website widget, with the shop's signed customer token."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        c = credentials or {}
        return cls(
            user_message_evt=c.get("user_message_evt", "user_uttered"),
            bot_message_evt=c.get("bot_message_evt", "bot_uttered"),
            namespace=c.get("namespace"),
            session_persistence=bool(c.get("session_persistence", True)),
            socketio_path=c.get("socketio_path", "/socket.io"),
            metadata_key=c.get("metadata_key", "customData"),
            secret=str(c.get("secret") or ""),
            leeway_s=float(c.get("leeway_s") or web_token.DEFAULT_LEEWAY_S),
            cors_allowed_origins=_origins(c.get("cors_allowed_origins")),
        )

    def __init__(self, user_message_evt: Text = "user_uttered", bot_message_evt: Text = "bot_uttered",
                 namespace: Optional[Text] = None, session_persistence: bool = True,
                 socketio_path: Optional[Text] = "/socket.io", metadata_key: Text = "customData",
                 secret: str = "", leeway_s: float = web_token.DEFAULT_LEEWAY_S,
                 cors_allowed_origins: Optional[list[str]] = None) -> None:
        super().__init__(user_message_evt, bot_message_evt, namespace, session_persistence,
                         socketio_path, jwt_key=None, metadata_key=metadata_key)
        web_token.check_secret(secret)
        self.secret = secret
        self.leeway_s = leeway_s
        self.cors_allowed_origins = cors_allowed_origins or []
        self.limiter: RateLimiter = shared_message_limiter()
        if not secret:
            logger.warning("KEFU_WEB_SECRET is not set: every website visitor is anonymous")

    def get_output_channel(self) -> Optional[OutputChannel]:
        if self.sio is None:
            return None
        return WebChatOutput(self.sio, self.bot_message_evt)

    # --- what comes in -------------------------------------------------------

    def trusted_metadata(self, raw: Any, sid: str) -> dict[str, Any]:
        """The client's metadata, minus anything it must not decide, plus the verified uid."""
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raw = {}
        if not isinstance(raw, dict):
            raw = {}
        metadata = {str(k): v for k, v in list(raw.items())[:MAX_METADATA_KEYS]}
        # The client cannot forge these: the uid is ours to set, the token never goes further.
        metadata.pop(VERIFIED_UID_KEY, None)
        token = metadata.pop(TOKEN_KEY, None)
        if token is not None or self.secret:
            try:
                metadata[VERIFIED_UID_KEY] = web_token.verify(token, self.secret, self.leeway_s)
            except web_token.TokenRejected as why:
                if token is not None:
                    logger.info("website socket %s: customer token rejected (%s); anonymous", sid, why)
        metadata["channel"] = CHANNEL_NAME
        return metadata

    @staticmethod
    def valid_session_id(value: Any) -> Optional[str]:
        return value if isinstance(value, str) and SESSION_ID_RE.match(value) else None

    @staticmethod
    def valid_message_id(value: Any) -> Optional[str]:
        return value if isinstance(value, str) and MESSAGE_ID.match(value) else None

    # --- the socket.io server --------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        on_new_message = limit_messages(on_new_message, self.limiter, CHANNEL_NAME)
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=self.cors_allowed_origins,
                          max_http_buffer_size=MAX_PACKET_BYTES, **server_options())
        socketio_webhook = SocketBlueprint(sio, self.socketio_path, "web_webhook", __name__)
        self.sio = sio

        @socketio_webhook.listener("before_server_start")
        async def own_host_id(*_: Any) -> None:
            # The manager was made before Sanic forked the workers, so they
            # would share its host id, and each drops the Redis messages that
            # carry its own: an emit from one worker would never reach a socket
            # the other holds.  Each worker (or server) takes an id of its own.
            if hasattr(sio.manager, "host_id"):
                sio.manager.host_id = uuid.uuid4().hex
        # (session id, message id) of the messages this process is processing now.
        in_flight: Dict[tuple[str, str], "asyncio.Future[None]"] = {}

        async def replayed(sid: str, sender_id: str, message_id: str) -> bool:
            """Send the stored answer of an already processed message to `sid`; False if not stored."""
            running = in_flight.get((sender_id, message_id))
            if running is not None:
                await asyncio.shield(running)
            agent = next((app.ctx.agent for app in socketio_webhook.apps), None)
            if agent is None:
                return False
            answer = await stored_answer(agent, sender_id, message_id)
            if answer is None:
                return False
            output = WebChatOutput(sio, self.bot_message_evt, in_reply_to=message_id, replay=True)
            for reply in answer:
                reply.pop("recipient_id", None)
                await output.send_response(sid, reply)
            logger.info("website socket %s re-sent a message already answered; answer replayed", sid)
            return True

        @socketio_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @sio.on("connect", namespace=self.namespace)
        async def connect(sid: Text, environ: Dict, auth: Optional[Dict] = None) -> bool:
            logger.debug("website socket %s connected", sid)
            return True

        @sio.on("disconnect", namespace=self.namespace)
        async def disconnect(sid: Text, *args: Any) -> None:
            logger.debug("website socket %s disconnected", sid)

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: Text, data: Any = None) -> None:
            asked = data.get("session_id") if isinstance(data, dict) else None
            session_id = self.valid_session_id(asked) or uuid.uuid4().hex
            if asked and session_id != asked:
                logger.info("website socket %s asked for a malformed session id; new session", sid)
            if self.session_persistence:
                await sio.enter_room(sid, session_id, namespace=self.namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: Text, data: Any = None) -> Optional[Dict[str, Any]]:
            """Process one message; the return value is the socket.io acknowledgement."""
            if not isinstance(data, dict):
                logger.info("website socket %s sent a message that is not an object; ignored", sid)
                return None
            if self.session_persistence:
                sender_id = self.valid_session_id(data.get("session_id"))
                if sender_id is None:
                    logger.info("website socket %s sent a message without a valid session id; ignored", sid)
                    return None
                # A socket that reconnected without a new session_request still gets its replies.
                await sio.enter_room(sid, sender_id, namespace=self.namespace)
            else:
                sender_id = sid
            message_id = self.valid_message_id(data.get("message_id"))
            if data.get("message_id") is not None and message_id is None:
                logger.info("website socket %s sent a malformed message id; processed without it", sid)
            if message_id and await replayed(sid, sender_id, message_id):
                return {"message_id": message_id, "status": "replayed"}
            text = data.get("message")
            message = UserMessage(
                text if isinstance(text, str) else "",
                WebChatOutput(sio, self.bot_message_evt, in_reply_to=message_id),
                sender_id,
                input_channel=self.name(),
                metadata=self.trusted_metadata(data.get(self.metadata_key), sid),
                message_id=message_id,
            )
            if not message_id:
                await on_new_message(message)
                return None
            done: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
            in_flight[(sender_id, message_id)] = done
            try:
                await on_new_message(message)
            finally:
                del in_flight[(sender_id, message_id)]
                done.set_result(None)
            return {"message_id": message_id, "status": "processed"}

        return socketio_webhook

