#!/usr/bin/env bash
# Render a qfeat report.html in headless Chromium to a PNG screenshot, offline, and fail on
# console errors. Usage: scripts/render_report.sh REPORT_HTML [OUT_PNG] [WIDTH,HEIGHT]
# Needs Debian's `chromium` (apt-get install -y chromium).
set -euo pipefail
html="$(realpath "$1")"
png="$(realpath -m "${2:-${html%.html}.png}")"
size="${3:-1280,4000}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$browser" ]] || { echo "render_report: chromium not found" >&2; exit 3; }
profile="$(mktemp -d)"
log="$(mktemp)"
trap 'rm -rf "$profile" "$log"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --enable-logging=stderr --v=0 --hide-scrollbars \
  --window-size="$size" --screenshot="$png" "file://$html" >"$log" 2>&1 || {
  cat "$log" >&2; exit 1; }
# Page errors (JS exceptions, failed resource loads) are logged as CONSOLE lines.
if grep -E "CONSOLE|ERR_FILE_NOT_FOUND|Failed to load" "$log" >&2; then exit 1; fi
[[ -s "$png" ]] || { echo "render_report: no screenshot written" >&2; exit 1; }
echo "$png"
