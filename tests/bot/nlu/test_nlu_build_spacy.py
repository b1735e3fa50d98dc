"""bot.nlu.build_spacy: the entity-ruler pipeline (real spaCy, real jieba)."""
from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from bot.nlu import spacy_terms
from bot.nlu.build_spacy import (BUILD_INFO_FILE, HASH_FILE, build_pipeline, build_to_disk,
                                 collect_patterns)
from bot.nlu.textnorm import normalize_text


def ents(nlp, text):
    return [(e.text, e.label_) for e in nlp(normalize_text(text)).ents]


@pytest.fixture(scope="module")
def nlp(products, categories, regions):
    return build_pipeline(products, categories, regions)


def test_pipeline_layout(nlp) -> None:
    assert nlp.lang == "zh"
    assert nlp.tokenizer.segmenter == "jieba"
    assert nlp.pipe_names == [spacy_terms.FACTORY_NAME, "entity_ruler"]


@pytest.mark.parametrize("text, expected", [
    ("全价成猫粮有货吗", [("全价成猫粮", "product")]),
    ("成猫粮有货吗", [("猫粮", "product")]),
    ("猫粮有货吗", [("猫粮", "product")]),
    ("我家猫粮快吃完了，再买两袋", [("猫粮", "product")]),
    ("我想买星辰X5手机，寄到杭州", [("星辰X5手机", "product"), ("杭州", "city")]),
    ("星辰X5什么时候发货", [("星辰X5", "product")]),
    ("我想买星辰x5手机", [("星辰x5手机", "product")]),
    ("星辰Ｘ５手機多少錢", [("星辰X5手机", "product")]),  # normalised first
    ("声浪降噪耳机和降噪耳机有区别吗", [("声浪降噪耳机", "product"), ("降噪耳机", "product")]),
    ("电动牙刷pro的刷头怎么换", [("电动牙刷pro", "product")]),
    ("净化器滤芯多久换一次", [("净化器滤芯", "product")]),
    ("给我推荐一款咖啡吧", [("咖啡", "product")]),
    ("我要咖啡色的羽绒服", []),  # 咖啡色 is a colour, not the product
])
def test_products_in_context(nlp, text, expected) -> None:
    assert ents(nlp, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("你们有宠物用品吗", [("宠物用品", "category")]),
    ("家电有什么推荐", [("家电", "category")]),
    ("我想买手机", [("手机", "category")]),
    ("有没有好用的护肤品", [("护肤品", "category")]),
    ("寄到浙江省杭州市", [("浙江省", "city"), ("杭州市", "city")]),
    ("上海到北京要几天", [("上海", "city"), ("北京", "city")]),
    ("能寄到乌鲁木齐吗", [("乌鲁木齐", "city")]),
    ("我在深圳，手机坏了", [("深圳", "city"), ("手机", "category")]),
])
def test_categories_and_cities_in_context(nlp, text, expected) -> None:
    assert ents(nlp, text) == expected


def test_entity_ids_are_canonical_values(nlp) -> None:
    doc = nlp("猫粮和家电还有星辰x5")
    assert [(e.text, e.ent_id_) for e in doc.ents] == [
        ("猫粮", "全价成猫粮"), ("家电", "家用电器"), ("星辰x5", "星辰X5手机")]


def test_patterns_are_normalised_deduplicated_and_prioritised(product_cls) -> None:
    products = [product_cls("星辰Ｘ７手機", ("宠物",), "手机数码"),
                product_cls("小米粥", ("北京",), "食品饮料")]
    patterns = collect_patterns(products, {"宠物": "宠物用品", "宠物用品": "宠物用品"},
                                ["北京", "北京市"])
    assert {(p["pattern"], p["label"], p["id"]) for p in patterns} == {
        ("星辰X7手机", "product", "星辰Ｘ７手機"),
        ("宠物", "product", "星辰Ｘ７手機"),      # product wins over category
        ("北京", "product", "小米粥"),            # and over city
        ("宠物用品", "category", "宠物用品"),
        ("北京市", "city", "北京市"),
        ("小米粥", "product", "小米粥"),
    }
    assert patterns == sorted(patterns, key=lambda p: (("product", "category", "city").index(
        p["label"]), p["pattern"], p["id"]))


def test_terms_component_needs_to_be_first(fresh_python) -> None:
    # Without the catalogue words in jieba the ruler misses 猫粮 in context;
    # a fresh interpreter, so no earlier test has touched jieba's dictionary.
    code = """
import jieba, logging, spacy
jieba.setLogLevel(logging.WARNING)
nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
ruler = nlp.add_pipe("entity_ruler")
ruler.add_patterns([{"label": "product", "pattern": "猫粮"}, {"label": "product", "pattern": "全价成猫粮"}])
print("without", [t.text for t in nlp("全价成猫粮有货吗")], [e.text for e in nlp("全价成猫粮有货吗").ents])
from bot.nlu.build_spacy import build_pipeline
from crm_adapter.catalogue import PRODUCTS
nlp = build_pipeline(PRODUCTS, [], [])
print("with", [t.text for t in nlp("全价成猫粮有货吗")], [e.text for e in nlp("全价成猫粮有货吗").ents])
"""
    result = fresh_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-2] == "without ['全价', '成猫', '粮有', '货', '吗'] []"
    assert lines[-1] == "with ['全价成猫粮', '有货', '吗'] ['全价成猫粮']"


