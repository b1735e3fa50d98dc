"""Catalogue terms for jieba, as a spaCy pipeline component.

spaCy's Chinese tokenizer (``segmenter = "jieba"``) and Rasa's
``JiebaTokenizer`` both segment with jieba's process-wide default dictionary.
Product names are new words to jieba, so it splits them one way inside a
sentence and another way on their own: "全价成猫粮有货吗" becomes
全价/成猫/粮有/货/吗, and the entity ruler's phrase pattern 猫粮 (tokenised
on its own as 猫粮) never matches. Adding the catalogue's words to jieba
before anything is segmented fixes that.

The component ``kefu_jieba_terms`` stores the word list and adds it to jieba
when it is constructed with words and in ``from_disk``/``from_bytes``. It is
placed FIRST in the spaCy pipeline: ``spacy.load`` deserialises components in
pipeline order, and the entity ruler tokenises its phrase patterns in its own
``from_disk``, so the words are in jieba by then.

:func:`add_terms` also gives a handful of jieba's own dictionary entries that
glue a catalogue word to a one-character verb or particle (买手机, 咖啡吧,
要手机 ...) a frequency just below that of the split, so "我想买手机" is
segmented 买/手机 and the category is found. Only compounds made of a term
plus one of the characters in ``_CARRIER_PREFIXES``/``_CARRIER_SUFFIXES`` are
touched; real compounds such as 咖啡色 or 手机壳 keep their entry.

Importing this module registers the factory; ``bot.nlu.normalizer`` imports
it, so listing the normalizer first in Rasa's ``config.yml`` makes the factory
available before ``SpacyNLP`` calls ``spacy.load`` (see PIPELINE.md).
"""
# No `from __future__ import annotations` here: spaCy validates the factory
# signature with pydantic, which needs real (not string) annotations.
import json
import logging
import threading
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Set, Union

from spacy.language import Language
from spacy.tokens import Doc

logger = logging.getLogger(__name__)

FACTORY_NAME = "kefu_jieba_terms"
TERMS_FILENAME = "terms.json"

# One-character words that customers put right before / after a product,
# category or city name. jieba's dictionary contains a few compounds of such a
# character and a common noun (买手机, 咖啡吧, 到北京...) which swallow the name.
_CARRIER_PREFIXES = "买卖要想找换退修送寄发到在从是有和与跟或的个款台部件瓶袋箱盒包罐支双套把给用这那哪"
_CARRIER_SUFFIXES = "吧吗呢啊呀哦嘛了的和与跟或有是在没还也都就能可要"

_lock = threading.Lock()
# Words already added to jieba in this process.
_applied: Set[str] = set()


def _variants(words: Iterable[str]) -> List[str]:
    """Words plus their lower-case forms (SpacyNLP lower-cases by default, and
    customers type 星辰x5), de-duplicated, order kept."""
    seen: Set[str] = set()
    out: List[str] = []
    for word in words:
        word = (word or "").strip()
        for variant in (word, word.lower()):
            if variant and variant not in seen:
                seen.add(variant)
                out.append(variant)
    return out


def add_terms(words: Iterable[str]) -> int:
    """Adds ``words`` to jieba's global dictionary; returns how many were new.

    Idempotent and cheap on repeat (words already added in this process are
    skipped). Frequencies come from ``jieba.suggest_freq``: just enough for the
    word to be kept whole, never lowering a frequency jieba already has.
    """
    import jieba

    words = _variants(words)
    with _lock:
        new = [w for w in words if w not in _applied]
        if not new:
            return 0
        dt = jieba.dt
        for word in new:
            jieba.add_word(word)
        terms = set(words) | _applied
        for word in new:
            for compound, parts in _carrier_compounds(word):
                if compound in terms:
                    continue
                if dt.FREQ.get(compound, 0) > 0:
                    # jieba's intended API for "segment this as these parts":
                    # lowers the compound's frequency below the parts' product.
                    jieba.suggest_freq(parts, tune=True)
        _applied.update(new)
    logger.debug("Added %d catalogue terms to jieba.", len(new))
    return len(new)


def _carrier_compounds(word: str):
    for char in _CARRIER_PREFIXES:
        yield char + word, (char, word)
    for char in _CARRIER_SUFFIXES:
        yield word + char, (word, char)


class JiebaTerms:
    """spaCy component holding the catalogue words; passes docs through."""

    def __init__(self, nlp: Language, name: str = FACTORY_NAME, words: Sequence[str] = ()) -> None:
        self.name = name
        self.words: List[str] = []
        if words:
            self.set_words(words)

    def set_words(self, words: Iterable[str]) -> None:
        """Replaces the stored list (sorted, unique) and adds it to jieba."""
        self.words = sorted({w.strip() for w in words if w and w.strip()})
        add_terms(self.words)

    def __call__(self, doc: Doc) -> Doc:
        return doc

    # serialisation -----------------------------------------------------
    def to_bytes(self, *, exclude: Sequence[str] = ()) -> bytes:
        text = json.dumps({"words": self.words}, ensure_ascii=False, indent=1, sort_keys=True)
        return (text + "\n").encode("utf-8")

    def from_bytes(self, data: bytes, *, exclude: Sequence[str] = ()) -> "JiebaTerms":
        self.set_words(json.loads(data.decode("utf-8"))["words"])
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Sequence[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / TERMS_FILENAME).write_bytes(self.to_bytes())

    def from_disk(self, path: Union[str, Path], *, exclude: Sequence[str] = ()) -> "JiebaTerms":
        return self.from_bytes((Path(path) / TERMS_FILENAME).read_bytes())


@Language.factory(FACTORY_NAME, default_config={"words": []})
def make_jieba_terms(nlp: Language, name: str, words: List[str]) -> JiebaTerms:
    return JiebaTerms(nlp, name, words)


def terms_file(model_dir: Union[str, Path]) -> Path:
    """Where a pipeline built by :mod:`bot.nlu.build_spacy` keeps its words."""
    return Path(model_dir) / FACTORY_NAME / TERMS_FILENAME


def read_terms(model_dir: Union[str, Path]) -> Optional[List[str]]:
    """The stored word list of a saved pipeline, or None if there is none."""
    path = terms_file(model_dir)
    if not path.is_file():
        return None
    return list(json.loads(path.read_text("utf-8"))["words"])


def load_terms_from_model(model_dir: Union[str, Path]) -> int:
    """Adds a saved pipeline's words to jieba without loading the pipeline."""
    words = read_terms(model_dir)
    if words is None:
        logger.warning("No jieba terms at %s; product names may be segmented badly.",
                       terms_file(model_dir))
        return 0
    return add_terms(words)
