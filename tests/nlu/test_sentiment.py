"""The strongly-negative sentiment classifier and its Rasa component.

Trained here from the corpus (well under a second) so that the figures are
those of the committed corpus, not of whatever models/sentiment holds.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rasa.shared.nlu.training_data.message import Message

from bot.nlu import sentiment, sentiment_model
from bot.nlu.sentiment_model import OTHER, STRONG_NEGATIVE, SentimentModel

# Measured on heldout.txt (BENCHMARKS.md): accuracy 0.976, strong_negative
# precision 1.000, recall 0.945 (52 of 55).  Floors a little under, to catch regressions.
ACCURACY_FLOOR = 0.95
PRECISION_FLOOR = 0.95
RECALL_FLOOR = 0.92


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel.train(*sentiment_model.read_corpus())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sentiment")
    sentiment.train(directory)
    return directory


def test_corpus_is_large_and_heldout_is_never_trained_on() -> None:
    texts, labels = sentiment_model.read_corpus()
    assert labels.count(STRONG_NEGATIVE) >= 300 and labels.count(OTHER) >= 300
    heldout, _ = sentiment_model.read_heldout()
    seen = {sentiment_model.normalize(t) for t in texts}
    leaked = [t for t in heldout if sentiment_model.normalize(t) in seen]
    assert not leaked, leaked


def test_heldout_floors(model: SentimentModel) -> None:
    evaluation = sentiment_model.evaluate(model, *sentiment_model.read_heldout())
    assert evaluation.total >= 100
    assert evaluation.accuracy >= ACCURACY_FLOOR, evaluation.errors
    assert evaluation.precision >= PRECISION_FLOOR, evaluation.errors
    assert evaluation.recall >= RECALL_FLOOR, evaluation.errors


@pytest.mark.parametrize("text", ["气死我了，你们这什么破服务！", "你们就是一群骗子，退钱！"])
def test_anger_is_strong_negative(model: SentimentModel, text: str) -> None:
    assert model.predict(text).label == STRONG_NEGATIVE


@pytest.mark.parametrize("text", ["我要投诉快递丢了", "谢谢，东西收到了", "我的订单到哪了",
                                  "有点失望，颜色不太一样"])
def test_calm_complaints_and_questions_are_other(model: SentimentModel, text: str) -> None:
    assert model.predict(text).label == OTHER


def test_traditional_and_fullwidth_read_like_simplified(model: SentimentModel) -> None:
    simplified = model.predict("气死我了，你们这什么破服务！")
    traditional = model.predict("氣死我了，你們這什麼破服務！")
    assert traditional == simplified
    assert model.predict("ＴＭＤ，又壞了") == model.predict("TMD，又坏了")


@pytest.mark.parametrize("text", ["", "   ", "😡😡😡", "\u200b\u200b", None])
def test_nothing_readable_is_other_with_score_zero(model: SentimentModel, text) -> None:
    assert model.predict(text) == sentiment_model.Sentiment(OTHER, 0.0)


def test_huge_input_is_read_from_its_start(model: SentimentModel) -> None:
    angry = "气死我了，你们这什么破服务！"
    assert model.predict(angry + "啊" * 200_000).label == STRONG_NEGATIVE
    assert model.predict("谢" * 200_000).label == OTHER


def test_saved_model_loads_with_threshold_and_figures(model_dir: Path) -> None:
    loaded = SentimentModel.load(model_dir)
    assert loaded.threshold == sentiment_model.DEFAULT_THRESHOLD
    assert loaded.predict("气死我了").label == STRONG_NEGATIVE
    assert (model_dir / sentiment_model.META_FILE).read_text("utf-8").count("accuracy") == 1


def test_missing_model_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="bot.nlu.sentiment"):
        SentimentModel.load(tmp_path / "nothing")


def _component(model_dir: Path, **config) -> sentiment.SentimentAnalyzer:
    return sentiment.SentimentAnalyzer.create({"model": str(model_dir), **config},
                                              None, None, None)  # type: ignore[arg-type]


def test_component_adds_sentiment_to_the_parse_output(model_dir: Path) -> None:
    messages = [Message(data={"text": t}) for t in
                ("气死我了，你们这什么破服务！", "我的订单到哪了", "/request_human", "", "🙂" * 10)]
    messages.append(Message(data={}))
    _component(model_dir).process(messages)
    outputs = [m.as_dict(only_output_properties=True) for m in messages]
    assert all("sentiment" in o for o in outputs)
    assert outputs[0]["sentiment"]["label"] == STRONG_NEGATIVE
    assert outputs[0]["sentiment"]["score"] > 0.5
    assert [o["sentiment"]["label"] for o in outputs[1:]] == [OTHER] * 5
    assert outputs[2]["sentiment"] == {"label": OTHER, "score": 0.0}  # written by us


def test_component_threshold_is_configurable_and_checked(model_dir: Path) -> None:
    strict = _component(model_dir, threshold=0.999)
    assert strict.analyse("烦死了").label == OTHER
    with pytest.raises(ValueError):
        _component(model_dir, threshold=1.5)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.one_of(st.text(max_size=80), st.sampled_from(
    ["气死我了！！退钱", "你们客服是死人吗", "谢谢，问题解决了", "我要投诉快递", "😡😡😡", "WTF 垃圾", ""])), max_size=5))
def test_the_fast_scores_are_sklearns(model: SentimentModel, texts: list) -> None:
    assert model._fast is not None  # the shipped configuration has the fast path
    normalized = [sentiment_model.normalize(t) for t in texts]
    features = model.pipeline.named_steps["tfidf"].transform(normalized) if texts else None
    expected = [] if not texts else [
        float(p) if n else 0.0 for p, n in zip(
            model.pipeline.named_steps["logreg"].predict_proba(features)[:, model._negative_column],
            features.getnnz(axis=1))]
    assert model.scores(texts) == pytest.approx(expected, abs=1e-12)
