#!/usr/bin/env bash
# Render an edgeperf HTML report in headless Chromium, save a screenshot and fail on console errors.
#
# Why: the report must open with no network and no console errors in a real browser (issue 7); the unit
# tests only check structure. Needs Debian's chromium once: apt-get install -y chromium
#
# Usage: scripts/screenshot_report.sh REPORT.html [OUT.png] [WIDTH,HEIGHT]
#   exit 0: screenshot written, no console messages; 1: console errors or no screenshot; 2: usage.
set -euo pipefail

report="${1:-}"
out="${2:-${report%.html}.png}"
size="${3:-1400,3000}"
if [[ -z "$report" || ! -f "$report" ]]; then
    echo "screenshot_report: no such report '${report}' (usage: $0 REPORT.html [OUT.png] [W,H])" >&2
    exit 2
fi
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [[ -z "$browser" ]]; then
    echo "screenshot_report: chromium not found; install it with: apt-get install -y chromium" >&2
    exit 2
fi

url="file://$(realpath "$report")"
out_abs="$(realpath -m "$out")"
profile="$(mktemp -d)"
log="$(mktemp)"
trap 'rm -rf "$profile" "$log"' EXIT

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --hide-scrollbars "--user-data-dir=$profile"
       --enable-logging=stderr --v=0)

rm -f "$out_abs"
timeout 120 "$browser" "${flags[@]}" "--screenshot=$out_abs" "--window-size=$size" "$url" 2>"$log" >/dev/null || true
# A page console message is logged as ...:CONSOLE(line)] "text", source: ... ; our report has no script,
# so any such line (or an uncaught error) means something is wrong.
if grep -E ':CONSOLE\(|Uncaught|Failed to load resource' "$log"; then
    echo "screenshot_report: console errors while rendering $report" >&2
    exit 1
fi
if [[ ! -s "$out_abs" ]]; then
    echo "screenshot_report: chromium wrote no screenshot; its log:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
echo "screenshot_report: wrote $out_abs ($size) from $report, no console errors"
