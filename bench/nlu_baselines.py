"""Kefu's NLU against two baselines, on the same training data and the two
held-out files.

    python -m bench.nlu_baselines [--retrain] [--skip-rasa-default]

Systems:

- ``kefu``: the shipped model (models/kefu.tar.gz), parsed through Rasa's Agent;
- ``tfidf_lr``: TF-IDF character n-grams + logistic regression
  (bench/tfidf_intent.py), with Kefu's text normalisation, no fallback;
- ``tfidf_lr_fallback``: the same model behind Kefu's fallback rule (the
  FallbackClassifier's threshold and ambiguity in config.yml, applied to its
  probabilities), for the fallback rate;
- ``rasa_default``: Rasa's `rasa init` pipeline (bench/rasa_default_baseline.py),
  NLU only, trained once into var/bench/nlu_baseline_model/ and reused while
  the config and data/ are unchanged (``--retrain`` forces a new training).

Retrieval intents: all three classify `faq/*` examples as the one intent
`faq` (Rasa's DIET does so by construction; the TF-IDF baseline is trained
that way), and pick the sub-intent with a second model (ResponseSelector in
both Rasa systems, a second TF-IDF classifier in the baseline).  Intent
scores use `faq`; "FAQ answer" is the share of held-out FAQ messages whose
sub-intent was chosen right, as in tests/nlu/test_heldout.py.

Latency is per message, one message at a time, in this process, measured for
the systems one after another in the same run: on a shared machine the
figures are noisy, but they are comparable within a run.

JSON to var/bench/nlu_baselines.json; a Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from threadpoolctl import threadpool_limits

from bench import nlu_metrics
from bench.nlu_metrics import intent_scores, latency_summary
from bench.tfidf_intent import TfidfIntentClassifier, select_by_cv
from bot.settings import ROOT

HELDOUT_FILES = ("heldout.yml", "heldout_blind.yml")
OUT = ROOT / "var" / "bench" / "nlu_baselines.json"
SELECTION = ROOT / "var" / "bench" / "nlu_baselines_tfidf_selection.json"
BASELINE_MODEL_DIR = ROOT / "var" / "bench" / "nlu_baseline_model"
KEFU_MODEL = ROOT / "models" / "kefu.tar.gz"
CONFIG = ROOT / "config.yml"


def kefu_fallback(config: Path = CONFIG) -> tuple[float, float]:
    """Kefu's FallbackClassifier (threshold, ambiguity) from config.yml, applied to
    the TF-IDF baseline's probabilities in the tfidf_lr_fallback row: the rule
    the shipped bot runs, read rather than copied so the two cannot drift."""
    from rasa.shared.utils.io import read_yaml_file

    for step in read_yaml_file(config)["pipeline"]:
        if step["name"] == "FallbackClassifier":
            return float(step.get("threshold", 0.3)), float(step.get("ambiguity_threshold", 0.1))
    raise ValueError(f"{config} has no FallbackClassifier")

WARM_UP = ("你好", "我的订单到哪了", "運費多少")


@dataclass
class Example:
    text: str
    intent: str  # base intent: `faq` for `faq/warranty`
    full_intent: str


@dataclass
class Parsed:
    intent: str
    response_key: Optional[str]
    seconds: float


def load_examples(path: Path) -> list[Example]:
    """Intent examples of a Rasa NLU file or folder, via Rasa's own loader so
    every system reads the same sentences."""
    from rasa.shared.nlu.training_data.loading import load_data

    return [Example(e.get("text"), e.get("intent"), e.get_full_intent())
            for e in load_data(str(path)).intent_examples]


def parse_all(parse: Callable[[str], tuple[str, Optional[str]]], examples: Sequence[Example]) -> list[Parsed]:
    for text in WARM_UP:
        parse(text)
    results = []
    for example in examples:
        start = time.perf_counter()
        intent, key = parse(example.text)
        results.append(Parsed(intent, key, time.perf_counter() - start))
    return results


def rasa_parser(model: Path) -> Callable[[str], tuple[str, Optional[str]]]:
    """A parse function over a trained Rasa model (NLU part of the graph)."""
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # no per-message debug line inside the timing
    agent = Agent.load(str(model))
    loop = asyncio.new_event_loop()

    def parse(text: str) -> tuple[str, Optional[str]]:
        result = loop.run_until_complete(agent.parse_message(text))
        selectors = result.get("response_selector") or {}
        # Kefu's selector is bound to `faq`; the default pipeline's is `default`.
        selector = selectors.get("faq") or selectors.get("default") or {}
        return result["intent"]["name"], selector.get("response", {}).get("intent_response_key")

    return parse


def tfidf_parser(model: TfidfIntentClassifier) -> Callable[[str], tuple[str, Optional[str]]]:
    def parse(text: str) -> tuple[str, Optional[str]]:
        prediction = model.predict(text)
        return prediction.intent, prediction.responses.get("faq")

    return parse


def score(examples: Sequence[Example], parsed: Sequence[Parsed]) -> dict:
    gold = [e.intent for e in examples]
    predicted = [p.intent for p in parsed]
    result = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in intent_scores(gold, predicted).items()}
    faq = [(e, p) for e, p in zip(examples, parsed) if e.intent == "faq"]
    result["faq_answer_accuracy"] = (round(sum(1 for e, p in faq if p.response_key == e.full_intent) / len(faq), 4)
                                     if faq else None)
    result["latency"] = latency_summary([p.seconds for p in parsed])
    result["per_intent_f1"] = {k: round(v, 4) for k, v in nlu_metrics.per_intent_f1(gold, predicted).items()}
    result["confusions"] = nlu_metrics.confusions(gold, predicted, top=12)
    # Held-out sentences are written test data, not customer messages.
    result["errors"] = [{"text": e.text, "gold": e.intent, "predicted": p.intent}
                        for e, p in zip(examples, parsed) if e.intent != p.intent]
    return result


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def tfidf_selection(texts: Sequence[str], labels: Sequence[str], reselect: bool = False) -> dict:
    """(C, n) for the TF-IDF baseline by 5-fold CV on the training data,
    remembered in var/bench/ together with a fingerprint of data/."""
    from bench.rasa_default_baseline import data_fingerprint

    fingerprint = data_fingerprint()
    if SELECTION.is_file() and not reselect:
        cached = json.loads(SELECTION.read_text(encoding="utf-8"))
        if cached.get("data") == fingerprint:
            return cached
    start = time.perf_counter()
    selection = select_by_cv(texts, labels)
    selection["seconds"] = round(time.perf_counter() - start, 1)
    selection["data"] = fingerprint
    SELECTION.parent.mkdir(parents=True, exist_ok=True)
    SELECTION.write_text(json.dumps(selection, indent=2), encoding="utf-8")
    return selection


ALL_SYSTEMS = ("kefu", "tfidf_lr", "tfidf_lr_fallback", "rasa_default")


def run(retrain: bool = False, skip_rasa_default: bool = False, reselect: bool = False,
        only: Sequence[str] = ALL_SYSTEMS) -> dict:
    os.chdir(ROOT)  # Kefu's config names models/spacy_zh relative to the project
    training = load_examples(ROOT / "data" / "nlu")
    heldout = {name: load_examples(ROOT / "tests" / "nlu" / name) for name in HELDOUT_FILES}
    texts = [e.text for e in training]
    labels = [e.full_intent for e in training]
    report: dict = {"machine": _machine(), "training_examples": len(training),
                    "training_intents": len({e.intent for e in training}),
                    "heldout_examples": {n: len(x) for n, x in heldout.items()}, "systems": {}}

    # (b) TF-IDF: choose (C, n) on training data (kept while data/ is
    # unchanged: 30 fits), then time the final fit.  One BLAS thread: on the
    # shared 2 cores more threads only fight.
    with threadpool_limits(limits=1):
        selection = tfidf_selection(texts, labels, reselect)
        best = selection["best"]
        start = time.perf_counter()
        tfidf = TfidfIntentClassifier(c=best["c"], max_ngram=best["max_ngram"]).fit(texts, labels)
        tfidf_seconds = time.perf_counter() - start
    fallback = kefu_fallback()
    tfidf_fb = tfidf.with_fallback(*fallback)

    systems: list[tuple[str, dict, Callable[[], Callable[[str], tuple[str, Optional[str]]]]]] = [
        ("kefu", {"train_seconds": _kefu_training_seconds(),
                  "train_note": "not retrained here: full `rasa train` (NLU + dialogue), BENCHMARKS.md"},
         lambda: rasa_parser(KEFU_MODEL)),
        ("tfidf_lr", {"train_seconds": round(tfidf_seconds, 2), "selection": selection},
         lambda: tfidf_parser(tfidf)),
        ("tfidf_lr_fallback", {"train_seconds": round(tfidf_seconds, 2), "fallback": fallback},
         lambda: tfidf_parser(tfidf_fb)),
    ]
    if not skip_rasa_default and "rasa_default" in only:
        from bench import rasa_default_baseline

        info = None if retrain else rasa_default_baseline.trained(BASELINE_MODEL_DIR)
        if info is None:
            info = rasa_default_baseline.train(BASELINE_MODEL_DIR)
        systems.append(("rasa_default", {"train_seconds": info["train_seconds"],
                                         "train_note": "`rasa train nlu`, cold cache"},
                        lambda: rasa_parser(Path(info["model"]))))

    for name, meta, make_parser in systems:
        if name not in only:
            continue
        parse = make_parser()
        report["systems"][name] = {**meta, "heldout": {}}
        for file_name, examples in heldout.items():
            report["systems"][name]["heldout"][file_name] = score(examples, parse_all(parse, examples))
        print(f"{name}: done", flush=True)
    return report


def _kefu_training_seconds() -> Optional[float]:
    path = ROOT / "var" / "bench" / "nlu_eval.json"
    if path.is_file():
        return json.loads(path.read_text()).get("training_seconds")
    return None


def markdown(report: dict) -> str:
    rows = ["| system | held-out file | intent accuracy | macro-F1 | weighted F1 | fallback rate | FAQ answer | "
            "p50 / p95 ms per message | training s |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, system in report["systems"].items():
        train = system.get("train_seconds")
        for file_name, r in system["heldout"].items():
            faq = "" if r["faq_answer_accuracy"] is None else f"{r['faq_answer_accuracy']:.3f}"
            rows.append(f"| {name} | {file_name} ({r['examples']}) | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
                        f"{r['weighted_f1']:.3f} | {r['fallback_rate']:.3f} | {faq} | "
                        f"{r['latency']['p50_ms']:.1f} / {r['latency']['p95_ms']:.1f} | "
                        f"{'—' if train is None else train} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--retrain", action="store_true", help="train the Rasa default pipeline anew")
    parser.add_argument("--skip-rasa-default", action="store_true")
    parser.add_argument("--only", nargs="+", choices=ALL_SYSTEMS, default=list(ALL_SYSTEMS),
                        help="measure only these systems")
    parser.add_argument("--reselect", action="store_true", help="choose the TF-IDF (C, n) by CV anew")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    report = run(retrain=args.retrain, skip_rasa_default=args.skip_rasa_default,
                 reselect=args.reselect, only=args.only)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
