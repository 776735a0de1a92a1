#!/usr/bin/env bash
# How well `compare --run` tells a 3% slowdown from no change on this
# machine: a throwaway repository with commits A, A2 (same code) and B (3%
# more work), then TRIALS trials each of A vs A2 and A vs B, interleaved,
# with the defaults (a 10-minute budget per point, nothing else bounds it).
# Two workloads that differ:
#   cpu:    an arithmetic loop, ~70 ms
#   memory: random reads over 64 MiB (cache and TLB misses), ~35 ms
# With OLD_SB=PATH (a syncbench built before the confidence sequence, e.g.
# at 042648f) the same trials run with it too, at its defaults (a sign
# test at 1 - 0.05/40 per look, at most 40 pairs), side by side.
# With UNPAIRED=1, also the usual 10 + 10 repetitions judged by Mann-Whitney;
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
/* Random reads over 64 MiB: each load misses the caches and the TLB. */
int main(void) {
    size_t n = (64u << 20) / sizeof(unsigned), steps = 2400000UL / 100 * $1;
    unsigned *next = malloc(n * sizeof *next);
    for (size_t i = 0; i < n; i++) next[i] = (unsigned)((i * 2654435761UL + 12345) % n);
    unsigned at = 0;
    for (size_t i = 0; i < steps; i++) at = next[at];
    printf("%u\n", at);
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
"$sb" run loop --db "$work/probe.sqlite" --json 2>/dev/null \
  | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; w=[m for m in r["metrics"] if m["metric"]=="wall"][0]; print(f"'"$workload"' workload: wall {w["median"]*1000:.1f} ms, CV {w["cv"]*100:.1f}%")'

trial() { # label binary base new args...
  local label=$1 bin=$2 base=$3 new=$4
  shift 4
  for i in $(seq 1 "$trials"); do
    { "$bin" compare "$base" "$new" loop --run --json --db "$work/r.sqlite" --cache-dir "$work/cache" "$@" 2>/dev/null || true; } \
      | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(r["verdict"], r["pairs"], r["seconds"])' || echo "error 0 0"
  done | python3 -c '
import sys, statistics, collections
rows = [l.split() for l in sys.stdin if l.strip()]
counts = collections.Counter(r[0] for r in rows)
pairs = statistics.median(int(r[1]) for r in rows)
secs = statistics.median(float(r[2]) for r in rows)
print(f"'"$label"': {dict(counts)}  median pairs {pairs}  median {secs:.1f} s per trial")'
}
trial "confidence sequence, A vs A2" "$sb" "$a" "$a2"
trial "confidence sequence, A vs B " "$sb" "$a" "$b"
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
