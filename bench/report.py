"""One summary of every benchmark JSON under var/bench/, with plots.

    python -m bench.report [--bench-dir var/bench] [--plots docs/bench]

The benchmarks write JSON of their own shapes; rather than know each one,
this walks every file and takes any object that reports latency percentiles
or a throughput as one measurement, read by key names the benchmarks share
(`p50_ms`, `p95_ms`, `p99_ms`, `messages_per_second` or `*_per_s`, `errors`
with `messages`, `error_rate`, `*rss*`/`*memory*` in MB).  A new benchmark
that uses those names appears here without a change.

Prints a Markdown table; draws latency and throughput charts, the NLU
baseline comparison when var/bench/nlu_baselines.json is there, p95 against
offered load for every REST open-loop run, and memory per process through
the newest soak, as PNG files for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from bot.settings import ROOT

_THROUGHPUT = re.compile(r"^(messages_per_second|throughput.*|.*_per_s(ec(ond)?)?)$")
_MEMORY = re.compile(r"(rss|memory)", re.IGNORECASE)


@dataclass
class Measurement:
    source: str  # file stem and dotted path inside it
    throughput: Optional[float] = None
    throughput_key: Optional[str] = None
    p50_ms: Optional[float] = None
    p95_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    error_rate: Optional[float] = None
    memory_mb: dict[str, float] = field(default_factory=dict)


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _percentile(node: dict, name: str) -> Optional[float]:
    if _number(node.get(f"{name}_ms")) is not None:
        return float(node[f"{name}_ms"])
    candidates = [k for k in node if k.endswith(f"{name}_ms") and _number(node[k]) is not None]
    return float(node[sorted(candidates)[0]]) if candidates else None


def _memory(node: dict) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in node.items():
        if not _MEMORY.search(key):
            continue
        if _number(value) is not None:
            found[key] = float(value)
        elif isinstance(value, dict):
            found.update({f"{key}.{k}": float(v) for k, v in value.items() if _number(v) is not None})
    return found


def measurement(source: str, node: dict) -> Optional[Measurement]:
    """The measurement in one JSON object, or None when it reports none."""
    found = Measurement(source)
    found.p50_ms, found.p95_ms, found.p99_ms = (_percentile(node, n) for n in ("p50", "p95", "p99"))
    for key in sorted(node):
        if _THROUGHPUT.match(key) and _number(node[key]) is not None:
            found.throughput, found.throughput_key = float(node[key]), key
            break
    if _number(node.get("error_rate")) is not None:
        found.error_rate = float(node["error_rate"])
    elif _number(node.get("errors")) is not None:
        total = next((_number(node[k]) for k in ("messages", "requests", "total") if _number(node.get(k))), None)
        if total:
            found.error_rate = float(node["errors"]) / total
    found.memory_mb = _memory(node)
    if found.throughput is None and found.p50_ms is None and found.p95_ms is None and found.p99_ms is None:
        return None
    return found


def walk(source: str, node: Any) -> Iterator[Measurement]:
    if isinstance(node, dict):
        found = measurement(source, node)
        if found is not None:
            yield found
        for key, value in node.items():
            yield from walk(f"{source}.{key}", value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(f"{source}[{index}]", value)


def gather(bench_dir: Path) -> list[Measurement]:
    """Measurements of every JSON file in ``bench_dir`` (files that do not
    parse are skipped: a benchmark may be writing one right now)."""
    found: list[Measurement] = []
    for path in sorted(bench_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found.extend(walk(path.stem, data))
    return found


def _fmt(value: Optional[float], digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def markdown(rows: list[Measurement]) -> str:
    lines = ["| measurement | throughput | p50 / p95 / p99 ms | error rate | memory MB |",
             "|---|---|---|---|---|"]
    for r in rows:
        throughput = f"{_fmt(r.throughput)} ({r.throughput_key})" if r.throughput is not None else ""
        latency = " / ".join(_fmt(v) or "–" for v in (r.p50_ms, r.p95_ms, r.p99_ms))
        error = "" if r.error_rate is None else f"{r.error_rate:.2%}"
        memory = ", ".join(f"{k} {v:,.0f}" for k, v in r.memory_mb.items())
        lines.append(f"| {r.source} | {throughput} | {latency} | {error} | {memory} |")
    return "\n".join(lines)


def plot_latency(rows: list[Measurement], out: Path) -> Optional[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.p50_ms is not None or r.p95_ms is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    height = 0.27
    for offset, (name, attr) in enumerate((("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))):
        values = [getattr(r, attr) or 0 for r in rows]
        ax.barh([i + (offset - 1) * height for i in range(len(rows))], values, height, label=name)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r.source for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (log scale)")
    ax.set_title("Latency percentiles, every benchmark in var/bench/")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_throughput(rows: list[Measurement], out: Path) -> Optional[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.throughput is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(rows) + 1.5))
    ax.barh(range(len(rows)), [r.throughput for r in rows])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r.source} ({r.throughput_key})" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("per second")
    ax.set_title("Throughput, every benchmark in var/bench/")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_nlu_baselines(path: Path, out: Path) -> Optional[Path]:
    """Accuracy, macro-F1 and p50 latency of each system on each held-out file."""
    if not path.is_file():
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(path.read_text(encoding="utf-8"))
    systems = list(report["systems"])
    files = list(next(iter(report["systems"].values()))["heldout"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    width = 0.8 / len(systems)
    for metric, ax in zip(("accuracy", "macro_f1", "p50_ms"), axes):
        for i, name in enumerate(systems):
            values = []
            for file_name in files:
                r = report["systems"][name]["heldout"][file_name]
                values.append(r["latency"]["p50_ms"] if metric == "p50_ms" else r[metric])
            ax.bar([j + (i - (len(systems) - 1) / 2) * width for j in range(len(files))], values, width, label=name)
        ax.set_xticks(range(len(files)))
        ax.set_xticklabels(files)
        ax.set_title({"accuracy": "intent accuracy", "macro_f1": "macro-F1",
                      "p50_ms": "parse latency p50 (ms)"}[metric])
        if metric != "p50_ms":
            ax.set_ylim(0.5, 1.0)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Kefu's NLU against two baselines (bench/nlu_baselines.py)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _json_files(bench_dir: Path) -> Iterator[tuple[Path, Any]]:
    for path in sorted(bench_dir.glob("*.json")):
        try:
            yield path, json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue


def plot_open_loop(bench_dir: Path, out: Path, target_ms: float = 100.0,
                   target_rate: float = 50.0) -> Optional[Path]:
    """p95 against offered rate, one line per run (`bench.rest_load`'s `open_loop` rows).

    Why a curve and not a row: one open-loop row is a 12-second window of a
    shared host whose speed changes by half within minutes; the runs together
    show where the knee is and how far it wanders.
    """
    runs = [(path.stem, sorted((r["offered_per_second"], r["p95_ms"]) for r in data["open_loop"]
                               if _number(r.get("offered_per_second")) is not None and _number(r.get("p95_ms")) is not None))
            for path, data in _json_files(bench_dir)
            if isinstance(data, dict) and isinstance(data.get("open_loop"), list)]
    runs = [(name, points) for name, points in runs if len(points) >= 2]
    if not runs:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in runs:
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=name)
    ax.axhline(target_ms, color="grey", linestyle="--", linewidth=1)
    ax.axvline(target_rate, color="grey", linestyle=":", linewidth=1)
    ax.annotate(f"target: p95 ≤ {target_ms:.0f} ms at {target_rate:.0f} msg/s", (target_rate, target_ms),
                textcoords="offset points", xytext=(-200, 8), fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, messages per second (10 conversations, Poisson arrivals)")
    ax.set_ylabel("p95 latency, ms (log scale)")
    ax.set_title("REST open loop: p95 against offered load (bench.rest_load)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_soak_memory(bench_dir: Path, out: Path) -> Optional[Path]:
    """Resident memory of every process through the newest soak run (`bench.soak`'s `samples`)."""
    soaks = [(path, data) for path, data in _json_files(bench_dir)
             if isinstance(data, dict) and isinstance(data.get("samples"), list) and data["samples"]]
    if not soaks:
        return None
    path, data = max(soaks, key=lambda item: item[0].stat().st_mtime)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in data["samples"][0] if k != "t_s" and isinstance(data["samples"][0][k], dict)]
    fig, (big, small) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name in names:
        points = [(s["t_s"] / 60, s[name]["rss_mb"]) for s in data["samples"]
                  if isinstance(s.get(name), dict) and _number(s[name].get("rss_mb")) is not None]
        if not points:
            continue
        axis = big if max(y for _, y in points) >= 500 else small
        axis.plot([x for x, _ in points], [y for _, y in points], label=name)
    for axis in (big, small):
        axis.set_ylabel("RSS, MB")
        axis.legend(fontsize=8, loc="center right")
    small.set_xlabel("minutes into the soak")
    minutes = data.get("minutes")
    fig.suptitle(f"Memory per process during the soak ({path.stem}"
                 + (f", {minutes:g} minutes)" if _number(minutes) is not None else ")"), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench-dir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs" / "bench")
    args = parser.parse_args()
    rows = gather(args.bench_dir)
    print(markdown(rows))
    args.plots.mkdir(parents=True, exist_ok=True)
    for drawn in (plot_latency(rows, args.plots / "latency.png"),
                  plot_throughput(rows, args.plots / "throughput.png"),
                  plot_nlu_baselines(args.bench_dir / "nlu_baselines.json", args.plots / "nlu_baselines.png"),
                  plot_open_loop(args.bench_dir, args.plots / "rest_open_loop.png"),
                  plot_soak_memory(args.bench_dir, args.plots / "soak_memory.png")):
        if drawn is not None:
            print(f"wrote {drawn}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
