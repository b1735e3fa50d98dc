#!/usr/bin/env bash
# Install Debian packages non-interactively, for the services our scripts run.
#
#   scripts/debian-install.sh redis-server nginx ...
#
# One way for every script that needs a Debian package (PostgreSQL, Redis,
# RabbitMQ, nginx, Chromium): root only (CI runs as root; elsewhere it fails
# with the list to install by hand), tries the cached package lists first and
# runs `apt-get update` only when that fails, never reads standard input, and
# keeps the packages' init scripts from starting system-wide services (our
# scripts run each service themselves, bound to 127.0.0.1, and stop it after).
# Progress goes to stderr.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
say() { echo "debian-install.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "not root: install these Debian packages: $*"; exit 1; }
say "installing Debian packages: $*"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
created_policy=
if [ ! -e $policy ]; then
  printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; created_policy=1
  trap 'rm -f $policy' EXIT
fi
if ! apt-get install -y --no-install-recommends "$@" </dev/null >&2; then
  apt-get update </dev/null >&2
  apt-get install -y --no-install-recommends "$@" </dev/null >&2
fi
