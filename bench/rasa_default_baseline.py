"""Baseline (c): Rasa's default NLU pipeline, without Chinese tokenisation.

The pipeline is the one `rasa init` (3.6) writes, with a fixed random seed
added to the two trained classifiers so that a rerun gives the same model.
`language: en` is what `rasa init` writes, and it is also the only way to
keep the WhitespaceTokenizer: Rasa refuses it for `zh`.  On Chinese text it
therefore sees whole clauses as single "words"; only the char_wb 1-4
CountVectorsFeaturizer sees inside them.  That is the point of the
comparison: what Kefu's Chinese-specific pieces (normaliser, jieba with a
domain dictionary, spaCy catalogue entities, tuned DIET) buy over it.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bot.settings import ROOT

SEED = 42

# `rasa init` (3.6.21) config.yml with its pipeline uncommented, plus a
# random_seed for DIET and the ResponseSelector and an assistant_id (Rasa
# warns without one); tests check it against Rasa's own template.
CONFIG_YML = f"""\
recipe: default.v1
language: en
assistant_id: nlu_baseline
pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 100
    random_seed: {SEED}
  - name: EntitySynonymMapper
  - name: ResponseSelector
    epochs: 100
    random_seed: {SEED}
  - name: FallbackClassifier
    threshold: 0.3
    ambiguity_threshold: 0.1
policies: []
"""

MODEL_NAME = "rasa_default"


def data_fingerprint(data: str = "data") -> str:
    """Hash of the training data files, so a model trained on older data is
    not reused."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / data).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def train(out_dir: Path, data: str = "data") -> dict:
    """Trains the NLU-only model into ``out_dir`` and returns its path and the
    wall-clock training time.

    Rasa's training cache is pointed at a fresh temporary directory so the
    figure is a cold training, as Kefu's `make model` after a data change.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rasa = str(Path(sys.executable).parent / "rasa")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yml"
        config.write_text(CONFIG_YML, encoding="utf-8")
        env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false",
               "RASA_CACHE_DIRECTORY": str(Path(tmp) / "cache")}
        start = time.perf_counter()
        result = subprocess.run(
            [rasa, "train", "nlu", "--config", str(config), "--nlu", data,
             "--domain", "domain.yml", "--out", str(out_dir),
             "--fixed-model-name", MODEL_NAME, "--quiet"],
            cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = round(time.perf_counter() - start, 1)
    if result.returncode != 0:
        raise RuntimeError("rasa train nlu failed:\n" + result.stdout[-3000:] + result.stderr[-3000:])
    model = out_dir / f"{MODEL_NAME}.tar.gz"
    info = {"model": str(model), "train_seconds": seconds, "config": CONFIG_YML,
            "data": data_fingerprint(data)}
    (out_dir / f"{MODEL_NAME}.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def trained(out_dir: Path, data: str = "data") -> dict | None:
    """The model and timing of an earlier :func:`train` into ``out_dir``, if
    it was trained from this same config and data."""
    info_path = out_dir / f"{MODEL_NAME}.json"
    if not info_path.is_file():
        return None
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if (info.get("config") != CONFIG_YML or info.get("data") != data_fingerprint(data)
            or not Path(info["model"]).is_file()):
        return None
    return info


if __name__ == "__main__":
    print(json.dumps(train(ROOT / "var" / "bench" / "nlu_baseline_model"), indent=2))
