#!/usr/bin/env bash
# How well `compare --run` tells a 3% slowdown from no change on this
# machine: a throwaway repository with commits A, A2 (same code) and B (3%
# more work), then TRIALS trials each of A vs A2 and A vs B, interleaved,
# with the defaults (a 10-minute budget per point, nothing else bounds it).
# Two workloads that differ:
#   cpu:    an arithmetic loop, ~70 ms
#   memory: 64 MiB touched, then dependent random reads over it (cache
#           and TLB misses), ~35 ms
# With OLD_SB=PATH (a syncbench built before the confidence sequence, e.g.
# at 042648f) the same trials run with it too, at its defaults (a sign
# test at 1 - 0.05/40 per look, at most 40 pairs), side by side.
# SKIP_NEW=1 leaves the current method out. With UNPAIRED=1, also the usual 10 + 10 repetitions judged by Mann-Whitney;
# with INSTRUCTIONS=1, also by instruction counts (valgrind).
# Prints, per method and pair of commits: verdict counts, median pairs and
# median seconds per trial.
#
#   bash ci/ab-trials.sh [TRIALS] [cpu|memory]       # default: 20 cpu
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-20}
workload=${2:-cpu}
cargo build --quiet --release -p syncbench
sb=$PWD/target/release/syncbench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
repo=$work/repo
mkdir -p "$repo/scenarios"
cd "$repo"
git init -q -b main
git config user.email t@example.org
git config user.name t
cat >scenarios/loop.toml <<'TOML'
name = "loop"
kind = "command"
build = "cc -O2 -o prog prog.c"
run = "./prog"
repetitions = 5
warmup = 1
timeout = "120s"
TOML
program() { # percent of the base work
  if [ "$workload" = memory ]; then
    cat >prog.c <<C
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* Memory-bound: 64 MiB touched (more by the same share for B), then
   random reads over it, each address depending on the byte read before
   (latency-bound: cache and TLB misses). */
int main(void) {
    size_t span = 64u << 20, bytes = span / 100 * $1, steps = 60000UL / 100 * $1;
    unsigned char *arr = malloc(bytes);
    memset(arr, 1, bytes);
    unsigned long h = 0;
    size_t at = 0;
    for (size_t i = 0; i < steps; i++) {
        h = (h ^ arr[at]) * 0x9E3779B97F4A7C15UL;
        at = (h >> 20) & (span - 1);
    }
    printf("%lu\n", h);
    return 0;
}
C
  else
    cat >prog.c <<C
#include <stdio.h>
int main(void) {
    unsigned long n = 270000000UL / 100 * $1;
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < n; i++) x += i * 2654435761UL;
    printf("%lu\n", (unsigned long)x);
    return 0;
}
C
  fi
}
program 100; git add -A; git commit -qm A; a=$(git rev-parse HEAD)
echo "/* same code */" >>prog.c; git commit -qam A2; a2=$(git rev-parse HEAD)
program 103; git commit -qam "B: 3% more work"; b=$(git rev-parse HEAD)
"$sb" run loop --db "$work/probe.sqlite" --json 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)["results"][0]
w = [m for m in r["metrics"] if m["metric"] == "wall"][0]
print("'"$workload"' workload: wall %.1f ms, CV %.1f%%" % (w["median"] * 1000, w["cv"] * 100))'

trial() { # label binary base new args...
  local label=$1 bin=$2 base=$3 new=$4
  shift 4
  for i in $(seq 1 "$trials"); do
    # A database per binary: an older syncbench refuses a newer schema.
    { "$bin" compare "$base" "$new" loop --run --json --db "$work/r-$(echo "$bin" | cksum | cut -d' ' -f1).sqlite" --cache-dir "$work/cache" "$@" 2>/dev/null || true; } \
      | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(r["verdict"], r["pairs"], r["seconds"])' || echo "error 0 0"
  done | python3 -c '
import sys, statistics, collections
rows = [l.split() for l in sys.stdin if l.strip()]
counts = collections.Counter(r[0] for r in rows)
pairs = statistics.median(int(r[1]) for r in rows)
secs = statistics.median(float(r[2]) for r in rows)
print(f"'"$label"': {dict(counts)}  median pairs {pairs}  median {secs:.1f} s per trial")'
}
if [ -z "${SKIP_NEW:-}" ]; then
  trial "confidence sequence, A vs A2" "$sb" "$a" "$a2"
  trial "confidence sequence, A vs B " "$sb" "$a" "$b"
fi
if [ -n "${OLD_SB:-}" ]; then
  trial "sign test, 40-pair cap, A vs A2" "$OLD_SB" "$a" "$a2"
  trial "sign test, 40-pair cap, A vs B " "$OLD_SB" "$a" "$b"
fi
if [ -n "${UNPAIRED:-}" ]; then
  trial "unpaired 10+10, A vs A2" "$sb" "$a" "$a2" --unpaired 10
  trial "unpaired 10+10, A vs B " "$sb" "$a" "$b" --unpaired 10
fi
if [ -n "${INSTRUCTIONS:-}" ]; then # each repetition under valgrind: slow
  trial "instruction counts, A vs A2" "$sb" "$a" "$a2" --metric command.instructions
  trial "instruction counts, A vs B " "$sb" "$a" "$b" --metric command.instructions
fi
