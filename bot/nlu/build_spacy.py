"""Builds the spaCy pipeline that recognises products, categories and cities.

    python -m bot.nlu.build_spacy --out models/spacy_zh [--force]

The pipeline is ``spacy.blank("zh")`` with the jieba segmenter, then

1. ``kefu_jieba_terms`` (:mod:`bot.nlu.spacy_terms`): every pattern text, so
   jieba segments catalogue words the same way in a sentence as on their own;
2. ``entity_ruler`` with phrase patterns labelled ``product`` (name and aliases
   of every product ``CRM.from_env().list_products()`` returns), ``category``
   (``CATEGORIES`` and the keys of ``CATEGORY_ALIASES``) and ``city``
   (``load_regions()``). Each pattern's ``id`` is the canonical value (the
   product's name, the canonical category), available as ``ent.ent_id_``.

Matching is on the LOWER attribute (Rasa's SpacyNLP lower-cases text unless
``case_sensitive: true``, customers type 星辰x5) and pattern texts go through
the same :func:`bot.nlu.textnorm.normalize_text` as messages. When the same
text would get two labels, product wins over category over city.

The output is deterministic for the same inputs. A hash of the inputs (the
patterns, the versions of spaCy and jieba, and the code of this package's
builder modules) is stored in ``inputs.sha256`` inside the folder (and, with
the pattern counts, in ``kefu_build.json``); when it matches, the build is
skipped. The new pipeline is written next to the target
and swapped in, so a reader never sees a half-written folder.

Rasa loads the folder at start-up (``SpacyNLP``, ``model: models/spacy_zh``)
and does not package it into the trained model: a rebuilt catalogue takes
effect at the next start of the Rasa server; training again is only needed
for the jieba segmentation that DIET learned from (see PIPELINE.md).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import spacy
from spacy.language import Language

from bot.nlu import spacy_terms, textnorm

logger = logging.getLogger(__name__)

BUILD_VERSION = 1
HASH_FILE = "inputs.sha256"       # the input hash alone (scripts/train.sh reads it)
BUILD_INFO_FILE = "kefu_build.json"  # the same hash plus pattern counts, for people
LABELS = ("product", "category", "city")  # priority order when texts collide

CategoryInput = Union[Mapping[str, str], Iterable[str]]


def collect_patterns(products: Iterable[Any], categories: CategoryInput,
                     regions: Iterable[str]) -> List[Dict[str, str]]:
    """Entity-ruler phrase patterns, sorted, one per (normalised) text.

    ``products``: objects with ``name`` and ``aliases`` (``ProductView``,
    ``CatalogueItem``). ``categories``: names, or a mapping of the words
    customers use to the canonical category (``{"家电": "家用电器", ...}``).
    ``regions``: province and city names.
    """
    candidates: List[Tuple[str, str, str]] = []  # (label, text, id)
    for product in products:
        name = str(product.name)
        for text in (name, *tuple(getattr(product, "aliases", ()) or ())):
            candidates.append(("product", text, name))
    if isinstance(categories, Mapping):
        category_items = list(categories.items())
    else:
        category_items = [(c, c) for c in categories]
    for text, canonical in category_items:
        candidates.append(("category", text, canonical))
    for region in regions:
        candidates.append(("city", region, region))

    chosen: Dict[str, Tuple[int, str, str, str]] = {}
    for label, text, ent_id in candidates:
        text = textnorm.normalize_text(text)
        if not text:
            continue
        key = text.lower()
        rank = LABELS.index(label)
        entry = (rank, text, label, ent_id)
        previous = chosen.get(key)
        if previous is None:
            chosen[key] = entry
            continue
        if previous[2:] != entry[2:]:
            winner = min(previous, entry)
            logger.warning("'%s' is %s '%s' and %s '%s'; keeping %s '%s'.", text,
                           previous[2], previous[3], label, ent_id, winner[2], winner[3])
        chosen[key] = min(previous, entry)
    return [
        {"label": label, "pattern": text, "id": ent_id}
        for rank, text, label, ent_id in sorted(chosen.values())
    ]


def pipeline_from_patterns(patterns: Sequence[Dict[str, str]]) -> Language:
    nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    terms = nlp.add_pipe(spacy_terms.FACTORY_NAME, name=spacy_terms.FACTORY_NAME, first=True)
    terms.set_words(p["pattern"] for p in patterns)  # before the ruler tokenises patterns
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER", "validate": True})
    ruler.add_patterns(list(patterns))
    nlp.meta["name"] = "kefu_catalogue"
    nlp.meta["version"] = f"{BUILD_VERSION}.0.0"
    nlp.meta["description"] = ("Blank zh pipeline (jieba) with an entity ruler for "
                               "product, category and city; built by bot.nlu.build_spacy.")
    return nlp


def build_pipeline(products: Iterable[Any], categories: CategoryInput,
                   regions: Iterable[str]) -> Language:
    """The pipeline in memory (see the module docstring)."""
    return pipeline_from_patterns(collect_patterns(products, categories, regions))


def inputs_hash(patterns: Sequence[Dict[str, str]]) -> str:
    import jieba

    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in ("build_spacy.py", "spacy_terms.py", "textnorm.py"):
        digest.update((here / name).read_bytes())
    payload = {
        "build_version": BUILD_VERSION,
        "spacy": spacy.__version__,
        "jieba": jieba.__version__,
        "patterns": list(patterns),
    }
    digest.update(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def stored_hash(out: Union[str, Path]) -> Optional[str]:
    try:
        return (Path(out) / HASH_FILE).read_text("utf-8").strip() or None
    except OSError:
        return None


def build_to_disk(out: Union[str, Path], products: Iterable[Any], categories: CategoryInput,
                  regions: Iterable[str], force: bool = False) -> bool:
    """Builds and saves the pipeline to ``out``; returns False if it was up to date."""
    out = Path(out)
    patterns = collect_patterns(products, categories, regions)
    digest = inputs_hash(patterns)
    if not force and stored_hash(out) == digest and (out / "config.cfg").is_file():
        logger.info("%s is up to date (inputs %s).", out, digest[:12])
        return False

    nlp = pipeline_from_patterns(patterns)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        nlp.to_disk(tmp)
        counts = {label: sum(1 for p in patterns if p["label"] == label) for label in LABELS}
        info = {"inputs_sha256": digest, "build_version": BUILD_VERSION, "patterns": counts}
        (tmp / BUILD_INFO_FILE).write_text(
            json.dumps(info, ensure_ascii=False, indent=2, sort_keys=True) + "\n", "utf-8")
        (tmp / HASH_FILE).write_text(digest + "\n", "utf-8")  # last: marks a complete build
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    logger.info("Built %s: %s.", out, ", ".join(f"{n} {label}" for label, n in counts.items()))
    return True


def catalogue_inputs() -> Tuple[Dict[str, str], List[str]]:
    """Categories (surface word → canonical) and regions from crm_adapter."""
    from crm_adapter.catalogue import CATEGORIES, CATEGORY_ALIASES, load_regions

    categories = {c: c for c in CATEGORIES}
    categories.update(CATEGORY_ALIASES)
    return categories, load_regions()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.nlu.build_spacy",
        description="Build the spaCy zh pipeline with product/category/city patterns "
                    "from the CRM catalogue.")
    parser.add_argument("--out", default="models/spacy_zh", help="output folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the inputs are unchanged")
    parser.add_argument("--allow-empty", action="store_true",
                        help="build even if the CRM returns no products")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import jieba

    jieba.setLogLevel(logging.WARNING)

    from crm_adapter import CRM, errors

    try:
        products = CRM.from_env().list_products()
    except errors.CRMUnavailable as exc:
        print(f"error: the CRM is not reachable: {exc}", file=sys.stderr)
        return 1
    if not products and not args.allow_empty:
        print("error: the CRM has no products (seed it first, or pass --allow-empty); "
              "the entity ruler would not recognise any product.", file=sys.stderr)
        return 2
    categories, regions = catalogue_inputs()
    build_to_disk(args.out, products, categories, regions, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
