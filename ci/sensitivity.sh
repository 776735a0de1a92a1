#!/usr/bin/env bash
# Measures how well `syncbench history` + `regressions` find CPU-time steps
# on this machine, and how many false change points it reports where there
# is no change. Builds throwaway git repositories of a small C program in a
# temp dir; nothing in this repository is touched.
#
#   bash ci/sensitivity.sh [STEP_PERCENT…]     (default: 2 5 10 20)
#   SYNCBENCH_PIN_CPU=1 bash ci/sensitivity.sh  (commands pinned to CPU 1)
#   METRIC=command.instructions bash ci/sensitivity.sh   (counted under valgrind,
#                                                 with a 1% threshold)
#
# Prints, per step size, whether the change point landed on the right
# commit, and the false change points over 30 commits without a change.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p syncbench
sb=$PWD/target/release/syncbench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
steps=${*:-2 5 10 20}
metric=${METRIC:-command.cpu_user}
# About 0.2-0.3 s a run: well above the 4-10 ms granularity of CPU
# accounting; under valgrind (50x slower) a smaller loop does.
base=600000000
extra=""
if [ "$metric" = command.instructions ]; then
  base=20000000
  extra=$'instructions = true\n[thresholds]\ninstructions = 0.01'
fi

make_repo() { # DIR COMMITS STEP_AT STEP_PERCENT
  local dir=$1 n=$2 at=$3 pct=$4
  git init -q -b main "$dir"
  mkdir -p "$dir/scenarios"
  cat > "$dir/scenarios/loop.toml" <<TOML
name = "loop"
kind = "command"
build = "cc -O2 -o prog prog.c"
run = "./prog"
repetitions = 5
warmup = 1
timeout = "60s"
$extra
TOML
  for i in $(seq 0 $((n - 1))); do
    local it=$base
    [ "$i" -ge "$at" ] && it=$((base + base * pct / 100))
    printf '#include <stdio.h>\nint main(void){volatile unsigned long x=0;for(unsigned long i=0;i<%sUL;i++)x+=i;printf("%%lu\\n",(unsigned long)x);return 0;}\n' "$it" > "$dir/prog.c"
    echo "$i" > "$dir/n"
    git -C "$dir" add -A
    git -C "$dir" -c user.name=s -c user.email=s@s commit -qm "commit $i"
  done
}

count() { # DIR -> change points of $metric, as "index:pct" lines
  local dir=$1
  "$sb" --repo "$dir" history loop -n 100 --db "$dir/r.sqlite" --cache-dir "$dir/.cache" \
    ${SYNCBENCH_PIN_CPU:+--pin-cpu "$SYNCBENCH_PIN_CPU"} >/dev/null 2>&1 || true
  "$sb" --repo "$dir" regressions --json --db "$dir/r.sqlite" \
    | python3 -c '
import json, subprocess, sys
shas = subprocess.check_output(["git", "-C", sys.argv[1], "rev-list", "--reverse", "HEAD"], text=True).split()
for c in json.load(sys.stdin):
    if c["metric"] == sys.argv[2]:
        print("%d:%+.1f%%" % (shas.index(c["commit"]), c["change_pct"]))' "$dir" "$metric"
}

echo "== no change, 30 commits"
make_repo "$work/flat" 30 999 0
false_points=$(count "$work/flat")
echo "false change points ($metric): $(echo -n "$false_points" | grep -c . || true) ${false_points//$'\n'/ }"

for pct in $steps; do
  make_repo "$work/step$pct" 20 10 "$pct"
  found=$(count "$work/step$pct")
  verdict="missed"
  grep -q '^10:' <<<"$found" && verdict="found at commit 10"
  echo "== step of +$pct% at commit 10 of 20: $verdict; change points: ${found//$'\n'/ }"
done
