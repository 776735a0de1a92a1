"""Old and new syncbench binaries on the same databases: the dashboard,
regressions --json, compare --json and check's summary must be identical.
Each synthetic database's commits are rewritten to the commits of a real
git repository made for it (same order), so check and compare resolve them.
usage: python3 ci/refactor-identity.py OLD_BINARY NEW_BINARY DB...
(REPO=DIR: the databases hold real runs of DIR's commits; used as they are)
Outputs go beside each database; exit 1 when anything differs."""
import os, shutil, sqlite3, subprocess, sys

old_bin, new_bin, dbs = sys.argv[1], sys.argv[2], sys.argv[3:]

def repo_for(db, repo):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT sha, parents, time_unix FROM commits").fetchall()
    by = {s: (p, t) for s, p, t in rows}
    # Order: parents first (a line).
    order, seen = [], set()
    def visit(s):
        if s in seen or s not in by: return
        seen.add(s)
        for p in by[s][0].split():
            visit(p)
        order.append(s)
    for s, _, _ in sorted(rows, key=lambda r: r[2]):
        visit(s)
    shutil.rmtree(repo, ignore_errors=True)
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    stream = []
    for i, s in enumerate(order):
        t = by[s][1]
        msg = f"commit {i}\n".encode()
        stream.append(f"commit refs/heads/main\nmark :{i+1}\ncommitter t <t@t> {t} +0000\ndata {len(msg)}\n".encode() + msg)
        stream.append(f"M 644 inline f\ndata {len(str(i))}\n{i}\n".encode())
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(stream), check=True)
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=repo, check=True)
    marks = subprocess.run(["git", "rev-list", "--reverse", "main"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    m = dict(zip(order, marks))
    con.execute("PRAGMA foreign_keys=OFF")
    for s in order:
        p = " ".join(m.get(x, x) for x in by[s][0].split())
        con.execute("UPDATE commits SET sha=?, parents=? WHERE sha=?", (m[s], p, s))
        con.execute("UPDATE runs SET commit_sha=? WHERE commit_sha=?", (m[s], s))
    con.commit()
    return marks

def run(binary, args, cwd):
    r = subprocess.run([binary] + args, cwd=cwd, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr

ok = True
for db in dbs:
    db = os.path.abspath(db)
    base = os.path.splitext(db)[0]
    if os.environ.get("REPO"):
        # A database of real runs of REPO's commits: used as it is.
        repo, mid = os.environ["REPO"], "HEAD"
    else:
        repo = base + "-repo"
        marks = repo_for(db, repo)
        mid = marks[len(marks) // 2]
    cmds = {
        "regressions --json --all": ["regressions", "--db", db, "--json", "--all"],
        "regressions --json": ["regressions", "--db", db, "--json"],
        "compare --json HEAD~1 HEAD": ["compare", "--db", db, "--json", "HEAD~1", "HEAD"],
        "compare --json MID HEAD": ["compare", "--db", db, "--json", mid, "HEAD"],
        "check --baseline HEAD~1": ["check", "--db", db, "--baseline", "HEAD~1", "--no-confirm", "--summary", "SUMMARY"],
        "check --baseline main --commit MID": ["check", "--db", db, "--baseline", "main", "--commit", mid, "--no-confirm", "--summary", "SUMMARY"],
    }
    for name, args in cmds.items():
        outs = []
        for b, tag in ((old_bin, "old"), (new_bin, "new")):
            a = [x.replace("SUMMARY", f"{base}-{tag}-summary.md") for x in args]
            code, out, err = run(b, a, repo)
            summ = open(f"{base}-{tag}-summary.md").read() if os.path.exists(f"{base}-{tag}-summary.md") else None
            outs.append((code, out, err, summ))
            if os.path.exists(f"{base}-{tag}-summary.md"): os.remove(f"{base}-{tag}-summary.md")
        same = outs[0] == outs[1]
        ok &= same
        print(f"{os.path.basename(db)}: {name}: exit {outs[0][0]}/{outs[1][0]}, stdout {len(outs[0][1])} B, summary {len(outs[0][3] or '')} B: {'identical' if same else 'DIFFERENT'}")
        if not same:
            for i, what in enumerate(["exit", "stdout", "stderr", "summary"]):
                if outs[0][i] != outs[1][i]: print(f"   differs: {what}")
    sites = []
    for b, tag in ((old_bin, "old"), (new_bin, "new")):
        out = f"{base}-{tag}-site"
        shutil.rmtree(out, ignore_errors=True)
        code, _, err = run(b, ["report", "--db", db, "--out", out], repo)
        if code: print(f"report exit {code}")
        sites.append(out)
        if code: print(err)
    d = subprocess.run(["diff", "-r", "-q", "--exclude=.cache", sites[0], sites[1]], capture_output=True, text=True)
    n = sum(len(fs) for _, _, fs in os.walk(sites[0]))
    same = d.returncode == 0
    ok &= same
    print(f"{os.path.basename(db)}: report: {n} files: {'identical' if same else 'DIFFERENT'}")
    if not same: print(d.stdout[:2000])
sys.exit(0 if ok else 1)
