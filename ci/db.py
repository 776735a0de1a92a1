#!/usr/bin/env python3
"""The results database on a data branch (`ci/db.sh restore|save`).

The branch holds ONE commit without parents, replaced by every save, so
the repository keeps one copy of the history however many saves there
were. Its tree:

  results.sqlite.xz   the database, xz-compressed (SHA-256 integrity check)
  manifest.json       what it holds: runs per table, sizes, sha256 of the
                      uncompressed database, samples pruned
  README.md           what this branch is

restore  reads the branch's tip from the remote (or, when the remote
         cannot be asked, e.g. a checkout without persisted credentials,
         the copy a full checkout fetched with every branch), checks the
         download (xz integrity, sha256, SQLite quick_check, ours by
         application_id) and only then puts it at DB; it writes DB.lease:
         the tip it saw and how many runs that copy holds. A damaged,
         truncated or foreign download fails, leaving DB untouched and
         no lease.
save     needs DB.lease (what restore saw). It refuses when the branch
         was rewritten since (tip != lease) or when DB holds fewer runs
         than the copy it would replace; prunes raw samples (CPU/RSS
         curves and phase marks, oldest runs first, never results) until
         the compressed file fits the budget; makes the commit with git
         plumbing in this clone (hash-object, mktree, commit-tree) and
         force-pushes it with a lease on the restored tip, using this
         clone's own credentials (e.g. what actions/checkout persisted).

Env: SYNCBENCH_DATA_BRANCH (syncbench-data), SYNCBENCH_REMOTE (origin),
     SYNCBENCH_DATA_BUDGET_MB (90: GitHub refuses files over 100 MB),
     SYNCBENCH_DATA_XZ_PRESET (6), SYNCBENCH_DATA_ALLOW_SHRINK=1 (a
     deliberate reset: save a smaller history over a larger one).
Exit status: 0 done, 1 refused or failed (the message says why and what
to do), 2 usage.
"""

import hashlib
import json
import lzma
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

APPLICATION_ID = 0x53424E43  # "SBNC", PRAGMA application_id of syncbench's databases
DB_FILE = "results.sqlite.xz"
OLD_DB_FILE = "results.sqlite"  # the layout before: the raw file, a commit per save
MANIFEST = "manifest.json"
# Tables whose rows are kept forever and must never shrink between saves.
COUNTED = ("runs", "ab_runs", "profiles", "triage", "commits")
# Raw per-repetition data beside the results, pruned oldest first past the
# budget: CPU % and RSS over time, and the driver's phase marks drawn on
# those curves. Every value a series, a gate or a change point reads is
# in `measurements` (per-phase walls included), never pruned.
RAW = ("samples", "phases")
CHUNK = 1 << 20

README = """# syncbench results

This branch is written by `ci/db.sh save` (see ci/db.py): one commit
without parents, replaced on every save, holding the results database
compressed with xz. Restore it with `bash ci/db.sh restore`; do not
commit to it by hand (a save refuses to replace a tip it did not
restore).
"""


class Refused(Exception):
    """A clear refusal: printed as is, exit 1."""


def say(msg):
    print(f"ci/db.sh: {msg}", flush=True)


def env(name, default):
    v = os.environ.get(name, "")
    return v if v else default


def git(*args, check=True, input=None, capture=True, extra_env=None):
    e = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    if extra_env:
        e.update(extra_env)
    r = subprocess.run(
        ["git", *args],
        input=input,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        env=e,
    )
    if check and r.returncode != 0:
        raise Refused(
            f"git {' '.join(args)} failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()}"
        )
    return r


def out(*args):
    return git(*args).stdout.decode().strip()


# ---------------------------------------------------------------- the tip


def remote_tip(remote, branch):
    """(sha or None, how): the branch's tip on the remote; None when it has
    no such branch. Raises Refused when the remote cannot be asked and no
    full checkout's copy says."""
    r = git("ls-remote", "--exit-code", remote, f"refs/heads/{branch}", check=False)
    if r.returncode == 0:
        return r.stdout.decode().split()[0], "remote"
    if r.returncode == 2:
        return None, "remote"
    why = r.stderr.decode(errors="replace").strip().splitlines()
    why = why[-1] if why else f"exit {r.returncode}"
    # A checkout without persisted credentials cannot ask a private
    # remote; a full one (fetch-depth: 0, not shallow) fetched every branch
    # into refs/remotes/REMOTE/ moments ago, and that copy says.
    shallow = out("rev-parse", "--is-shallow-repository") == "true"
    tracking = f"refs/remotes/{remote}/{branch}"
    local = git("rev-parse", "--verify", "--quiet", f"{tracking}^{{commit}}", check=False)
    if local.returncode == 0:
        return local.stdout.decode().strip(), f"{tracking} (the remote could not be asked: {why})"
    others = out("for-each-ref", "--count=1", f"refs/remotes/{remote}/")
    if not shallow and others:
        return None, f"no {tracking} in this full clone (the remote could not be asked: {why})"
    raise Refused(
        f"cannot read {remote}/{branch}: {why}. Give this clone read access to {remote}, "
        f"or check out with every branch (actions/checkout: fetch-depth: 0)"
    )


