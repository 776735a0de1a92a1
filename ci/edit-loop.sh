#!/bin/bash
# The edit-and-test loop: a real edit to one function (a black_box call
# added or removed at the top of FILE's function FN), then `cargo test -p
# CRATE` until its whole suite has passed. Prints each run's seconds.
# usage: ci/edit-loop.sh DIR FILE FN CRATE [N]
# e.g. ci/edit-loop.sh . harness/analysis/src/changepoint.rs search syncbench-analysis 3
set -euo pipefail
dir=$1 file=$2 fn=$3 crate=$4 n=${5:-3}
cd "$dir"
cargo test -q -p "$crate" >/dev/null 2>&1 || true   # warm
for i in $(seq "$n"); do
  python3 - "$file" "$fn" <<'PY'
import re,sys
p,fn=sys.argv[1],sys.argv[2]; s=open(p).read()
mark='    std::hint::black_box(()); // edit-loop\n'
if mark in s: s=s.replace(mark,'',1)
else:
    m=re.search(r'\nfn '+fn+r'\b[^{]*\{\n|\npub fn '+fn+r'\b[^{]*\{\n',s)
    s=s[:m.end()]+mark+s[m.end():]
open(p,'w').write(s)
PY
  start=$(date +%s.%N)
  cargo test -q -p "$crate" >/tmp/edit-loop.out 2>&1 || { echo "tests failed"; tail -20 /tmp/edit-loop.out; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print(f'{$end-$start:.1f}')"
done
# leave the file as it was
python3 - "$file" <<'PY'
import sys; p=sys.argv[1]; s=open(p).read(); open(p,'w').write(s.replace('    std::hint::black_box(()); // edit-loop\n','',1))
PY
