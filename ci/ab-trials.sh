#!/usr/bin/env bash
# How well `compare --run` tells a 3% CPU slowdown from no change on this
# machine: a throwaway repository with commits A, A2 (same code) and B (3%
# more work), then TRIALS trials of each of
#   interleaved, wall time              (A vs A2, A vs B)
#   unpaired 10 + 10 repetitions, wall  (the usual way, for comparison)
#   interleaved, instruction counts     (valgrind)
# Prints, per mode and pair of commits: verdict counts, median pairs and
# median seconds per trial.
#
#   bash ci/ab-trials.sh [TRIALS]        # default 20
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-20}
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
run = "./prog {n}"
repetitions = 5
warmup = 1
timeout = "120s"
[params]
n = [60000000, 3000000]
TOML
program() { # percent of the base work
  cat >prog.c <<C
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    unsigned long n = strtoul(argv[1], 0, 10) / 100 * $1;
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < n; i++) x += i * 2654435761UL;
    printf("%lu\n", (unsigned long)x);
    return 0;
}
C
}
program 100; git add -A; git commit -qm A; a=$(git rev-parse HEAD)
echo "/* same code */" >>prog.c; git commit -qam A2; a2=$(git rev-parse HEAD)
program 103; git commit -qam "B: 3% more work"; b=$(git rev-parse HEAD)

trial() { # label base new args...
  local label=$1 base=$2 new=$3
  shift 3
  for i in $(seq 1 "$trials"); do
    { "$sb" compare "$base" "$new" loop --run --json --db "$work/r.sqlite" --cache-dir "$work/cache" "$@" 2>/dev/null || true; } \
      | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(r["verdict"], r["pairs"], r["seconds"])' || echo "error 0 0"
  done | python3 -c '
import sys, statistics, collections
rows = [l.split() for l in sys.stdin if l.strip()]
counts = collections.Counter(r[0] for r in rows)
pairs = statistics.median(int(r[1]) for r in rows)
secs = statistics.median(float(r[2]) for r in rows)
print(f"'"$label"': {dict(counts)}  median pairs {pairs}  median {secs:.1f} s per trial")'
}
trial "interleaved wall, A vs A2" "$a" "$a2" --filter n=60000000 --max-pairs 40 --budget 60s
trial "interleaved wall, A vs B " "$a" "$b" --filter n=60000000 --max-pairs 40 --budget 60s
trial "unpaired 10+10 wall, A vs A2" "$a" "$a2" --filter n=60000000 --unpaired 10
trial "unpaired 10+10 wall, A vs B " "$a" "$b" --filter n=60000000 --unpaired 10
trial "interleaved instructions, A vs A2" "$a" "$a2" --filter n=3000000 --metric command.instructions
trial "interleaved instructions, A vs B " "$a" "$b" --filter n=3000000 --metric command.instructions
