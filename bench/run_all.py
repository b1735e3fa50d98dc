"""make bench: every benchmark in turn; figures go to var/bench/*.json and,
by hand with their command, to BENCHMARKS.md."""
from __future__ import annotations

import sys

from bench import fuzz, nlu_baselines, nlu_eval, nlu_feature_cv, rest_load, sentiment_eval


def main() -> int:
    sys.argv = [sys.argv[0]]
    rest_load.main()
    nlu_eval.main()
    nlu_baselines.main()  # trains Rasa's default NLU pipeline once (minutes)
    nlu_feature_cv.main()
    sentiment_eval.main()
    fuzz.main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
