"""The conversational design is consistent: Rasa's own validator passes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.settings import ROOT


def test_rasa_data_validate() -> None:
    rasa = Path(sys.executable).parent / "rasa"
    result = subprocess.run(
        [str(rasa), "data", "validate", "--data", "data", "--domain", "domain.yml",
         "--config", "config.yml"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
