"""What an agent's buttons do, in the order that keeps the CRM and Rasa in
step: the CRM decides whether the agent may act, Rasa carries the message,
and only a message Rasa took is recorded as sent.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Optional

from crm_adapter.errors import InvalidInput
from crm_adapter.servicedesk import MSG_NOT_YOURS, MSG_RESOLVED, Conversation, ServiceDesk, StaffView

from .rasa_client import RasaClient, RasaUnavailable

log = logging.getLogger("kefu.desk.flows")

GREETING = "您好，我是客服{display_name}，很高兴为您服务。"
QUEUE_NOTICE = "您正在排队等待人工客服，前面还有{ahead}位，预计等待约{minutes}分钟。"
QUEUE_NEXT = "您正在排队等待人工客服，您是下一位，预计等待约{minutes}分钟。"
MSG_HANDBACK_FAILED = "会话已结束，但机器人未能发出满意度邀请（机器人服务暂时不可用）。"


@dataclass(frozen=True)
class Outcome:
    conversation: Conversation
    warning: Optional[str] = None


async def claim(desk: ServiceDesk, rasa: RasaClient, escalation_id: int, staff: StaffView) -> Outcome:
    """Take the chat, pause the bot, greet the customer.

    Claiming one's own chat again only pauses again (idempotent), so an agent
    whose first claim met a Rasa outage can simply press 接入 once more
    without the customer being greeted twice.
    """
    before = await asyncio.to_thread(desk.conversation, escalation_id)
    again = before.status == "open" and before.assigned_to == staff.username
    conversation = await asyncio.to_thread(desk.claim, escalation_id, staff.username)
    return await start_serving(rasa, conversation, staff, greet=not again)


async def start_serving(rasa: RasaClient, conversation: Conversation, staff: StaffView,
                        greet: bool = True) -> Outcome:
    """Pause and greet, after a claim or an (auto-)assignment."""
    try:
        await rasa.pause(conversation.sender_id)
        if greet:
            await rasa.say(conversation.sender_id, GREETING.format(display_name=staff.display_name),
                           staff.username, staff.display_name)
    except RasaUnavailable as exc:
        log.warning("escalation %s claimed but Rasa did not take the pause/greeting: %s",
                    conversation.id, exc.detail)
        return Outcome(conversation, "已接入，但" + str(exc) + "（机器人可能仍在回复，请再次点击接入）")
    return Outcome(conversation)


async def reply(desk: ServiceDesk, rasa: RasaClient, escalation_id: int, staff: StaffView, text: str) -> Outcome:
    conversation = await asyncio.to_thread(desk.authorise_reply, escalation_id, staff.username)
    body = (text or "").strip()
    if not body or len(body) > 2000:
        raise InvalidInput("内容不能为空，且不超过2000字。")
    await rasa.say(conversation.sender_id, body, staff.username, staff.display_name)  # RasaUnavailable: nothing recorded
    conversation = await asyncio.to_thread(desk.record_agent_message, escalation_id, staff.username, body)
    return Outcome(conversation)


async def resolve(desk: ServiceDesk, rasa: RasaClient, escalation_id: int, staff: StaffView,
                  summary: Optional[str] = None) -> Outcome:
    """Close the chat and give it back to the bot, which asks for a CSAT rating.

    The bot is resumed before the CRM marks the chat resolved, so a Rasa
    outage leaves the chat open with the agent rather than resolved with
    nobody answering a paused conversation.
    """
    current = await asyncio.to_thread(desk.conversation, escalation_id)
    if current.status == "resolved":
        raise InvalidInput(MSG_RESOLVED)
    if current.assigned_to != staff.username and not staff.is_manager:
        raise InvalidInput(MSG_NOT_YOURS)
    await rasa.resume(current.sender_id)
    try:
        conversation = await asyncio.to_thread(desk.resolve, escalation_id, staff.username, summary,
                                               staff.is_manager)
    except Exception:
        await _pause_quietly(rasa, current.sender_id)
        raise
    try:
        await rasa.hand_back(conversation.sender_id, conversation.id)
    except RasaUnavailable as exc:
        log.warning("escalation %s resolved; hand-back intent not delivered: %s", conversation.id, exc.detail)
        return Outcome(conversation, MSG_HANDBACK_FAILED)
    return Outcome(conversation)


async def _pause_quietly(rasa: RasaClient, sender: str) -> None:
    try:
        await rasa.pause(sender)
    except RasaUnavailable as exc:
        log.warning("could not pause again after a failed resolve: %s", exc.detail)


async def tell_queue_place(desk: ServiceDesk, rasa: RasaClient, escalation_id: int, sender: str) -> None:
    """The desk's own notice to a queued customer (spoken as the bot, not an agent)."""
    place = await asyncio.to_thread(desk.queue_place, escalation_id)
    if place.status != "pending":
        return
    text = (QUEUE_NOTICE.format(ahead=place.ahead, minutes=place.expected_wait_minutes) if place.ahead
            else QUEUE_NEXT.format(minutes=place.expected_wait_minutes))
    try:
        await rasa.say(sender, text, system="queue_notice")
    except RasaUnavailable as exc:
        log.warning("queue notice for escalation %s not delivered: %s", escalation_id, exc.detail)
