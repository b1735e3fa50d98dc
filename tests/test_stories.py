"""Rasa's own end-to-end test stories, failing on any wrong prediction."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.settings import ROOT

from tests.conftest import MODEL


def test_e2e_stories(tmp_path: Path) -> None:
    rasa = Path(sys.executable).parent / "rasa"
    result = subprocess.run(
        [str(rasa), "test", "core", "--stories", "tests/stories", "--model", str(MODEL),
         "--fail-on-prediction-errors", "--out", str(tmp_path), "--no-plot"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text() if failed.exists() else ""
    assert result.returncode == 0, (details or result.stdout[-4000:]) + result.stderr[-3000:]
