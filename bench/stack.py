"""Start the real servers over a freshly seeded CRM for a benchmark run."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

from bot.run import Stack, free_port, isolated_stack
from crm_adapter import CRM
from crm_adapter.seed import seed


@contextlib.contextmanager
def private_redis(data_dir: Path, port: int = 0) -> Iterator[str]:
    """A throwaway Debian redis-server on 127.0.0.1 (its URL), stopped afterwards; `port` 0 picks a free one."""
    from bot.scaleout import port_open

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (scripts/debian-install.sh redis-server)")
    port = port or free_port()
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def running_stack(var_dir: Path, customers: int = 3000, rasa_workers: int = 1) -> Iterator[tuple[Stack, CRM]]:
    """The stack of `make run`; with several Rasa workers, their locks in a private Redis."""
    crm = CRM(f"sqlite:///{var_dir / 'crm.sqlite3'}")
    crm.create_schema()
    seed(crm, customers=customers, seed=42)
    with contextlib.ExitStack() as resources:
        overrides = {}
        if rasa_workers > 1:
            overrides = {"KEFU_RASA_WORKERS": str(rasa_workers),
                         "KEFU_REDIS_URL": resources.enter_context(private_redis(var_dir))}
        stack = isolated_stack(var_dir, crm.url, overrides)
        stack.start(timeout=300)
        try:
            yield stack, crm
        finally:
            stack.stop()
