#!/usr/bin/env bash
# How large the data branch gets, and how long save and restore take, for
# a synthetic history (harness/examples/synth_results.rs, as
# ci/report-speed.sh uses it): ci/db.sh save into a throwaway bare
# repository, restore into a fresh clone, and the same
# `syncbench regressions --json` from both databases.
#
#   bash ci/data-branch-size.sh [COMMITS SERIES REPS]     # default 10000 60 5
#
# Env: SYNCBENCH_DATA_BUDGET_MB, SYNCBENCH_DATA_XZ_PRESET as for ci/db.sh;
# SAMPLES_PER_RUN=N gives every run N CPU/RSS samples (synth_results
# gives only the newest 20 commits some), to see the pruning at work;
# SB and SYNTH: binaries to use instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
commits=${1:-10000} series=${2:-60} reps=${3:-5}
if [ -z "${SB:-}" ]; then
  cargo build --quiet --release -p syncbench --bin syncbench --example synth_results
fi
sb=$(realpath "${SB:-target/release/syncbench}")
synth=$(realpath "${SYNTH:-target/release/examples/synth_results}")
ci=$PWD/ci
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org
git init -q --bare -b main "$work/remote.git"
git init -q -b main "$work/a"
git -C "$work/a" commit -q --allow-empty -m init
git -C "$work/a" remote add origin "$work/remote.git"
git -C "$work/a" push -q origin main
mkdir -p "$work/a/ci"
cp "$ci/db.py" "$ci/db.sh" "$work/a/ci/"
seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$@"; }

(cd "$work/a" && bash ci/db.sh restore >/dev/null)
"$synth" "$work/a/.syncbench/results.sqlite" "$commits" "$series" "$reps" 2>/dev/null
if [ -n "${SAMPLES_PER_RUN:-}" ]; then
  python3 - "$work/a/.syncbench/results.sqlite" "$SAMPLES_PER_RUN" <<'PY'
import random, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
n = int(sys.argv[2])
rnd = random.Random(7)
runs = [r for (r,) in c.execute("SELECT id FROM runs WHERE id NOT IN (SELECT DISTINCT run_id FROM samples)")]
for run in runs:
    rss = 20_000_000
    rows = []
    for i in range(n):
        rss += rnd.randrange(-50_000, 150_000)
        rows.append((run, "server" if i % 2 else "driver", i // 2 * 50.0, round(rnd.uniform(0, 100), 1), rss))
    c.executemany("INSERT INTO samples (run_id, repetition, process, t_ms, cpu_pct, rss_bytes) VALUES (?, 0, ?, ?, ?, ?)", rows)
c.commit()
print(f"added {n} samples to each of {len(runs)} runs")
PY
fi
echo "history: $commits commits x $series series x $reps repetitions, $(du -m "$work/a/.syncbench/results.sqlite" | cut -f1) MB of SQLite"
t0=$(date +%s.%N)
(cd "$work/a" && bash ci/db.sh save)
t1=$(date +%s.%N)
echo "save: $(seconds "$t0" "$t1") s"
size=$(git --git-dir="$work/remote.git" cat-file -s syncbench-data:results.sqlite.xz)
echo "data branch: $(python3 -c "print(f'{$size / 1e6:.1f}')" ) MB (results.sqlite.xz), $(git --git-dir="$work/remote.git" rev-list --count syncbench-data) commit"

git clone -q "$work/remote.git" "$work/b"
mkdir -p "$work/b/ci"
cp "$ci/db.py" "$ci/db.sh" "$work/b/ci/"
t0=$(date +%s.%N)
(cd "$work/b" && bash ci/db.sh restore)
t1=$(date +%s.%N)
echo "restore: $(seconds "$t0" "$t1") s"
for all in "" --all; do
  "$sb" regressions $all --json --db "$work/a/.syncbench/results.sqlite" >"$work/before.json"
  "$sb" regressions $all --json --db "$work/b/.syncbench/results.sqlite" >"$work/after.json"
  n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$work/after.json")
  if cmp -s "$work/before.json" "$work/after.json"; then
    echo "regressions $all --json: the same before save and after restore ($n entries)"
  else
    echo "regressions $all --json differs after restore" >&2
    diff <(head -c 2000 "$work/before.json") <(head -c 2000 "$work/after.json") >&2 || true
    exit 1
  fi
done
