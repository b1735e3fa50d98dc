"""The FAQ selector's featurizers featurise, at inference, only messages classified as the retrieval intent."""
from __future__ import annotations

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.faq_selector import RetrievalOnlyCountVectorsFeaturizer, RetrievalOnlyLexicalSyntacticFeaturizer

TEXTS = {"faq": ["运费多少", "几天能到", "保修多久"], "greet": ["你好", "在吗"], "request_return": ["我要退货"]}


def _context(name: str) -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name=name)


@pytest.fixture()
def tokenizer(tmp_path: Path) -> JiebaTokenizer:
    return JiebaTokenizer.create(JiebaTokenizer.get_default_config(), LocalModelStorage(tmp_path),
                                 Resource("tok"), _context("tok"))


@pytest.mark.parametrize("cls", [RetrievalOnlyCountVectorsFeaturizer, RetrievalOnlyLexicalSyntacticFeaturizer])
def test_only_retrieval_intent_messages_get_features_at_inference(tmp_path: Path, tokenizer, cls) -> None:
    data = TrainingData([Message.build(text=t, intent=i) for i, ts in TEXTS.items() for t in ts])
    tokenizer.process_training_data(data)
    (tmp_path / "m").mkdir()
    featurizer = cls.create(cls.get_default_config(), LocalModelStorage(tmp_path / "m"), Resource("f"),
                            _context(cls.__name__))
    if hasattr(featurizer, "train"):
        featurizer.train(data)
    featurizer.process_training_data(data)
    assert all(m.features for m in data.training_examples)  # training: every example, as stock

    messages = [Message.build(text=t) for t in ("运费怎么算", "你好", "退货", "没分类")]
    tokenizer.process(messages)
    for message, intent in zip(messages, ("faq", "greet", "request_return")):
        message.set("intent", {"name": intent, "confidence": 0.9})
    featurizer.process(messages)
    faq, greet, refund, unclassified = messages
    assert faq.features and not greet.features and not refund.features
    assert unclassified.features  # no classification at all: stock behaviour
