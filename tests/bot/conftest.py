"""Fixtures shared by the tests of Kefu's replacements inside the Rasa server."""
from __future__ import annotations

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.generator import TrainingDataGenerator
from rasa.shared.importers.importer import TrainingDataImporter

from bot.settings import ROOT


@pytest.fixture(scope="module")
def training() -> tuple[Domain, list]:
    """The domain, and a tracker for every rule, story and end-to-end test story."""
    importer = TrainingDataImporter.load_from_dict(
        domain_path=str(ROOT / "domain.yml"),
        training_data_paths=[str(ROOT / "data"), str(ROOT / "tests" / "stories")])
    domain = importer.get_domain()
    trackers = TrainingDataGenerator(importer.get_stories(), domain, augmentation_factor=0).generate()
    assert len(trackers) > 60  # the rules, the stories and the end-to-end test stories
    return domain, trackers
