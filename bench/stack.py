"""Start the real servers over a freshly seeded CRM for a benchmark run."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from bot.run import Stack, isolated_stack
from crm_adapter import CRM
from crm_adapter.seed import seed


@contextlib.contextmanager
def running_stack(var_dir: Path, customers: int = 3000) -> Iterator[tuple[Stack, CRM]]:
    crm = CRM(f"sqlite:///{var_dir / 'crm.sqlite3'}")
    crm.create_schema()
    seed(crm, customers=customers, seed=42)
    stack = isolated_stack(var_dir, crm.url)
    stack.start(timeout=300)
    try:
        yield stack, crm
    finally:
        stack.stop()
