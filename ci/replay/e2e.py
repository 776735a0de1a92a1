#!/usr/bin/env python3
"""The end-to-end replay of .github/workflows/bench.yml (driver:
ci/workflow-replay.sh). A test repository made from this tree (every
file `git ls-files` lists, edits not yet committed included), with
scenarios/ replaced by one fast command scenario (`loop`, default =
true: ci/ab-trials.sh's CPU-bound loop, ~40 ms here), is served by the
token-checking HTTP remote; then, each run read from the workflow file
at the commit being run:

  push 1, 2, 3 to main   bench -> save, pages (comment skipped)
  pull request #1        opened: the loop 3% slower -> bench's gate
                         fails, the comment job posts
  a second push to it    synchronize -> the comment is updated in place
  push 4 to main         with the save job's token read-only: the push
                         is refused clearly, the results stay in the
                         `results` artifact, the branch is unchanged
  push 5 to main         the data branch truncated by hand: restore fails
                         the bench job before it measures, nothing saved
  push 6 to main         the branch rewritten between the bench job's
                         restore and the save: the save refuses it

and checks what GitHub would show (each a line PASS/FAIL; the last line
counts them). State kept between replays (like GitHub's cache): the
rust-cache stand-in's target/ under ROOT/rust-cache; workspaces at the
fixed ROOT/runner/work/syncbench/syncbench. ROOT: $SYNCBENCH_REPLAY_ROOT,
default ${XDG_CACHE_HOME:-~/.cache}/syncbench-workflow-replay.

  python3 ci/replay/e2e.py [--verbose] [--keep] [--replace PATH=FILE]… [--skip-faults]

--replace puts FILE at PATH in the test repository (e.g. an older
ci/db.sh or workflow, to see how it fails).
"""

import argparse
import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from runner import Runner, auth_header  # noqa: E402
from servers import ApiServer, GitServer, Tokens  # noqa: E402

SRC = os.path.dirname(os.path.dirname(HERE))
REPO = "octo/syncbench"
WORKFLOW = ".github/workflows/bench.yml"
# Sentinel for the SYNCBENCH_DB secret, given to pull-request runs only:
# the workflow must never hand it to them (pushes get none, so that they
# keep the history on the data branch, the path this replay tests).
SENTINEL_DB = "postgres://replay:sentinel-password@127.0.0.1:1/never"

SCENARIO = """name = "loop"
kind = "command"
default = true
build = "mkdir -p target && cc -O2 -o target/loop bench/loop.c"
run = "target/loop"
repetitions = 5
warmup = 1
timeout = "60s"
# Generous for the stored history (a push is compared with the push
# before it: no change, only noise); the pull request's A/B gate uses its
# own threshold (2%).
[thresholds]
wall = 0.25
"command.cpu_user" = 0.5
"command.cpu_sys" = 2.0
"""


def program(percent):
    # ci/ab-trials.sh's cpu workload, a quarter of its iterations: an
    # arithmetic loop, ~40 ms here at 100%.
    return f"""#include <stdio.h>
int main(void) {{
    unsigned long n = 67500000UL / 100 * {percent};
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < n; i++) x += i * 2654435761UL;
    printf("%lu\\n", (unsigned long)x);
    return 0;
}}
"""


