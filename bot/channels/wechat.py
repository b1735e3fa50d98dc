"""The WeChat Official Account (公众号) channel: `credentials.yml` key `bot.channels.wechat.WeChatInput`.

WeChat calls one URL (``/webhooks/wechat/webhook``): a GET to verify the URL
when it is configured, then a POST per customer message or event, in plain
XML or, in safe mode (安全模式), with the message AES-encrypted inside the XML.
WeChat waits five seconds for an answer and then retries (three times), so:

* each callback is processed once (`dedup.TurnStore`, keyed by MsgId); a retry
  gets the first delivery's answer;
* an openid over the per-sender rate limit (bot.ratelimit) is answered
  "您发送得太快了，请稍后再试" without running the model;
* when the bot answers within `reply_budget_s` (4 s), the answer goes back in
  the HTTP response (被动回复); otherwise WeChat gets ``success`` at once and the
  answer follows through the customer-service message API (客服消息) when ready.

A turn's messages are joined into one passive reply (blank line between them)
instead of "first passive, the rest by API": a passive reply and API messages
race each other inside WeChat, so the customer could read the second sentence
before the first; one reply keeps the order, spends no API quota and works
without API credentials.  Only text beyond WeChat's 2048-byte limit goes on by
API.  Late answers go entirely by API, one 客服消息 per bot message, in order.
What cannot be sent that way (no API credentials, or WeChat refused it for
good) is held (`wechat_mailbox.LateMailbox`) and goes out first in the reply
to the customer's next message.

The openid is the conversation id and the input channel is "wechat", so a CRM
channel identity ("wechat", openid) recognises the customer from the first
message (actions/session.py); metadata carries the same for other actions.

Everything the channel refuses is answered with a status, never an exception:
403 forged signature or stale timestamp (replay), 400 malformed XML / bad AES
payload / wrong appid, 413 oversized body.  With an empty token the channel is
disabled: its routes answer 404 and it cannot be pushed to.
"""
from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Optional

from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import (
    ClickEvent,
    SubscribeEvent,
    SubscribeScanEvent,
    UnsubscribeEvent,
)
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import (
    ImageMessage,
    LinkMessage,
    LocationMessage,
    ShortVideoMessage,
    TextMessage,
    VideoMessage,
    VoiceMessage,
)
from wechatpy.utils import check_signature

from bot.channels.dedup import Turn, turn_store
from bot.channels.wechat_mailbox import LateMailbox
from bot.channels.safe_xml import MAX_BODY_BYTES, BadXml, BodyTooLarge, parse_xml, read_capped_body
from bot.ratelimit import RateLimiter, limit_messages, shared_message_limiter
from bot.channels.wechat_api import DEFAULT_API_BASE, WeChatApi, mask_openid
from crm_adapter.masking import guard_logger

logger = guard_logger(__name__)

CHANNEL = "wechat"
SUCCESS = "success"
#: WeChat's limit for one text message, in UTF-8 bytes.
MAX_TEXT_BYTES = 2048

UNSUPPORTED_REPLY = "抱歉，我暂时只能看懂文字消息～请用文字告诉我您遇到的问题，我马上为您处理。"
UNKNOWN_MENU_REPLY = "抱歉，这个菜单暂时不可用，请直接发文字告诉我您想办理的业务。"
ERROR_REPLY = "抱歉，系统有点忙，请稍后再发一次消息。"
BUTTONS_HINT = "回复序号即可选择："

#: Menu CLICK EventKey -> what the customer is taken to have said (text or /intent).
DEFAULT_MENU: Mapping[str, str] = {
    "QUERY_ORDER": "/query_order",
    "QUERY_REFUND": "/query_refund",
    "MEMBERSHIP": "/query_membership",
    "COMPLAIN": "/complain",
    "HUMAN": "/request_human",
    "FAQ_SHIPPING": "满多少包邮",
}

_OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


