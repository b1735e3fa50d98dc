"""bot.memtrace: a process with KEFU_MEMTRACE set reports where its heap grew."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bot.settings import ROOT

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from bot import memtrace
    assert memtrace.install_from_env("child")
    hoard = []
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "grow":
            hoard.extend([bytearray(1000)] for _ in range(20_000))  # LEAK-SITE: about 20 MB
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(0.2)
        print("done", flush=True)
""")


def _reports(folder: Path) -> list[Path]:
    return sorted(folder.glob("child-*.txt"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def test_second_report_names_the_growing_allocation_site(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEFU_MEMTRACE": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        for command in ("baseline", "grow"):
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"
    finally:
        proc.stdin.close()
        proc.wait(timeout=20)
    first, second = (p.read_text() for p in _reports(tmp_path))
    assert "baseline taken" in first
    growth = [line for line in second.splitlines() if "<string>" in line and "KiB" in line]
    assert growth, second
    # The list of bytearrays: ~20 MB more, at the child's LEAK-SITE line.
    site = next(n for n, line in enumerate(CHILD.splitlines(), 1) if "LEAK-SITE" in line)
    kib = float(growth[0].split()[0])
    assert kib > 15_000 and growth[0].endswith(f"<string>:{site}"), growth[0]
    # gc sees containers only: the 20,000 lists lead the type counts.
    top_type = second.split("object types")[1].splitlines()[1].split()
    assert top_type[-1] == "list" and int(top_type[0]) >= 20_000, top_type


def test_off_without_the_variable(monkeypatch) -> None:
    from bot import memtrace

    monkeypatch.delenv(memtrace.ENV, raising=False)
    before = signal.getsignal(signal.SIGUSR2)
    assert memtrace.install_from_env("test") is False
    assert signal.getsignal(signal.SIGUSR2) is before
