"""NLU quality and training time.

    python -m bench.nlu_eval [--folds 5] [--skip-cv]

- 5-fold cross-validated intent accuracy and macro-F1 on the training data;
- held-out intent accuracy, macro-F1 and entity F1 (tests/nlu/heldout.yml);
- wall-clock time of a full `rasa train --force` (NLU + dialogue).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bot.settings import ROOT

RASA = str(Path(sys.executable).parent / "rasa")


def _run(args: list[str]) -> None:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-3000:] + result.stderr[-3000:])


def _intent_summary(report_dir: Path) -> dict:
    report = json.loads((report_dir / "intent_report.json").read_text())
    return {"accuracy": round(report["accuracy"], 4),
            "macro_f1": round(report["macro avg"]["f1-score"], 4),
            "weighted_f1": round(report["weighted avg"]["f1-score"], 4)}


def _entity_summary(report_dir: Path) -> dict:
    summary = {}
    for path in sorted(report_dir.glob("*_report.json")):
        name = path.stem.replace("_report", "")
        if name in ("intent", "response_selection") or "Classifier" not in name and "Extractor" not in name:
            continue
        report = json.loads(path.read_text())
        summary[name] = {"micro_f1": round(report.get("micro avg", {}).get("f1-score", 0.0), 4),
                         "macro_f1": round(report.get("macro avg", {}).get("f1-score", 0.0), 4)}
    return summary


def heldout(model: Path) -> dict:
    with tempfile.TemporaryDirectory() as out:
        _run([RASA, "test", "nlu", "--nlu", "tests/nlu/heldout.yml", "--model", str(model),
              "--out", out, "--no-plot"])
        out_dir = Path(out)
        return {"intent": _intent_summary(out_dir), "entities": _entity_summary(out_dir)}


def cross_validation(folds: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        _run([RASA, "test", "nlu", "--nlu", "data", "--config", "config.yml", "--cross-validation",
              "--folds", str(folds), "--out", out, "--no-plot"])
        return {"folds": folds, "intent": _intent_summary(Path(out))}


def training_time() -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        _run([RASA, "train", "--data", "data", "--domain", "domain.yml", "--config", "config.yml",
              "--out", out, "--force", "--quiet"])
        return round(time.perf_counter() - start, 1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--skip-cv", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("var/bench/nlu_eval.json"))
    args = parser.parse_args()
    results: dict = {"heldout": heldout(ROOT / "models" / "kefu.tar.gz")}
    print(json.dumps(results, indent=2), flush=True)
    if not args.skip_train:
        results["training_seconds"] = training_time()
    if not args.skip_cv:
        results["cross_validation"] = cross_validation(args.folds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
