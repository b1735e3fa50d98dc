"""The pipeline of bot/nlu/PIPELINE.md, trained and loaded by real Rasa.

A tiny throwaway model (a dozen examples, one epoch) in a temporary project:
only the paths and epochs of the documented block are replaced. Training and
loading each run in a fresh interpreter, so nothing of this test process
(jieba's dictionary, spaCy's factory registry) helps them.
"""
from __future__ import annotations

import json
import re
import tarfile
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.rasa_training

REPO = Path(__file__).resolve().parents[3]
PIPELINE_MD = REPO / "bot" / "nlu" / "PIPELINE.md"

NLU_DATA = textwrap.dedent("""\
    version: "3.1"
    nlu:
    - intent: greet
      examples: |
        - 你好
        - 您好，在吗？
        - 在嗎
        - 哈喽
    - intent: request_return
      examples: |
        - 我要退货
        - 这个东西我想退了
        - 订单[２６０３１５００４８２１](order_number)要退貨
        - 我  想退貨 ， 訂單號 [260315004822](order_number)
    - intent: ask_product
      examples: |
        - 我想买星辰X5手机
        - 全价成猫粮还有吗
        - 降噪耳机多少钱
        - 猫砂有货吗
    - intent: complain
      examples: |
        - 我要投訴[快遞](complaint_category:logistics)太慢
        - [快递](complaint_category:logistics)三天都没到
        - 你们的[客服](complaint_category:service)態度太差了
    - intent: inform
      examples: |
        - [260315004823](order_number)
        - 我的手机号是[１３８１２３４５６７８](phone_number)
        - 手机[13912345678](phone_number)
        - 邮箱[li.na@example.com](email)
        - 邮箱是[ｗａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ](email)
        - 税号[91310115MA1K4ABC2X](tax_number)
        - 税号是[91310115MA1K4ABC3Y](tax_number)
    - regex: order_number
      examples: |
        - (?<!\\d)\\d{12}(?!\\d)
    - regex: phone_number
      examples: |
        - (?<!\\d)1[3-9]\\d{9}(?!\\d)
    - regex: email
      examples: |
        - [A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}
    - regex: tax_number
      examples: |
        - (?<![0-9A-Z])[0-9A-HJ-NPQRTUWXY]{2}\\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Z])
    - intent: faq/shipping_fee
      examples: |
        - 运费多少
        - 包邮吗
    - intent: faq/delivery_time
      examples: |
        - 多久能到
        - 几天发货
    """)

DOMAIN = textwrap.dedent("""\
    version: "3.1"
    intents: [greet, request_return, ask_product, complain, inform, faq]
    responses:
      utter_faq/shipping_fee:
      - text: 满99元包邮。
      utter_faq/delivery_time:
      - text: 16:00前付款当天发货。
    """)

PARSE = """
import asyncio, json, sys
before = sorted(m for m in sys.modules if m == "bot" or m.startswith("bot."))
from rasa.core.agent import Agent
agent = Agent.load("models/tiny.tar.gz")
after = "bot.nlu.spacy_terms" in sys.modules
texts = json.loads(sys.argv[1]) if len(sys.argv) > 1 else TEXTS
async def main():
    return [await agent.parse_message(t) for t in texts]
results = asyncio.run(main())
print("RESULT " + json.dumps({"before": before, "after": after, "results": [
    {"text": r["text"], "intent": r["intent"]["name"],
     "tokens": r.get("text_tokens"),
     "entities": [[e["entity"], e["value"], e["start"], e["end"], e["extractor"]]
                  for e in r["entities"]]} for r in results]}, ensure_ascii=False))
"""


def documented_config() -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", PIPELINE_MD.read_text("utf-8"), re.S)
    configs = [yaml.safe_load(b) for b in blocks]
    configs = [c for c in configs if isinstance(c, dict) and "pipeline" in c]
    assert configs, "PIPELINE.md has no yaml block with a pipeline"
    return configs[0]


