#!/usr/bin/env bash
# How fast `syncbench report` renders a large history, next to asv's
# `asv publish` on the same synthetic data when asv is installed
# (pip install asv; or ASV=/path/to/asv).
#
#   bash ci/report-speed.sh [COMMITS SERIES REPS]     # default 1000 60 5
#
# Prints seconds and output size for: a cold render, a re-render with
# nothing new, a re-render after one more commit, the largest page, and
# asv publish on the same data. Work files go to a temp dir (WORK, or
# mktemp), removed after unless WORK was given.
set -euo pipefail
cd "$(dirname "$0")/.."
commits=${1:-1000} series=${2:-60} reps=${3:-5}
asv=${ASV:-$(command -v asv || true)}
if [ -n "${WORK:-}" ]; then
  work=$WORK
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

# SB and SYNTH: binaries to use instead of building (e.g. copies, so a
# rebuild meanwhile does not change what is measured).
if [ -z "${SB:-}" ]; then
  cargo build --quiet --release -p syncbench --example synth_results
fi
sb=${SB:-target/release/syncbench}
synth=${SYNTH:-target/release/examples/synth_results}
"$synth" "$work/results.sqlite" "$commits" "$series" "$reps"

timed() { # label, command...
  local t0 t1
  t0=$(date +%s.%N)
  "${@:2}" >/dev/null 2>&1
  t1=$(date +%s.%N)
  printf '%-28s %6.2f s\n' "$1" "$(python3 -c "print($t1 - $t0)")"
}
timed "syncbench report (cold)" "$sb" report --db "$work/results.sqlite" --out "$work/site"
timed "syncbench report (again)" "$sb" report --db "$work/results.sqlite" --out "$work/site"
"$synth" "$work/results.sqlite" "$((commits + 1))" "$series" "$reps" "$commits"
timed "syncbench report (+1 commit)" "$sb" report --db "$work/results.sqlite" --out "$work/site"
printf '%-28s %6s\n' "syncbench site size" "$(du -sh --apparent-size --exclude=.cache "$work/site" | cut -f1)"
printf '%-28s %6s\n' "  its .cache (not published)" "$(du -sh --apparent-size "$work/site/.cache" | cut -f1)"
printf '%-28s %6s\n' "largest page" "$(find "$work/site" -name '*.html' -printf '%s %p\n' | sort -n | tail -1 | awk '{printf "%.0f KB", $1/1000}')"

if [ -n "$asv" ]; then
  python3 ci/asv_compare.py "$work/asv" "$commits" "$series" "$reps" >/dev/null
  (cd "$work/asv" && timed "asv publish" "$asv" publish)
  printf '%-28s %6s\n' "asv html size" "$(du -sh --apparent-size "$work/asv/html" | cut -f1)"
else
  echo "asv not installed: pip install asv (or set ASV) to compare"
fi