LOAD_AND_MATCH = """
import json, sys, spacy
import bot.nlu.{module}
nlp = spacy.load({path!r})
print(json.dumps([[(e.text, e.label_) for e in nlp(t).ents] for t in {texts!r}], ensure_ascii=False))
"""


def _match_in_fresh_process(fresh_python, path: Path, texts, module: str = "spacy_terms"):
    result = fresh_python(LOAD_AND_MATCH.format(module=module, path=str(path), texts=list(texts)))
    assert result.returncode == 0, result.stderr[-3000:]
    return [[tuple(e) for e in found] for found in json.loads(result.stdout.strip().splitlines()[-1])]


def test_saved_pipeline_loads_in_a_fresh_process(fresh_python, spacy_model_dir: Path) -> None:
    texts = ["全价成猫粮有货吗", "我想买星辰X5手机，寄到杭州", "我想买手机", "家电有什么推荐"]
    expected = [[("全价成猫粮", "product")], [("星辰X5手机", "product"), ("杭州", "city")],
                [("手机", "category")], [("家电", "category")]]
    assert _match_in_fresh_process(fresh_python, spacy_model_dir, texts) == expected
    # importing the normalizer is enough to register the factory
    assert _match_in_fresh_process(fresh_python, spacy_model_dir, texts,
                                   module="normalizer") == expected


def test_new_product_is_recognised_after_rebuild(tmp_path: Path, fresh_python, products,
                                                 categories, regions, product_cls) -> None:
    out = tmp_path / "spacy_zh"
    texts = ["我想买极光Z1平板", "极光平板有货吗", "全价成猫粮有货吗"]
    assert build_to_disk(out, products, categories, regions) is True
    assert _match_in_fresh_process(fresh_python, out, texts) == [
        [], [], [("全价成猫粮", "product")]]

    new_list = [*products, product_cls("极光Z1平板", ("极光平板",), "手机数码")]
    assert build_to_disk(out, new_list, categories, regions) is True
    assert _match_in_fresh_process(fresh_python, out, texts) == [
        [("极光Z1平板", "product")], [("极光平板", "product")], [("全价成猫粮", "product")]]


def test_rebuild_is_skipped_when_inputs_are_unchanged(tmp_path: Path, products, categories,
                                                      regions) -> None:
    out = tmp_path / "spacy_zh"
    assert build_to_disk(out, products, categories, regions) is True
    info = json.loads((out / BUILD_INFO_FILE).read_text("utf-8"))
    assert info["patterns"]["product"] == sum(1 + len(p.aliases) for p in products)
    assert (out / HASH_FILE).read_text("utf-8").strip() == info["inputs_sha256"]
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert build_to_disk(out, list(reversed(products)), categories, regions) is False
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamp
    assert build_to_disk(out, products, categories, regions, force=True) is True
    assert build_to_disk(out, products, categories, [*regions, "拉萨市"]) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spacy_zh"]  # no temp leftovers


def test_build_is_deterministic_across_processes(tmp_path: Path, fresh_python) -> None:
    code = """
from crm_adapter.catalogue import PRODUCTS
from bot.nlu.build_spacy import build_to_disk, catalogue_inputs
categories, regions = catalogue_inputs()
build_to_disk({out!r}, PRODUCTS, categories, regions)
"""
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        result = fresh_python(code.format(out=str(out)))
        assert result.returncode == 0, result.stderr[-3000:]
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert "kefu_jieba_terms/terms.json" in files and "entity_ruler/patterns.jsonl" in files
    match, mismatch, errors = filecmp.cmpfiles(first, second, files, shallow=False)
    assert not mismatch and not errors


def test_command_line_builds_from_the_crm(tmp_path: Path, fresh_python) -> None:
    pytest.importorskip("crm_adapter.seed")
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    seed = fresh_python(
        "from crm_adapter import CRM\nfrom crm_adapter.seed import seed\n"
        f"seed(CRM({url!r}), customers=3, seed=1)\n")
    assert seed.returncode == 0, seed.stderr[-3000:]
    out = tmp_path / "models" / "spacy_zh"
    env = {"KEFU_CRM_URL": url}
    cmd = f"import sys; from bot.nlu.build_spacy import main; sys.exit(main(['--out', {str(out)!r}]))"
    first = fresh_python(cmd, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Built" in first.stderr
    second = fresh_python(cmd, env=env)
    assert second.returncode == 0 and "up to date" in second.stderr
    assert _match_in_fresh_process(fresh_python, out, ["婴儿纸尿裤L码有货吗"]) == [
        [("婴儿纸尿裤L码", "product")]]


def test_command_line_refuses_an_empty_crm(tmp_path: Path, fresh_python) -> None:
    pytest.importorskip("crm_adapter.service")
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    made = fresh_python(f"from crm_adapter import CRM\nCRM({url!r}).create_schema()\n")
    assert made.returncode == 0, made.stderr[-3000:]
    out = tmp_path / "spacy_zh"
    cmd = f"import sys; from bot.nlu.build_spacy import main; sys.exit(main(['--out', {str(out)!r}]))"
    result = fresh_python(cmd, env={"KEFU_CRM_URL": url})
    assert result.returncode == 2
    assert "no products" in result.stderr
    assert not out.exists()
