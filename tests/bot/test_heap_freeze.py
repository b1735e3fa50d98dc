"""The loaded model is frozen out of the collector's passes; a replaced model is still freed."""
from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Iterator

import pytest

from bot import heap_freeze, rasa_server

MODEL = Path(__file__).resolve().parents[2] / "models" / "kefu.tar.gz"


@pytest.fixture()
def unfrozen_afterwards() -> Iterator[None]:
    """This pytest process's objects go back to normal collection after the test."""
    yield
    gc.unfreeze()
    gc.collect()


def test_install_wraps_model_loading() -> None:
    from rasa.core.agent import Agent

    rasa_server.install()
    assert heap_freeze._STOCK_LOAD_MODEL, "install() must wrap Agent.load_model"
    assert Agent.load_model is not heap_freeze._STOCK_LOAD_MODEL[0]
    rasa_server.install()  # idempotent: wrapped once, not twice
    assert Agent.load_model.__wrapped__ is heap_freeze._STOCK_LOAD_MODEL[0]


@pytest.mark.usefixtures("unfrozen_afterwards")
def test_a_loaded_model_is_out_of_the_collectors_walk_and_a_replaced_one_is_freed() -> None:
    if not MODEL.exists():
        pytest.skip("no trained model (make model)")
    from rasa.core.agent import Agent

    rasa_server.install()
    gc.unfreeze()
    agent = Agent.load(str(MODEL))
    frozen = gc.get_freeze_count()
    # Everything the model holds is frozen; what the collector still walks is
    # what was created since (nothing much yet).
    assert frozen > 200_000
    assert len(gc.get_objects()) < frozen / 20

    # Replacing the model (PUT /model loads into the same agent) frees the
    # old graph, cycles included, although it was frozen when it loaded:
    # one model's worth stays frozen.  (Without the unfreeze ~47,000 objects
    # of the old model's reference cycles stayed frozen for good.)
    old = weakref.ref(agent.processor)
    agent.load_model(str(MODEL))
    assert old() is None, "the replaced model's processor is still alive"
    assert 200_000 < gc.get_freeze_count() < 1.03 * frozen


@pytest.mark.usefixtures("unfrozen_afterwards")
def test_the_action_server_freezes_once_its_actions_are_registered() -> None:
    from rasa_sdk import endpoint

    from bot import action_server

    gc.unfreeze()
    action_server.install()
    action_server.install()  # idempotent: wrapped once
    assert endpoint.create_app.__wrapped__.__module__ == "rasa_sdk.endpoint"
    app = endpoint.create_app("actions")
    assert gc.get_freeze_count() > 20_000
    assert {route.path for route in app.router.routes} >= {"webhook", "health", "actions"}
