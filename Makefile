# Kefu: `make run` runs the whole product, `make test` runs the test suite.
# Both build .venv (from requirements.lock) and train the model when needed.
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Rasa's telemetry and crash reports call outside hosts: never from here.
export RASA_TELEMETRY_ENABLED := false

.PHONY: run test shell venv db model bench soak scaleout-bench lock validate clean

venv:
	@scripts/venv.sh

db: venv
	@$(PY) -m crm_adapter.seed --if-empty

model: db
	@scripts/train.sh

run: model
	@$(PY) -m bot.run

shell: model
	@$(PY) -m bot.run --shell

validate: venv
	@.venv/bin/rasa data validate --fail-on-warnings --data data --domain domain.yml --config config.yml

# PostgreSQL is started for the run and stopped after it (scripts/test.sh).
test: model
	@scripts/test.sh tests

bench: model
	@$(PY) -m bench.run_all

# Soak (not part of `make test` or `make bench`): 30 minutes of mixed load with the
# scheduler and a desk agent, memory per process, then bench.reconcile.
# Shorter: make soak SOAK_ARGS="--minutes 5".
soak: model
	@$(PY) -m bench.soak $(SOAK_ARGS)

# Scale-out topology (README "Scale-out"): start it, REST load through nginx,
# the same load with a Rasa server SIGKILLed mid-way (PASS/FAIL), the slow
# scale-out tests, and always stop everything.  Not part of `make test`; uses
# the trained model as it is (run `make model` first).
scaleout-bench: venv
	@trap 'scripts/scaleout.sh stop' EXIT; scripts/scaleout.sh start >/dev/null && \
	$(PY) -m bench.scaleout --attach --concurrency 10 --rounds 3 && \
	$(PY) -m bench.scaleout --attach --concurrency 10 --rounds 10 --kill-after 4 --out var/bench/scaleout_kill.json && \
	KEFU_SCALEOUT_TEST=1 $(PY) -m pytest -p no:cacheprovider -q tests/bot/test_scaleout.py

lock:
	@$(PY) -m pip freeze --exclude-editable | sort -f > requirements.lock

clean:
	rm -rf models/*.tar.gz models/spacy_zh models/.train-stamp var/*.sqlite3*
