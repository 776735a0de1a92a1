#!/usr/bin/env bash
# Issue 31's test of variants over history: five commits of a clone of
# this repository, a scenario with two variants (default, mimalloc), and
# at commit 3 a step injected into one variant's build only (1 ms of work
# per document stored by put_many, under the client's `mimalloc` feature). `history -n 5
# --variant all` must find the step in that variant's series and in no
# other. Everything under $W (default /tmp/variant-step); dev builds
# (--cargo-profile dev) to keep the ten builds short.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
SB=${SB:-$here/target/release/syncbench}
W=${W:-/tmp/variant-step}
rm -rf "$W/repo"
mkdir -p "$W"
git clone -q "$here" "$W/repo"
cd "$W/repo"
git config user.email step@example.com
git config user.name step
cat > scenarios/vstep.toml <<'TOML'
name = "vstep"
kind = "sync"
workload = "docs"
prometheus = "{services}/metrics"
repetitions = 5
warmup = 1
timeout = "300s"
default = false
params = { docs = 200, size = "10KiB" }
[variants.mimalloc]
features = ["server/mimalloc", "client/mimalloc"]
TOML
git add -A && git commit -qm "step 1: the vstep scenario"
for i in 2 3 4 5; do
    if [ "$i" = 3 ]; then
        python3 - <<'PY'
p = "crates/client/src/lib.rs"
s = open(p).read()
# put_many: the driver's put phase stores its documents through it.
a = "        for (id, plaintext) in docs {\n            store::write_local(&tx, cipher, id, Some(plaintext))?;\n"
assert a in s
s = s.replace(a, "        for (id, plaintext) in docs {\n            // Injected by ci/variant-step.sh: work in one variant's build only.\n            #[cfg(feature = \"mimalloc\")]\n            {\n                let t = std::time::Instant::now();\n                while t.elapsed() < std::time::Duration::from_millis(1) {\n                    std::hint::spin_loop();\n                }\n            }\n            store::write_local(&tx, cipher, id, Some(plaintext))?;\n", 1)
open(p, "w").write(s)
PY
        git commit -qam "step $i: 1 ms per put, in the mimalloc build only"
    else
        echo "$i" > STEP_NOTE && git add STEP_NOTE && git commit -qm "step $i: nothing measured changes"
    fi
done
git log --oneline -5
DB=$W/results.sqlite
rm -f "$DB"
/usr/bin/time -f "history: %e s" "$SB" history -n 5 vstep --variant all --db "$DB" \
    --cargo-profile dev --cache-dir "$W/cache" 2>&1 | tail -5
"$SB" regressions --all --json --db "$DB" > "$W/regressions.json"
python3 - "$W/regressions.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
changes = d if isinstance(d, list) else d.get("changes", d.get("regressions", []))
for c in changes:
    print("%-30s %-14s %s %s" % (c.get("point"), c.get("metric"), c.get("commit", "")[:10], c.get("change_pct", c.get("change"))))
PY
"$SB" report --db "$DB" --out "$W/site" >/dev/null && echo "dashboard: $W/site/index.html"
