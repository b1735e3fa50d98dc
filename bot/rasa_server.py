"""Start the Rasa server (same arguments as `rasa`) with two per-message costs removed.

Why this wrapper exists, first: Rasa 3.6 checks every action-server response with
`jsonschema.validate(result, schema)`, which re-validates the *schema* against
the draft 2020-12 meta-schema on every call before validating the response.
That took ~59 ms per custom action call here, against ~2.4 ms for the same
validation with a validator built once, and a message runs two or three custom
actions (identity, form validation, submit).  Profiling the REST load
benchmark showed it as 40 % of the Rasa process's time (BENCHMARKS.md).

The replacement validates exactly the same responses against exactly the same
schema and raises the same `ValidationError` with Rasa's message; only the
meta-schema check happens once per process instead of once per call.

Second: loading a conversation deserialises each stored event through
`Event.resolve_by_type`, which walks every `Event` subclass (recursively) to
find the one with that type name — ~4 % of the process under load.  The
replacement remembers the answer per type name and falls back to Rasa's own
lookup for anything it has not seen, so results and errors are unchanged.

Third, not a cost but a silence: when the action server is down (or answers
with an error), Rasa logs "the action's events are lost", carries on, and the
customer hears nothing at all.  `run_remote_action` tells them honestly that
this step did not go through and that trying again is safe (every CRM write
carries an idempotency key), at most once per conversation every few seconds.
The apology is returned as the failed action's only event, so the dialogue
state is what stock Rasa leaves (the action recorded, nothing else), and the
apology is in the transcript an agent or a manager reads later.  The
per-message slot-mapping check is exempt: Rasa already skips it quietly, and
an FAQ answer still follows.

Fourth and fifth, fewer and cheaper calls to the action server: see
`bot.action_calls`.  Sixth, one walk over the history per prediction instead
of one per policy: `bot.tracker_states`.  Seventh, the model's graph run in a
planned order instead of through dask's scheduler: `bot.graph_runner`.
Eighth, spaCy run once per message, not twice: `bot.nlu.spacy_doc_reuse`.
Ninth, a tracker copied (before every action) without replaying the whole
session: `bot.tracker_copy`.  Tenth, the loaded model kept out of the
garbage collector's full passes, which stopped the server for 0.3 s about
once every 15 s under load: `bot.heap_freeze`.  Eleventh, no deep copies of
debug-log arguments while debug logging is off: `bot.debug_log_copies`.

All of them are applied here, explicitly, rather than as a side effect of importing
some other module; `tests/bot/test_rasa_server.py` checks they accept and
reject what stock Rasa does.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from jsonschema import Validator
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from bot import action_calls, debug_log_copies, graph_runner, heap_freeze, memtrace, rasa_auth, tracker_copy, tracker_states
from bot.nlu import spacy_doc_reuse

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def action_response_validator() -> Validator:
    """The validator for action-server responses, built (and schema-checked) once."""
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@functools.lru_cache(maxsize=None)
def _per_event_type_validators() -> Optional[tuple[Validator, Dict[str, Validator]]]:
    """The response schema split by event type, or None when it cannot be split.

    Each event in a response must match exactly one of the ~23 branches of a
    `oneOf`, so a valid event is checked against every branch; that was still
    7 % of the Rasa process under load.  Every branch pins `event` to its own
    constant (and `event` is required), so an event that matches the shared
    part and its own type's branch matches that branch only: checking just
    that one accepts exactly what the `oneOf` accepts.  Anything else goes to
    the full validator, which also words every error.
    """
    full = action_response_validator()
    schema = full.schema
    try:
        item = schema["properties"]["events"]["items"]
        branches = item["oneOf"]
        by_type = {branch["properties"]["event"]["const"]: branch for branch in branches}
    except (KeyError, TypeError):
        return None
    if len(by_type) != len(branches) or "event" not in item.get("required", ()):
        return None
    cls = type(full)
    shared = {key: value for key, value in item.items() if key != "oneOf"}
    envelope = {**schema, "properties": {**schema["properties"], "events": {"type": "array"}}}
    return cls(envelope), {name: cls({**shared, "allOf": [branch]}) for name, branch in by_type.items()}


def _quickly_valid(result: Any) -> bool:
    """True only for a response the full schema accepts (see above); False = ask it."""
    split = _per_event_type_validators()
    if split is None or not isinstance(result, dict):
        return False
    envelope, by_type = split
    if not envelope.is_valid(result):
        return False
    for event in result.get("events") or ():
        name = event.get("event") if isinstance(event, dict) else None
        validator = by_type.get(name) if isinstance(name, str) else None
        if validator is None or not validator.is_valid(event):
            return False
    return True


def validate_action_result(self: Any, result: Dict[str, Any]) -> bool:
    """Drop-in for `RemoteAction._validate_action_result` (same errors, same message)."""
    from rasa.shared.constants import DOCS_BASE_URL

    if _quickly_valid(result):
        return True
    error = best_match(action_response_validator().iter_errors(result))
    if error is None:
        return True
    error.message += (
        f". Failed to validate Action server response from API, "
        f"make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


_EVENT_TYPES: Dict[str, type] = {}


def resolve_event_type(type_name: str, default: Optional[type] = None) -> Optional[type]:
    """Drop-in for `Event.resolve_by_type`, remembering what Rasa's lookup found."""
    found = _EVENT_TYPES.get(type_name)
    if found is not None:
        return found
    found = _STOCK_RESOLVE[0](type_name, default)
    if found is not None and getattr(found, "type_name", None) == type_name:
        _EVENT_TYPES[type_name] = found
    return found


