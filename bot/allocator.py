"""Which C allocator the Rasa server runs on (``KEFU_MALLOC``).

Soaks showed the Rasa process's RSS climbing 120–180 MB an hour while its
Python heap stayed flat. The growth is in anonymous MiB-sized regions,
which is how pymalloc arenas look: an arena goes back to the kernel only
when its last object dies. With ``KEFU_MALLOC=jemalloc`` the server runs on
jemalloc (Debian ``libjemalloc2``, preloaded) with ``PYTHONMALLOC=malloc``.
Every Python object then comes from jemalloc, which hands freed pages back
after a few seconds. BENCHMARKS.md ("Soak") has the readings.

``default`` (the default) changes nothing. ``jemalloc`` on a machine
without the library logs a warning and changes nothing, so a missing
package never stops the product.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Optional

logger = logging.getLogger(__name__)

ENV = "KEFU_MALLOC"
#: Where Debian and most distributions put libjemalloc2's shared object.
JEMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
)
#: Give freed pages back within seconds, from a background thread (not on the request path).
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:5000"


def find_jemalloc(paths: tuple[str, ...] = JEMALLOC_PATHS) -> Optional[str]:
    return next((p for p in paths if Path(p).is_file()), None)


def allocator_env(env: Mapping[str, str], paths: tuple[str, ...] = JEMALLOC_PATHS) -> dict[str, str]:
    """``env`` with what the chosen allocator needs added (see the module docstring)."""
    out = dict(env)
    choice = (env.get(ENV) or "default").strip().lower()
    if choice == "default":
        return out
    if choice != "jemalloc":
        logger.warning("%s=%r is not 'default' or 'jemalloc'; using the default allocator", ENV, choice)
        return out
    library = find_jemalloc(paths)
    if library is None:
        logger.warning("%s=jemalloc but libjemalloc.so.2 is not installed (Debian: libjemalloc2); "
                       "using the default allocator", ENV)
        return out
    preload = out.get("LD_PRELOAD", "")
    if library not in preload.split():
        out["LD_PRELOAD"] = f"{library} {preload}".strip()
    out["PYTHONMALLOC"] = "malloc"
    out.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    return out


def running_on_jemalloc(pid: int | str = "self") -> bool:
    """True when the process has jemalloc mapped (for tests and the soak's report)."""
    try:
        return "libjemalloc" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
