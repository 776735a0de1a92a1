#!/usr/bin/env bash
# The tests (README's test command): installs the Debian packages they
# use where missing (ci/deps.sh), then runs every test of the workspace.
# Extra arguments go to cargo test (e.g. `bash ci/test.sh -p syncbench`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/deps.sh
if [ $# -eq 0 ]; then set -- --workspace; fi
# A results database or machine tag of the user's shell never reaches the tests.
exec env -u SYNCBENCH_DB -u SYNCBENCH_MACHINE_TAG cargo test "$@"
