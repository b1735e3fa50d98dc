"""Rasa component that normalises Chinese message text before tokenisation.

Put it FIRST in the NLU pipeline (``name: bot.nlu.normalizer.ChineseNormalizer``).
It rewrites the ``text`` of every training example (``process_training_data``)
and of every incoming message (``process``); what exactly it does and why is
in :mod:`bot.nlu.textnorm`. Annotated entities of training examples are moved
to the normalised offsets (an entity whose characters all disappear is dropped
with a warning). Entity synonyms and lookup-table elements of the training
data are normalised as well, so they keep matching normalised text.

Config (defaults in brackets):

- ``max_length`` [1000]: characters kept; a 5,000-character paste costs no more
  than a 1,000-character one.
- ``traditional_to_simplified`` [true], ``fullwidth_to_halfwidth`` [true],
  ``unify_cjk_punctuation`` [true]: switch single steps off.
- ``jieba_terms_from`` [null]: folder of the spaCy pipeline built by
  ``python -m bot.nlu.build_spacy`` (``models/spacy_zh``). Its catalogue words
  are then added to jieba's dictionary by this component, i.e. before the
  ``JiebaTokenizer`` tokenises anything, in training as well as at inference.
  Without it the words only reach jieba when ``SpacyNLP`` loads the spaCy
  pipeline, and Rasa's training graph does not order that node before the
  tokenizer. The words file's hash is part of this component's fingerprint,
  so a changed catalogue re-runs tokenisation and training.

Importing this module also imports :mod:`bot.nlu.spacy_terms`, which registers
the spaCy factory ``kefu_jieba_terms``: Rasa imports every component class of
the graph before it instantiates any node, so ``SpacyNLP``'s ``spacy.load``
finds the factory both in ``rasa train`` and when a trained model is loaded in
a fresh process.
"""
from __future__ import annotations

import hashlib
import logging
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu import spacy_terms, textnorm

logger = logging.getLogger(__name__)

_MODULE_FILES = (Path(__file__), Path(textnorm.__file__), Path(spacy_terms.__file__))


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER], is_trainable=False
)
class ChineseNormalizer(GraphComponent):
    """Rewrites message text: t2s, full-width → half-width, invisible chars,
    whitespace, length cap. Not a tokenizer; runs before the tokenizer."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            "max_length": textnorm.DEFAULT_MAX_LENGTH,
            "traditional_to_simplified": True,
            "fullwidth_to_halfwidth": True,
            "unify_cjk_punctuation": True,
            "jieba_terms_from": None,
        }

    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        return ["zh"]

    @staticmethod
    def required_packages() -> List[Text]:
        # opencc's distribution is "opencc-python-reimplemented", which Rasa's
        # fingerprinting cannot look up by import name; its version goes into
        # fingerprint_addon instead.
        return []

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = {**self.get_default_config(), **config}
        max_length = int(self._config["max_length"])
        if max_length <= 0:
            raise ValueError("ChineseNormalizer: max_length must be a positive integer")
        self._options = dict(
            max_length=max_length,
            simplify=bool(self._config["traditional_to_simplified"]),
            fullwidth=bool(self._config["fullwidth_to_halfwidth"]),
            cjk_punctuation=bool(self._config["unify_cjk_punctuation"]),
        )
        _load_jieba_terms(self._config.get("jieba_terms_from"))
        if self._options["simplify"]:
            textnorm.t2s_converter()

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage,
               resource: Resource, execution_context: ExecutionContext) -> ChineseNormalizer:
        return cls(config)

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        """Code of the helper modules, OpenCC's version and the jieba terms.

        Rasa's own fingerprint covers only this class's source and config.
        Rasa computes fingerprints for every node before it runs (or skips,
        when cached) any of them, so the terms are also added to jieba here:
        a re-run JiebaTokenizer then sees them even when this node's output
        comes from the cache and the node is not instantiated.
        """
        digest = hashlib.sha256()
        for path in _MODULE_FILES:
            digest.update(path.read_bytes())
        try:
            digest.update(metadata.version("opencc-python-reimplemented").encode())
        except metadata.PackageNotFoundError:  # pragma: no cover - other OpenCC build
            pass
        terms_from = config.get("jieba_terms_from")
        if terms_from:
            path = spacy_terms.terms_file(terms_from)
            digest.update(path.read_bytes() if path.is_file() else b"<missing>")
            _load_jieba_terms(terms_from)
        return digest.hexdigest()

    # -- processing -------------------------------------------------------
    def normalize(self, text: Optional[Text]) -> Text:
        return textnorm.normalize_text(text, **self._options)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if isinstance(text, str) and text:
                normalized = self.normalize(text)
                if normalized != text:
                    message.set(TEXT, normalized)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for message in training_data.training_examples:
            self._normalize_example(message)

        if training_data.entity_synonyms:
            training_data.entity_synonyms = {
                (self.normalize(key) or key): value
                for key, value in training_data.entity_synonyms.items()
            }
        for table in training_data.lookup_tables:
            elements = table.get("elements")
            if isinstance(elements, list):
                table["elements"] = [
                    self.normalize(e) if isinstance(e, str) else e for e in elements
                ]
        return training_data

    def _normalize_example(self, message: Message) -> None:
        text = message.get(TEXT)
        if not isinstance(text, str) or not text:
            return
        entities = message.get(ENTITIES) or []
        if not entities:
            normalized = self.normalize(text)
            if normalized != text:
                message.set(TEXT, normalized)
            return
        normalized, index = textnorm.normalize_with_alignment(text, **self._options)
        if normalized == text:
            return
        kept, dropped = textnorm.realign_entities(text, normalized, index, entities)
        for entity in dropped:
            logger.warning(
                "ChineseNormalizer: entity '%s' (%s) of training example '%s' is empty "
                "after normalisation and was dropped.",
                text[entity["start"]:entity["end"]], entity.get("entity"), text[:60],
            )
        message.set(TEXT, normalized)
        message.set(ENTITIES, kept)


def _load_jieba_terms(model_dir: Optional[str]) -> None:
    if not model_dir:
        return
    if not Path(model_dir).is_dir():
        logger.warning(
            "ChineseNormalizer: jieba_terms_from=%s does not exist; build it with "
            "`python -m bot.nlu.build_spacy --out %s`.", model_dir, model_dir,
        )
        return
    spacy_terms.load_terms_from_model(model_dir)