class Refused(Exception):
    """A callback the channel will not process; `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class WeChatConfig:
    token: str = ""
    appid: str = ""
    secret: str = ""
    aes_key: str = ""
    api_base: str = DEFAULT_API_BASE
    reply_budget_s: float = 4.0
    timestamp_window_s: float = 300.0
    max_body_bytes: int = MAX_BODY_BYTES
    menu: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MENU))

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    @property
    def api_enabled(self) -> bool:
        return bool(self.appid and self.secret)

    @classmethod
    def from_credentials(cls, credentials: Optional[Mapping[str, Any]]) -> "WeChatConfig":
        """Values from credentials.yml (env-substituted strings); empty means default."""
        c = {k: v for k, v in (credentials or {}).items() if v not in (None, "")}
        config = cls(
            token=str(c.get("token", "")).strip(),
            appid=str(c.get("appid", "")).strip(),
            secret=str(c.get("secret", "")).strip(),
            aes_key=str(c.get("aes_key", "")).strip(),
            api_base=str(c.get("api_base", DEFAULT_API_BASE)).strip(),
            reply_budget_s=float(c.get("reply_budget_s", 4.0)),
            timestamp_window_s=float(c.get("timestamp_window_s", 300.0)),
            max_body_bytes=int(c.get("max_body_bytes", MAX_BODY_BYTES)),
            menu={**DEFAULT_MENU, **{str(k): str(v) for k, v in (c.get("menu") or {}).items()}},
        )
        if config.enabled and config.aes_key and len(config.aes_key) != 43:
            raise ValueError("wechat aes_key (EncodingAESKey) must be 43 characters")
        if config.enabled and config.aes_key and not config.appid:
            raise ValueError("wechat safe mode needs the appid (KEFU_WECHAT_APPID)")
        if not 0 < config.reply_budget_s < 5:
            raise ValueError("wechat reply_budget_s must be between 0 and 5 seconds")
        return config


def render_text(message: Mapping[str, Any]) -> Optional[str]:
    """One Rasa bot message as WeChat text (buttons become a numbered list)."""
    parts = []
    if message.get("text"):
        parts.append(str(message["text"]).strip())
    buttons = message.get("buttons") or []
    if buttons:
        lines = [f"{i}. {b.get('title', '')}" for i, b in enumerate(buttons, 1)]
        parts.append(BUTTONS_HINT + "\n" + "\n".join(lines))
    if message.get("image"):
        parts.append(str(message["image"]))
    if message.get("attachment"):
        parts.append(str(message["attachment"]))
    text = "\n".join(p for p in parts if p)
    return text or None


def split_to_limit(texts: list[str], limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Join texts with blank lines into as few messages as fit `limit` bytes each.

    A single text longer than the limit is cut at character boundaries.
    """
    chunks: list[str] = []
    current = ""
    for text in texts:
        for piece in _cut(text, limit):
            candidate = f"{current}\n\n{piece}" if current else piece
            if len(candidate.encode("utf-8")) <= limit:
                current = candidate
            else:
                chunks.append(current)
                current = piece
    if current:
        chunks.append(current)
    return chunks


def _cut(text: str, limit: int) -> list[str]:
    pieces, current, size = [], [], 0
    for char in text:
        n = len(char.encode("utf-8"))
        if size + n > limit:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += n
    pieces.append("".join(current))
    return [p for p in pieces if p]


class ButtonMemory:
    """The buttons last shown to each customer, so "2" means the second one.

    Bounded LRU in memory; a customer whose entry was evicted simply has their
    "2" understood as the text "2".
    """

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._by_openid: "OrderedDict[str, list[tuple[str, str]]]" = OrderedDict()

    def remember(self, openid: str, messages: list[Mapping[str, Any]]) -> None:
        buttons = [(str(b.get("title", "")), str(b.get("payload", "")))
                   for m in messages for b in (m.get("buttons") or [])]
        if not buttons:
            self._by_openid.pop(openid, None)
            return
        self._by_openid[openid] = buttons
        self._by_openid.move_to_end(openid)
        while len(self._by_openid) > self.max_entries:
            self._by_openid.popitem(last=False)

    def resolve(self, openid: str, text: str) -> str:
        buttons = self._by_openid.get(openid)
        if not buttons:
            return text
        choice = text.strip().rstrip(".。")
        for i, (title, payload) in enumerate(buttons, 1):
            if payload and (choice == str(i) or choice == title):
                return payload
        return text


