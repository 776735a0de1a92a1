#!/usr/bin/env bash
# Keeps the results database between CI runs on a data branch of this
# repository (default `syncbench-data`), so history survives every job.
# Works on any CI with git push access for `save`; `restore` needs only read.
#
#   bash ci/db.sh restore [DB]   # fetch DB from the data branch (no branch yet: start empty)
#   bash ci/db.sh save [DB]      # commit DB to the data branch and push it
#
# Env: SYNCBENCH_DATA_BRANCH (default syncbench-data), SYNCBENCH_REMOTE (default origin).
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:?usage: ci/db.sh restore|save [DB]}
db=${2:-.syncbench/results.sqlite}
branch=${SYNCBENCH_DATA_BRANCH:-syncbench-data}
remote=${SYNCBENCH_REMOTE:-origin}

case "$action" in
  restore)
    mkdir -p "$(dirname "$db")"
    if git fetch --quiet --depth 1 "$remote" "$branch" 2>/dev/null; then
      git show FETCH_HEAD:results.sqlite > "$db"
      echo "ci/db.sh: restored $db from $remote/$branch"
    else
      echo "ci/db.sh: no $remote/$branch yet; starting with an empty database"
    fi
    ;;
  save)
    [ -f "$db" ] || { echo "ci/db.sh: $db does not exist" >&2; exit 1; }
    sqlite_copy=$(mktemp)
    # A consistent single-file copy (the database may be in WAL mode).
    python3 -c 'import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d); d.close()' "$db" "$sqlite_copy"
    tree=$(mktemp -d)
    trap 'rm -rf "$tree" "$sqlite_copy"' EXIT
    git init -q "$tree"
    if git -C "$tree" fetch --quiet --depth 1 "$(git remote get-url "$remote")" "$branch" 2>/dev/null; then
      git -C "$tree" checkout -q FETCH_HEAD
    fi
    git -C "$tree" checkout -q -B "$branch"
    cp "$sqlite_copy" "$tree/results.sqlite"
    git -C "$tree" add results.sqlite
    git -C "$tree" -c user.name="syncbench" -c user.email="syncbench@users.noreply.github.com" \
      commit -q -m "results for $(git rev-parse --short HEAD)" || { echo "ci/db.sh: nothing changed"; exit 0; }
    git -C "$tree" push --quiet "$(git remote get-url "$remote")" "$branch:$branch"
    echo "ci/db.sh: saved $db to $remote/$branch"
    ;;
  *) echo "usage: ci/db.sh restore|save [DB]" >&2; exit 2 ;;
esac
