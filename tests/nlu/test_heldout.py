"""NLU quality on the held-out file, through the running server's parser.

The floor fails the build when understanding regresses; BENCHMARKS.md holds
the measured figures (make bench), which sit above it.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import requests
from rasa.shared.nlu.training_data.loading import load_data

from bot.settings import ROOT

HELDOUT = ROOT / "tests" / "nlu" / "heldout.yml"
INTENT_ACCURACY_FLOOR = 0.95
ENTITY_F1_FLOOR = 0.80


def _examples():
    return load_data(str(HELDOUT)).intent_examples


def _normalise(text: str) -> str:
    return "".join(text.split()).lower()


def test_heldout_shares_no_sentence_with_training() -> None:
    training = {_normalise(e.get("text")) for e in load_data(str(ROOT / "data")).training_examples}
    overlap = [e.get("text") for e in _examples() if _normalise(e.get("text")) in training]
    assert not overlap, f"held-out sentences also in training data: {overlap[:5]}"


def test_every_intent_has_heldout_examples() -> None:
    counts = Counter(e.get("intent") for e in _examples())
    domain_intents = {"greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge",
                      "query_order", "cancel_order", "change_address", "request_return",
                      "query_refund", "ask_product", "ask_recommendation", "query_membership",
                      "update_profile", "payment_issue", "ask_invoice", "complain",
                      "query_complaint", "request_human", "unsubscribe", "rate_service",
                      "inform", "out_of_scope", "faq"}
    missing = {i for i in domain_intents if counts[i] < 10}
    assert not missing


@pytest.fixture(scope="module")
def parsed(stack) -> list[tuple[object, dict]]:
    s = stack.settings
    session = requests.Session()
    results = []
    for example in _examples():
        response = session.post(f"{s.rasa_url}/model/parse", params={"token": s.rasa_token},
                                json={"text": example.get("text")}, timeout=30)
        response.raise_for_status()
        results.append((example, response.json()))
    return results


def _predicted_intent(parse: dict) -> str:
    name = parse["intent"]["name"]
    return name


def test_intent_accuracy_floor(parsed) -> None:
    wrong = [(e.get("text"), e.get("intent"), _predicted_intent(p)) for e, p in parsed
             if _predicted_intent(p) != e.get("intent")]
    accuracy = 1 - len(wrong) / len(parsed)
    print(f"held-out intent accuracy {accuracy:.3f} on {len(parsed)} examples")
    assert accuracy >= INTENT_ACCURACY_FLOOR, f"accuracy {accuracy:.3f}; misses: {wrong[:20]}"


def test_faq_response_selection(parsed) -> None:
    faq = [(e, p) for e, p in parsed if e.get("intent") == "faq"]
    right = sum(1 for e, p in faq
                if (p.get("response_selector", {}).get("faq", {}).get("response", {})
                    .get("intent_response_key")) == e.get_full_intent())
    assert right / len(faq) >= INTENT_ACCURACY_FLOOR - 0.05


def test_entity_f1_floor(parsed) -> None:
    tp = fp = fn = 0
    for example, parse in parsed:
        gold = {(x["entity"], x["start"], x["end"]) for x in example.get("entities") or []}
        predicted = {(x["entity"], x["start"], x["end"]) for x in parse.get("entities") or []}
        tp += len(gold & predicted)
        fp += len(predicted - gold)
        fn += len(gold - predicted)
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    print(f"held-out entity P={precision:.3f} R={recall:.3f} F1={f1:.3f}")
    assert f1 >= ENTITY_F1_FLOOR
