"""make bench: every benchmark in turn; figures go to var/bench/*.json and,
by hand with their command, to BENCHMARKS.md."""
from __future__ import annotations

import sys

from bench import crm_scale, fuzz, nlu_baselines, nlu_eval, nlu_feature_cv, rest_load, sentiment_eval


def main() -> int:
    sys.argv = [sys.argv[0]]
    rest_load.main()
    nlu_eval.main()
    nlu_baselines.main()  # trains Rasa's default NLU pipeline once (minutes)
    nlu_feature_cv.main()
    sentiment_eval.main()
    fuzz.main([])
    # CRM analytics at 1,000,000 customers / 10,000,000 orders on SQLite: most
    # of the half hour or more is generating the population (4-5 GB on disk).
    sys.argv = [sys.argv[0], "--customers", "1000000", "--dir", "var/bench/crm_scale", "--recommends", "200"]
    crm_scale.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
