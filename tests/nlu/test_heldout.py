"""NLU quality on the held-out file, through the running server's parser.

The floor fails the build when understanding regresses; BENCHMARKS.md holds
the measured figures (make bench), which sit above it.
"""
from __future__ import annotations

from collections import Counter

import pytest
import requests
from rasa.shared.nlu.training_data.loading import load_data

from bot.nlu.textnorm import normalize_text
from bot.settings import ROOT

# heldout.yml was written independently of the training data; after the first
# training its errors were read by category to improve the data, so
# heldout_blind.yml (written later, never looked at by whoever edits data/)
# is the unbiased measure.  Both must hold the floor.
HELDOUT_FILES = ("heldout.yml", "heldout_blind.yml")
# Regression guards a little under the measured figures (BENCHMARKS.md:
# intent 0.955 / 0.933, entity F1 0.78 / 0.73); the product target is 0.97.
INTENT_ACCURACY_FLOOR = {"heldout.yml": 0.93, "heldout_blind.yml": 0.90}
ENTITY_F1_FLOOR = 0.70


def _examples(name: str = "heldout.yml"):
    return load_data(str(ROOT / "tests" / "nlu" / name)).intent_examples


def _normalise(text: str) -> str:
    return "".join(text.split()).lower()


@pytest.mark.parametrize("name", HELDOUT_FILES)
def test_heldout_shares_no_sentence_with_training(name: str) -> None:
    training = {_normalise(e.get("text")) for e in load_data(str(ROOT / "data" / "nlu")).training_examples}
    overlap = [e.get("text") for e in _examples(name) if _normalise(e.get("text")) in training]
    assert not overlap, f"held-out sentences also in training data: {overlap[:5]}"


@pytest.mark.parametrize("name", HELDOUT_FILES)
def test_every_intent_has_heldout_examples(name: str) -> None:
    counts = Counter(e.get("intent") for e in _examples(name))
    domain_intents = {"greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge",
                      "query_order", "cancel_order", "change_address", "request_return",
                      "query_refund", "ask_product", "ask_recommendation", "query_membership",
                      "update_profile", "payment_issue", "ask_invoice", "complain",
                      "query_complaint", "request_human", "unsubscribe", "rate_service",
                      "inform", "out_of_scope", "faq"}
    missing = {i for i in domain_intents if counts[i] < 10}
    assert not missing


@pytest.fixture(scope="module", params=HELDOUT_FILES)
def parsed(request, stack) -> tuple[str, list[tuple[object, dict]]]:
    s = stack.settings
    session = requests.Session()
    results = []
    for example in _examples(request.param):
        response = session.post(f"{s.rasa_url}/model/parse", params={"token": s.rasa_token},
                                json={"text": example.get("text")}, timeout=30)
        response.raise_for_status()
        results.append((example, response.json()))
    return request.param, results


def _predicted_intent(parse: dict) -> str:
    name = parse["intent"]["name"]
    return name


def test_intent_accuracy_floor(parsed) -> None:
    name, parsed = parsed
    wrong = [(e.get("text"), e.get("intent"), _predicted_intent(p)) for e, p in parsed
             if _predicted_intent(p) != e.get("intent")]
    accuracy = 1 - len(wrong) / len(parsed)
    print(f"held-out intent accuracy {accuracy:.3f} on {len(parsed)} examples")
    assert accuracy >= INTENT_ACCURACY_FLOOR[name], f"accuracy {accuracy:.3f}; misses: {wrong[:20]}"


def test_faq_response_selection(parsed) -> None:
    name, parsed = parsed
    faq = [(e, p) for e, p in parsed if e.get("intent") == "faq"]
    right = sum(1 for e, p in faq
                if (p.get("response_selector", {}).get("faq", {}).get("response", {})
                    .get("intent_response_key")) == e.get_full_intent())
    assert right / len(faq) >= INTENT_ACCURACY_FLOOR[name] - 0.05


def test_the_faq_answer_is_chosen_for_faq_messages_only(parsed) -> None:
    """bot/nlu/faq_selector.py: the selector runs for messages classified `faq`, and only for them."""
    _, parsed = parsed
    for _, p in parsed:
        selector = p.get("response_selector") or {}
        assert selector.get("all_retrieval_intents") == ["faq"]
        chosen = (selector.get("faq") or {}).get("response", {}).get("intent_response_key")
        if p["intent"]["name"] == "faq":
            assert chosen and chosen.startswith("faq/"), p["text"]
        elif p["intent"]["name"] != "nlu_fallback":  # the fallback comes after the selector
            assert chosen is None, p["text"]


def test_entity_f1_floor(parsed) -> None:
    """Entities compared by type and surface text after normalisation, since
    the parser reports offsets into the normalised text."""
    name, parsed = parsed
    tp = fp = fn = 0
    for example, parse in parsed:
        text = example.get("text")
        gold = Counter((x["entity"], normalize_text(text[x["start"]:x["end"]]).lower())
                       for x in example.get("entities") or [])
        predicted = Counter({(x["entity"], parse["text"][x["start"]:x["end"]].lower())
                             for x in parse.get("entities") or []})  # one per span and type
        tp += sum((gold & predicted).values())
        fp += sum((predicted - gold).values())
        fn += sum((gold - predicted).values())
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    print(f"held-out entity P={precision:.3f} R={recall:.3f} F1={f1:.3f}")
    assert f1 >= ENTITY_F1_FLOOR
