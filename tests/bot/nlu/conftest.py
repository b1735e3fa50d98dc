"""Fixtures for the Chinese NLU pieces: stand-in products, the catalogue's
categories and regions, and a spaCy pipeline built on disk.

The builder takes products as an argument, so these tests do not need a CRM
database; ``SmallProduct`` has the three fields of ``ProductView`` the builder
reads (name, aliases, category).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import jieba
import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

jieba.setLogLevel(logging.WARNING)

PYTHON = sys.executable


@dataclass(frozen=True)
class SmallProduct:
    name: str
    aliases: Tuple[str, ...]
    category: str


STAND_IN_PRODUCTS: Tuple[SmallProduct, ...] = (
    SmallProduct("星辰X5手机", ("星辰X5", "X5手机"), "手机数码"),
    SmallProduct("声浪降噪耳机", ("降噪耳机", "声浪耳机"), "手机数码"),
    SmallProduct("电动牙刷Pro", ("电动牙刷",), "美妆个护"),
    SmallProduct("全价成猫粮", ("猫粮",), "宠物用品"),
    SmallProduct("豆腐猫砂", ("猫砂",), "宠物用品"),
    SmallProduct("云南小粒咖啡豆", ("咖啡豆", "咖啡"), "食品饮料"),
    SmallProduct("净化器滤芯", ("滤芯",), "家用电器"),
    SmallProduct("清风空气净化器", ("空气净化器", "净化器"), "家用电器"),
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "rasa_training: trains a tiny throwaway Rasa NLU model (about a minute)")


@pytest.fixture(scope="session")
def products() -> List[SmallProduct]:
    return list(STAND_IN_PRODUCTS)


@pytest.fixture(scope="session")
def categories() -> Dict[str, str]:
    from bot.nlu.build_spacy import catalogue_inputs

    return catalogue_inputs()[0]


@pytest.fixture(scope="session")
def regions() -> List[str]:
    from bot.nlu.build_spacy import catalogue_inputs

    return catalogue_inputs()[1]


@pytest.fixture(scope="session")
def spacy_model_dir(tmp_path_factory: pytest.TempPathFactory, products, categories, regions) -> Path:
    """The stand-in catalogue built to disk once for the session."""
    from bot.nlu.build_spacy import build_to_disk

    out = tmp_path_factory.mktemp("spacy") / "spacy_zh"
    assert build_to_disk(out, products, categories, regions) is True
    return out


def run_python(code: str, cwd: Path = REPO, timeout: int = 600,
               env: Dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (nothing of this process is shared)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "RASA_TELEMETRY_ENABLED": "false",
                "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    result = subprocess.run([PYTHON, "-c", code], cwd=cwd, env=full_env, capture_output=True,
                            text=True, timeout=timeout)
    return result


@pytest.fixture(scope="session")
def fresh_python():
    """``fresh_python(code, cwd=..., env=...)`` runs code in a new interpreter."""
    return run_python


@pytest.fixture(scope="session")
def product_cls():
    return SmallProduct
