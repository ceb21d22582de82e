#!/usr/bin/env bash
# Makes sure headless Chromium is installed for the console's browser tests: the Debian
# package chromium, installed when missing (apt-get, as root or through sudo). The tests
# start it themselves with a fresh profile.
set -euo pipefail
log() { printf 'chromium-up: %s\n' "$*" >&2; }
for bin in chromium chromium-browser google-chrome; do
  if command -v "$bin" >/dev/null 2>&1; then exit 0; fi
done
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
log "installing the Debian package chromium for the console tests"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for attempt in 1 2; do
  if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$out" 2>&1 &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >>"$out" 2>&1; then
    exit 0
  fi
  log "apt-get failed (attempt $attempt): $(tail -n 5 "$out")"
  as_root env DEBIAN_FRONTEND=noninteractive dpkg --configure -a >&2 || true
done
# The other tests still run; the console tests fail and say what is missing.
log "could not install chromium: the console tests will fail and say so"
