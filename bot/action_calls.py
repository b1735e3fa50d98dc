"""How the Rasa server calls the action server: fewer calls, and over kept-alive connections.

Why: under the REST load the calls to the action server were a quarter of the
Rasa process's CPU (BENCHMARKS.md, "REST round trips"), for two reasons.

1. Rasa 3.6 runs the custom `action_validate_slot_mappings` after *every*
   customer message, and first rebuilds a whole tracker for it from the
   session's events.  Kefu's (`actions/session.py`, `ActionIdentify`) only
   acts while the conversation's customer is not yet identified or a care
   message awaits its reply; afterwards it returns nothing, and Rasa then
   keeps just the slots its extraction found.  `skip_settled_identity` gives
   that same result without the call when the slots say so
   (:func:`identity_settled`).  `tests/actions/test_identify_contract.py`
   holds the action to it: for every conversation the predicate calls settled,
   the action returns no events and says nothing.
2. `EndpointConfig.request` opens a new aiohttp session, and so a new TCP
   connection, for every call (two or three per message).  `pooled_request`
   is the same request over one session per event loop whose connections are
   kept alive, for less time than the action server keeps them (Sanic: 5 s),
   so an idle connection is dropped by this side first.  A request whose
   kept-alive connection the server closed anyway is sent once more; every
   CRM write an action makes is idempotent per customer message, so a
   repeat cannot double a write.

3. Each call carries the session's events and the whole domain (~40 kB of
   JSON); the pooled session encodes it with ujson, in half the time of the
   standard library's encoder (same JSON values; anything ujson declines
   goes to `json.dumps`).

Same requests, same responses, same errors as stock Rasa; `bot.rasa_server`
installs them.
"""
from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Any, Dict, List, Mapping, Optional, Text

import aiohttp
import ujson

logger = logging.getLogger(__name__)

#: Seconds an idle connection to an endpoint is kept (below Sanic's 5 s default).
KEEPALIVE_S = 3.0
#: Slots of `ActionIdentify`'s contract (actions/session.py).
IDENTITY_SLOTS = ("identity_checked", "verified", "care_reply_pending")

_STOCK_VALIDATION: List[Any] = []
_STOCK_REQUEST: List[Any] = []
_sessions: Dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}


def identity_settled(slots: Mapping[str, Any]) -> bool:
    """True when `action_validate_slot_mappings` has nothing to do: the
    customer is identified (or verified) and no care reply is pending."""
    return bool((slots.get("identity_checked") or slots.get("verified")) and not slots.get("care_reply_pending"))


async def skip_settled_identity(self: Any, extraction_events: List[Any], output_channel: Any, nlg: Any,
                                tracker: Any, domain: Any) -> List[Any]:
    """Drop-in for `ActionExtractSlots._execute_validation_action`."""
    from rasa.shared.core.events import SlotSet

    slot_events = [event for event in extraction_events if isinstance(event, SlotSet)]
    touches_contract = any(event.key in IDENTITY_SLOTS for event in slot_events)
    slots = {name: tracker.get_slot(name) for name in IDENTITY_SLOTS}
    if not touches_contract and identity_settled(slots):
        return list(slot_events)  # what stock returns when the action returns []
    return await _STOCK_VALIDATION[0](self, extraction_events, output_channel, nlg, tracker, domain)


def encode_json(value: Any) -> str:
    """`json.dumps`, faster: ujson, or the standard encoder for what ujson declines (NaN, huge ints)."""
    try:
        # ASCII, as json.dumps writes it: a lone surrogate a customer typed
        # stays an escape instead of failing the UTF-8 encoding of the body.
        return ujson.dumps(value, escape_forward_slashes=False)
    except (OverflowError, TypeError, ValueError):
        return json.dumps(value)


def _session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT

        for stale in [known for known in _sessions if known.is_closed()]:
            del _sessions[stale]
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_S),
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
            json_serialize=encode_json)
        _sessions[loop] = session
    return session


async def pooled_request(self: Any, method: Text = "post", subpath: Optional[Text] = None,
                         content_type: Optional[Text] = "application/json", compress: bool = False,
                         **kwargs: Any) -> Optional[Any]:
    """Drop-in for `EndpointConfig.request` over kept-alive connections."""
    from rasa.shared.exceptions import FileNotFoundException
    from rasa.utils.endpoints import ClientResponseError, concat_url

    headers: Dict[str, str] = {}
    if content_type:
        headers["Content-Type"] = content_type
    headers.update(kwargs.pop("headers", None) or {})
    if self.headers:
        headers.update(self.headers)
    auth = (aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"])
            if self.basic_auth else None)
    sslcontext = None
    if self.cafile:
        try:
            sslcontext = ssl.create_default_context(cafile=self.cafile)
        except FileNotFoundError as e:
            raise FileNotFoundException(f"Failed to find certificate file, '{self.cafile}' does not exist.") from e
    url = concat_url(self.url, subpath)
    params = self.combine_parameters(kwargs)
    for attempt in (1, 2):  # returns or raises
        try:
            async with _session().request(method, url, headers=headers, params=params, compress=compress,
                                          ssl=sslcontext, auth=auth, **kwargs) as response:
                if response.status >= 400:
                    raise ClientResponseError(response.status, response.reason, await response.content.read())
                try:
                    return await response.json()
                except aiohttp.ContentTypeError:
                    return None
        except aiohttp.ServerDisconnectedError:
            if attempt == 2:
                raise
            logger.debug("Kept-alive connection to %s was closed by the server; sending again", url)
    raise AssertionError("not reached")


def install() -> None:
    """Apply both replacements (idempotent)."""
    from rasa.core.actions.action import ActionExtractSlots
    from rasa.utils.endpoints import EndpointConfig

    if not _STOCK_VALIDATION:
        _STOCK_VALIDATION.append(ActionExtractSlots._execute_validation_action)
        ActionExtractSlots._execute_validation_action = skip_settled_identity  # type: ignore[assignment]
    if not _STOCK_REQUEST:
        _STOCK_REQUEST.append(EndpointConfig.request)
        EndpointConfig.request = pooled_request  # type: ignore[assignment]