def fetch_tip(remote, branch, sha):
    """Makes sure the tip's objects are here."""
    if git("cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0:
        return sha
    # --depth 1 only in a shallow clone: in a full one it would make the
    # clone shallow (the branch is one commit anyway).
    depth = ["--depth", "1"] if out("rev-parse", "--is-shallow-repository") == "true" else []
    git("fetch", "--quiet", "--no-tags", *depth, remote, f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}")
    got = out("rev-parse", f"refs/remotes/{remote}/{branch}")
    if got != sha:
        say(f"{remote}/{branch} moved while restoring ({sha[:12]} -> {got[:12]}): using {got[:12]}")
    return got


# ------------------------------------------------------------ the database


def check_sqlite(path, what):
    """Counts of COUNTED tables; Refused unless `path` is a sound syncbench
    database."""
    with open(path, "rb") as f:
        head = f.read(100)
    if not head.startswith(b"SQLite format 3\x00"):
        raise Refused(f"{what} is not a SQLite database (it starts with {head[:16]!r})")
    try:
        c = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro&immutable=1", uri=True)
        try:
            problems = [r[0] for r in c.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise Refused(f"{what} is damaged: {'; '.join(problems[:5])}")
            app = c.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if app != APPLICATION_ID or "runs" not in tables:
                raise Refused(f"{what} is a SQLite database, but not syncbench's (application_id {app:#x})")
            return {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED if t in tables}
        finally:
            c.close()
    except sqlite3.DatabaseError as e:
        raise Refused(f"{what} is damaged: {e}") from None


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(CHUNK):
            h.update(b)
    return h.hexdigest()


def compress(src, dst, preset):
    """xz with a SHA-256 check: the xz program on every core where there is
    one (the same format in blocks, read back by Python's lzma), else
    Python's lzma on one."""
    xz = shutil.which("xz")
    if xz and os.environ.get("SYNCBENCH_DATA_XZ") != "python":
        with open(src, "rb") as i, open(dst, "wb") as o:
            r = subprocess.run([xz, "-z", "-c", "-T0", f"-{preset}", "--check=sha256"], stdin=i, stdout=o,
                               stderr=subprocess.PIPE)
        if r.returncode == 0:
            return os.path.getsize(dst)
        say(f"xz failed ({r.stderr.decode(errors='replace').strip()}): compressing with Python's lzma")
    c = lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_SHA256, preset=preset)
    with open(src, "rb") as i, open(dst, "wb") as o:
        while b := i.read(CHUNK):
            o.write(c.compress(b))
        o.write(c.flush())
    return os.path.getsize(dst)


def decompress_stream(stream, dst, what):
    """xz from a pipe into dst; Refused on a damaged or truncated stream."""
    d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        with open(dst, "wb") as o:
            while b := stream.read(CHUNK):
                if d.eof:
                    raise Refused(f"{what} has data after its end: damaged")
                o.write(d.decompress(b))
    except lzma.LZMAError as e:
        raise Refused(f"{what} is damaged ({e})") from None
    if not d.eof:
        raise Refused(f"{what} is truncated (the xz stream ends early)")


def blob_to_file(commit, name, dst):
    """The file `name` of `commit` into dst, decompressed when .xz."""
    what = f"{name} of the data branch ({commit[:12]})"
    p = subprocess.Popen(["git", "cat-file", "blob", f"{commit}:{name}"], stdout=subprocess.PIPE)
    try:
        if name.endswith(".xz"):
            decompress_stream(p.stdout, dst, what)
        else:
            with open(dst, "wb") as o:
                shutil.copyfileobj(p.stdout, o, CHUNK)
    finally:
        p.stdout.close()
        rc = p.wait()
    if rc != 0:
        raise Refused(f"reading {what} failed (git cat-file exit {rc})")
    return what


def lease_path(db):
    return db + ".lease"


# ----------------------------------------------------------------- restore


def restore(db, remote, branch):
    t0 = time.time()
    lease = lease_path(db)
    if os.path.exists(lease):
        os.remove(lease)  # a lease only ever says what this restore saw
    os.makedirs(os.path.dirname(os.path.abspath(db)), exist_ok=True)
    tip, how = remote_tip(remote, branch)
    record = {"remote": remote, "branch": branch, "sha": None, "counts": {}}
    if tip is None:
        say(f"no {remote}/{branch} yet ({how}); starting with an empty database")
        write_json(lease, record)
        return
    tip = fetch_tip(remote, branch, tip)
    names = set(out("ls-tree", "--name-only", tip).split("\n"))
    manifest = None
    if MANIFEST in names:
        try:
            manifest = json.loads(git("cat-file", "blob", f"{tip}:{MANIFEST}").stdout)
        except ValueError as e:
            raise Refused(f"{MANIFEST} of {remote}/{branch} ({tip[:12]}) is damaged: {e}") from None
    name = DB_FILE if DB_FILE in names else OLD_DB_FILE if OLD_DB_FILE in names else None
    if name is None:
        raise Refused(
            f"{remote}/{branch} ({tip[:12]}) holds neither {DB_FILE} nor {OLD_DB_FILE}: "
            f"not a syncbench data branch"
        )
    fd, tmp = tempfile.mkstemp(prefix=".restore-", dir=os.path.dirname(os.path.abspath(db)))
    os.close(fd)
    try:
        what = blob_to_file(tip, name, tmp)
        if manifest and manifest.get("sha256") and sha256_file(tmp) != manifest["sha256"]:
            raise Refused(f"{what} does not match the sha256 its manifest records: damaged")
        counts = check_sqlite(tmp, what)
        for side in ("-wal", "-shm"):
            if os.path.exists(db + side):
                os.remove(db + side)
        os.replace(tmp, db)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    record.update(sha=tip, counts=counts)
    write_json(lease, record)
    packed = int(out("cat-file", "-s", f"{tip}:{name}"))
    say(
        f"restored {db} from {remote}/{branch} at {tip[:12]} ({how}): {counts.get('runs', 0)} runs, "
        f"{mb(packed)} -> {mb(os.path.getsize(db))} in {time.time() - t0:.1f} s"
    )


# -------------------------------------------------------------------- save


def save(db, remote, branch):
    t0 = time.time()
    if not os.path.exists(db):
        raise Refused(f"{db} does not exist: nothing to save")
    lease_file = lease_path(db)
    if not os.path.exists(lease_file):
        raise Refused(
            f"{lease_file} is missing: save replaces only the copy `ci/db.sh restore` saw "
            f"(its lease travels beside {db}, e.g. in the `results` artifact); restore before measuring"
        )
    try:
        with open(lease_file) as f:
            lease = json.load(f)
        expected, before = lease["sha"], lease["counts"]
    except (ValueError, KeyError, TypeError) as e:
        raise Refused(f"{lease_file} is damaged ({e}): restore again") from None
    if lease.get("branch", branch) != branch:
        raise Refused(f"{lease_file} is for branch {lease['branch']}, not {branch}")
    work = tempfile.mkdtemp(prefix="syncbench-save-")
    try:
        copy = os.path.join(work, "results.sqlite")
        # A consistent single-file copy (the database may be in WAL mode).
        src = sqlite3.connect(db)
        dst = sqlite3.connect(copy)
        src.backup(dst)
        src.close()
        dst.execute("VACUUM")
        dst.close()
        counts = check_sqlite(copy, db)
        shrunk = [f"{t}: {before[t]} -> {counts.get(t, 0)}" for t in before if counts.get(t, 0) < before[t]]
        if shrunk and os.environ.get("SYNCBENCH_DATA_ALLOW_SHRINK") != "1":
            raise Refused(
                f"{db} holds less than the copy on {remote}/{branch} it would replace "
                f"({', '.join(shrunk)}): not saved. A restore that failed, or results of another "
                f"history? SYNCBENCH_DATA_ALLOW_SHRINK=1 saves it anyway"
            )
        tip, how = remote_tip(remote, branch)
        if tip != expected:
            raise Refused(rewritten(remote, branch, expected, tip))
        budget = int(float(env("SYNCBENCH_DATA_BUDGET_MB", "90")) * 1e6)
        preset = int(env("SYNCBENCH_DATA_XZ_PRESET", "6"))
        packed = os.path.join(work, DB_FILE)
        t1 = time.time()
        size, pruned = fit(copy, packed, budget, preset)
        t_compress = time.time() - t1
        head = git("rev-parse", "--short", "-q", "--verify", "HEAD", check=False).stdout.decode().strip() or "?"
        manifest = {
            "format": 1,
            "db": DB_FILE,
            "compression": f"xz -{preset}, check sha256",
            "bytes": os.path.getsize(copy),
            "compressed_bytes": size,
            "sha256": sha256_file(copy),
            "counts": counts,
            "pruned_sample_runs": pruned,
            "saved_from": head,
            "saved_unix": int(time.time()),
        }
        mpath = os.path.join(work, MANIFEST)
        write_json(mpath, manifest)
        rpath = os.path.join(work, "README.md")
        with open(rpath, "w") as f:
            f.write(README)
        blobs = {n: out("hash-object", "-w", "--", p) for n, p in ((DB_FILE, packed), (MANIFEST, mpath), ("README.md", rpath))}
        tree = out_input(["mktree"], "".join(f"100644 blob {s}\t{n}\n" for n, s in sorted(blobs.items())))
        ident = {
            "GIT_AUTHOR_NAME": "syncbench", "GIT_AUTHOR_EMAIL": "syncbench@users.noreply.github.com",
            "GIT_COMMITTER_NAME": "syncbench", "GIT_COMMITTER_EMAIL": "syncbench@users.noreply.github.com",
        }
        msg = f"results for {head}: {counts.get('runs', 0)} runs"
        commit = git("commit-tree", tree, "-m", msg, extra_env=ident).stdout.decode().strip()
        push(remote, branch, commit, expected)
        write_json(lease_file, {"remote": remote, "branch": branch, "sha": commit, "counts": counts})
        say(
            f"saved {db} to {remote}/{branch} at {commit[:12]} (one commit, replacing "
            f"{expected[:12] if expected else 'nothing'}): {counts.get('runs', 0)} runs, "
            f"{mb(manifest['bytes'])} -> {mb(size)} (xz {t_compress:.1f} s)"
            + (f", raw samples of the {pruned} oldest runs pruned to fit {mb(budget)}" if pruned else "")
            + f", {time.time() - t0:.1f} s in all"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rewritten(remote, branch, expected, tip):
    saw = expected[:12] if expected else "no branch"
    now = tip[:12] if tip else "no branch"
    return (
        f"{remote}/{branch} was rewritten since restore (restore saw {saw}, it is now {now}): "
        f"not saved, so that nobody's results are lost. This run's results stay in the `results` "
        f"artifact: restore again, `syncbench merge` them in, and save; or re-run the workflow"
    )


def push(remote, branch, commit, expected):
    lease = f"refs/heads/{branch}:{expected or ''}"
    r = git("push", "--porcelain", f"--force-with-lease={lease}", remote, f"{commit}:refs/heads/{branch}", check=False)
    if r.returncode == 0:
        return
    err = (r.stderr + r.stdout).decode(errors="replace").strip()
    low = err.lower()
    if "stale info" in low or "fetch first" in low or "non-fast-forward" in low:
        tip, _ = remote_tip(remote, branch)
        raise Refused(rewritten(remote, branch, expected, tip) + f"\n{err}")
    if "could not read username" in low or "401" in low or "authentication failed" in low:
        raise Refused(
            f"{remote} refused the push to {branch}: this clone holds no credentials for it "
            f"(a checkout with persist-credentials: false?): nothing saved. The save job's checkout "
            f"keeps its token (persist-credentials: true) and the job has `permissions: contents: write`; "
            f"this run's results stay in the `results` artifact (`syncbench merge` them after the next restore).\n{err}"
        )
    if any(k in low for k in ("403", "permission", "denied", "not allowed", "unauthorized")):
        raise Refused(
            f"{remote} refused the push to {branch} (no right to write): nothing saved. The job needs "
            f"`permissions: contents: write` and a checkout that keeps its credentials "
            f"(persist-credentials); this run's results stay in the `results` artifact "
            f"(`syncbench merge` them after the next restore).\n{err}"
        )
    raise Refused(f"pushing {branch} to {remote} failed: nothing saved; this run's results stay in the `results` artifact.\n{err}")


def out_input(args, text):
    return git(*args, input=text.encode()).stdout.decode().strip()


def fit(copy, packed, budget, preset):
    """Compresses `copy` into `packed`, pruning raw samples of the oldest
    runs first until it fits `budget`; returns (size, runs pruned)."""
    size = compress(copy, packed, preset)
    if size <= budget:
        return size, 0
    c = sqlite3.connect(copy)
    try:
        present = [t for t in RAW if c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (t,)).fetchone()]
        per_run = {}
        for t in present:
            for run, n in c.execute(f"SELECT run_id, count(*) FROM {t} GROUP BY run_id"):
                per_run[run] = per_run.get(run, 0) + n
        order = [r for (r,) in c.execute("SELECT id FROM runs ORDER BY started_unix, id") if r in per_run]
        total = sum(per_run.values())
        # Aim below the budget, so the next saves do not prune again at once.
        target = budget * 0.9
        rate = None  # compressed bytes per raw row, learnt from the first try
        pruned = 0
        while size > budget:
            if pruned == len(order):
                raise Refused(
                    f"the results alone compress to {mb(size)}, over the {mb(budget)} budget, with every "
                    f"raw sample pruned: a data branch cannot hold this history (GitHub refuses files "
                    f"over 100 MB). Use a shared PostgreSQL database (SYNCBENCH_DB), or raise "
                    f"SYNCBENCH_DATA_BUDGET_MB if the host allows larger files"
                )
            if rate is None:
                rate = estimate_rate(c, present, per_run, order, preset)
                if size - rate * total > budget * 1.1:
                    raise Refused(
                        f"the database compresses to {mb(size)}, and without any raw sample still to about "
                        f"{mb(size - rate * total)}: over the {mb(budget)} budget. A data branch cannot hold "
                        f"this history (GitHub refuses files over 100 MB). Use a shared PostgreSQL database "
                        f"(SYNCBENCH_DB), or raise SYNCBENCH_DATA_BUDGET_MB if the host allows larger files"
                    )
            want = (size - target) / max(rate, 1e-9)
            cut, rows = pruned, 0
            while cut < len(order) and (rows < want or cut == pruned):
                rows += per_run[order[cut]]
                cut += 1
            ids = order[pruned:cut]
            for t in present:
                c.executemany(f"DELETE FROM {t} WHERE run_id = ?", [(i,) for i in ids])
            c.commit()
            c.execute("VACUUM")
            before = size
            size = compress(copy, packed, preset)
            if rows:
                rate = max((before - size) / rows, rate * 0.5)
            pruned = cut
        return size, pruned
    finally:
        c.close()


def estimate_rate(c, present, per_run, order, preset):
    """Compressed bytes per raw row: runs spread over the history, up to
    about 300,000 rows of their raw tables, compressed alone."""
    total = sum(per_run.values())
    if total == 0:
        return 1.0
    step = max(1, round(total / 300_000))
    ids = order[::step]
    rows = sum(per_run[i] for i in ids)
    d = tempfile.mkdtemp(prefix="syncbench-rate-")
    try:
        path = os.path.join(d, "raw.sqlite")
        c.execute("ATTACH ? AS raw", (path,))
        c.execute("CREATE TEMP TABLE rate_runs (id INTEGER PRIMARY KEY)")
        c.executemany("INSERT INTO rate_runs VALUES (?)", [(i,) for i in ids])
        for t in present:
            c.execute(f"CREATE TABLE raw.{t} AS SELECT * FROM main.{t} WHERE run_id IN (SELECT id FROM rate_runs)")
        c.execute("DROP TABLE rate_runs")
        c.commit()
        c.execute("DETACH raw")
        return compress(path, path + ".xz", preset) / max(rows, 1)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ helpers


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def mb(n):
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def main(argv):
    if len(argv) not in (1, 2) or argv[0] not in ("restore", "save"):
        print("usage: ci/db.sh restore|save [DB]", file=sys.stderr)
        return 2
    db = argv[1] if len(argv) > 1 else ".syncbench/results.sqlite"
    remote = env("SYNCBENCH_REMOTE", "origin")
    branch = env("SYNCBENCH_DATA_BRANCH", "syncbench-data")
    try:
        (restore if argv[0] == "restore" else save)(db, remote, branch)
    except Refused as e:
        print(f"ci/db.sh {argv[0]}: {e}", file=sys.stderr, flush=True)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            # An annotation on the run's page, first line only.
            print(f"::error::ci/db.sh {argv[0]}: {str(e).splitlines()[0]}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
