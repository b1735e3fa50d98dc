"""The spaCy entity extractor reads the doc SpacyNLP already made, instead of running spaCy again.

Why: Rasa 3.6's `SpacyEntityExtractor.process` runs the whole spaCy pipeline
(jieba segmentation, the catalogue entity ruler) on every message a second
time, because SpacyNLP may have lower-cased its doc ("bad for NER").  Kefu's
SpacyNLP is case-sensitive, so its doc is of the very text the extractor would
parse, by the same `Language` object: the second run only repeats the first.
Nothing else in Kefu's pipeline reads SpacyNLP's doc, so under the REST load
spaCy's two runs were about 5% of the Rasa process's CPU, half of it wasted.

`process` here takes the message's doc when it was made from exactly the
message's text (any doubt, e.g. a lower-cased doc, and spaCy runs as stock),
and otherwise is Rasa's method line for line.  `tests/bot/test_graph_runner.py`
(the trained model's parse) runs with and without it on the trained model and compares every field.
"""
from __future__ import annotations

from typing import Any, Callable, List

from rasa.nlu.constants import SPACY_DOCS
from rasa.shared.nlu.constants import ENTITIES, TEXT

_STOCK_PROCESS: List[Callable[..., Any]] = []


def process(self: Any, messages: List[Any], model: Any) -> List[Any]:
    """Drop-in for `SpacyEntityExtractor.process`."""
    for message in messages:
        text = message.get(TEXT)
        doc = message.get(SPACY_DOCS[TEXT])
        if doc is None or doc.text != text or doc.vocab is not model.model.vocab:
            doc = model.model(text)
        all_extracted = self.add_extractor_name(self._extract_entities(doc))
        extracted = self.filter_irrelevant_entities(all_extracted, self._config["dimensions"])
        message.set(ENTITIES, message.get(ENTITIES, []) + extracted, add_to_output=True)
    return messages


def install() -> None:
    """Replace `SpacyEntityExtractor.process` (idempotent)."""
    from rasa.nlu.extractors.spacy_entity_extractor import SpacyEntityExtractor

    if not _STOCK_PROCESS:
        _STOCK_PROCESS.append(SpacyEntityExtractor.process)
        SpacyEntityExtractor.process = process  # type: ignore[assignment]