def test_documented_pipeline_is_the_required_one() -> None:
    names = [c["name"] for c in documented_config()["pipeline"]]
    assert names == [
        "bot.nlu.normalizer.ChineseNormalizer", "JiebaTokenizer", "SpacyNLP", "RegexFeaturizer",
        "bot.nlu.linear_intent.LinearIntentClassifier", "bot.nlu.faq_selector.RetrievalOnlyLexicalSyntacticFeaturizer",
        "bot.nlu.faq_selector.RetrievalOnlyCountVectorsFeaturizer",
        "bot.nlu.faq_selector.RetrievalOnlyCountVectorsFeaturizer", "CRFEntityExtractor", "EntitySynonymMapper",
        "bot.nlu.faq_selector.RetrievalIntentResponseSelector", "RegexEntityExtractor",
        "SpacyEntityExtractor", "FallbackClassifier"]
    by_name = {c["name"]: c for c in documented_config()["pipeline"]}
    assert by_name["JiebaTokenizer"]["dictionary_path"] == "data/jieba"
    assert by_name["SpacyNLP"]["model"] == "models/spacy_zh"
    assert by_name["bot.nlu.normalizer.ChineseNormalizer"]["jieba_terms_from"] == "models/spacy_zh"
    assert by_name["SpacyEntityExtractor"]["dimensions"] == ["product", "category", "city"]
    assert by_name["bot.nlu.faq_selector.RetrievalIntentResponseSelector"]["retrieval_intent"] == "faq"
    assert by_name["bot.nlu.linear_intent.LinearIntentClassifier"]["words"] is True  # jieba tokens too
    assert by_name["CRFEntityExtractor"]["split_entities_by_comma"] is False
    assert {"threshold", "ambiguity_threshold"} <= set(by_name["FallbackClassifier"])


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory, fresh_python, products, categories, regions) -> Path:
    from bot.nlu.build_spacy import build_to_disk

    project = tmp_path_factory.mktemp("rasa_project")
    spacy_dir = project / "spacy" / "spacy_zh"
    build_to_disk(spacy_dir, products, categories, regions)
    jieba_dir = project / "jieba"
    jieba_dir.mkdir()
    (jieba_dir / "user.txt").write_text("退货 2000 v\n", "utf-8")
    (project / "data").mkdir()
    (project / "data" / "nlu.yml").write_text(NLU_DATA, "utf-8")
    (project / "domain.yml").write_text(DOMAIN, "utf-8")

    config = documented_config()
    config["assistant_id"] = "kefu_nlu_smoke"
    config["policies"] = []
    for component in config["pipeline"]:
        if "epochs" in component:
            component["epochs"] = 1
        for key, value in list(component.items()):
            if value == "models/spacy_zh":
                component[key] = str(spacy_dir)
            elif value == "data/jieba":
                component[key] = str(jieba_dir)
    (project / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")

    train = fresh_python(
        "import sys\nfrom rasa.__main__ import main\n"
        "sys.argv = ['rasa', 'train', 'nlu', '--config', 'config.yml', '--nlu', 'data',"
        " '--domain', 'domain.yml', '--out', 'models', '--fixed-model-name', 'tiny']\nmain()\n",
        cwd=project, timeout=1200)
    log = train.stdout + train.stderr
    (project / "train.log").write_text(log, "utf-8")
    assert train.returncode == 0, log[-5000:]
    assert (project / "models" / "tiny.tar.gz").is_file(), log[-5000:]
    return project


def _parse(fresh_python, project: Path, texts):
    code = PARSE.replace("TEXTS", json.dumps(texts, ensure_ascii=False))
    result = fresh_python(code, cwd=project, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_training_accepts_the_pipeline_without_misaligned_entities(trained_project: Path) -> None:
    log = (trained_project / "train.log").read_text("utf-8")
    assert "Misaligned entity annotation" not in log
    assert "Your Rasa model is trained and saved" in log


def test_training_tokenised_with_the_catalogue_words(trained_project: Path) -> None:
    with tarfile.open(trained_project / "models" / "tiny.tar.gz") as archive:
        names = [n for n in archive.getnames()
                 if re.search(r"train_[\w.]*CountVectorsFeaturizer\d+/vocabularies.json$", n)]
        vocabularies = [json.load(archive.extractfile(n)) for n in names]
    # the word analyzer's vocabulary (the char_wb one has n-grams of at most 3)
    words = next(v["text"] for v in vocabularies if max(map(len, v["text"])) > 3)
    assert "星辰x5手机" in words and "全价成猫粮" in words
    assert "退貨" not in words and "退货" in words


def ruled(result):
    return [e for e in result["entities"]
            if e[4] in ("SpacyEntityExtractor", "RegexEntityExtractor")]


def test_fresh_process_parses_entities_and_normalises(trained_project: Path, fresh_python) -> None:
    texts = ["我想买星辰X5手机，寄到杭州", "我要退貨", "星辰Ｘ５手機有貨嗎", "全价成猫粮有货吗",
             "订单２６０３１５００４８２１要退货", "在嗎??", "我要退貨" * 1250]
    out = _parse(fresh_python, trained_project, texts)
    assert out["before"] == [], "bot was imported before Agent.load"
    assert out["after"] is True
    first, refund, fullwidth, cat_food, order, question, long = out["results"]

    assert first["text"] == "我想买星辰X5手机，寄到杭州"
    # (a tiny model's intents and CRF are noise; only the rule-based extractors are checked)
    assert ruled(first) == [["product", "星辰X5手机", 3, 9, "SpacyEntityExtractor"],
                            ["city", "杭州", 12, 14, "SpacyEntityExtractor"]]
    assert [3, 9] in first["tokens"]  # one jieba token at inference as well

    assert refund["text"] == "我要退货"
    assert fullwidth["text"] == "星辰X5手机有货吗"
    assert ruled(fullwidth) == [["product", "星辰X5手机", 0, 6, "SpacyEntityExtractor"]]
    assert ruled(cat_food) == [["product", "全价成猫粮", 0, 5, "SpacyEntityExtractor"]]
    assert ruled(order) == [["order_number", "260315004821", 2, 14, "RegexEntityExtractor"]]
    assert question["text"] == "在吗？？"
    assert len(long["text"]) == 1000
