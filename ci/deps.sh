#!/usr/bin/env bash
# Installs the Debian packages the tests use, where missing: GNU time,
# python3, valgrind and a C compiler (the harness's tests), Chromium and
# ChromeDriver (the dashboard's browser test), nginx (the load-balancer
# test), PostgreSQL (the PostgreSQL store's and the job queue's tests,
# which start servers of their own in temp dirs), and for the workflow
# replay (ci/workflow-replay.sh) PyYAML, pip (it installs the workflow
# linter, zizmor, from PyPI: ci/lint-workflows.sh), git's HTTP backend and
# curl. Needs root (or sudo) only when something is missing; without
# either it names the packages, and the tests that need them skip.
set -euo pipefail
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v cc >/dev/null || missing+=(gcc)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# The replay takes Debian's Python when python3 on the PATH has no PyYAML.
{ python3 -c 'import yaml' || /usr/bin/python3 -c 'import yaml'; } 2>/dev/null || missing+=(python3-yaml)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
[ -x /usr/lib/git-core/git-http-backend ] || missing+=(git)
command -v curl >/dev/null || missing+=(curl)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "== installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
    # Without the rights to install, the tests that need these skip and
    # say so; CI (root) must have them.
    echo "ci/deps.sh: missing ${missing[*]}; to run every test: sudo apt-get install ${missing[*]}" >&2
    [ -z "${CI:-}" ] || exit 1
    exit 0
  fi
  sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${missing[@]}"
