"""The NLU baseline harness itself: its arithmetic against hand-computed
values, the TF-IDF baseline on a tiny three-intent set, and the default
pipeline against Rasa's own `rasa init` template.  No Rasa training here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import rasa
import yaml

from bench import nlu_metrics
from bench.nlu_baselines import Example, Parsed, score
from bench.rasa_default_baseline import CONFIG_YML, SEED
from bench.tfidf_intent import TfidfIntentClassifier, base_intent, select_by_cv

GOLD = ["a", "a", "b", "b", "c"]
PREDICTED = ["a", "b", "b", "nlu_fallback", "c"]


def test_intent_scores_match_hand_computed_values() -> None:
    # a: P 1, R 1/2, F1 2/3; b: P 1/2, R 1/2, F1 1/2; c: F1 1.
    scores = nlu_metrics.intent_scores(GOLD, PREDICTED)
    assert scores["examples"] == 5
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert scores["weighted_f1"] == pytest.approx((2 * 2 / 3 + 2 * 1 / 2 + 1 * 1) / 5)
    assert scores["fallback_rate"] == pytest.approx(1 / 5)


def test_fallback_is_wrong_but_not_a_class_of_its_own() -> None:
    per_intent = nlu_metrics.per_intent_f1(GOLD, PREDICTED)
    assert set(per_intent) == {"a", "b", "c"}
    assert per_intent["b"] == pytest.approx(0.5)


def test_confusions_are_counted_most_frequent_first() -> None:
    gold = ["x", "x", "x", "y", "y"]
    predicted = ["y", "y", "x", "x", "y"]
    assert nlu_metrics.confusions(gold, predicted) == [("x", "y", 2), ("y", "x", 1)]


def test_intent_scores_reject_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError):
        nlu_metrics.intent_scores(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        nlu_metrics.intent_scores([], [])


@pytest.mark.parametrize("values, q, expected", [
    (list(range(1, 21)), 95, 19),
    (list(range(1, 21)), 50, 10),
    ([5, 1, 4, 2, 3], 50, 3),
    ([7.0], 95, 7.0),
    (list(range(1, 101)), 100, 100),
])
def test_percentile_is_nearest_rank(values, q, expected) -> None:
    assert nlu_metrics.percentile(values, q) == expected


def test_latency_summary_in_milliseconds() -> None:
    summary = nlu_metrics.latency_summary([0.001 * i for i in range(1, 21)])
    assert summary == {"p50_ms": 10.0, "p95_ms": 19.0, "mean_ms": 10.5}


def test_score_counts_faq_by_base_intent_and_answer_by_sub_intent() -> None:
    examples = [Example("运费多少", "faq", "faq/shipping_fee"),
                Example("保修多久", "faq", "faq/warranty"),
                Example("你好", "greet", "greet")]
    parsed = [Parsed("faq", "faq/shipping_fee", 0.001),
              Parsed("greet", "faq/warranty", 0.002),   # answer right, intent wrong
              Parsed("greet", None, 0.003)]
    result = score(examples, parsed)
    assert result["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["faq_answer_accuracy"] == 1.0
    assert result["confusions"] == [("faq", "greet", 1)]


TRAIN = [
    ("我的快递到哪了", "query_order"), ("订单怎么还没到", "query_order"), ("查一下物流", "query_order"),
    ("包裹到哪里了", "query_order"), ("快递几天能到我这", "query_order"),
    ("我要退货", "request_return"), ("这个不想要了能退吗", "request_return"), ("申请退货退款", "request_return"),
    ("质量太差我要退", "request_return"), ("怎么退货啊", "request_return"),
    ("你好", "greet"), ("在吗", "greet"), ("哈喽", "greet"), ("您好呀", "greet"), ("有人在吗", "greet"),
    ("运费多少钱", "faq/shipping_fee"), ("包邮吗", "faq/shipping_fee"), ("邮费怎么算", "faq/shipping_fee"),
    ("保修多久", "faq/warranty"), ("坏了保修吗", "faq/warranty"), ("保修期是多长", "faq/warranty"),
]


@pytest.fixture(scope="module")
def tiny_model() -> TfidfIntentClassifier:
    return TfidfIntentClassifier(c=10.0, max_ngram=3).fit([t for t, _ in TRAIN], [i for _, i in TRAIN])


@pytest.mark.parametrize("text, intent", [
    ("我的快递怎么还没到", "query_order"),
    ("我要退貨", "request_return"),   # Traditional: normalised as Kefu does
    ("你好在吗", "greet"),
    ("運費多少", "faq"),
])
def test_tfidf_baseline_learns_three_intents_and_a_retrieval_intent(tiny_model, text, intent) -> None:
    assert tiny_model.predict(text).intent == intent


def test_tfidf_baseline_selects_the_faq_answer(tiny_model) -> None:
    assert tiny_model.predict("包邮吗亲").responses == {"faq": "faq/shipping_fee"}
    assert tiny_model.predict("保修期多久").responses == {"faq": "faq/warranty"}


def test_tfidf_fallback_rule(tiny_model) -> None:
    assert tiny_model.predict("今天天气").intent != nlu_metrics.FALLBACK_INTENT  # no rule: always a guess
    strict = tiny_model.with_fallback(threshold=0.99, ambiguity=0.0)
    assert strict.predict("今天天气").intent == nlu_metrics.FALLBACK_INTENT
    ambiguous = tiny_model.with_fallback(threshold=0.0, ambiguity=1.0)
    assert ambiguous.predict("我要退货").intent == nlu_metrics.FALLBACK_INTENT


def test_tfidf_baseline_rejects_bad_training_input() -> None:
    with pytest.raises(ValueError):
        TfidfIntentClassifier().fit(["a", "b"], ["greet"])
    with pytest.raises(ValueError):
        TfidfIntentClassifier().fit(["你好", "在吗"], ["greet", "greet"])
    with pytest.raises(RuntimeError):
        TfidfIntentClassifier().predict("你好")


def test_base_intent() -> None:
    assert base_intent("faq/warranty") == "faq"
    assert base_intent("greet") == "greet"


def test_selection_uses_training_data_and_picks_from_the_grid() -> None:
    texts, labels = [t for t, _ in TRAIN], [i for _, i in TRAIN]
    result = select_by_cv(texts, labels, grid=((1.0, 2), (10.0, 3)), folds=3)
    assert [(r["c"], r["max_ngram"]) for r in result["grid"]] == [(1.0, 2), (10.0, 3)]
    assert result["best"] in result["grid"]
    assert result["best"]["cv_accuracy"] == max(r["cv_accuracy"] for r in result["grid"])


def test_default_pipeline_is_rasa_inits_plus_a_seed() -> None:
    template = (Path(rasa.__file__).parent / "cli" / "initial_project" / "config.yml").read_text()
    pipeline_block = template.split("pipeline:", 1)[1].split("# Configuration for Rasa Core", 1)[0]
    uncommented = "\n".join(re.sub(r"^#", "", line) for line in pipeline_block.splitlines()
                            if line.startswith("#   "))
    expected = yaml.safe_load(uncommented)
    ours = yaml.safe_load(CONFIG_YML)
    assert ours["language"] == yaml.safe_load(template)["language"] == "en"
    stripped = [{k: v for k, v in c.items() if k != "random_seed"} for c in ours["pipeline"]]
    assert stripped == expected
    seeded = {c["name"]: c.get("random_seed") for c in ours["pipeline"] if "random_seed" in c}
    assert seeded == {"DIETClassifier": SEED, "ResponseSelector": SEED}


def test_score_lists_each_error_with_its_sentence() -> None:
    examples = [Example("你好", "greet", "greet"), Example("退钱", "query_refund", "query_refund")]
    parsed = [Parsed("greet", None, 0.001), Parsed("nlu_fallback", None, 0.001)]
    assert score(examples, parsed)["errors"] == [
        {"text": "退钱", "gold": "query_refund", "predicted": "nlu_fallback"}]


def test_the_baselines_fallback_is_the_one_kefu_ships(tmp_path) -> None:
    from bench.nlu_baselines import kefu_fallback

    assert kefu_fallback() == (0.3, 0.0)  # config.yml's FallbackClassifier today
    other = tmp_path / "config.yml"
    other.write_text("pipeline:\n  - name: JiebaTokenizer\n  - name: FallbackClassifier\n"
                     "    threshold: 0.45\n    ambiguity_threshold: 0.08\n")
    assert kefu_fallback(other) == (0.45, 0.08)
    (tmp_path / "none.yml").write_text("pipeline:\n  - name: JiebaTokenizer\n")
    with pytest.raises(ValueError):
        kefu_fallback(tmp_path / "none.yml")
