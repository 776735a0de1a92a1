#!/usr/bin/env bash
# Keeps the results database between CI runs on a data branch of this
# repository (default `syncbench-data`), so history survives every job.
# The branch holds one commit without parents, replaced by every save:
# the database compressed with xz, a manifest and a README (the logic,
# and what each step checks, is in ci/db.py). Works on any CI.
#
#   bash ci/db.sh restore [DB]   # the branch's database into DB (default .syncbench/results.sqlite),
#                                # checked first; no branch yet: start empty. Writes DB.lease
#   bash ci/db.sh save [DB]      # DB onto the branch: one new commit, force-pushed with a lease
#                                # on the tip restore saw (DB.lease), with this clone's credentials
#
# restore needs read access to the remote, or a full clone (fetch-depth 0:
# every branch was fetched with it); save needs push access from this
# clone (actions/checkout's persisted credentials, in the save job only).
# A damaged, truncated or foreign download fails restore; save refuses a
# branch rewritten since restore, a database with fewer runs than the copy
# it replaces, and a refused push, each with a message saying what to do.
# Raw samples (CPU/RSS curves) of the oldest runs are pruned to keep the
# file under the budget; results never are.
#
# Env: SYNCBENCH_DATA_BRANCH (default syncbench-data), SYNCBENCH_REMOTE (default origin),
#      SYNCBENCH_DATA_BUDGET_MB (default 90), SYNCBENCH_DATA_XZ_PRESET (default 6),
#      SYNCBENCH_DATA_ALLOW_SHRINK=1 (save a smaller history over a larger one, on purpose).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 ci/db.py "$@"
