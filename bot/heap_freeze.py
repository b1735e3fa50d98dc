"""Keep what a server loads at start-up out of the garbage collector's full passes.

Why: once its model is loaded the Rasa process holds ~620,000 objects the
cyclic garbage collector tracks (TensorFlow, spaCy, the domain, the graph),
and CPython's full (generation-2) collection walks every one of them: 0.25 to
0.32 s per pass here, with the event loop stopped.  Under the REST load one
such pass came in each 13- to 16-second run, so at 50 messages a second each
pass held up some fifteen messages that had arrived in the meantime, plus
those queued while the backlog cleared: a few per cent of all messages, about
what decides a p95.  The model's objects live as long as the process, so walking them
finds nothing to free.

`gc.freeze()` moves every object that exists at that moment into the
permanent generation, which collections never walk; afterwards a full pass
walks only what traffic created (conversations, caches): ~0.1 ms right after
start-up.  The collector still runs, on the same schedule, so reference
cycles that traffic creates are freed as before.

The trade-off: a cycle among objects that were frozen is never freed while
they stay frozen.  Start-up leaves little such garbage (a collection runs
just before freezing).  A model replaced while the server runs (Rasa's
``PUT /model``, a model server) is the one large case, so each model load
first unfreezes everything, and the model it replaces is freed by the
collection that follows, or by the next load's if Rasa still holds it then.
"""
from __future__ import annotations

import functools
import gc
import logging
from typing import Any, Callable, List

logger = logging.getLogger(__name__)

_STOCK_LOAD_MODEL: List[Callable[..., Any]] = []


def freeze_heap() -> int:
    """Collect garbage, then freeze what survives; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("Froze %d long-lived objects out of the garbage collector's passes", frozen)
    return frozen


def _load_model_then_freeze(stock: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(stock)
    def load_model(self: Any, *args: Any, **kwargs: Any) -> Any:
        gc.unfreeze()  # a model being replaced becomes collectable again
        result = stock(self, *args, **kwargs)
        freeze_heap()
        return result

    return load_model


def install() -> None:
    """Freeze the heap after every model load of this process (idempotent)."""
    from rasa.core.agent import Agent

    if not _STOCK_LOAD_MODEL:
        _STOCK_LOAD_MODEL.append(Agent.load_model)
        Agent.load_model = _load_model_then_freeze(Agent.load_model)  # type: ignore[assignment]
