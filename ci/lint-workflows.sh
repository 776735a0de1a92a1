#!/usr/bin/env bash
# Lints the GitHub workflows (.github/workflows/) with zizmor, which
# knows GitHub Actions' security rules: template injection in `run:`,
# actions not pinned to a commit, credentials a checkout leaves in the
# clone (artipacked), excessive permissions, dangerous triggers, cache
# poisoning, and more. Offline: nothing is asked of GitHub.
#
#   bash ci/lint-workflows.sh          # exit 1 on any finding
#
# zizmor comes from PyPI, pinned, installed on first use into
# ${XDG_CACHE_HOME:-~/.cache}/syncbench-ci/zizmor-VERSION (pip --target;
# nothing system-wide). The default persona must report nothing. The
# auditor persona (`--persona=auditor`) also lists what stays on purpose:
# the save job's checkout keeps its credentials (persist-credentials:
# true: it pushes the data branch, and runs nothing measured), and the
# SYNCBENCH_DB secret is not in a deployment environment (pushes only).
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.33.1
dir=${XDG_CACHE_HOME:-$HOME/.cache}/syncbench-ci/zizmor-$version
zizmor=$dir/bin/zizmor
if [ ! -x "$zizmor" ]; then
  echo "== installing zizmor $version from PyPI into $dir"
  rm -rf "$dir.tmp"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$dir.tmp" "zizmor==$version"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
fi
"$zizmor" --version
"$zizmor" --offline --no-progress .github/workflows/
