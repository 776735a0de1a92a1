#!/usr/bin/env python3
"""Faults of the data branch (ci/db.py), against the replay's
token-checking HTTP remote: clones hold their token the way
actions/checkout leaves it (http.<url>.extraheader), or none.

  python3 ci/replay/test_db.py        # prints PASS/FAIL lines, then the count
"""

import json
import lzma
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "ci"))

import db as dbmod  # noqa: E402  (ci/db.py)
from runner import auth_header  # noqa: E402
from servers import GitServer, Tokens  # noqa: E402

REPO = "octo/data"
DBPY = os.path.join(SRC, "ci", "db.py")
APP_ID = 0x53424E43


def make_db(path, runs=10, samples=0, values=5, seed=1, start=0):
    """A database with syncbench's tables (the parts ci/db.py reads):
    `runs` runs, each with `values` measurements and `samples` samples."""
    rnd = random.Random(seed)
    if os.path.exists(path):
        os.remove(path)
    c = sqlite3.connect(path)
    c.executescript(f"""
        PRAGMA application_id = {APP_ID};
        CREATE TABLE commits (sha TEXT PRIMARY KEY, parents TEXT NOT NULL, author TEXT NOT NULL,
                              time_unix INTEGER NOT NULL, subject TEXT NOT NULL) STRICT;
        CREATE TABLE runs (id INTEGER PRIMARY KEY, commit_sha TEXT NOT NULL, status TEXT NOT NULL,
                           started_unix REAL NOT NULL) STRICT;
        CREATE TABLE measurements (run_id INTEGER NOT NULL, metric_id INTEGER NOT NULL,
                                   repetition INTEGER NOT NULL, value REAL NOT NULL,
                                   PRIMARY KEY (run_id, metric_id, repetition)) STRICT;
        CREATE TABLE samples (run_id INTEGER NOT NULL, repetition INTEGER NOT NULL, process TEXT NOT NULL,
                              t_ms REAL NOT NULL, cpu_pct REAL NOT NULL, rss_bytes INTEGER NOT NULL) STRICT;
        CREATE INDEX samples_by_run ON samples (run_id, repetition);
        CREATE TABLE phases (run_id INTEGER NOT NULL, repetition INTEGER NOT NULL, name TEXT NOT NULL,
                             start_ms REAL NOT NULL, end_ms REAL NOT NULL) STRICT;
        CREATE TABLE ab_runs (id INTEGER PRIMARY KEY) STRICT;
        CREATE TABLE profiles (id INTEGER PRIMARY KEY) STRICT;
        CREATE TABLE triage (id INTEGER PRIMARY KEY) STRICT;
    """)
    for r in range(start, start + runs):
        sha = f"{r:040x}"
        c.execute("INSERT OR IGNORE INTO commits VALUES (?, '', 'a', ?, 's')", (sha, r))
        c.execute("INSERT INTO runs VALUES (?, ?, 'ok', ?)", (r + 1, sha, 1000.0 + r))
        c.executemany("INSERT INTO measurements VALUES (?, ?, 0, ?)",
                      [(r + 1, m, rnd.random()) for m in range(values)])
        c.executemany("INSERT INTO samples VALUES (?, 0, 'server', ?, ?, ?)",
                      [(r + 1, i * 50.0, rnd.random() * 100, rnd.randrange(1 << 30)) for i in range(samples)])
        if samples:
            c.execute("INSERT INTO phases VALUES (?, 0, 'upload', 0, 10)", (r + 1,))
    c.commit()
    c.close()
    return path


def counts(path, table):
    c = sqlite3.connect(path)
    try:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        c.close()


