"""Kefu's linear intent classifier as a Rasa graph component: train, persist, load, classify."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.linear_intent import LinearIntentClassifier

EXAMPLES = {
    "greet": ["你好", "您好呀", "在吗", "hi 客服", "有人吗", "早上好"],
    "query_order": ["我的订单到哪了", "查一下物流", "快递怎么还没到", "订单状态查询", "包裹发货了吗", "帮我查订单"],
    "request_return": ["我要退货", "这个想退掉", "申请退货退款", "东西不想要了能退吗", "退货怎么操作", "我想退了它"],
    "faq": ["运费多少", "几天能到", "你们几点上班", "支持花呗吗", "保修多久", "七天无理由吗"],
}


def _tokenizer(tmp_path: Path) -> JiebaTokenizer:
    return JiebaTokenizer.create(JiebaTokenizer.get_default_config(), LocalModelStorage(tmp_path / "tok"),
                                 Resource("tok"), ExecutionContext(GraphSchema({})))


def _messages(tokenizer: JiebaTokenizer, texts: list[str]) -> list[Message]:
    messages = [Message.build(text=t) for t in texts]
    tokenizer.process(messages)
    return messages


@pytest.fixture()
def trained(tmp_path: Path) -> tuple[LinearIntentClassifier, LocalModelStorage, Resource, JiebaTokenizer]:
    tokenizer = _tokenizer(tmp_path)
    data = TrainingData([Message.build(text=t, intent=intent) for intent, ts in EXAMPLES.items() for t in ts])
    tokenizer.process_training_data(data)
    (tmp_path / "model").mkdir()
    storage, resource = LocalModelStorage(tmp_path / "model"), Resource("intents")
    config = {**LinearIntentClassifier.get_default_config(), "max_ngram": 2, "ranking_length": 3}
    component = LinearIntentClassifier.create(config, storage, resource, ExecutionContext(GraphSchema({})))
    component.train(data)
    return component, storage, resource, tokenizer


def test_classifies_and_ranks_like_a_rasa_intent_classifier(trained) -> None:
    component, _, _, tokenizer = trained
    messages = component.process(_messages(tokenizer, ["我想退货", "我的快递到哪了", "你好啊"]))
    assert [m.get("intent")["name"] for m in messages] == ["request_return", "query_order", "greet"]
    for message in messages:
        ranking = message.get("intent_ranking")
        assert len(ranking) == 3  # ranking_length
        assert ranking[0] == message.get("intent")
        confidences = [r["confidence"] for r in ranking]
        assert confidences == sorted(confidences, reverse=True)
        assert 0.0 < sum(confidences) <= 1.0 + 1e-9
        assert message.as_dict_nlu()["intent"] == ranking[0]  # part of the parse output


def test_a_persisted_model_loads_in_a_new_component_and_gives_the_same_answer(trained) -> None:
    component, storage, resource, tokenizer = trained
    loaded = LinearIntentClassifier.load(component.config, storage, resource, ExecutionContext(GraphSchema({})))
    texts = ["运费怎么算", "申请退款退货", "在不在"]
    before = [m.get("intent_ranking") for m in component.process(_messages(tokenizer, texts))]
    after = [m.get("intent_ranking") for m in loaded.process(_messages(tokenizer, texts))]
    assert after == before


def test_jieba_words_are_features_next_to_characters(trained) -> None:
    component, *_ = trained
    features = dict(component._pipeline.named_steps["features"].transformer_list)
    assert set(features) == {"chars", "words"}
    assert "退货" in features["words"].vocabulary_   # a jieba word
    assert "退" in features["chars"].vocabulary_ and "退货" in features["chars"].vocabulary_


def test_empty_and_unseen_text_still_get_an_answer(trained) -> None:
    component, _, _, tokenizer = trained
    messages = component.process(_messages(tokenizer, ["", "🙂🙂🙂", "<script>alert(1)</script>"]))
    for message in messages:
        assert message.get("intent")["name"] in EXAMPLES
        assert 0.0 < message.get("intent")["confidence"] < 1.0


def test_a_model_without_its_file_leaves_messages_unclassified(tmp_path: Path) -> None:
    loaded = LinearIntentClassifier.load(LinearIntentClassifier.get_default_config(),
                                         LocalModelStorage(tmp_path), Resource("missing"),
                                         ExecutionContext(GraphSchema({})))
    message = Message.build(text="我要退货")
    loaded.process([message])
    assert message.get("intent") is None


def test_one_intent_is_not_enough_to_train(tmp_path: Path) -> None:
    component = LinearIntentClassifier.create(LinearIntentClassifier.get_default_config(),
                                              LocalModelStorage(tmp_path), Resource("one"),
                                              ExecutionContext(GraphSchema({})))
    component.train(TrainingData([Message.build(text="你好", intent="greet")]))
    message = Message.build(text="你好")
    component.process([message])
    assert message.get("intent") is None


def test_the_fast_path_gives_the_pipelines_probabilities(trained) -> None:
    component, _, _, tokenizer = trained
    from bot.nlu.linear_intent import FastScorer, _document

    texts = ["我想退货", "运费多少钱", "", "hi", "🙂", "退货退货退货 运费 在吗", "ZZZ 123"]
    documents = [_document(m) for m in _messages(tokenizer, texts)]
    fast = component._predict_proba(documents)
    assert isinstance(component._fast, FastScorer)
    assert np.allclose(fast, component._pipeline.predict_proba(documents), rtol=0, atol=1e-12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_the_fast_path_matches_sklearn_on_any_text(trained, text: str) -> None:
    component, _, _, tokenizer = trained
    from bot.nlu.linear_intent import _document

    documents = [_document(m) for m in _messages(tokenizer, [text])]
    assert np.allclose(component._predict_proba(documents), component._pipeline.predict_proba(documents),
                       rtol=0, atol=1e-12)


@pytest.fixture()
def trained_ovr(tmp_path: Path) -> tuple[LinearIntentClassifier, JiebaTokenizer]:
    tokenizer = _tokenizer(tmp_path)
    data = TrainingData([Message.build(text=t, intent=intent) for intent, ts in EXAMPLES.items() for t in ts])
    tokenizer.process_training_data(data)
    (tmp_path / "m").mkdir()
    config = {**LinearIntentClassifier.get_default_config(), "multinomial": False, "c": 100.0}
    component = LinearIntentClassifier.create(config, LocalModelStorage(tmp_path / "m"), Resource("ovr"),
                                              ExecutionContext(GraphSchema({})))
    component.train(data)
    return component, tokenizer


def test_one_vs_rest_models_take_the_fast_path_too(trained_ovr) -> None:
    component, tokenizer = trained_ovr
    from bot.nlu.linear_intent import FastScorer, _document

    message = component.process(_messages(tokenizer, ["我想退货"]))[0]
    assert message.get("intent")["name"] == "request_return"
    assert isinstance(component._fast, FastScorer)
    texts = ["我想退货", "运费多少钱", "", "hi", "🙂", "退货退货退货 运费 在吗", "ZZZ 123"]
    documents = [_document(m) for m in _messages(tokenizer, texts)]
    assert np.allclose(component._predict_proba(documents), component._pipeline.predict_proba(documents),
                       rtol=0, atol=1e-12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_the_one_vs_rest_fast_path_matches_sklearn_on_any_text(trained_ovr, text: str) -> None:
    component, tokenizer = trained_ovr
    from bot.nlu.linear_intent import _document

    documents = [_document(m) for m in _messages(tokenizer, [text])]
    assert np.allclose(component._predict_proba(documents), component._pipeline.predict_proba(documents),
                       rtol=0, atol=1e-12)