_STOCK_RESOLVE: List[Callable[..., Optional[type]]] = []

#: What a customer reads when a custom action could not be run.
ACTION_FAILED_REPLY = "非常抱歉，系统暂时出了点问题，这一步没有办理成功。请稍后再试一次，或说“转人工”联系客服。"
#: One apology per conversation in this many seconds (a turn may run several custom actions).
APOLOGY_EVERY_S = 10.0
_STOCK_REMOTE_RUN: List[Callable[..., Any]] = []
_last_apology: Dict[str, float] = {}


async def run_remote_action(self: Any, output_channel: Any, nlg: Any, tracker: Any, domain: Any) -> Any:
    """Drop-in for `RemoteAction.run` that apologises to the customer when it fails."""
    from rasa.core.actions.action import ActionExecutionRejection
    from rasa.shared.core.constants import ACTION_VALIDATE_SLOT_MAPPINGS
    from rasa.shared.core.events import BotUttered

    try:
        return await _STOCK_REMOTE_RUN[0](self, output_channel, nlg, tracker, domain)
    except ActionExecutionRejection:
        raise  # a form declining input: part of the normal flow
    except Exception:
        sender = str(tracker.sender_id)
        now = time.monotonic()
        if self.name() != ACTION_VALIDATE_SLOT_MAPPINGS and now - _last_apology.get(sender, -1e9) > APOLOGY_EVERY_S:
            _last_apology[sender] = now
            if len(_last_apology) > 10_000:
                _last_apology.clear()
            # What Rasa does with a failed action (log it, record the action with
            # no events), except that the apology is the action's one event: Rasa
            # sends it and keeps it in the transcript the desk and the manager read.
            logger.exception("Encountered an exception while running action '%s'; "
                             "the customer was told it did not go through.", self.name())
            return [BotUttered(ACTION_FAILED_REPLY)]
        raise


def install() -> None:
    """Apply the replacements (idempotent)."""
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.events import Event

    RemoteAction._validate_action_result = validate_action_result  # type: ignore[assignment]
    if not _STOCK_REMOTE_RUN:
        _STOCK_REMOTE_RUN.append(RemoteAction.run)
        RemoteAction.run = run_remote_action  # type: ignore[assignment]
    if not _STOCK_RESOLVE:
        _STOCK_RESOLVE.append(Event.resolve_by_type)
        Event.resolve_by_type = staticmethod(resolve_event_type)  # type: ignore[assignment]
    action_calls.install()
    tracker_states.install()
    debug_log_copies.install()
    tracker_copy.install()
    graph_runner.install()
    spacy_doc_reuse.install()
    heap_freeze.install()


def main() -> None:
    install()
    memtrace.install_from_env("rasa")
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    sys.argv = rasa_auth.server_args(sys.argv, os.environ)
    rasa_main()


if __name__ == "__main__":
    main()
