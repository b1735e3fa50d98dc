#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser tests.
#
#   scripts/chromium.sh          # prints the binary's path; installs it when missing
#
# Playwright drives this binary (tests/channels/test_widget_browser.py) because
# Playwright's own browser download cannot reach its CDN from here.  When the
# binary is missing and we are root (CI), Debian's `chromium` package is
# installed non-interactively; otherwise the script fails with a message and
# the browser tests fail too (unless KEFU_SKIP_BROWSER=1).
# A small Chinese font (fonts-wqy-microhei) is added when none is installed.
# Only the path goes to stdout; progress and errors go to stderr.
set -euo pipefail

BIN=${KEFU_CHROMIUM:-/usr/bin/chromium}
say() { echo "chromium.sh: $*" >&2; }

if [ ! -x "$BIN" ]; then
  say "installing Debian's chromium package (first run only)"
  "$(dirname "$0")/debian-install.sh" chromium || { say "could not install Debian's 'chromium' package"; exit 1; }
fi
[ -x "$BIN" ] || { say "$BIN still missing after installing"; exit 1; }
# Without a Chinese font the screenshots show boxes instead of characters (the
# tests read the DOM, so they pass either way; the artefacts are for people).
if command -v fc-list >/dev/null && [ -z "$(fc-list :lang=zh 2>/dev/null)" ] && [ "$(id -u)" = 0 ]; then
  say "installing a Chinese font for legible screenshots (fonts-wqy-microhei)"
  "$(dirname "$0")/debian-install.sh" fonts-wqy-microhei \
    || say "no Chinese font installed; screenshots will show boxes"
fi
echo "$BIN"
