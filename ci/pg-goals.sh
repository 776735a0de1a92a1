#!/usr/bin/env bash
# Measures the PostgreSQL store's and the job queue's goals (issue 17)
# against throwaway servers (harness/examples/pg_goals.rs): 4 workers
# draining 200 jobs with one SIGKILLed mid-job, idle enqueue-to-start
# latency, report/regressions of 1000 commits × 60 series from SQLite
# and PostgreSQL, merging 50 files twice, storing a large run.
# Needs PostgreSQL (bash ci/deps.sh). Prints what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p syncbench --bin syncbench --example pg_goals --example synth_results
ex=target/release/examples
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== queue: 200 jobs, 4 workers, one killed mid-job"
"$ex/pg_goals" queue 200 4
echo "== idle latency"
"$ex/pg_goals" latency 20
echo "== report and regressions, 1000 commits × 60 series × 5 repetitions"
"$ex/synth_results" "$work/synth.sqlite" 1000 60 5 >/dev/null
"$ex/pg_goals" report "$work/synth.sqlite" 5
echo "== merge: 50 files × 20 runs, twice"
"$ex/pg_goals" merge 50 20
echo "== storing a run of 100 metrics × 5 repetitions with samples"
"$ex/pg_goals" store 20
