"""The scale-out benchmark's failover verdict: a kill that misses the load must not pass.

Session 14 found `make scaleout-bench` reporting PASS for a kill run whose load
(4 s on a quiet machine) had ended before the kill at 15 s: nothing was killed.
"""
from __future__ import annotations

from bench.scaleout import killed_mid_load


def test_a_kill_inside_the_load_passes() -> None:
    ok, detail = killed_mid_load({"seconds": 14.2, "killed": {"process": "rasa-1", "pid": 1, "at_s": 4.0}})
    assert ok and "rasa-1 killed 4.0 s into a load of 14.2 s" == detail


def test_no_kill_fails() -> None:
    ok, detail = killed_mid_load({"seconds": 4.0, "killed": None})
    assert not ok and "no server was killed" in detail


def test_a_kill_at_the_very_end_fails() -> None:
    # Killed half a second before the last answer: no message could fail over.
    assert not killed_mid_load({"seconds": 4.5, "killed": {"process": "rasa-1", "pid": 1, "at_s": 4.0}})[0]
