"""Shared fixtures: a seeded temporary CRM, and the real servers.

Every test that needs a database gets a fresh SQLite file seeded with the
fixed demo customers (see crm_adapter.seed); conversation tests share one
running stack (action server + Rasa server with the trained model) and keep
apart by using their own sender ids.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import requests

from bot.run import Stack, isolated_stack
from bot.settings import ROOT

MODEL = ROOT / "models" / "kefu.tar.gz"
SMALL_SEED = 60  # random customers besides the fixed demo ones


def seeded_crm_url(directory: Path) -> str:
    from crm_adapter import CRM
    from crm_adapter.seed import seed

    url = f"sqlite:///{directory / 'crm.sqlite3'}"
    crm = CRM(url)
    crm.create_schema()
    seed(crm, customers=SMALL_SEED, seed=7)
    return url


@pytest.fixture()
def crm(tmp_path: Path):
    """A fresh, seeded CRM on a temporary SQLite file."""
    from crm_adapter import CRM

    return CRM(seeded_crm_url(tmp_path))


# The servers under test run with a win-back offer configured (crm_adapter.retention),
# and with the desk open around the clock so that handoff tests do not depend on
# the hour CI runs at (out-of-hours callbacks are tested in tests/actions).
RETENTION_OFFER_ENV = {"KEFU_RETENTION_COUPON_AMOUNT": "30", "KEFU_RETENTION_COUPON_MIN_SPEND": "199",
                       "KEFU_DESK_HOURS": "00:00-24:00"}


def _start_stack(var_dir: Path, crm_url: str, overrides: dict[str, str] | None = None) -> Stack:
    if not MODEL.exists():
        pytest.fail("no trained model: run `make model` (make test does it)")
    for name, value in RETENTION_OFFER_ENV.items():
        os.environ.setdefault(name, value)
    stack = isolated_stack(var_dir, crm_url, overrides)
    try:
        stack.start(timeout=300)
    except Exception:
        stack.stop()
        for log in (var_dir / "logs").glob("*.log"):
            print(f"--- {log.name} ---\n{log.read_text(errors='replace')[-4000:]}")
        raise
    return stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Action server + Rasa server over a seeded SQLite CRM, for the whole run."""
    var_dir = tmp_path_factory.mktemp("stack")
    running = _start_stack(var_dir, seeded_crm_url(var_dir))
    yield running
    running.stop()


class CrmOutage:
    """Takes the CRM database's folder away (unreachable for every process) and puts it back.

    SQLite opens the file per connection and never creates a missing folder,
    so while the folder is away each CRM call fails as with a database down;
    the tracker store lives elsewhere and keeps working.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.away = folder.with_name(folder.name + ".away")

    def cut(self) -> None:
        if self.folder.exists():
            self.folder.rename(self.away)

    def restore(self) -> None:
        if self.away.exists():
            self.away.rename(self.folder)


@pytest.fixture(scope="session")
def crm_outage(tmp_path_factory: pytest.TempPathFactory) -> CrmOutage:
    folder = tmp_path_factory.mktemp("stack_down") / "crm"
    folder.mkdir()
    return CrmOutage(folder)


@pytest.fixture(scope="session")
def stack_crm_down(crm_outage: CrmOutage) -> Iterator[Stack]:
    """The same servers over a seeded CRM that is unreachable (`crm_outage` can bring it back)."""
    var_dir = crm_outage.folder.parent
    running = _start_stack(var_dir, seeded_crm_url(crm_outage.folder))
    crm_outage.cut()
    yield running
    crm_outage.restore()
    running.stop()


class Chat:
    """One customer talking to the bot over Rasa's REST channel."""

    def __init__(self, stack: Stack, sender: str | None = None) -> None:
        self.stack = stack
        self.sender = sender or f"test-{uuid.uuid4().hex[:10]}"
        self.url = f"{stack.settings.rasa_url}/webhooks/rest/webhook"

    def say(self, text: str) -> str:
        """Send one message; return the bot's replies joined by newlines."""
        response = requests.post(self.url, json={"sender": self.sender, "message": text},
                                 timeout=60)
        assert response.status_code == 200, response.text
        return "\n".join(m.get("text", "") for m in response.json())

    def tracker(self) -> dict:
        s = self.stack.settings
        response = requests.get(f"{s.rasa_url}/conversations/{self.sender}/tracker",
                                params={"token": s.rasa_token}, timeout=30)
        response.raise_for_status()
        return response.json()

    def slot(self, name: str):
        return self.tracker()["slots"].get(name)


@pytest.fixture()
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private Debian redis-server on 127.0.0.1 for one test (skipped where it is
    not installed; scripts/test.sh and scripts/scaleout.sh install it)."""
    from bench.stack import private_redis

    if shutil.which("redis-server") is None:
        pytest.skip("Debian's redis-server is not installed (scripts/test.sh installs it)")
    with private_redis(tmp_path) as url:
        yield url
