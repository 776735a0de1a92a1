#!/usr/bin/env bash
# Issue 31's measurement: every variant of scenarios/variants.toml built
# from nothing and measured (`run variants`), run again (nothing may be
# rebuilt), then each decided against the default at this commit, A B A B
# (`compare HEAD HEAD --run --variant-a default --variant-b NAME`).
# Everything goes under $W (default /tmp/variants-measure); the user's
# results database and target/ are untouched. Takes about an hour here.
#   bash ci/variants-measure.sh            # all of it
#   SKIP_RUNS=1 bash ci/variants-measure.sh  # only the A/B verdicts
set -euo pipefail
cd "$(dirname "$0")/.."
SB=${SB:-target/release/syncbench}
W=${W:-/tmp/variants-measure}
BUDGET=${BUDGET:-90s}
mkdir -p "$W"
DB=$W/results.sqlite
# The run builds where compare's side B does, so B finds each variant
# built (compare's side A builds the default once more).
T=$W/cache/target-b
common=(--db "$DB")
if [ -z "${SKIP_RUNS:-}" ]; then
    for pass in 1 2; do
        echo "== run variants, pass $pass"
        /usr/bin/time -f "pass $pass: %e s" "$SB" run variants "${common[@]}" --target-dir "$T" \
            --out "$W/site" -v --json >"$W/run$pass.json" 2>"$W/run$pass.log" || true
        grep -o "variants: variant .* built in .*" "$W/run$pass.log" || true
        tail -1 "$W/run$pass.log"
    done
fi
variants=$("$SB" list --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["name"] == "variants":
        print(" ".join(v["name"] for v in s["variants"] if not v["default"]))')
for v in $variants; do
    echo "== $v against default, A B A B"
    "$SB" compare HEAD HEAD variants --run --variant-a default --variant-b "$v" "${common[@]}" \
        --cache-dir "$W/cache" --budget "$BUDGET" --json >"$W/ab-$v.json" 2>"$W/ab-$v.log" || true
    python3 - "$W/ab-$v.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("  no result:", e); sys.exit(0)
for r in d["results"]:
    e = r.get("estimate") or {}
    ch = e.get("change")
    print("  %-45s %s %s pairs=%s %s" % (r["point"], r["metric"],
          "%+.1f%% [%+.1f%%, %+.1f%%]" % (100*ch, 100*e["low"], 100*e["high"]) if ch is not None else "-",
          r["pairs"], r["verdict"] + (" " + r["error"][:200] if r.get("error") else "")))
PY
done