class T:
    def __init__(self):
        self.passed, self.failed = 0, []
        self.tmp = tempfile.mkdtemp(prefix="syncbench-dbtest-")
        self.tokens = Tokens()
        self.root = os.path.join(self.tmp, "remote")
        self.bare = os.path.join(self.root, REPO)
        os.makedirs(os.path.dirname(self.bare))
        self.env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0",
                        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
                        GIT_COMMITTER_EMAIL="t@e")
        for k in list(self.env):
            if k.startswith("SYNCBENCH_"):
                del self.env[k]
        self.git = GitServer(self.root, self.tokens).start()
        self.admin = self.tokens.issue("admin", {"contents": "write"})
        self.reset()

    def reset(self):
        shutil.rmtree(self.bare, ignore_errors=True)
        self.sh("git", "init", "-q", "--bare", "-b", "main", self.bare)
        seed = os.path.join(self.tmp, "seed")
        shutil.rmtree(seed, ignore_errors=True)
        self.sh("git", "init", "-q", "-b", "main", seed)
        self.sh("git", "-C", seed, "commit", "-q", "--allow-empty", "-m", "init")
        self.sh("git", "-C", seed, "push", "-q", self.bare, "main")

    def sh(self, *a, cwd=None, env=None, check=True):
        r = subprocess.run(a, cwd=cwd, env=env or self.env, capture_output=True, text=True)
        if check and r.returncode:
            raise RuntimeError(f"{a}: {r.stderr}")
        return r

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {what}", flush=True)
        else:
            self.failed.append(what)
            print(f"FAIL {what}" + (f"\n     {detail}" if detail else ""), flush=True)

    def clone(self, name, perms=("contents", "write"), full=True, keep_token=True):
        """A clone as actions/checkout makes it (token in extraheader)."""
        d = os.path.join(self.tmp, name)
        shutil.rmtree(d, ignore_errors=True)
        tok = self.tokens.issue(name, {perms[0]: perms[1]})
        key = f"http.{self.git.url}/.extraheader"
        args = ["git", "-c", f"{key}={auth_header(tok)}", "clone", "-q"] + ([] if full else ["--depth", "1"])
        self.sh(*args, f"{self.git.url}/{REPO}", d)
        if full:  # every branch, as checkout's fetch-depth: 0 fetches them
            self.sh("git", "-C", d, "-c", f"{key}={auth_header(tok)}", "fetch", "-q", "origin",
                    "+refs/heads/*:refs/remotes/origin/*")
        if keep_token:
            self.sh("git", "-C", d, "config", key, auth_header(tok))
        return d

    def db(self, clone, *args, extra=None):
        env = dict(self.env, **(extra or {}))
        return subprocess.run([sys.executable, DBPY, *args], cwd=clone, env=env, capture_output=True, text=True)

    def branch_tip(self):
        r = self.sh("git", "--git-dir", self.bare, "rev-parse", "-q", "--verify", "refs/heads/syncbench-data",
                    check=False)
        return r.stdout.strip() or None

    def put_branch(self, files, parent=None):
        """Writes the data branch by hand (someone else's commit)."""
        gd = ["git", "--git-dir", self.bare]
        entries = []
        for name, data in files.items():
            p = os.path.join(self.tmp, "blob")
            with open(p, "wb") as f:
                f.write(data)
            sha = self.sh(*gd, "hash-object", "-w", p).stdout.strip()
            entries.append(f"100644 blob {sha}\t{name}\n")
        tree = subprocess.run([*gd, "mktree"], input="".join(entries), capture_output=True, text=True,
                              env=self.env).stdout.strip()
        c = self.sh(*gd, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", "by hand").stdout.strip()
        self.sh(*gd, "update-ref", "refs/heads/syncbench-data", c)
        return c


def run(t):
    # 1. No branch yet: restore starts empty; save creates ONE commit.
    c = t.clone("w1")
    r = t.db(c, "restore")
    lease = os.path.join(c, ".syncbench/results.sqlite.lease")
    t.check(r.returncode == 0 and "starting with an empty database" in r.stdout and
            json.load(open(lease))["sha"] is None, "restore without a branch starts empty, lease: no branch", r.stderr)
    make_db(os.path.join(c, ".syncbench/results.sqlite"), runs=10)
    r = t.db(c, "save")
    t.check(r.returncode == 0 and t.branch_tip(), "save creates the data branch", r.stderr)
    for i in range(2):
        r = t.db(c, "restore")
        make_db(os.path.join(c, ".syncbench/results.sqlite"), runs=12 + i)
        r2 = t.db(c, "save")
        t.check(r.returncode == 0 and r2.returncode == 0, f"restore + save again ({i + 1})", r.stderr + r2.stderr)
    tip = t.branch_tip()
    n = t.sh("git", "--git-dir", t.bare, "rev-list", "--count", tip).stdout.strip()
    t.check(n == "1", "after three saves the branch is still one commit without parents", f"{n} commits")
    c2 = t.clone("w2")
    r = t.db(c2, "restore")
    got = os.path.join(c2, ".syncbench/results.sqlite")
    t.check(r.returncode == 0 and counts(got, "runs") == 13, "a fresh clone restores the last save", r.stderr)

    # 2. Damaged downloads fail loudly and leave nothing behind.
    good = make_db(os.path.join(t.tmp, "good.sqlite"), runs=50, values=50)
    raw = open(good, "rb").read()
    xz = lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_SHA256)
    notdb = lzma.compress(b"<html>Not Found</html>\n" * 100, format=lzma.FORMAT_XZ)
    foreign = os.path.join(t.tmp, "foreign.sqlite")
    fc = sqlite3.connect(foreign)
    fc.execute("CREATE TABLE runs (id INTEGER)")
    fc.commit()
    fc.close()
    cases = [
        ("a truncated results.sqlite.xz", {"results.sqlite.xz": xz[: len(xz) // 2]}, "truncated"),
        ("a results.sqlite.xz with bytes flipped", {"results.sqlite.xz": xz[:200] + bytes(b ^ 0xFF for b in xz[200:260]) + xz[260:]}, "damaged"),
        ("an xz file that is not SQLite", {"results.sqlite.xz": notdb}, "not a SQLite database"),
        ("a truncated results.sqlite (the old layout)", {"results.sqlite": raw[: len(raw) // 2]}, "damaged"),
        ("a SQLite file that is not syncbench's", {"results.sqlite": open(foreign, "rb").read()}, "not syncbench's"),
        ("a database whose sha256 differs from its manifest",
         {"results.sqlite.xz": xz, "manifest.json": json.dumps({"sha256": "0" * 64}).encode()}, "sha256"),
        ("a branch without a database", {"README.md": b"hi"}, "holds neither"),
    ]
    for what, files, needle in cases:
        t.put_branch(files)
        c = t.clone("bad")
        dbp = os.path.join(c, ".syncbench/results.sqlite")
        r = t.db(c, "restore")
        left = [n for n in os.listdir(os.path.join(c, ".syncbench"))] if os.path.isdir(os.path.join(c, ".syncbench")) else []
        t.check(r.returncode == 1 and needle in r.stderr and not os.path.exists(dbp) and
                not os.path.exists(dbp + ".lease") and not left,
                f"restore refuses {what}", f"rc {r.returncode}, {r.stderr.strip()}, left {left}")

    # 3. The old layout (a raw results.sqlite, a commit per save) restores, and save replaces it.
    old = t.put_branch({"results.sqlite": raw})
    t.put_branch({"results.sqlite": raw}, parent=old)
    c = t.clone("old")
    r = t.db(c, "restore")
    r2 = t.db(c, "save")
    tip = t.branch_tip()
    names = t.sh("git", "--git-dir", t.bare, "ls-tree", "--name-only", tip).stdout.split()
    t.check(r.returncode == 0 and r2.returncode == 0 and "results.sqlite.xz" in names and
            t.sh("git", "--git-dir", t.bare, "rev-list", "--count", tip).stdout.strip() == "1",
            "the old layout restores, and save replaces its history with one commit", r.stderr + r2.stderr)

    # 4. Someone rewrote the branch between restore and save.
    c = t.clone("race")
    t.db(c, "restore")
    theirs = t.put_branch({"results.sqlite.xz": xz})
    r = t.db(c, "save")
    t.check(r.returncode == 1 and "rewritten since restore" in r.stderr and t.branch_tip() == theirs,
            "save refuses a branch rewritten since restore, and leaves it as it is", r.stderr)
    # The push's own lease, for a rewrite between save's check and its push.
    sys.path.insert(0, os.path.join(SRC, "ci"))
    cwd = os.getcwd()
    os.chdir(c)
    os.environ.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    try:
        fake = t.sh("git", "-C", c, "commit-tree", "-m", "x",
                    t.sh("git", "-C", c, "hash-object", "-t", "tree", "-w", "/dev/null").stdout.strip()).stdout.strip()
        try:
            dbmod.push("origin", "syncbench-data", fake, "f" * 40)
            ok, msg = False, "pushed"
        except dbmod.Refused as e:
            ok, msg = "rewritten since restore" in str(e), str(e)
    finally:
        os.chdir(cwd)
    t.check(ok and t.branch_tip() == theirs, "the push itself is leased: a tip other than the lease is refused", msg)

    # 5. No right to push: a read-only token.
    t.reset()
    c = t.clone("ro", perms=("contents", "read"))
    t.db(c, "restore")
    make_db(os.path.join(c, ".syncbench/results.sqlite"), runs=3)
    r = t.db(c, "save")
    t.check(r.returncode == 1 and "refused the push" in r.stderr and "results` artifact" in r.stderr and
            t.branch_tip() is None, "a read-only token: save says the push was refused, nothing changes", r.stderr)
    # No credentials at all (a checkout with persist-credentials: false).
    c = t.clone("nocreds", keep_token=False)
    r = t.db(c, "restore")
    t.check(r.returncode == 0 and "could not be asked" in r.stdout,
            "restore in a full clone without credentials reads the branches the checkout fetched", r.stdout + r.stderr)
    make_db(os.path.join(c, ".syncbench/results.sqlite"), runs=3)
    r = t.db(c, "save")
    t.check(r.returncode == 1 and ("refused the push" in r.stderr or "cannot read" in r.stderr),
            "save without credentials fails with a clear message", r.stderr)
    c = t.clone("shallow", full=False, keep_token=False)
    r = t.db(c, "restore")
    t.check(r.returncode == 1 and "cannot read origin/syncbench-data" in r.stderr,
            "restore in a shallow clone without credentials fails loudly (it cannot know)", r.stderr)

    # 6. A smaller history never replaces a larger one; no lease, no save.
    t.reset()
    c = t.clone("shrink")
    t.db(c, "restore")
    make_db(os.path.join(c, ".syncbench/results.sqlite"), runs=10)
    t.db(c, "save")
    t.db(c, "restore")
    tip = t.branch_tip()
    make_db(os.path.join(c, ".syncbench/results.sqlite"), runs=4)
    r = t.db(c, "save")
    t.check(r.returncode == 1 and "holds less" in r.stderr and "runs: 10 -> 4" in r.stderr and t.branch_tip() == tip,
            "save refuses to replace 10 runs with 4", r.stderr)
    r = t.db(c, "save", extra={"SYNCBENCH_DATA_ALLOW_SHRINK": "1"})
    t.check(r.returncode == 0 and t.branch_tip() != tip, "SYNCBENCH_DATA_ALLOW_SHRINK=1 saves it on purpose", r.stderr)
    os.remove(os.path.join(c, ".syncbench/results.sqlite.lease"))
    r = t.db(c, "save")
    t.check(r.returncode == 1 and "lease" in r.stderr, "save without restore's lease refuses", r.stderr)

    # 7. Over the budget: raw samples of the oldest runs go, results stay.
    t.reset()
    c = t.clone("prune")
    t.db(c, "restore")
    big = make_db(os.path.join(c, ".syncbench/results.sqlite"), runs=200, samples=400, values=20)
    m_before, s_newest = counts(big, "measurements"), None
    whole = len(lzma.compress(open(big, "rb").read(), preset=1))
    budget = whole * 0.4 / 1e6
    r = t.db(c, "save", extra={"SYNCBENCH_DATA_BUDGET_MB": f"{budget:.3f}", "SYNCBENCH_DATA_XZ_PRESET": "1"})
    c2 = t.clone("prune2")
    r2 = t.db(c2, "restore")
    got = os.path.join(c2, ".syncbench/results.sqlite")
    size = int(t.sh("git", "--git-dir", t.bare, "cat-file", "-s", "syncbench-data:results.sqlite.xz").stdout)
    ok = r.returncode == 0 and r2.returncode == 0 and "pruned" in r.stdout
    if ok:
        conn = sqlite3.connect(got)
        kept = {x for (x,) in conn.execute("SELECT DISTINCT run_id FROM samples")}
        s_newest = 200 in kept
        oldest_gone = 1 not in kept and min(kept) > 1 if kept else False
        contiguous = kept == set(range(min(kept), 201)) if kept else False
        conn.close()
        ok = (counts(got, "runs") == 200 and counts(got, "measurements") == m_before and s_newest
              and oldest_gone and contiguous and size <= budget * 1e6)
    t.check(ok, f"over a {budget:.2f} MB budget save prunes the oldest runs' samples only "
                f"({size / 1e6:.2f} MB saved, every run and measurement kept)", r.stdout + r.stderr)
    r = t.db(c2, "save", extra={"SYNCBENCH_DATA_BUDGET_MB": "0.001"})
    t.check(r.returncode == 1 and "cannot hold this history" in r.stderr,
            "results alone over the budget: save refuses and says what to do", r.stderr)


def main():
    t = T()
    try:
        run(t)
    finally:
        t.git.stop()
        shutil.rmtree(t.tmp, ignore_errors=True)
    print(f"data branch faults: {t.passed} passed, {len(t.failed)} failed")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