class _TurnCollector(CollectingOutputChannel):
    """Collects one turn's bot messages whole (Rasa's collector splits texts on blank lines)."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._persist_message(self._message(recipient_id, text=text))


class WeChatOutput(OutputChannel):
    """Sends bot messages to a WeChat user through 客服消息 (push: scheduler, desk, late answers)."""

    def __init__(self, api: WeChatApi, buttons: Optional[ButtonMemory] = None) -> None:
        self.api = api
        self.buttons = buttons

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        text = render_text(message)
        agent = message.get("agent_name")
        if text and isinstance(agent, str) and agent:  # a desk agent's reply: say who is writing
            text = f"【人工客服 {agent[:32]}】{text}"
        if self.buttons is not None and message.get("buttons"):
            self.buttons.remember(recipient_id, [message])
        if text:
            await self.send_texts(recipient_id, [text])
        if message.get("custom"):
            logger.info("wechat: custom payload for %s not sent (not supported)",
                        mask_openid(recipient_id))

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_texts(recipient_id, [text])

    async def send_texts(self, openid: str, texts: list[str]) -> list[str]:
        """Send each text (cut to WeChat's limit) in order; the pieces WeChat did not accept."""
        loop = asyncio.get_running_loop()
        unsent = []
        for text in texts:
            for chunk in _cut(text, MAX_TEXT_BYTES):
                if not await loop.run_in_executor(None, self.api.send_text, openid, chunk):
                    unsent.append(chunk)
        return unsent


@dataclass
class _Query:
    signature: str
    timestamp: str
    nonce: str
    encrypt_type: str
    msg_signature: str
    openid: str
    echostr: str

    @classmethod
    def of(cls, request: Request) -> "_Query":
        args = request.args
        return cls(*(str(args.get(k, "") or "") for k in (
            "signature", "timestamp", "nonce", "encrypt_type", "msg_signature", "openid", "echostr")))


class WeChatInput(InputChannel):
    """Rasa input channel for a WeChat Official Account."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[dict[str, Any]]) -> "WeChatInput":
        return cls(WeChatConfig.from_credentials(credentials))

    def __init__(self, config: Optional[WeChatConfig] = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config or WeChatConfig()
        self._clock = clock
        self.turns = turn_store(ttl_s=max(600.0, 2 * self.config.timestamp_window_s))
        self.buttons = ButtonMemory()
        self.mailbox = LateMailbox()
        self.limiter: RateLimiter = shared_message_limiter()
        self.crypto: Optional[WeChatCrypto] = None
        if self.config.enabled and self.config.aes_key:
            self.crypto = WeChatCrypto(self.config.token, self.config.aes_key, self.config.appid)
        self.api: Optional[WeChatApi] = None
        if self.config.enabled and self.config.api_enabled:
            self.api = WeChatApi(self.config.appid, self.config.secret, self.config.api_base)
        self._background: set[asyncio.Task] = set()
        if not self.config.enabled:
            logger.info("wechat channel disabled (no token configured)")
        else:
            logger.info("wechat channel enabled (safe mode %s, customer-service API %s)",
                        "on" if self.crypto else "off", "on" if self.api else "off")

    def get_output_channel(self) -> Optional[OutputChannel]:
        if self.api is None:
            return None
        return WeChatOutput(self.api, self.buttons)

    # --- HTTP -------------------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        on_new_message = limit_messages(on_new_message, self.limiter, CHANNEL)
        module = inspect.getmodule(self)
        bp = Blueprint(f"wechat_webhook_{type(self).__name__}", module.__name__ if module else None)

        @bp.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            if not self.config.enabled:
                return response.text("wechat channel not configured", status=404)
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            if not self.config.enabled:
                return response.text("wechat channel not configured", status=404)
            query = _Query.of(request)
            try:
                self._authenticate(query)
                if not query.echostr:
                    raise Refused(400, "URL verification without echostr")
            except Refused as refused:
                return self._refuse(refused, query)
            logger.info("wechat URL verification succeeded")
            return response.text(query.echostr)

        @bp.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            if not self.config.enabled:
                return response.text("wechat channel not configured", status=404)
            query = _Query.of(request)
            try:
                self._authenticate(query)
                body = await read_capped_body(request, self.config.max_body_bytes)
                plain = self._open(body, query)
                message = parse_message(plain)
                openid = str(message.source or "")
                if not _OPENID_RE.match(openid):
                    raise Refused(400, "missing or malformed FromUserName")
                if query.openid and query.openid != openid:
                    raise Refused(400, "openid in the URL differs from the message's")
            except Refused as refused:
                return self._refuse(refused, query)
            except BodyTooLarge as exc:
                return self._refuse(Refused(413, str(exc)), query)
            except (BadXml, KeyError, ValueError, TypeError, AttributeError) as exc:
                return self._refuse(Refused(400, f"bad message: {exc}"), query)
            try:
                answer = await self._answer(message, openid, on_new_message)
            except Exception:  # never a 500: WeChat would retry into the same failure
                logger.exception("wechat: unexpected error answering %s", mask_openid(openid))
                answer = self._reply_xml(message, ERROR_REPLY)
            return self._respond(answer, query)

        return bp

    def _authenticate(self, query: _Query) -> None:
        try:
            sent_at = int(query.timestamp)
        except ValueError:
            raise Refused(403, "missing or non-numeric timestamp") from None
        if not query.signature or not query.nonce:
            raise Refused(403, "missing signature or nonce")
        try:
            check_signature(self.config.token, query.signature, query.timestamp, query.nonce)
        except InvalidSignatureException:
            raise Refused(403, "signature mismatch") from None
        skew = abs(self._clock() - sent_at)
        if skew > self.config.timestamp_window_s:
            raise Refused(403, f"timestamp {skew:.0f}s away from now (replay?)")

    def _open(self, body: bytes, query: _Query) -> str:
        """The plaintext message XML: checked, and decrypted in safe mode."""
        envelope = parse_xml(body)
        if query.encrypt_type.lower() != "aes":
            return body.decode("utf-8")
        if self.crypto is None:
            raise Refused(400, "encrypted callback but no AES key configured")
        if not query.msg_signature or "Encrypt" not in envelope:
            raise Refused(400, "safe-mode callback without msg_signature or Encrypt")
        try:
            plain = self.crypto.decrypt_message(envelope, query.msg_signature, query.timestamp,
                                                query.nonce)
        except InvalidSignatureException:
            raise Refused(403, "msg_signature mismatch") from None
        except InvalidAppIdException:
            raise Refused(400, "encrypted for another appid") from None
        except Exception as exc:  # bad base64, padding, length, encoding
            raise Refused(400, f"undecryptable payload ({type(exc).__name__})") from None
        parse_xml(plain)  # the same checks on what was inside
        return plain

    def _refuse(self, refused: Refused, query: _Query) -> HTTPResponse:
        logger.warning("wechat callback refused with %s: %s (openid %s)", refused.status,
                       refused.reason, mask_openid(query.openid))
        return response.text(refused.reason if refused.status != 403 else "forbidden",
                             status=refused.status)

    def _respond(self, answer: str, query: _Query) -> HTTPResponse:
        if answer == SUCCESS or not answer:
            return response.text(SUCCESS)
        if query.encrypt_type.lower() == "aes" and self.crypto is not None:
            answer = self.crypto.encrypt_message(answer, query.nonce, str(int(self._clock())))
        return response.text(answer, content_type="application/xml")

    # --- turns ------------------------------------------------------------

    async def _answer(self, message: Any, openid: str,
                      on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> str:
        """What to answer this callback: a plaintext reply XML or "success"."""
        key = f"{openid}:{_dedup_id(message)}"
        turn, first = await self.turns.aclaim(key)
        if first:
            task = asyncio.create_task(self._run_turn(turn, message, openid, on_new_message))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            logger.info("wechat: repeated delivery of %s from %s answered from the first",
                        _dedup_id(message), mask_openid(openid))
        try:
            return await asyncio.wait_for(asyncio.shield(turn.answer),
                                          self.config.reply_budget_s + 0.5)
        except asyncio.TimeoutError:
            return SUCCESS

    async def _run_turn(self, turn: Turn, message: Any, openid: str,
                        on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        """Process one callback once and settle `turn.answer`, then deliver what is late."""

        def settle(answer: str) -> None:
            if not turn.answer.done():
                turn.answer.set_result(answer)

        try:
            said = self._what_customer_said(message, openid)
            if said is None:
                settle(SUCCESS)
                return
            if said.static_reply:
                settle(self._reply_xml(message, said.static_reply))
                return
            collector = _TurnCollector()
            user_message = UserMessage(
                said.text, collector, openid, input_channel=CHANNEL,
                message_id=_dedup_id(message),
                metadata={"channel": CHANNEL, "openid": openid, "wechat_type": said.kind},
            )
            processing = asyncio.create_task(on_new_message(user_message))
            done, _ = await asyncio.wait({processing}, timeout=self.config.reply_budget_s)
            if done:
                processing.result()  # raises what the bot raised
                self.buttons.remember(openid, collector.messages)
                texts = self.mailbox.take(openid) + [t for t in (render_text(m) for m in collector.messages) if t]
                chunks = split_to_limit(texts)
                settle(self._reply_xml(message, chunks[0]) if chunks else SUCCESS)
                if len(chunks) > 1:
                    await self._deliver_late(openid, chunks[1:])
                return
            settle(SUCCESS)
            logger.info("wechat: answer for %s not ready in %.1fs; will send by API",
                        mask_openid(openid), self.config.reply_budget_s)
            try:
                await processing
            except Exception:
                logger.exception("wechat: late processing for %s failed", mask_openid(openid))
                await self._deliver_late(openid, [ERROR_REPLY])
                return
            self.buttons.remember(openid, collector.messages)
            texts = self.mailbox.take(openid) + [t for t in (render_text(m) for m in collector.messages) if t]
            await self._deliver_late(openid, texts)
        except Exception:
            logger.exception("wechat: processing a message from %s failed", mask_openid(openid))
            settle(self._reply_xml(message, ERROR_REPLY))

    async def _deliver_late(self, openid: str, texts: list[str]) -> None:
        """Send by API what missed the passive reply; hold what cannot be sent for the next one."""
        if not texts:
            return
        if self.api is None:
            held = self.mailbox.hold(openid, texts)
            logger.warning("wechat: %d late message(s) for %s held for the next reply (%d held in this "
                           "process): no appid/secret for the customer-service API",
                           len(texts), mask_openid(openid), held)
            return
        unsent = await WeChatOutput(self.api).send_texts(openid, texts)
        if unsent:
            held = self.mailbox.hold(openid, unsent)
            logger.warning("wechat: %d late message(s) for %s not accepted by the customer-service API; "
                           "held for the next reply (%d held in this process)",
                           len(unsent), mask_openid(openid), held)
        else:
            logger.info("wechat: %d message(s) sent to %s by customer-service API", len(texts), mask_openid(openid))

    def _what_customer_said(self, message: Any, openid: str) -> Optional["_Said"]:
        """The text the bot should hear, a fixed reply, or None (nothing to answer)."""
        if isinstance(message, TextMessage):
            text = (message.content or "").strip()
            return _Said("text", self.buttons.resolve(openid, text)) if text else None
        if isinstance(message, VoiceMessage) and (message.recognition or "").strip():
            return _Said("voice", message.recognition.strip())  # WeChat's own speech-to-text
        if isinstance(message, (SubscribeEvent, SubscribeScanEvent)):
            logger.info("wechat: %s subscribed", mask_openid(openid))
            return _Said("subscribe", "/greet")
        if isinstance(message, UnsubscribeEvent):
            logger.info("wechat: %s unsubscribed", mask_openid(openid))
            return None
        if isinstance(message, ClickEvent):
            target = self.config.menu.get(str(message.key or ""))
            if target is None:
                logger.info("wechat: unknown menu key from %s", mask_openid(openid))
                return _Said("click", "", static_reply=UNKNOWN_MENU_REPLY)
            return _Said("click", target)
        if isinstance(message, (ImageMessage, VoiceMessage, VideoMessage, ShortVideoMessage,
                                LocationMessage, LinkMessage)):
            return _Said(message.type, "", static_reply=UNSUPPORTED_REPLY)
        data = getattr(message, "_data", {}) or {}
        if str(data.get("MsgType", "")).lower() != "event":  # a message type wechatpy does not know
            return _Said("unknown", "", static_reply=UNSUPPORTED_REPLY)
        return None  # other events (menu links, location reports, scans): nothing to say

    @staticmethod
    def _reply_xml(message: Any, text: str) -> str:
        return create_reply(text, message=message, render=True)


@dataclass(frozen=True)
class _Said:
    kind: str
    text: str
    static_reply: Optional[str] = None


def _dedup_id(message: Any) -> str:
    """MsgId for messages; for events (no MsgId) WeChat's advice: sender + CreateTime."""
    data = getattr(message, "_data", {}) or {}
    msg_id = str(data.get("MsgId") or "").strip()
    if msg_id:
        return msg_id[:64]
    event = str(data.get("Event") or "").lower()[:32]
    key = str(data.get("EventKey") or "")[:64]
    return f"evt-{str(data.get('CreateTime') or '')[:20]}-{event}-{key}"
