#!/usr/bin/env bash
# The test job, for any CI: formatting, lints, all tests and the demo.
# Same as .ci/run (the project's CI contract), which holds the steps.
set -euo pipefail
exec bash "$(dirname "$0")/../.ci/run"
