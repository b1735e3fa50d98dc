#!/usr/bin/env bash
# The scale-out topology on this machine (README "Scale-out").
#
#   scripts/scaleout.sh start [--rasa N] [--actions N] [--schedulers N]
#   scripts/scaleout.sh status
#   scripts/scaleout.sh stop
#
# PostgreSQL comes from scripts/postgres.sh with its cluster in var/scaleout/pg;
# Redis, RabbitMQ and nginx are Debian packages (installed here when missing,
# root only, non-interactive) run as plain processes by bot/scaleout.py, bound to
# 127.0.0.1 on free ports, with all their state under var/scaleout/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export KEFU_PG_DIR=$PWD/var/scaleout/pg
PY=.venv/bin/python

say() { echo "scaleout.sh: $*" >&2; }

ensure_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  [ ${#missing[@]} -eq 0 ] || scripts/debian-install.sh "${missing[@]}"
}

case "${1:-}" in
  start)
    shift
    [ -x "$PY" ] || scripts/venv.sh
    ensure_packages
    mkdir -p var/scaleout
    url=$(scripts/postgres.sh start)
    if ! $PY -m bot.scaleout start --pg-url "$url" "$@"; then
      scripts/postgres.sh stop
      exit 1
    fi
    ;;
  stop)
    $PY -m bot.scaleout stop || true
    scripts/postgres.sh stop
    ;;
  status)
    $PY -m bot.scaleout status
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
