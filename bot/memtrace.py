"""Opt-in memory tracing for the long-running servers: ``KEFU_MEMTRACE=<folder>``.

Why: the soak showed the Rasa process's RSS rising through a 30-minute run.
RSS cannot say whether Python objects accumulate (a cache or a map keyed by
conversation that is never emptied: a leak to fix) or native memory grows
(TensorFlow's allocator, glibc arenas: bounded by the peak working set).
With the variable set, the process starts `tracemalloc` (one frame per
allocation, to keep the overhead tolerable under load) and, on every SIGUSR2,
writes a report to the folder: RSS, the Python heap that tracemalloc sees,
the allocation sites that grew most since the first report, and the object
counts by type that grew most. ``bench.soak --memtrace`` signals the Rasa and
action servers during a run; comparing two reports far apart answers the
question. Off (the default) it costs nothing: nothing is imported or started.
"""
from __future__ import annotations

import gc
import os
import signal
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Optional

ENV = "KEFU_MEMTRACE"
#: Frames kept per allocation: 1 names the line that allocated; more (e.g. 8)
#: also say who called it, at a higher cost in speed and memory.
FRAMES_ENV = "KEFU_MEMTRACE_FRAMES"
TOP = 30

_state: dict[str, object] = {}


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _type_counts() -> Counter[str]:
    return Counter(type(obj).__qualname__ for obj in gc.get_objects())


def report(folder: Path, name: str) -> Path:
    """Write one report; the first one is the baseline the later ones compare with.

    Collects garbage first: objects in reference cycles (Rasa's events and
    trackers make many) are freed only by the cyclic collector, and counting
    them would report garbage as growth."""
    unreachable = gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces((
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    ))
    counts = _type_counts()
    baseline: Optional[tracemalloc.Snapshot] = _state.get("snapshot")  # type: ignore[assignment]
    base_counts: Counter[str] = _state.get("counts") or Counter()  # type: ignore[assignment]
    number = int(_state.get("n", 0)) + 1  # type: ignore[call-overload]
    _state["n"] = number
    traced, peak = tracemalloc.get_traced_memory()
    lines = [
        f"{name} pid {os.getpid()} report {number} at {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"rss_mb {_rss_mb():.1f}  python_traced_mb {traced / 2**20:.1f}  python_peak_mb {peak / 2**20:.1f}  "
        f"gc_objects {sum(counts.values())}  collected_before_report {unreachable}",
    ]
    if baseline is None:
        _state["snapshot"], _state["counts"] = snapshot, counts
        lines.append("baseline taken; later reports show growth since this one")
        for stat in snapshot.statistics("lineno")[:TOP]:
            lines.append(f"  {stat.size / 1024:10.1f} KiB {stat.count:8d}  {stat.traceback}")
    else:
        lines.append(f"top {TOP} allocation sites by growth since report 1 (KiB, blocks):")
        by = "traceback" if tracemalloc.get_traceback_limit() > 1 else "lineno"
        for diff in snapshot.compare_to(baseline, by)[:TOP]:
            lines.append(f"  {diff.size_diff / 1024:+10.1f} KiB {diff.count_diff:+8d}  now {diff.size / 1024:.1f} KiB  {diff.traceback}")
            if by == "traceback":
                lines.extend(f"      {frame}" for frame in reversed(diff.traceback))
        lines.append(f"top {TOP} object types by growth in count since report 1:")
        grown = sorted(((counts[k] - base_counts.get(k, 0), k) for k in counts), reverse=True)[:TOP]
        for delta, kind in grown:
            lines.append(f"  {delta:+8d}  now {counts[kind]:8d}  {kind}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{os.getpid()}-{number}.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def install_from_env(name: str) -> bool:
    """Start tracing and hook SIGUSR2 if ``KEFU_MEMTRACE`` names a folder; True if on."""
    folder = os.environ.get(ENV, "").strip()
    if not folder:
        return False
    tracemalloc.start(max(1, int(os.environ.get(FRAMES_ENV, "1") or 1)))
    signal.signal(signal.SIGUSR2, lambda *_: report(Path(folder), name))
    return True
