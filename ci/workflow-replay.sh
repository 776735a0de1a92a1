#!/usr/bin/env bash
# Runs .github/workflows/bench.yml here, end to end, as GitHub would
# (ci/replay/: what it emulates and what not is in ci/replay/README.md):
#
#   1. the expression evaluator's own cases (ci/replay/expr.py),
#   2. the data branch's faults (ci/replay/test_db.py): damaged or
#      foreign downloads, a branch rewritten between restore and save, a
#      refused push, a shrinking history, pruning to the size budget,
#   3. the replay (ci/replay/e2e.py): a test repository made from this
#      tree with one fast command scenario, served over HTTP by a remote
#      that requires a token; three pushes to main (bench, save, pages),
#      a pull request 3% slower (the gate fails, one comment) and a
#      second push to it (the comment updated), then three faults: a save
#      that may not write (refused clearly, results kept as the
#      artifact), a truncated data branch (restore fails before measuring)
#      and a branch rewritten between restore and save (refused).
#
#   bash ci/workflow-replay.sh [--verbose] [--keep] [--replace PATH=FILE]… [--skip-faults]
#
# About 5 minutes the first time here (the release build of syncbench
# takes 3.7), about a minute after: like GitHub's cache, the rust-cache
# stand-in keeps target/ between runs, in SYNCBENCH_REPLAY_ROOT (default
# ${XDG_CACHE_HOME:-~/.cache}/syncbench-workflow-replay; delete it to
# start cold). SYNCBENCH_REPLAY_CARGO_LOCK=FILE runs every cargo of the
# replayed jobs under `flock FILE`. Exit 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
# The first Python with PyYAML: python3 on the PATH (it may be another
# install than Debian's, e.g. pyenv), else Debian's own, where
# python3-yaml (ci/deps.sh) puts it.
py=
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import yaml' 2>/dev/null; then py=$p; break; fi
done
[ -n "$py" ] || missing+=("PyYAML (python3-yaml)")
[ -x /usr/lib/git-core/git-http-backend ] || missing+=("git-http-backend (git)")
command -v cc >/dev/null || missing+=("a C compiler (gcc)")
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "ci/workflow-replay.sh: missing ${missing[*]}: bash ci/deps.sh installs them" >&2
  exit 1
fi
echo "== expressions"
"$py" -c 'import sys; sys.path.insert(0, "ci/replay"); import expr; print(f"expressions: {expr.self_test()} passed, 0 failed")'
echo "== data branch faults"
"$py" ci/replay/test_db.py
echo "== replay of .github/workflows/bench.yml"
"$py" ci/replay/e2e.py "$@"
