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

Both are applied here, explicitly, rather than as a side effect of importing
some other module; `tests/bot/test_rasa_server.py` checks they accept and
reject what stock Rasa does.
"""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Dict, List, Optional

from jsonschema import Validator
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for


@functools.lru_cache(maxsize=None)
def action_response_validator() -> Validator:
    """The validator for action-server responses, built (and schema-checked) once."""
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_action_result(self: Any, result: Dict[str, Any]) -> bool:
    """Drop-in for `RemoteAction._validate_action_result` (same errors, same message)."""
    from rasa.shared.constants import DOCS_BASE_URL

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


def install() -> None:
    """Apply both replacements (idempotent)."""
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.events import Event

    RemoteAction._validate_action_result = validate_action_result  # type: ignore[assignment]
    if not _STOCK_RESOLVE:
        _STOCK_RESOLVE.append(Event.resolve_by_type)
        Event.resolve_by_type = staticmethod(resolve_event_type)  # type: ignore[assignment]


def main() -> None:
    install()
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
