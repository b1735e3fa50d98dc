"""A kept tracker serves the sender's next turn only when it is exactly what a load would give."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, List

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

import bot.tracker_store as module
from bot.tracker_store import IndexedSQLTrackerStore

DOMAIN = Domain.from_yaml("""
slots:
  verified: {type: bool, mappings: []}
  complaint_category: {type: text, mappings: []}
""")


def _turn(text: str, slots: int = 0) -> list:
    return ([UserUttered(text, {"name": "inform"})]
            + [SlotSet("complaint_category", f"{text}-{i}") for i in range(slots)]
            + [BotUttered(f"回复{text}"), ActionExecuted("action_listen")])


def _start() -> list:
    return [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]


async def _start_session(store: IndexedSQLTrackerStore, sender: str) -> None:
    """A new conversation's first save (a new session: never kept)."""
    tracker = DialogueStateTracker(sender, DOMAIN.slots)
    tracker.update_with_events(_start(), DOMAIN)
    await store.save(tracker)


async def _take_turn(store: IndexedSQLTrackerStore, sender: str, *texts: str) -> DialogueStateTracker:
    """One turn as Rasa takes it: retrieve, append, save; returns the tracker saved."""
    tracker = await store.retrieve(sender)
    for text in texts:
        tracker.update_with_events(_turn(text), DOMAIN)
    await store.save(tracker)
    return tracker


def _store(tmp_path: Path, name: str = "tracker.sqlite3") -> IndexedSQLTrackerStore:
    return IndexedSQLTrackerStore(DOMAIN, db=str(tmp_path / name))


def _as_loaded(tracker: DialogueStateTracker) -> list:
    return [json.loads(json.dumps(event.as_dict())) for event in tracker.events]


def test_the_saved_tracker_serves_the_next_turn_and_equals_a_load(tmp_path: Path) -> None:
    async def run() -> None:
        store = _store(tmp_path)
        await _start_session(store, "wx-1")
        assert "wx-1" not in store._kept  # a new session: the next turn loads it
        second = await _take_turn(store, "wx-1", "二")
        third = await store.retrieve("wx-1")
        assert third is second  # kept
        loaded = await _store(tmp_path).retrieve("wx-1")
        assert _as_loaded(third) == _as_loaded(loaded)
        assert await store.retrieve("wx-1") is not third  # handed out once: the next caller loads

    asyncio.run(run())


def test_another_writer_or_an_unsaved_change_means_a_load(tmp_path: Path) -> None:
    async def run() -> None:
        ours, theirs = _store(tmp_path), _store(tmp_path)
        await _start_session(ours, "wx-2")
        tracker = await _take_turn(ours, "wx-2", "一")
        await _take_turn(theirs, "wx-2", "二")  # another server handles the next message
        back = await ours.retrieve("wx-2")
        assert back is not tracker
        assert [e.text for e in back.events if isinstance(e, UserUttered)] == ["一", "二"]
        back.update_with_events(_turn("三"), DOMAIN)
        await ours.save(back)
        back.update_with_events(_turn("失败"), DOMAIN)  # a turn that failed before its save
        again = await ours.retrieve("wx-2")
        assert again is not back
        assert [e.text for e in again.events if isinstance(e, UserUttered)] == ["一", "二", "三"]

    asyncio.run(run())


def test_a_write_between_load_and_save_is_not_missed(tmp_path: Path) -> None:
    """Rows another writer stored while our tracker was out: ours must not be kept."""
    async def run() -> None:
        ours, theirs = _store(tmp_path), _store(tmp_path)
        await _start_session(ours, "wx-3")
        mine = await ours.retrieve("wx-3")
        other = await theirs.retrieve("wx-3")
        other.update_with_events(_turn("他"), DOMAIN)
        await theirs.save(other)
        mine.update_with_events(_turn("我"), DOMAIN)
        await ours.save(mine)
        assert "wx-3" not in ours._kept
        loaded = await ours.retrieve("wx-3")
        assert [e.text for e in loaded.events if isinstance(e, UserUttered)] == ["他", "我"]

    asyncio.run(run())


def test_not_kept_past_the_window_or_when_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(module.WINDOW_ENV, "10")

    async def run(sender: str) -> tuple[bool, bool]:
        store = _store(tmp_path)
        await _start_session(store, sender)
        tracker = await _take_turn(store, sender, "一", "二")  # 2 loaded + 6 events, within 10
        kept = await store.retrieve(sender)
        within = kept is tracker
        if within:
            kept.update_with_events(_turn("三"), DOMAIN)  # 11 events: past the window
            await store.save(kept)
        return within, sender in store._kept

    assert asyncio.run(run("wx-4")) == (True, False)
    monkeypatch.setenv(module.CACHE_ENV, "0")
    assert asyncio.run(run("wx-5")) == (False, False)


def test_at_most_the_configured_senders_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(module.CACHE_ENV, "3")

    async def run() -> IndexedSQLTrackerStore:
        store = _store(tmp_path)
        for n in range(6):
            await _start_session(store, f"wx-{n}")
            await _take_turn(store, f"wx-{n}", "一")
        return store

    assert list(asyncio.run(run())._kept) == ["wx-3", "wx-4", "wx-5"]


# Two servers, two customers, random turns: every hit is what a load gives, nothing is lost.
_op = st.tuples(st.sampled_from(["turn", "turn", "turn", "failed", "read", "new_session"]),
                st.integers(0, 1), st.integers(0, 1), st.integers(0, 6))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=1, max_size=40), window=st.sampled_from(["15", "40", "0"]))
def test_two_servers_in_any_order_see_what_a_load_gives(tmp_path_factory: pytest.TempPathFactory,
                                                        ops: List[Any], window: str) -> None:
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(module.WINDOW_ENV, window)
        asyncio.run(_play(folder, ops))


async def _play(folder: Path, ops: List[Any]) -> None:
    servers = [_store(folder), _store(folder)]
    said: dict[str, list[str]] = {"a": [], "b": []}
    for step, (kind, server, who, slots) in enumerate(ops):
        store, sender = servers[server], "ab"[who]
        before = store._kept.get(sender)
        tracker = await store.retrieve(sender)
        if tracker is not None and before is not None and tracker is before.tracker:
            reference, _ = store._current_session_windowed(sender)  # what a load reads now
            assert _as_loaded(tracker) == reference
        if kind == "read":
            continue
        if tracker is None:
            tracker = DialogueStateTracker(sender, DOMAIN.slots)
            tracker.update_with_events(_start(), DOMAIN)
        if kind == "new_session":
            tracker.update_with_events(_start(), DOMAIN)
        text = f"{sender}{step}"
        tracker.update_with_events(_turn(text, slots), DOMAIN)
        if kind != "failed":
            await store.save(tracker)
            said[sender].append(text)
    for sender, texts in said.items():
        everything = await _store(folder).retrieve_full_tracker(sender)
        stored = [e.text for e in everything.events if isinstance(e, UserUttered)] if everything else []
        assert stored == texts
