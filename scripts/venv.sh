#!/usr/bin/env bash
# Make .venv/ point at a virtualenv built from requirements.lock.
#
# The venv lives in a cache outside the clone, keyed by the hash of the lock
# file and the Python version, so a fresh clone (CI) reuses it and a changed
# lock builds a new one.  .venv is a symlink to it.
set -euo pipefail
cd "$(dirname "$0")/.."

py_version=$(cat .python-version)
key=$(cat requirements.lock .python-version | sha256sum | cut -c1-16)
cache_root=${KEFU_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kefu}
target="$cache_root/venv-$key"

if [ -L .venv ] && [ "$(readlink .venv)" = "$target" ] && [ -f "$target/.complete" ]; then
  exit 0
fi

find_python() {
  local candidates=()
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv root)/versions/$py_version/bin/python")
  fi
  candidates+=("$HOME/.pyenv/versions/$py_version/bin/python" "python$py_version" "python3.10")
  for c in "${candidates[@]}"; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c "import sys; assert sys.version_info[:2] == (3, 10)" 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    pyenv install -s "$py_version" >&2 && echo "$(pyenv root)/versions/$py_version/bin/python" && return 0
  fi
  echo "Python $py_version not found (install it with pyenv)" >&2
  return 1
}

if [ ! -f "$target/.complete" ]; then
  python=$(find_python)
  echo "Building virtualenv $target with $python" >&2
  rm -rf "$target" "$target.tmp"
  mkdir -p "$cache_root"
  "$python" -m venv "$target"
  "$target/bin/pip" install --quiet --upgrade "pip<25" "setuptools<71" wheel
  "$target/bin/pip" install --quiet -r requirements.lock
  touch "$target/.complete"
fi

rm -rf .venv
ln -s "$target" .venv
echo "Using virtualenv $target" >&2
