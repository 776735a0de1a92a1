#!/usr/bin/env bash
# The benchmark job, for any CI: measure this commit with the default suite,
# then check it against the baseline and write a Markdown summary.
#
#   bash ci/bench.sh [BASELINE]          # default: main
#   SYNCBENCH_MODE=ab bash ci/bench.sh origin/main   # pull requests
#
# The default mode measures this commit and compares it with the stored
# history (what main's pushes do, so every commit gets its point). The
# `ab` mode builds the baseline and this commit side by side and measures
# them alternately in this job (`syncbench check --run`): drift of a
# shared runner hits both alike, and pairs are added only while the
# answer is uncertain.
#
# Env: SYNCBENCH_DB (default .syncbench/results.sqlite; a postgres:// URL
#        for a shared database, passed in the environment so `ps` never
#        shows its password),
#      SYNCBENCH_MACHINE_TAG (optional: this runner's tag; the gate then
#        judges the results of the machines with this tag only),
#      SYNCBENCH_SUMMARY (default $GITHUB_STEP_SUMMARY, else syncbench-summary.md),
#      SYNCBENCH_COMMENT_DIR (optional: where to leave the pull request's
#        comment for `syncbench comment`, as data only: body.md, and
#        `flagged` when the gate failed. Never a program: the job that
#        posts it holds a write token and builds syncbench from the base
#        branch).
# Exit status: 1 when `syncbench check` finds a regression or a run failed.
# Restore the database first (ci/db.sh restore) so there is history to compare with.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=${1:-main}
export SYNCBENCH_DB=${SYNCBENCH_DB:-.syncbench/results.sqlite}
summary=${SYNCBENCH_SUMMARY:-${GITHUB_STEP_SUMMARY:-syncbench-summary.md}}

# --features github: the same build as the comment job's (HTTPS for
# GitHub's API), so the two share one cache.
cargo build --release -p syncbench --features github
sb=target/release/syncbench
comment_dir=${SYNCBENCH_COMMENT_DIR:-}
# The comment: the same Markdown as the summary, and `flagged` when the
# gate failed (ci's comment job posts it with a syncbench of its own).
leave_comment() { # body file, status
  [ -n "$comment_dir" ] || return 0
  mkdir -p "$comment_dir"
  cp "$1" "$comment_dir/body.md"
  if [ "$2" -ne 0 ]; then touch "$comment_dir/flagged"; else rm -f "$comment_dir/flagged"; fi
}
# The baseline must be known locally for its first-parent history.
git rev-parse --verify --quiet "$baseline" >/dev/null || git fetch --quiet origin "$baseline:$baseline" || true

status=0
if [ "${SYNCBENCH_MODE:-history}" = ab ]; then
  out=$(mktemp) body=$(mktemp)
  "$sb" check --run --baseline "$baseline" --budget 90s | tee "$out" || status=$?
  {
    echo "### syncbench: $(git rev-parse --short HEAD) against $baseline, measured alternately"
    echo '```'
    cat "$out"
    echo '```'
  } >"$body"
  cat "$body" >>"$summary"
  leave_comment "$body" "$status"
  exit "$status"
fi
# `run` exits 1 on a failed run and also on a regression it has not
# confirmed (one noisy sample of a shared runner); the gate on a
# regression is `check` below, which measures a noisy one again first.
# So only a failed run (or an error, or an interruption) counts here.
run_err=$(mktemp)
rc=0
"$sb" run --baseline "$baseline" 2>"$run_err" || rc=$?
cat "$run_err" >&2
if [ "$rc" -ne 0 ] && ! { [ "$rc" -eq 1 ] && grep -q '^syncbench: .* recorded in .* (0 failed, ' "$run_err"; }; then
  status=$rc
fi
rm -f "$run_err"
# A branch or pull request is checked against its merge base with the
# baseline: measure it if the restored database lacks it (a no-op when it
# has it), so the gate never compares with nothing.
mb=$(git merge-base HEAD "$baseline" 2>/dev/null || true)
if [ -n "$mb" ] && [ "$mb" != "$(git rev-parse HEAD)" ]; then
  "$sb" history "$mb" || status=$?
fi
# check writes the summary and fails on a regression against the baseline
# (a noisy metric's regression is measured again, interleaved, first).
machine=()
[ -z "${SYNCBENCH_MACHINE_TAG:-}" ] || machine=(--machine-tag "$SYNCBENCH_MACHINE_TAG")
"$sb" check --baseline "$baseline" --summary "$summary" "${machine[@]}" || status=$?
# The dashboard (uploaded as the `dashboard` artifact), with the page
# comparing the commit the baseline points at with this one, when both
# were measured; linked from the summary.
site=target/syncbench-report
if page=$("$sb" report --out "$site" --compare "$baseline..HEAD" 2>/dev/null | head -1); then
  printf '\nDashboard: `%s` (artifact `dashboard`), comparison: `%s`\n' "$site/index.html" "${page#"$PWD"/}" >>"$summary"
else
  "$sb" report --out "$site" >/dev/null
  printf '\nDashboard: `%s` (artifact `dashboard`)\n' "$site/index.html" >>"$summary"
fi
exit "$status"
