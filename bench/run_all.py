"""make bench: every benchmark in turn; figures go to var/bench/*.json and,
by hand with their command, to BENCHMARKS.md."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench import (crm_copy, crm_scale, fuzz, intent_cv, nlu_baselines, nlu_eval, nlu_feature_cv, rest_load,
                   sender_memory, sentiment_eval)


def main() -> int:
    sys.argv = [sys.argv[0]]
    rest_load.main()
    sys.argv = [sys.argv[0], "--out", "var/bench/sender_memory.json"]
    sender_memory.main()  # 8,000 distinct customers (about 5 minutes)
    sys.argv = [sys.argv[0]]
    nlu_eval.main()
    nlu_baselines.main()  # trains Rasa's default NLU pipeline once (minutes)
    nlu_feature_cv.main()
    intent_cv.main()  # the intent model's variant and fallback thresholds (seconds)
    sentiment_eval.main()
    fuzz.main([])
    # CRM analytics at 1,000,000 customers / 10,000,000 orders on SQLite, then on
    # PostgreSQL: most of the hour is generating the population (4-5 GB on disk)
    # and copying it.
    sys.argv = [sys.argv[0], "--customers", "1000000", "--dir", "var/bench/crm_scale", "--recommends", "200"]
    crm_scale.main()
    postgres_crm_scale(Path("var/bench/crm_scale/crm.sqlite3"))
    return 0


def postgres_crm_scale(population: Path, pg_dir: Path = Path("var/bench/pg-crm-scale")) -> None:
    """The same population on PostgreSQL: a throw-away server (scripts/postgres.sh),
    loaded by COPY (bench.crm_copy: minutes, where the generator takes half an
    hour), measured like SQLite, then stopped and its cluster removed (~6 GB)."""
    shutil.rmtree(pg_dir, ignore_errors=True)  # a new cluster: its database starts empty
    env = {**os.environ, "KEFU_PG_DIR": str(pg_dir.resolve())}
    target = subprocess.run(["scripts/postgres.sh", "start"], env=env, check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
        sys.argv = [sys.argv[0], "--sqlite", str(population), "--url", target]
        crm_copy.main()
        sys.argv = [sys.argv[0], "--url", target, "--fresh-analytics", "--recommends", "200",
                    "--out", "var/bench/crm_scale_pg.json"]
        crm_scale.main()
    finally:
        subprocess.run(["scripts/postgres.sh", "stop"], env=env, check=False)
        shutil.rmtree(pg_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
