"""The bad-input fuzz tests at bench scale: `python -m bench.fuzz [--examples N]`.

`make test` runs tests/security/test_fuzz_http.py with a few examples per
endpoint (KEFU_FUZZ_EXAMPLES, default 15) to stay within CI's time; this runs
the same properties against the same real stack with many more (default 300),
and records how long it took and the outcome in var/bench/fuzz.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bot.settings import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    args = parser.parse_args(argv)
    env = {**os.environ, "KEFU_FUZZ_EXAMPLES": str(args.examples), "PYTHONPATH": str(ROOT),
           "RASA_TELEMETRY_ENABLED": "false"}
    started = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                            "tests/security/test_fuzz_http.py"], cwd=ROOT, env=env)
    result = {"examples_per_test": args.examples, "seconds": round(time.monotonic() - started, 1),
              "passed": code == 0}
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