class Checks:
    def __init__(self, log):
        self.log = log
        self.passed, self.failed = 0, []

    def __call__(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            self.log(f"PASS {what}")
        else:
            self.failed.append(what)
            self.log(f"FAIL {what}" + (f": {detail}" if detail else ""))
        return ok


def sh(*args, cwd=None, env=None, check=True, capture=True):
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=capture, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout.strip() if capture else ""


def git_env():
    return dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
                GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.org",
                GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.org")


class World:
    """The remote, the servers, the developer's clone, the runner."""

    def __init__(self, root, log, verbose, replace=()):
        self.root = root
        self.log = log
        self.base = os.path.join(root, "last")
        shutil.rmtree(self.base, ignore_errors=True)
        os.makedirs(self.base)
        self.remote_root = os.path.join(self.base, "remote")
        self.bare = os.path.join(self.remote_root, REPO)
        self.dev = os.path.join(self.base, "dev")
        self.env = git_env()
        self.tokens = Tokens()
        self.git = GitServer(self.remote_root, self.tokens).start()
        self.api = ApiServer(self.tokens, REPO).start()
        self.make_repo(replace)
        self.runner = Runner(
            base=self.base, runner_root=os.path.join(root, "runner"), remote_root=self.remote_root,
            repo=REPO, git_server=self.git, api_server=self.api, tokens=self.tokens,
            cache_root=os.path.join(root, "rust-cache"), log=log, verbose=verbose,
            cargo_lock=os.environ.get("SYNCBENCH_REPLAY_CARGO_LOCK") or None)

    def make_repo(self, replace):
        files = sh("git", "-C", SRC, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
        os.makedirs(self.dev)
        n = 0
        for f in files:
            src = os.path.join(SRC, f)
            if not f or f.startswith("scenarios/") or not os.path.isfile(src):
                continue
            dst = os.path.join(self.dev, f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
            n += 1
        os.makedirs(os.path.join(self.dev, "scenarios"))
        os.makedirs(os.path.join(self.dev, "bench"), exist_ok=True)
        with open(os.path.join(self.dev, "scenarios", "loop.toml"), "w") as f:
            f.write(SCENARIO)
        self.write("bench/loop.c", program(100))
        self.write("bench/history.txt", "pushes to main\n")
        for spec in replace:
            path, _, src = spec.partition("=")
            shutil.copy(src, os.path.join(self.dev, path))
            self.log(f"test repository: {path} replaced by {src}")
        g = lambda *a: sh("git", *a, cwd=self.dev, env=self.env)  # noqa: E731
        g("init", "-q", "-b", "main")
        g("add", "-A")
        g("commit", "-q", "-m", "syncbench, with one fast command scenario")
        sh("git", "init", "-q", "--bare", self.bare, env=self.env)
        for k, v in (("http.receivepack", "true"), ("uploadpack.allowAnySHA1InWant", "true")):
            sh("git", "--git-dir", self.bare, "config", k, v, env=self.env)
        sh("git", "--git-dir", self.bare, "symbolic-ref", "HEAD", "refs/heads/main", env=self.env)
        g("remote", "add", "origin", self.bare)
        self.log(f"test repository: {n} files of {SRC} (scenarios/ replaced by loop), at {self.bare}")

    def write(self, rel, text):
        p = os.path.join(self.dev, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)

    def commit(self, msg):
        sh("git", "add", "-A", cwd=self.dev, env=self.env)
        sh("git", "commit", "-q", "-m", msg, cwd=self.dev, env=self.env)
        return sh("git", "rev-parse", "HEAD", cwd=self.dev, env=self.env)

    def push_main(self, **kw):
        before = sh("git", "--git-dir", self.bare, "rev-parse", "-q", "--verify", "refs/heads/main",
                    env=self.env, check=False) or "0" * 40
        sh("git", "push", "-q", "origin", "main:main", cwd=self.dev, env=self.env)
        sha = sh("git", "rev-parse", "HEAD", cwd=self.dev, env=self.env)
        payload = {"ref": "refs/heads/main", "before": before, "after": sha,
                   "repository": self.repository(), "sender": {"login": "dev"},
                   "head_commit": {"id": sha}}
        self.runner.secrets = {}
        return self.runner.run(WORKFLOW, "push", payload, sha, "refs/heads/main", **kw)

    def repository(self):
        owner, name = REPO.split("/")
        return {"full_name": REPO, "name": name, "owner": {"login": owner}, "default_branch": "main"}

    def pull_request(self, number, branch, action):
        """Pushes the branch, makes refs/pull/N/head and the test merge
        refs/pull/N/merge as GitHub does, and runs the event."""
        sh("git", "push", "-q", "-f", "origin", f"{branch}:{branch}", cwd=self.dev, env=self.env)
        gb = lambda *a: sh("git", "--git-dir", self.bare, *a, env=self.env)  # noqa: E731
        head = gb("rev-parse", f"refs/heads/{branch}")
        base = gb("rev-parse", "refs/heads/main")
        tree = gb("merge-tree", "--write-tree", base, head)
        merge = gb("commit-tree", tree, "-p", base, "-p", head, "-m", f"Merge {head} into {base}")
        gb("update-ref", f"refs/pull/{number}/head", head)
        gb("update-ref", f"refs/pull/{number}/merge", merge)
        payload = {
            "action": action, "number": number, "repository": self.repository(), "sender": {"login": "dev"},
            "pull_request": {"number": number, "labels": [], "draft": False,
                             "head": {"ref": branch, "sha": head, "repo": {"full_name": REPO}},
                             "base": {"ref": "main", "sha": base, "repo": {"full_name": REPO}}},
        }
        self.runner.secrets = {"SYNCBENCH_DB": SENTINEL_DB}
        return self.runner.run(WORKFLOW, "pull_request", payload, merge, f"refs/pull/{number}/merge")

    def branch_commit(self, files, msg):
        """A commit of the data branch made by hand (someone else)."""
        gd = ["git", "--git-dir", self.bare]
        entries = ""
        for name, data in files.items():
            sha = subprocess.run([*gd, "hash-object", "-w", "--stdin"], input=data, capture_output=True,
                                 env=self.env, check=True).stdout.decode().strip()
            entries += f"100644 blob {sha}\t{name}\n"
        tree = subprocess.run([*gd, "mktree"], input=entries.encode(), capture_output=True, env=self.env,
                              check=True).stdout.decode().strip()
        return sh(*gd, "commit-tree", tree, "-m", msg, env=self.env)

    def restore_branch(self, dest):
        """The data branch as a developer restores it: a clone with a read
        token, then this tree's ci/db.py restore there (the checker's own
        copy, not the test repository's, which --replace may have swapped
        for one that cannot read the branch)."""
        tok = self.tokens.issue("check", {"contents": "read"})
        clone = os.path.join(dest, "clone")
        sh("git", "-c", f"http.{self.git.url}/.extraheader={auth_header(tok)}", "clone", "-q",
           f"{self.git.url}/{REPO}", clone, env=self.env)
        sh("git", "-C", clone, "config", f"http.{self.git.url}/.extraheader", auth_header(tok), env=self.env)
        r = subprocess.run([sys.executable, os.path.join(SRC, "ci", "db.py"), "restore",
                            os.path.join(dest, "restored.sqlite")],
                           cwd=clone, env=self.env, capture_output=True, text=True)
        return r, os.path.join(dest, "restored.sqlite")


def commits_in(db):
    """The commits with a successful run in `db` (none when it is missing)."""
    if not os.path.isfile(db):
        return set()
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {r[0] for r in c.execute("SELECT DISTINCT commit_sha FROM runs WHERE status = 'ok'")}
    finally:
        c.close()


def step_failed_with(job, text):
    for s in job.steps:
        if s.outcome == "failure":
            try:
                with open(s.log, errors="replace") as f:
                    if text in f.read():
                        return True
            except OSError:
                pass
    return False


def log_text(step):
    try:
        with open(step.log, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verbose", action="store_true", help="every step's output")
    ap.add_argument("--keep", action="store_true", help="keep ROOT/last (remote, artifacts, logs) after success")
    ap.add_argument("--replace", action="append", default=[], metavar="PATH=FILE",
                    help="FILE instead of this tree's PATH in the test repository")
    ap.add_argument("--skip-faults", action="store_true", help="leave out pushes 4-6 (the faults)")
    ap.add_argument("--stop-after-main", action="store_true", help="only the three pushes to main")
    args = ap.parse_args()
    root = os.environ.get("SYNCBENCH_REPLAY_ROOT") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "syncbench-workflow-replay")
    os.makedirs(root, exist_ok=True)
    lock = open(os.path.join(root, "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # one replay at a time: the workspace path is fixed
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.1f}s] {msg}", flush=True)

    check = Checks(log)
    w = World(root, log, args.verbose, args.replace)
    try:
        try:
            scenario(w, check, log, args)
        except Exception as e:  # a check that could not even look: a failure, with what broke
            import traceback
            traceback.print_exc()
            check(False, f"the scenario ran to its end ({type(e).__name__}: {e})")
    finally:
        w.git.stop()
        w.api.stop()
    total = time.time() - t0
    log(f"replay: {total:.0f} s in all; logs and artifacts in {w.base}")
    print(f"workflow replay: {check.passed} passed, {len(check.failed)} failed")
    if check.failed:
        for f in check.failed:
            print(f"  failed: {f}")
        return 1
    if not args.keep:
        shutil.rmtree(w.base, ignore_errors=True)
    return 0


def scenario(w, check, log, args):
    runs, shas = [], []
    for i in (1, 2, 3):
        if i > 1:
            with open(os.path.join(w.dev, "bench/history.txt"), "a") as f:
                f.write(f"push {i}\n")
            w.commit(f"Push {i}: notes only")
        shas.append(sh("git", "rev-parse", "HEAD", cwd=w.dev, env=w.env))
        log(f"== push {i} to main ({shas[-1][:8]})")
        r = w.push_main()
        runs.append(r)
        for jid, want in (("bench", "success"), ("save", "success"), ("pages", "success"), ("comment", "skipped")):
            got = r.jobs[jid].result if jid in r.jobs else "absent"
            detail = ""
            if got != want and jid in r.jobs:
                bad = [s for s in r.jobs[jid].steps if s.outcome == "failure"]
                detail = "; ".join(f"{s.name}: {' | '.join((s.errors or [])[:2]) or 'see ' + str(s.log)}" for s in bad)
            check(got == want, f"push {i}: job {jid} {want}", f"{got}. {detail}")
        if r.jobs["save"].result == "failure" and i == 1:
            for s in r.jobs["save"].steps:
                if s.outcome == "failure":
                    log("the save step's log:\n" + log_text(s))
    bench = runs[-1].jobs["bench"]
    check(all(s.credentials_in_clone is False for s in bench.steps[1:] if s.outcome != "skipped"),
          "bench job: no token in the clone's git config while its steps run (persist-credentials: false)")
    check(all("GITHUB_TOKEN" not in s.secret_env for s in bench.steps),
          "bench job: no GITHUB_TOKEN in any step's environment")
    save = runs[-1].jobs["save"]
    check(any(s.credentials_in_clone for s in save.steps[1:]), "save job: its clone holds the token (the push needs it)")
    pushes = [e for e in w.git.log if e["push"] and e["status"] == 200]
    check(pushes and all(e["who"].endswith("/ save") for e in pushes),
          "only save jobs pushed to the remote", str({e["who"] for e in pushes}))
    # The data branch: one commit, holding every push's results.
    gb = lambda *a: sh("git", "--git-dir", w.bare, *a, env=w.env, check=False)  # noqa: E731
    check(gb("rev-list", "--count", "refs/heads/syncbench-data") == "1",
          "the data branch is one commit without parents after three saves")
    files = gb("ls-tree", "--name-only", "refs/heads/syncbench-data").split()
    check("results.sqlite.xz" in files and "results.sqlite" not in files, "the data branch holds results.sqlite.xz",
          str(files))
    tmp = tempfile.mkdtemp(prefix="replay-restore-")
    try:
        r, db = w.restore_branch(tmp)
        check(r.returncode == 0 and os.path.isfile(db), "ci/db.sh restore of the data branch",
              (r.stdout + r.stderr).strip())
        if r.returncode == 0:
            have = commits_in(db)
            check(set(shas) <= have, "the data branch holds the results of all three pushes",
                  f"missing {[s[:8] for s in shas if s not in have]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    dash = os.path.join(runs[-1].artifacts, "dashboard")
    shown = dashboard_commits(dash, shas)
    check(shown == set(shas), "the dashboard artifact of push 3 shows the three commits",
          f"shows {sorted(s[:8] for s in shown)}")
    check(os.path.exists(os.path.join(w.runner.deployed, "index.html")), "the pages job deployed the dashboard")
    check(not any(n.startswith(".") for n in os.listdir(dash)) if os.path.isdir(dash) else False,
          "the dashboard artifact holds no hidden files (.cache stays out)")
    for i, r in enumerate(runs, 1):
        res = os.path.join(r.artifacts, "results")
        check(sorted(os.listdir(res)) == ["results.sqlite", "results.sqlite.lease"] if os.path.isdir(res) else False,
              f"push {i}: the results artifact holds the database and its lease")
    if args.stop_after_main:
        return

    # The pull request: 3% more work in the loop.
    sh("git", "checkout", "-q", "-b", "slower", cwd=w.dev, env=w.env)
    w.write("bench/loop.c", program(103))
    w.commit("The loop does 3% more work")
    log("== pull request #1 opened: 3% slower")
    p1 = w.pull_request(1, "slower", "opened")
    w.write("bench/history.txt", open(os.path.join(w.dev, "bench/history.txt")).read() + "a second push to the PR\n")
    w.commit("Second push to the pull request")
    log("== pull request #1 synchronize: a second push")
    p2 = w.pull_request(1, "slower", "synchronize")
    for n, p in (("opened", p1), ("synchronize", p2)):
        b = p.jobs["bench"]
        check(b.result == "failure" and b.step("bench").outcome == "failure",
              f"PR {n}: the gate fails on the 3% slowdown", f"bench job {b.result}, step {b.step('bench').outcome}")
        check("regression" in b.summary.lower(), f"PR {n}: the job summary names the regression",
              b.summary[-400:])
        check(p.jobs["comment"].result == "success", f"PR {n}: the comment job succeeds")
        check(p.jobs["save"].result == "skipped" and p.jobs["pages"].result == "skipped",
              f"PR {n}: no save, no pages")
        check(all("SYNCBENCH_DB" not in s.secret_env for j in p.jobs.values() for s in j.steps),
              f"PR {n}: no step gets the SYNCBENCH_DB secret")
        check(all(s.credentials_in_clone is False for s in b.steps[1:] if s.outcome != "skipped"),
              f"PR {n}: no token in the bench job's clone")
        art = os.path.join(p.artifacts, "comment")
        names = sorted(os.listdir(art)) if os.path.isdir(art) else []
        check(names == ["body.md", "flagged"], f"PR {n}: the comment artifact is data only (body.md, flagged)", str(names))
        c = p.jobs["comment"]
        co = c.steps[0]
        check(co.outputs.get("commit") == shas[-1], f"PR {n}: the comment job checked out the base ({shas[-1][:8]})",
              co.outputs.get("commit", ""))
        check(not c.warnings(), f"PR {n}: the comment job posted without a warning", str(c.warnings()))
    comments = w.api.comments.get(1, [])
    check(len(comments) == 1, "the pull request has exactly one comment", f"{len(comments)} comments")
    if comments:
        check(comments[0]["edits"] == 1, "the comment was updated in place by the second push",
              f"{comments[0]['edits']} edits")
        check(comments[0]["body"].startswith("<!-- syncbench comment -->") and "loop" in comments[0]["body"],
              "the comment is syncbench's, about the loop scenario", comments[0]["body"][:200])
    posts = [e for e in w.api.log if e["method"] == "POST"]
    patches = [e for e in w.api.log if e["method"] == "PATCH"]
    check(len(posts) == 1 and len(patches) == 1, "one POST then one PATCH to the comments API",
          f"{len(posts)} POST, {len(patches)} PATCH")

    if args.skip_faults:
        return
    # A refused save: the save job's token may only read.
    sh("git", "checkout", "-q", "main", cwd=w.dev, env=w.env)
    with open(os.path.join(w.dev, "bench/history.txt"), "a") as f:
        f.write("push 4\n")
    sha4 = w.commit("Push 4: notes only")
    tip_before = gb("rev-parse", "refs/heads/syncbench-data")
    log("== push 4 to main, the save job's token read-only")
    r4 = w.push_main(permissions_override={"save": {"contents": "read"}})
    s4 = r4.jobs["save"]
    check(r4.jobs["bench"].result == "success" and s4.result == "failure", "push 4: bench succeeds, save fails",
          f"bench {r4.jobs['bench'].result}, save {s4.result}")
    text = log_text(s4.steps[-1])
    check("refused the push" in text and "results` artifact" in text,
          "push 4: the save says the push was refused and where the results are", text[-600:])
    check(gb("rev-parse", "refs/heads/syncbench-data") == tip_before, "push 4: the data branch is unchanged")
    res = os.path.join(r4.artifacts, "results", "results.sqlite")
    check(os.path.exists(res) and sha4 in commits_in(res), "push 4: its results are in the `results` artifact")

    # A damaged data branch: restore fails loudly, nothing is saved over it.
    good = tip_before
    blob = gb("rev-parse", f"{good}:results.sqlite.xz")
    data = subprocess.run(["git", "--git-dir", w.bare, "cat-file", "blob", blob], capture_output=True).stdout
    bad = w.branch_commit({"results.sqlite.xz": data[: len(data) // 2]}, "truncated by hand")
    gb("update-ref", "refs/heads/syncbench-data", bad)
    with open(os.path.join(w.dev, "bench/history.txt"), "a") as f:
        f.write("push 5\n")
    w.commit("Push 5: notes only")
    log("== push 5 to main, the data branch holds a truncated database")
    r5 = w.push_main()
    b5 = r5.jobs["bench"]
    check(b5.result == "failure" and b5.step("restore").outcome == "failure"
          and "truncated" in log_text(b5.step("restore")) and b5.step("bench").outcome == "skipped",
          "push 5: restore of a truncated download fails the bench job before measuring",
          log_text(b5.step("restore"))[-400:])
    check(r5.jobs["save"].result == "skipped" and gb("rev-parse", "refs/heads/syncbench-data") == bad
          and not os.path.exists(os.path.join(r5.artifacts, "results")),
          "push 5: no results artifact, no save: the branch is left for a person to look at")
    gb("update-ref", "refs/heads/syncbench-data", good)

    # Someone rewrites the branch between the bench job's restore and the save.
    with open(os.path.join(w.dev, "bench/history.txt"), "a") as f:
        f.write("push 6\n")
    sha6 = w.commit("Push 6: notes only")
    theirs = {}

    def rewrite():
        theirs["sha"] = w.branch_commit({"results.sqlite.xz": data}, "someone else's save")
        gb("update-ref", "refs/heads/syncbench-data", theirs["sha"])

    log("== push 6 to main, the data branch rewritten between restore and save")
    r6 = w.push_main(before_job={"save": rewrite})
    s6 = r6.jobs["save"]
    text = log_text(s6.steps[-1])
    check(r6.jobs["bench"].result == "success" and s6.result == "failure" and "rewritten since restore" in text,
          "push 6: save refuses a branch rewritten since restore", text[-600:])
    res = os.path.join(r6.artifacts, "results", "results.sqlite")
    check(gb("rev-parse", "refs/heads/syncbench-data") == theirs["sha"] and os.path.exists(res)
          and sha6 in commits_in(res), "push 6: their commit stays, this run's results are in the artifact")


def dashboard_commits(site, shas):
    """Which of `shas` the dashboard shows: a page per commit (runs/SHA.html)
    and the count on its landing page."""
    try:
        with open(os.path.join(site, "index.html"), errors="replace") as f:
            index = f.read()
    except OSError:
        return set()
    pages = {s for s in shas if os.path.exists(os.path.join(site, "runs", f"{s}.html"))}
    return pages if f"{len(shas)} commits" in index else set()


if __name__ == "__main__":
    sys.exit(main())
