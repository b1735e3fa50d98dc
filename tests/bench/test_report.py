"""bench.report reads measurements out of benchmark JSON of any shape."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report


def _write(directory: Path, name: str, data: object) -> None:
    (directory / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def test_gathers_nested_measurements_with_their_paths(tmp_path: Path) -> None:
    _write(tmp_path, "rest_load", {"load": {"messages": 600, "errors": 3, "messages_per_second": 9.1,
                                            "p50_ms": 10.0, "p95_ms": 20.0, "p99_ms": 30.0},
                                   "long_conversation": {"ratio": 1.2}})
    _write(tmp_path, "soak", {"runs": [{"turn_p50_ms": 5.0, "turn_p95_ms": 7.5, "error_rate": 0.01,
                                        "rss_mb": {"rasa": 900.0, "actions": 120.5}}]})
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    rows = {r.source: r for r in report.gather(tmp_path)}
    assert set(rows) == {"rest_load.load", "soak.runs[0]"}
    load = rows["rest_load.load"]
    assert (load.throughput, load.p50_ms, load.p95_ms, load.p99_ms) == (9.1, 10.0, 20.0, 30.0)
    assert load.error_rate == pytest.approx(3 / 600)
    soak = rows["soak.runs[0]"]
    assert (soak.p50_ms, soak.p95_ms, soak.p99_ms, soak.error_rate) == (5.0, 7.5, None, 0.01)
    assert soak.memory_mb == {"rss_mb.rasa": 900.0, "rss_mb.actions": 120.5}


def test_markdown_and_plots(tmp_path: Path) -> None:
    _write(tmp_path, "a", {"deliver_msg_per_s": 250.0, "p95_ms": 4.0})
    rows = report.gather(tmp_path)
    table = report.markdown(rows)
    assert "| a | 250.0 (deliver_msg_per_s) | – / 4.0 / – |" in table
    assert report.plot_latency(rows, tmp_path / "latency.png").stat().st_size > 1000
    assert report.plot_throughput(rows, tmp_path / "throughput.png").stat().st_size > 1000
    assert report.plot_nlu_baselines(tmp_path / "missing.json", tmp_path / "nlu.png") is None


def test_open_loop_and_soak_plots_only_from_files_that_have_them(tmp_path: Path) -> None:
    assert report.plot_open_loop(tmp_path, tmp_path / "open.png") is None
    assert report.plot_soak_memory(tmp_path, tmp_path / "soak.png") is None
    rows = [{"offered_per_second": rate, "p95_ms": p95} for rate, p95 in ((5, 40.0), (20, 60.0), (50, 300.0))]
    _write(tmp_path, "rest_run1", {"load": {"p95_ms": 1.0}, "open_loop": rows})
    _write(tmp_path, "rest_one_row", {"open_loop": rows[:1]})  # a single rate is not a curve
    samples = [{"t_s": t, "rasa": {"rss_mb": 930.0 + t / 100}, "actions": {"rss_mb": 75.0}} for t in range(0, 1800, 10)]
    _write(tmp_path, "soak", {"command": "python -m bench.soak", "samples": samples})
    assert report.plot_open_loop(tmp_path, tmp_path / "open.png").stat().st_size > 1000
    assert report.plot_soak_memory(tmp_path, tmp_path / "soak.png").stat().st_size > 1000
