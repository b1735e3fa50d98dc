"""ChineseNormalizer as a Rasa graph component (real Rasa classes, real jieba)."""
from __future__ import annotations

import json
import logging
import shutil
import textwrap
import warnings
from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader
from rasa.shared.nlu.training_data.message import Message

from bot.nlu import spacy_terms
from bot.nlu.normalizer import ChineseNormalizer

ZW = "\u200b"


def _create(tmp_path: Path, cls, config: dict):
    return cls.create({**cls.get_default_config(), **config}, LocalModelStorage(tmp_path),
                      Resource(cls.__name__), ExecutionContext(GraphSchema({})))


@pytest.fixture()
def normalizer(tmp_path: Path) -> ChineseNormalizer:
    return _create(tmp_path, ChineseNormalizer, {})


def _training_data():
    yaml = textwrap.dedent(f"""\
        version: "3.1"
        nlu:
        - intent: request_return
          examples: |
            - 訂單[２６０３１５００４８２１](order_number)要退貨
            - 我  要 退貨 ， 訂單 [260315004822](order_number)
            - 寄到[臺 北](city)的貨 {ZW} 能退嗎??
            - 手机号[１３８１２３４５６７８](phone_number)，  邮箱[ｌｉ．ｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ](email)
        - intent: complain
          examples: |
            - 我要投訴[快遞](complaint_category:logistics)太慢
            - 　[客服](complaint_category:service)態度  太差
            - 我要退货
        - synonym: logistics
          examples: |
            - 物流
            - 快遞
        - lookup: city
          examples: |
            - 臺北
            - 杭州
        """)
    return RasaYAMLReader().reads(yaml)


def test_process_rewrites_message_text(normalizer: ChineseNormalizer) -> None:
    messages = [Message(data={"text": "我要退貨"}), Message(data={"text": "星辰Ｘ５手機，寄到杭州"}),
                Message(data={"text": "在嗎??"}), Message(data={"text": "😀"}),
                Message(data={"text": ""}), Message(data={"intent": {"name": "greet"}})]
    out = normalizer.process(messages)
    assert out is messages
    assert [m.get("text") for m in out] == ["我要退货", "星辰X5手机，寄到杭州", "在吗？？", "😀", "", None]


def test_process_caps_length(tmp_path: Path) -> None:
    default = _create(tmp_path, ChineseNormalizer, {})
    message = Message(data={"text": "我要退貨，" * 1000})
    default.process([message])
    assert len(message.get("text")) == 1000
    short = _create(tmp_path, ChineseNormalizer, {"max_length": 5})
    message = Message(data={"text": "我要退貨，" * 1000})
    short.process([message])
    assert message.get("text") == "我要退货，"
    with pytest.raises(ValueError):
        _create(tmp_path, ChineseNormalizer, {"max_length": 0})


def test_training_data_is_normalised_with_entities_aligned(normalizer: ChineseNormalizer) -> None:
    training_data = _training_data()
    before = {m.get("text"): [dict(e) for e in m.get("entities") or []]
              for m in training_data.training_examples}
    normalizer.process_training_data(training_data)

    texts = [m.get("text") for m in training_data.training_examples]
    assert "订单260315004821要退货" in texts
    assert "我要退货，订单 260315004822" in texts
    assert "寄到台北的货能退吗？？" in texts
    assert "手机号13812345678，邮箱li.na@example.com" in texts
    assert "我要投诉快递太慢" in texts
    assert "客服态度太差" in texts

    spans = {}
    for message in training_data.training_examples:
        for entity in message.get("entities") or []:
            spans[entity["entity"]] = (message.get("text")[entity["start"]:entity["end"]],
                                       entity["value"])
    assert spans["order_number"] == ("260315004822", "260315004822")
    assert spans["city"] == ("台北", "台北")
    assert spans["phone_number"] == ("13812345678", "13812345678")
    assert spans["email"] == ("li.na@example.com", "li.na@example.com")
    assert spans["complaint_category"] == ("客服", "service")  # synonym value kept

    # offsets did move for an example whose whitespace changed
    raw = "我  要 退貨 ， 訂單 260315004822"
    assert before[raw][0]["start"] == raw.index("260315004822")
    normalised = "我要退货，订单 260315004822"
    moved = [m for m in training_data.training_examples if m.get("text") == normalised][0]
    assert moved.get("entities")[0]["start"] == normalised.index("260315004822") < raw.index("2603")

    assert training_data.entity_synonyms["快递"] == "logistics"
    assert "快遞" not in training_data.entity_synonyms
    assert training_data.lookup_tables[0]["elements"] == ["台北", "杭州"]


