"""Skip Rasa's deep copies of debug-log arguments while debug logging is off.

Rasa's processor and MemoizationPolicy pass `copy.deepcopy(...)` of events,
entities and dialogue states to `structlogger.debug(...)`, several times per
message.  Python evaluates the arguments before structlog's level filter
drops the call, so with debug off (every production server) the copies are
made and thrown away: ~2 % of the Rasa process under the REST load
(py-spy, BENCHMARKS.md).  In those two modules `copy.deepcopy` has no other
use, so their `copy` name is pointed at a stand-in whose `deepcopy` returns
the object itself unless the module's logger would emit a debug record, in
which case it is Python's deepcopy, as before.  Everything else falls
through to the real `copy` module.
"""
from __future__ import annotations

import copy
import logging
from types import ModuleType
from typing import Any

#: Rasa modules whose only use of `copy.deepcopy` is in debug-log arguments.
MODULES = ("rasa.core.processor", "rasa.core.policies.memoization")


class DebugOnlyCopy:
    """The `copy` module as one Rasa module sees it: deep copies only for debug logs that are kept."""

    def __init__(self, logger_name: str) -> None:
        self._logger = logging.getLogger(logger_name)  # structlog filters by this logger's level

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if self._logger.isEnabledFor(logging.DEBUG):
            return copy.deepcopy(value, memo)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def install() -> None:
    """Point each module's `copy` at its stand-in (idempotent)."""
    import importlib

    for name in MODULES:
        module: ModuleType = importlib.import_module(name)
        if not isinstance(getattr(module, "copy"), DebugOnlyCopy):
            module.copy = DebugOnlyCopy(name)  # type: ignore[attr-defined]
