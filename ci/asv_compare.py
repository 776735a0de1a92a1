#!/usr/bin/env python3
"""Writes the synthetic history `syncbench report` is measured on (see
harness/examples/synth_results.rs) as an asv project: a git repository of
COMMITS commits and asv results for SERIES benchmarks with REPS samples
each, so `asv publish` renders comparable data.

    python3 ci/asv_compare.py DIR [COMMITS SERIES REPS]
    cd DIR && asv publish        # then compare with `syncbench report`

Used by ci/report-speed.sh.
"""
import json, os, random, subprocess, sys

def main():
    out = sys.argv[1]
    commits, series, reps = (int(x) for x in (sys.argv[2:5] or [1000, 60, 5]))
    repo = os.path.join(out, "repo")
    os.makedirs(repo, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    # git fast-import: a thousand commits in well under a second.
    stream = []
    for c in range(commits):
        t = 1_750_000_000 + c * 3600
        msg = f"Commit {c}: change something\n".encode()
        stream.append(f"commit refs/heads/main\nmark :{c + 1}\n"
                      f"committer Synth <synth@example.org> {t} +0000\n"
                      f"data {len(msg)}\n".encode() + msg
                      + (f"from :{c}\n".encode() if c else b"")
                      + f"M 644 inline NOTES\ndata {len(str(c))}\n{c}\n".encode())
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(stream), check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True)
    shas = subprocess.run(["git", "rev-list", "--reverse", "main"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout.split()
    results = os.path.join(out, "results")
    machine = "synth"
    os.makedirs(os.path.join(results, machine), exist_ok=True)
    json.dump({"project": "synth", "repo": "repo", "branches": ["main"],
               "environment_type": "existing", "results_dir": "results", "html_dir": "html",
               "version": 1}, open(os.path.join(out, "asv.conf.json"), "w"))
    names = [f"synthetic.point{p}.phase{m}_wall" for p in range(3) for m in range((series + 2) // 3)]
    benches = {n: {"code": "pass", "name": n, "param_names": [], "params": [], "timeout": 60,
                   "type": "time", "unit": "seconds", "version": "1", "number": 1, "repeat": reps,
                   "min_run_count": 2, "rounds": 1, "sample_time": 0.01, "warmup_time": -1}
               for n in names}
    benches["version"] = 2
    json.dump(benches, open(os.path.join(results, "benchmarks.json"), "w"))
    json.dump({"arch": "x86_64", "cpu": "synthetic", "machine": machine, "num_cpu": "2",
               "os": "Linux", "ram": "24GB", "version": 1},
              open(os.path.join(results, machine, "machine.json"), "w"))
    rng = random.Random(7)
    cols = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
            "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples"]
    for c, sha in enumerate(shas):
        rows = {}
        for n in names:
            m = int(n.rsplit("phase", 1)[1].split("_")[0])
            # The steps synth_results writes.
            step = {0: 1.15 if c > commits * 2 // 3 else 1.0,
                    3: 1.10 if c >= commits // 6 else 1.0,
                    7: 0.90 if c >= commits // 4 else 1.0}.get(m % 10, 1.0)
            base = 0.05 * (1 + m) * step
            samples = sorted(base * (1 + 0.02 * (rng.random() - 0.5)) for _ in range(reps))
            med = samples[len(samples) // 2]
            rows[n] = [[med], [], "1", 1_750_000_000_000 + c * 3_600_000, 1.0,
                       [samples[0]], [samples[-1]], [samples[1]], [samples[-2]], [1], [reps], [samples]]
        json.dump({"commit_hash": sha, "env_name": "existing-py", "date": (1_750_000_000 + c * 3600) * 1000,
                   "params": {"arch": "x86_64", "cpu": "synthetic", "machine": machine, "num_cpu": "2",
                              "os": "Linux", "ram": "24GB", "python": "3.11"},
                   "python": "3.11", "requirements": {}, "env_vars": {}, "result_columns": cols,
                   "results": rows, "durations": {}, "version": 2},
                  open(os.path.join(results, machine, f"{sha[:8]}-existing-py.json"), "w"))
    print(f"{out}: {commits} commits x {len(names)} benchmarks x {reps} samples")

main()
