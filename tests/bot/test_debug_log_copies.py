"""Debug-log arguments are deep-copied only when a debug record would be written (bot/debug_log_copies.py)."""
from __future__ import annotations

import ast
import copy
import inspect
import logging

import pytest

from bot.debug_log_copies import MODULES, DebugOnlyCopy


def test_no_copy_while_debug_is_off_a_real_one_when_it_is_on() -> None:
    logger = logging.getLogger("rasa.core.processor")
    stand_in = DebugOnlyCopy("rasa.core.processor")
    events = [{"event": "slot", "name": "order_number", "value": "260101000003"}]
    old = logger.level
    try:
        logger.setLevel(logging.INFO)
        assert stand_in.deepcopy(events) is events
        logger.setLevel(logging.DEBUG)
        copied = stand_in.deepcopy(events)
        assert copied == events and copied is not events and copied[0] is not events[0]
    finally:
        logger.setLevel(old)
    assert stand_in.copy is copy.copy  # anything else is the real module


@pytest.mark.parametrize("module_name", MODULES)
def test_rasa_uses_deepcopy_there_only_for_debug_log_arguments(module_name: str) -> None:
    # The stand-in is safe only while every deepcopy in the module is an
    # argument of a `.debug(...)` call: a Rasa upgrade that adds another use
    # must fail here, not alias some object it meant to copy.
    import importlib

    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    in_debug: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "debug":
            in_debug.update(id(n) for n in ast.walk(node))
    copies = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "deepcopy"
              and isinstance(n.value, ast.Name) and n.value.id == "copy"]
    assert copies, f"{module_name} no longer deep-copies anything: drop it from MODULES"
    outside = [n.lineno for n in copies if id(n) not in in_debug]
    assert not outside, f"{module_name} uses copy.deepcopy outside a debug call at lines {outside}"
    uses = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id == "copy"}
    assert uses == {"deepcopy"}, uses
