"""`DialogueStateTracker.copy` without replaying the whole session on every call.

Why: Rasa copies the tracker before it runs each action (the processor keeps
the original in case the action is rejected, and forms copy it again), and
`copy` is `travel_back_in_time(inf)`: a new tracker that replays every event
of the session.  Under the REST load that was ~6 % of the Rasa process, and
it grows with the session.

A copy must be exactly what stock gives, and that is *not* the original's
current state: the processor changes some of it directly, outside events
(`clear_followup_action` after running a follow-up action, for one), and a
replay does not see that.  So each tracker gets a replica: a tracker built
the stock way (`init_copy`, then `update` per event), kept up to date by
replaying only the events appended since the last copy.  A copy is a clone
of the replica, field by field, with its own mutable parts (slot objects,
the active loop, the event deque, the latest-action dict); the events
themselves are shared, as a replay shares them.

The replica is brought up to date only while the history has only grown:
the event it replayed last is still the same object at the same place.
Otherwise (events removed or replaced) a new replica replays them all, as
stock does.  A bounded history (which drops events from the front) always
gets stock's copy.

`tests/bot/test_tracker_copy.py` compares every field of the copies with
stock's on every training and test conversation, turn by turn, and on random
histories with the processor's direct changes mixed in.
"""
from __future__ import annotations

import copy as copy_module
from typing import Any, Callable, Dict, List, Optional

from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

_REPLICA = "_kefu_copy_replica"
_STOCK: List[Callable[[DialogueStateTracker], DialogueStateTracker]] = []


class _Replica:
    """A stock-built copy of a tracker and how far into its events it has replayed."""

    __slots__ = ("tracker", "replayed", "last")

    def __init__(self, tracker: DialogueStateTracker, replayed: int, last: Any) -> None:
        self.tracker = tracker
        self.replayed = replayed
        self.last = last


_PLAIN: Dict[type, bool] = {}
_COPY_HOOKS = ("__copy__", "__reduce_ex__", "__reduce__", "__getstate__", "__setstate__")


def _is_plain(cls: type) -> bool:
    """Whether `copy.copy` of a `cls` instance is just a new instance with the same `__dict__`."""
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = not any(hook in klass.__dict__ for klass in cls.__mro__[:-1] for hook in _COPY_HOOKS) and not any(
            klass.__dict__.get("__slots__") for klass in cls.__mro__[:-1])
        _PLAIN[cls] = plain
    return plain


def _shallow_copy(item: Any) -> Any:
    """`copy.copy`, without its reduce protocol for plain objects (a slot, the active loop)."""
    cls = type(item)
    if not _is_plain(cls) or not hasattr(item, "__dict__"):
        return copy_module.copy(item)
    clone = cls.__new__(cls)
    clone.__dict__.update(item.__dict__)
    return clone


def _is_an_event_of(item: Any, events: Any) -> bool:
    return any(event is item for event in reversed(events))


def _clone(replica: DialogueStateTracker) -> DialogueStateTracker:
    """What a stock copy of the replica's tracker would be, without the replay."""
    clone = DialogueStateTracker.__new__(DialogueStateTracker)
    clone.__dict__.update(replica.__dict__)
    clone.events = replica._create_events(list(replica.events))
    clone.slots = {name: _shallow_copy(slot) for name, slot in replica.slots.items()}
    if replica.active_loop is not None:
        clone.active_loop = _shallow_copy(replica.active_loop)
    if isinstance(replica.latest_action, dict):
        clone.latest_action = dict(replica.latest_action)
    # An event is shared, as a replay shares it; a placeholder `_reset` made is each tracker's own.
    for name in ("latest_message", "latest_bot_utterance"):
        value = getattr(replica, name)
        if isinstance(value, (UserUttered, BotUttered)) and not _is_an_event_of(value, replica.events):
            setattr(clone, name, copy_module.deepcopy(value))
    return clone


def _replica_for(tracker: DialogueStateTracker) -> _Replica:
    """The tracker's replica, brought up to date (a new one if the history was rewritten)."""
    replica: Optional[_Replica] = tracker.__dict__.get(_REPLICA)
    events = tracker.events
    if replica is None or replica.replayed > len(events) or (
            replica.replayed and events[replica.replayed - 1] is not replica.last):
        replica = _Replica(tracker.init_copy(), 0, None)
    for index in range(replica.replayed, len(events)):
        replica.tracker.update(events[index])
    replica.replayed = len(events)
    replica.last = events[-1] if events else None
    tracker.__dict__[_REPLICA] = replica
    return replica


def copy(self: DialogueStateTracker) -> DialogueStateTracker:
    """Drop-in for `DialogueStateTracker.copy`."""
    if self._max_event_history is not None:
        return _STOCK[0](self)
    return _clone(_replica_for(self).tracker)


def install() -> None:
    """Replace `DialogueStateTracker.copy` (idempotent)."""
    if not _STOCK:
        _STOCK.append(DialogueStateTracker.copy)
        DialogueStateTracker.copy = copy  # type: ignore[assignment]
