#!/usr/bin/env bash
# Run the tests with a real PostgreSQL beside them.
#
#   scripts/test.sh                      # the whole suite (what `make test` runs)
#   scripts/test.sh tests/crm_adapter -q # any pytest arguments pass through
#
# Starts the throwaway server of scripts/postgres.sh, exports its URL as
# KEFU_TEST_POSTGRES_URL (so the CRM contract runs on SQLite and PostgreSQL),
# runs pytest, and always stops the server again, keeping pytest's exit code.
# A server that cannot start fails the run: silently skipping the PostgreSQL
# half would report green for code that was never run there.  Escape hatches:
#   KEFU_TEST_POSTGRES_URL=...  use that server instead (not started or stopped here)
#   KEFU_SKIP_POSTGRES=1        run without PostgreSQL; its tests are skipped
# Chromium for the widget's browser tests comes from scripts/chromium.sh (Debian's
# package, installed when missing); KEFU_SKIP_BROWSER=1 skips those tests instead.
# redis-server (for the Redis lock-store tests, which start their own) is
# installed when missing, by scripts/debian-install.sh like every package here.
set -uo pipefail
cd "$(dirname "$0")/.."

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export RASA_TELEMETRY_ENABLED=false
PY=.venv/bin/python
[ -x "$PY" ] || scripts/venv.sh || exit 1

if [ -n "${KEFU_TEST_POSTGRES_URL:-}" ]; then
  echo "test.sh: using the PostgreSQL server in KEFU_TEST_POSTGRES_URL" >&2
elif [ "${KEFU_SKIP_POSTGRES:-}" = 1 ]; then
  echo "test.sh: WARNING: KEFU_SKIP_POSTGRES=1, the PostgreSQL tests will be SKIPPED" >&2
else
  # Stop the server however this script ends (normal exit, failure, Ctrl-C).
  trap 'scripts/postgres.sh stop' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if ! url=$(scripts/postgres.sh start); then
    echo "test.sh: ERROR: could not start PostgreSQL (see above)." >&2
    echo "test.sh: set KEFU_SKIP_POSTGRES=1 to run without it, or KEFU_TEST_POSTGRES_URL to use another server." >&2
    exit 1
  fi
  export KEFU_TEST_POSTGRES_URL=$url
fi

# The Redis lock-store tests start their own Debian redis-server (installed when missing).
if ! command -v redis-server >/dev/null && ! scripts/debian-install.sh redis-server; then
  echo "test.sh: ERROR: no redis-server for the lock-store tests (see above)." >&2
  exit 1
fi

# The widget's browser tests drive Debian's Chromium (installed when missing).
if [ "${KEFU_SKIP_BROWSER:-}" = 1 ]; then
  echo "test.sh: WARNING: KEFU_SKIP_BROWSER=1, the browser tests of the chat widget will be SKIPPED" >&2
elif ! scripts/chromium.sh >/dev/null; then
  echo "test.sh: ERROR: no Chromium for the browser tests (see above); set KEFU_SKIP_BROWSER=1 to skip them." >&2
  exit 1
fi

[ $# -gt 0 ] || set -- tests
"$PY" -m pytest -p no:cacheprovider "$@"
