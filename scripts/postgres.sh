#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test run.
#
#   scripts/postgres.sh start   # init (first time) and start; prints the SQLAlchemy URL
#   scripts/postgres.sh url     # the URL of the running server (exit 1 if not running)
#   scripts/postgres.sh stop    # fast shutdown; safe to call when already stopped
#
# The cluster lives in var/pg/ (gitignored): it listens only on 127.0.0.1, on a
# free port chosen at each start, with its unix socket in the cluster
# directory, trust authentication and durability switched off (fsync) -- a
# test database, never a place for real data.  Server binaries come from
# /usr/lib/postgresql/*/bin or PATH; when missing, Debian's `postgresql`
# package is installed (root only, non-interactive).  PostgreSQL refuses to
# run as root, so under root the server runs as the `postgres` user (or
# `nobody`), which then owns the cluster directory.
#
# Only the URL goes to stdout; progress and errors go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$PWD
PG_DIR=${KEFU_PG_DIR:-$ROOT/var/pg}
DB_NAME=kefu_test
DB_USER=kefu

say() { echo "postgres.sh: $*" >&2; }
die() { say "$*"; exit 1; }

find_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4 -V -r); do
    if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"; return 0
    fi
  done
  local pg_ctl
  if pg_ctl=$(command -v pg_ctl) && command -v initdb >/dev/null && command -v postgres >/dev/null; then
    dirname "$(readlink -f "$pg_ctl")"; return 0
  fi
  return 1
}

install_postgres() {
  say "PostgreSQL server not found; installing Debian's postgresql package"
  scripts/debian-install.sh postgresql || die "could not install the 'postgresql' package"
}

bindir() {
  local dir
  if ! dir=$(find_bindir); then
    install_postgres
    dir=$(find_bindir) || die "PostgreSQL server binaries still not found after installing"
  fi
  echo "$dir"
}

# Who runs the server: ourselves, or an unprivileged account when we are root.
run_user() {
  if [ "$(id -u)" != 0 ]; then id -un; return; fi
  if id postgres >/dev/null 2>&1; then echo postgres; else echo nobody; fi
}

as_server() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$(run_user)" -- "$@"
  else
    "$@"
  fi
}

# The cluster directory: var/pg/cluster when the server account can use it and
# the socket path fits in the 107 bytes a unix socket name allows; otherwise a
# directory under /tmp named after this checkout (recorded in var/pg/location).
cluster_dir() {
  if [ -f "$PG_DIR/location" ]; then cat "$PG_DIR/location"; return; fi
  local candidate=$PG_DIR/cluster
  mkdir -p "$candidate"
  if [ "$(id -u)" = 0 ]; then chown "$(run_user)" "$candidate"; fi
  if [ ${#candidate} -gt 90 ] || ! as_server test -w "$candidate"; then
    rmdir "$candidate" 2>/dev/null || true
    candidate=${TMPDIR:-/tmp}/kefu-pg-$(echo "$ROOT" | sha256sum | cut -c1-12)
    mkdir -p "$candidate"
    chmod 700 "$candidate"
    if [ "$(id -u)" = 0 ]; then chown "$(run_user)" "$candidate"; fi
  fi
  echo "$candidate" >"$PG_DIR/location"
  echo "$candidate"
}

port_is_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  local port tries=0
  while [ $tries -lt 50 ]; do
    port=$((20000 + RANDOM % 30000))
    if port_is_free "$port"; then echo "$port"; return 0; fi
    tries=$((tries + 1))
  done
  die "no free port found"
}

is_running() {
  local cluster=$1
  [ -f "$cluster/data/PG_VERSION" ] && as_server "$BIN/pg_ctl" -D "$cluster/data" status >/dev/null 2>&1
}

url() {
  echo "postgresql+psycopg2://$DB_USER@127.0.0.1:$(cat "$PG_DIR/port")/$DB_NAME"
}

cmd_start() {
  mkdir -p "$PG_DIR"
  BIN=$(bindir)
  local cluster
  cluster=$(cluster_dir)
  if is_running "$cluster"; then
    say "already running"
    url; return 0
  fi
  if [ ! -f "$cluster/data/PG_VERSION" ]; then
    say "initdb in $cluster/data ($("$BIN/postgres" --version))"
    as_server "$BIN/initdb" -D "$cluster/data" -U "$DB_USER" --auth=trust -E UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1 \
      || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    cat >>"$cluster/data/postgresql.conf" <<EOF
# Kefu test cluster (scripts/postgres.sh): local, disposable, fast.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$cluster'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  fi
  local port attempt
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    # A port taken between the check and the bind makes start fail: try another.
    if as_server "$BIN/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 60 \
         -o "-p $port" start >/dev/null 2>&1; then
      echo "$port" >"$PG_DIR/port"
      break
    fi
    port=
  done
  if [ -z "$port" ]; then
    tail -n 30 "$cluster/server.log" >&2 2>/dev/null || true
    die "PostgreSQL did not start"
  fi
  if ! as_server "$BIN/psql" -h "$cluster" -p "$port" -U "$DB_USER" -d postgres -tAc \
       "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
    as_server "$BIN/createdb" -h "$cluster" -p "$port" -U "$DB_USER" "$DB_NAME"
  fi
  say "running on 127.0.0.1:$port (cluster $cluster)"
  url
}

cmd_stop() {
  [ -f "$PG_DIR/location" ] || return 0
  local cluster
  cluster=$(cluster_dir)
  [ -f "$cluster/data/PG_VERSION" ] || return 0
  BIN=$(find_bindir) || return 0
  if is_running "$cluster"; then
    as_server "$BIN/pg_ctl" -D "$cluster/data" -m fast -w stop >/dev/null
    say "stopped"
  fi
  rm -f "$PG_DIR/port"
}

cmd_url() {
  [ -f "$PG_DIR/location" ] || die "not running (scripts/postgres.sh start)"
  BIN=$(find_bindir) || die "PostgreSQL is not installed"
  is_running "$(cluster_dir)" && [ -f "$PG_DIR/port" ] || die "not running (scripts/postgres.sh start)"
  url
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  url) cmd_url ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
