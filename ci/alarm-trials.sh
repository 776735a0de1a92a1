#!/usr/bin/env bash
# Do `history --confirm` + `regressions` name real changes at their exact
# commits and raise no false alarm, measured with time and memory only (no
# instruction counts)? Issue 16's goal, on throwaway histories:
#
#   steps: 35 commits of a CPU-bound command (~0.3 s): +10% work at commit
#          8, a broken build at 15 (fixed at 16), -20% work at 22, 96 MiB
#          more memory held at 28; README edits between.
#   quiet: 50 commits of README edits only: every alarm is a false one.
#
# Each run measures the whole history into a fresh database (5 repetitions
# per commit), confirms every change point of a noisy metric, and scores
# `regressions --json` (the alarms: confirmed changes and exact counts).
# Prints one line per run and exits 1 unless every run was right.
#
#   bash ci/alarm-trials.sh [steps|quiet] [RUNS]     # default: steps 5
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-steps}
runs=${2:-5}
cargo build --quiet --release -p syncbench
sb=$PWD/target/release/syncbench
work=$(mktemp -d "${TMPDIR:-/tmp}/alarms.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
repo=$work/repo
mkdir -p "$repo/scenarios"
cd "$repo"
git init -q -b main
git config user.email t@example.org
git config user.name t
cat >scenarios/burn.toml <<'TOML'
name = "burn"
kind = "command"
build = "cc -O2 -o prog prog.c"
run = "./prog"
repetitions = 5
warmup = 1
timeout = "60s"
TOML
program() { # work (millions of iterations), ballast (MiB), broken?
  cat >prog.c <<C
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    size_t mib = $2;
    char *ballast = mib ? malloc(mib << 20) : 0;
    if (ballast) memset(ballast, 1, mib << 20);
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < $1 * 1000000UL; i++) x += i * 2654435761UL;
    printf("%lu %d\n", (unsigned long)x, ballast ? ballast[mib] : 0);
    return 0;
}
$3
C
}
n=0
commit() { n=$((n + 1)); git add -A; git commit -qm "$1"; shas[n]=$(git rev-parse HEAD); }
untouched() { echo "note $n" >>README.md; commit "README: note $n"; }
declare -A expect=()
work_m=1000 ballast=0
program $work_m $ballast ""; commit "the program"
if [ "$kind" = steps ]; then
  total=35
  while [ $n -lt $total ]; do
    case $((n + 1)) in
      8) work_m=1100; program $work_m $ballast ""; commit "10% more work"; expect[${shas[n]}]=regression:cpu ;;
      15) program $work_m $ballast "this does not compile"; commit "broken build" ;;
      16) program $work_m $ballast ""; commit "fix the build" ;;
      22) work_m=880; program $work_m $ballast ""; commit "20% less work"; expect[${shas[n]}]=improvement:cpu ;;
      28) ballast=96; program $work_m $ballast ""; commit "hold 96 MiB"; expect[${shas[n]}]=regression:peak_rss ;;
      *) untouched ;;
    esac
  done
else
  total=50
  while [ $n -lt $total ]; do untouched; done
fi
echo "$kind: $n commits; expected changes: ${#expect[@]}" >&2

ok_runs=0
for run in $(seq 1 "$runs"); do
  db=$work/r$run.sqlite
  start=$SECONDS
  "$sb" --db "$db" history -n "$total" burn --confirm --cache-dir "$work/cache" >"$work/log$run" 2>&1 || true
  [ -n "${VERBOSE:-}" ] && tail -30 "$work/log$run"
  secs=$((SECONDS - start))
  "$sb" --db "$db" regressions --json >"$work/alarms$run.json"
  "$sb" --db "$db" regressions --all >"$work/all$run.txt" || true
  verdict=$(python3 - "$work/alarms$run.json" "${!expect[@]}" -- "${expect[@]}" <<'PY'
import json, sys
args = sys.argv[2:]
split = args.index("--")
expect = dict(zip(args[:split], args[split + 1:]))
alarms = json.load(open(sys.argv[1]))
found, false = set(), []
for a in alarms:
    want = expect.get(a["commit"])
    if want is None:
        false.append(f'{a["commit"][:8]} {a["metric"]} {a["change_pct"]:+.1f}%')
        continue
    direction, metric = want.split(":")
    if a["direction"] == direction and (metric in a["metric"] or (metric == "cpu" and a["metric"] in ("wall", "command.cpu_user"))):
        found.add(a["commit"])
missed = [f"{c[:8]} {w}" for c, w in expect.items() if c not in found]
right = not missed and not false
print(("RIGHT" if right else "WRONG") + f": {len(found)}/{len(expect)} found, {len(false)} false alarm(s)"
      + (f"; missed {missed}" if missed else "") + (f"; false {false}" if false else ""))
PY
)
  case $verdict in RIGHT*) ok_runs=$((ok_runs + 1)) ;; esac
  confirmed=$(grep -c "^[0-9a-f]\{12\} confirmed" "$work/log$run" || true)
  refuted=$(grep -c "^[0-9a-f]\{12\} refuted" "$work/log$run" || true)
  inconclusive=$(grep -c "^[0-9a-f]\{12\} inconclusive" "$work/log$run" || true)
  echo "run $run: $verdict  (${secs} s; confirmations: $confirmed confirmed, $refuted refuted, $inconclusive inconclusive)"
  [ -n "${VERBOSE:-}" ] && cat "$work/all$run.txt"
done
echo "$kind: $ok_runs of $runs runs right"
[ "$ok_runs" -eq "$runs" ]