def test_normalised_entities_match_jieba_token_boundaries(tmp_path: Path,
                                                          normalizer: ChineseNormalizer) -> None:
    training_data = normalizer.process_training_data(_training_data())
    tokenizer = _create(tmp_path, JiebaTokenizer, {})
    tokenizer.process_training_data(training_data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        EntityExtractorMixin.check_correct_entity_annotations(training_data)
    misaligned = [str(w.message) for w in caught if "Misaligned" in str(w.message)]
    assert not misaligned, misaligned


def test_entity_cut_off_by_the_cap_is_dropped_with_a_warning(tmp_path: Path, caplog) -> None:
    normalizer = _create(tmp_path, ChineseNormalizer, {"max_length": 6})
    training_data = RasaYAMLReader().reads(textwrap.dedent("""\
        version: "3.1"
        nlu:
        - intent: inform
          examples: |
            - 我的訂單號是[260315004821](order_number)
            - [杭州](city)
        """))
    with caplog.at_level(logging.WARNING, logger="bot.nlu.normalizer"):
        normalizer.process_training_data(training_data)
    first, second = training_data.training_examples
    assert first.get("text") == "我的订单号是" and first.get("entities") == []
    assert second.get("entities")[0]["value"] == "杭州"
    assert "260315004821" in caplog.text


def test_importing_the_normalizer_registers_the_spacy_factory(fresh_python) -> None:
    result = fresh_python(
        "from spacy.language import Language\n"
        "before = Language.has_factory('kefu_jieba_terms')\n"
        "import bot.nlu.normalizer\n"
        "print(before, Language.has_factory('kefu_jieba_terms'))\n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["False", "True"]


def test_saved_pipeline_needs_the_factory(fresh_python, spacy_model_dir: Path) -> None:
    result = fresh_python(f"import spacy; spacy.load({str(spacy_model_dir)!r})")
    assert result.returncode != 0
    assert "kefu_jieba_terms" in result.stderr


def test_rasa_imports_every_component_before_creating_any(fresh_python, spacy_model_dir: Path) -> None:
    # Loading a trained model deserialises its graph schema, which imports the
    # class of every node; SpacyNLP is created only afterwards. The normalizer
    # is listed AFTER SpacyNLP here: registration does not depend on the order.
    code = f"""
from rasa.engine.graph import GraphSchema, ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
import tempfile, sys
schema = GraphSchema.from_dict({{"nodes": {{
    "provide_SpacyNLP": {{"needs": {{}}, "uses": "rasa.nlu.utils.spacy_utils.SpacyNLP",
        "constructor_name": "create", "fn": "provide", "config": {{"model": {str(spacy_model_dir)!r}}},
        "eager": True, "is_target": False, "is_input": False, "resource": None}},
    "run_normalizer": {{"needs": {{}}, "uses": "bot.nlu.normalizer.ChineseNormalizer",
        "constructor_name": "create", "fn": "process", "config": {{}},
        "eager": True, "is_target": False, "is_input": False, "resource": None}},
}}}})
assert "bot.nlu.spacy_terms" in sys.modules
node = schema.nodes["provide_SpacyNLP"]
spacy_nlp = node.uses.create(node.config, LocalModelStorage(tempfile.mkdtemp()), Resource("x"),
                             ExecutionContext(schema))
doc = spacy_nlp.provide().model("全价成猫粮有货吗")
print([(e.text, e.label_) for e in doc.ents])
"""
    result = fresh_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[('全价成猫粮', 'product')]" in result.stdout


def test_jieba_terms_from_loads_catalogue_words_before_tokenising(fresh_python,
                                                                  spacy_model_dir: Path) -> None:
    code = f"""
import jieba, logging, tempfile
jieba.setLogLevel(logging.WARNING)
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.shared.nlu.training_data.message import Message
from bot.nlu.normalizer import ChineseNormalizer
ctx = ExecutionContext(GraphSchema({{}}))
storage = LocalModelStorage(tempfile.mkdtemp())
tok = JiebaTokenizer.create(JiebaTokenizer.get_default_config(), storage, Resource("t"), ctx)
def tokens(text):
    m = Message(data={{"text": text}})
    return "/".join(t.text for t in tok.tokenize(m, "text"))
print(tokens("全价成猫粮有货吗"))
ChineseNormalizer.create({{"jieba_terms_from": {str(spacy_model_dir)!r}}}, storage, Resource("n"), ctx)
print(tokens("全价成猫粮有货吗"))
print(tokens("我想买星辰X5手机"))
"""
    result = fresh_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    before, after, phone = result.stdout.strip().splitlines()[-3:]
    assert "全价成猫粮" not in before.split("/")
    assert after.split("/")[0] == "全价成猫粮"
    assert "星辰X5手机" in phone.split("/")


def test_fingerprint_follows_the_catalogue_terms(tmp_path: Path, spacy_model_dir: Path) -> None:
    model = tmp_path / "spacy_zh"
    shutil.copytree(spacy_model_dir, model)
    config = {**ChineseNormalizer.get_default_config(), "jieba_terms_from": str(model)}
    first = ChineseNormalizer.fingerprint_addon(config)
    assert ChineseNormalizer.fingerprint_addon(config) == first
    terms = spacy_terms.terms_file(model)
    words = json.loads(terms.read_text("utf-8"))["words"] + ["新产品"]
    terms.write_text(json.dumps({"words": words}, ensure_ascii=False), "utf-8")
    assert ChineseNormalizer.fingerprint_addon(config) != first
    assert ChineseNormalizer.fingerprint_addon(ChineseNormalizer.get_default_config()) != first
