"""Which memory mappings of a running process grow: ``python -m bench.smaps_watch [--pid P] [--wait S]``.

Why: RSS says that a process grows, tracemalloc what Python objects grow;
neither says where native growth lives.  This reads ``/proc/<pid>/smaps``
every ``--every`` seconds and prints, against the first reading, the growth
by kind of mapping (``[heap]`` is the C allocator's brk area, ``[anon]``
anonymous mmaps — allocator arenas, large buffers —, ``file:<name>`` a
library or data file) and the anonymous regions that grew most.  Used beside
``bench.soak`` (BENCHMARKS.md "Soak"); by default it watches the Rasa server
(``bot.rasa_server run``), waiting ``--wait`` seconds after finding it so
that the model is loaded and the load has started before the baseline.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import time
from typing import Optional

_REGION = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def find_rasa() -> Optional[int]:
    out = subprocess.run(["pgrep", "-f", "bot.rasa_server run"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def read_smaps(pid: int) -> dict[tuple[str, str], int]:
    """RSS in kB per (address range, name) mapping."""
    regions: dict[tuple[str, str], int] = {}
    current: Optional[tuple[str, str]] = None
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as smaps:
        for line in smaps:
            if _REGION.match(line):
                parts = line.split()
                current = (parts[0], parts[5] if len(parts) > 5 else "[anon]")
            elif line.startswith("Rss:") and current is not None:
                regions[current] = int(line.split()[1])
    return regions


def by_kind(regions: dict[tuple[str, str], int]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for (_, name), kb in regions.items():
        kind = name if name.startswith("[") else "file:" + name.rsplit("/", 1)[-1]
        kinds[kind] = kinds.get(kind, 0) + kb
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, help="process to watch (default: the Rasa server)")
    parser.add_argument("--wait", type=float, default=330.0, help="seconds before the baseline")
    parser.add_argument("--every", type=float, default=180.0)
    args = parser.parse_args()
    pid = args.pid
    while pid is None:
        pid = find_rasa()
        time.sleep(5)
    time.sleep(args.wait)
    first, started = read_smaps(pid), time.monotonic()
    print(f"pid {pid}: baseline {sum(first.values()) / 1024:.1f} MB", flush=True)
    while True:
        time.sleep(args.every)
        try:
            now = read_smaps(pid)
        except FileNotFoundError:
            break
        k0, k1 = by_kind(first), by_kind(now)
        kinds = sorted(((k1.get(k, 0) - k0.get(k, 0), k) for k in set(k0) | set(k1)), reverse=True)[:6]
        regions = sorted(((kb - first.get(key, 0), key[0]) for key, kb in now.items() if key[1] == "[anon]"),
                         reverse=True)[:5]
        print(f"{time.monotonic() - started:.0f} s: {sum(now.values()) / 1024:.1f} MB; growth by kind (kB) {kinds}; "
              f"anonymous regions that grew most (kB) {regions}", flush=True)


if __name__ == "__main__":
    main()
