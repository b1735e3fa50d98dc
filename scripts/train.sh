#!/usr/bin/env bash
# Train the Rasa model only when its inputs changed.
#
# Rasa's own component cache is switched off (it grows past half a gigabyte
# and writing it slows training); training is forced instead whenever the
# inputs below change, so a model never mixes old and new components.
#
# Inputs: the training data, domain, config, the custom NLU components, and the
# spaCy catalogue pipeline (rebuilt from the CRM's products first, so a new
# product is recognised after retraining with no new training sentences).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PYTHONPATH=$PWD

$PY -m bot.nlu.build_spacy --out models/spacy_zh

# The sentiment classifier (bot/nlu/sentiment.py) is loaded from its folder
# when Rasa starts, like models/spacy_zh, so it is rebuilt on its own inputs.
sentiment_stamp=models/sentiment/.inputs.sha256
sentiment_hash=$( (find bot/nlu/sentiment_corpus -type f -print0 | sort -z | xargs -0 sha256sum;
                   sha256sum bot/nlu/sentiment.py bot/nlu/sentiment_model.py bot/nlu/textnorm.py requirements.lock) \
                 | sha256sum | cut -c1-32)
if [ ! -f models/sentiment/sentiment.joblib ] || [ "$(cat "$sentiment_stamp" 2>/dev/null)" != "$sentiment_hash" ]; then
  $PY -m bot.nlu.sentiment --out models/sentiment
  echo "$sentiment_hash" > "$sentiment_stamp"
fi

stamp=models/.train-stamp
# (The sentiment corpus has its own stamp above: the Rasa model does not contain it.)
hash=$( (find data bot/nlu -path bot/nlu/sentiment_corpus -prune -o -type f \( -name '*.yml' -o -name '*.txt' -o -name '*.py' \) -print0 | sort -z | xargs -0 sha256sum;
         sha256sum domain.yml config.yml requirements.lock;
         cat models/spacy_zh/inputs.sha256 2>/dev/null || true) | sha256sum | cut -c1-32)

if [ -f models/kefu.tar.gz ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
  echo "Model is up to date (models/kefu.tar.gz)." >&2
  exit 0
fi

echo "Training the model (inputs changed)..." >&2
export RASA_MAX_CACHE_SIZE=0
start=$(date +%s)
.venv/bin/rasa train --data data --domain domain.yml --config config.yml \
  --out models --fixed-model-name kefu --force --augmentation 0 --quiet
echo "$hash" > "$stamp"
echo "Trained in $(( $(date +%s) - start )) s." >&2
