"""Runs a GitHub Actions workflow here, as GitHub's runner would, from
the workflow file itself (read from the commit being run, as GitHub
does): the trigger (`on`: push branches, pull_request types), jobs in
`needs` order with their `if:`, `permissions` (a token per job with
exactly those, revoked at the job's end), `env` (workflow, job, step),
`outputs`, `continue-on-error`, steps with `id`, `if:`, `env`, `run`
(default shell `bash -e {0}`; `shell: bash` is `bash --noprofile --norc
-eo pipefail {0}`), `working-directory`, `timeout-minutes`, the file
commands (GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH, GITHUB_STEP_SUMMARY)
and the workflow commands in a step's output (::warning::, ::error::,
::notice::, ::add-mask::). `uses:` steps run the stand-ins in
ACTIONS below; an action without one fails the step.

Each job gets a fresh runner: the workspace at a fixed path
(RUNNER/work/NAME/NAME, like /home/runner/work/R/R), RUNNER_TEMP and
XDG_CACHE_HOME emptied, no git identity or credentials but what
actions/checkout leaves in the clone. Jobs run one after the other (on
GitHub independent jobs run at once). See README.md beside this file for
what is not emulated.
"""

import base64
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.parse

import yaml

from expr import condition, interpolate, interpolate_str, to_string

DEFAULT_STEP_TIMEOUT_MIN = 30
PERMISSION_SCOPES = ("actions", "attestations", "checks", "contents", "deployments", "discussions",
                     "id-token", "issues", "metadata", "packages", "pages", "pull-requests",
                     "repository-projects", "security-events", "statuses")


class StepResult:
    def __init__(self, index, name, sid):
        self.index, self.name, self.id = index, name, sid
        self.outcome = self.conclusion = "skipped"
        self.outputs = {}
        self.warnings, self.errors, self.notices = [], [], []
        self.log = None
        self.seconds = 0.0
        self.credentials_in_clone = None  # extraheader present while it ran
        self.secret_env = []  # names of token-like variables it was given
        self.action = None
        self.exit_code = None

    def __repr__(self):
        return f"<step {self.name}: {self.outcome}>"


class JobResult:
    def __init__(self, jid):
        self.id = jid
        self.result = "skipped"
        self.outputs = {}
        self.steps = []
        self.summary = ""
        self.permissions = {}
        self.token = None
        self.seconds = 0.0
        self.workspace = None
        self.env = {}

    def step(self, name_or_id):
        for s in self.steps:
            if s.id == name_or_id or s.name == name_or_id:
                return s
        raise KeyError(name_or_id)

    def warnings(self):
        return [w for s in self.steps for w in s.warnings]

    def errors(self):
        return [w for s in self.steps for w in s.errors]


class RunResult:
    def __init__(self, run_id, event, sha):
        self.run_id, self.event, self.sha = run_id, event, sha
        self.jobs = {}
        self.triggered = True
        self.artifacts = None
        self.seconds = 0.0

    def job(self, jid):
        return self.jobs[jid]


class Runner:
    def __init__(self, *, base, runner_root, remote_root, repo, git_server, api_server, tokens,
                 cache_root, secrets=None, log=print, verbose=False, cargo_lock=None):
        self.base = base  # this replay's runs: artifacts, logs, deployed site
        self.runner_root = runner_root  # fixed across replays: workspaces
        self.remote_root = remote_root
        self.repo = repo  # owner/name
        self.git = git_server
        self.api = api_server
        self.tokens = tokens
        self.cache_root = cache_root
        self.secrets = dict(secrets or {})
        self.log = log
        self.verbose = verbose
        self.cargo_lock = cargo_lock
        self.run_number = 0
        self.deployed = os.path.join(base, "deployed")
        os.makedirs(base, exist_ok=True)

    # ------------------------------------------------------------ the run

    def bare(self):
        return os.path.join(self.remote_root, self.repo)

    def run(self, workflow_path, event_name, payload, sha, ref, *, fork=False,
            permissions_override=None, only_jobs=None, before_job=None):
        """Runs the workflow at `workflow_path` as of `sha` for one event.
        before_job: {job id: callable}, called just before that job (a
        fault injected between jobs, e.g. someone else pushing)."""
        self.run_number += 1
        run_id = 9000 + self.run_number
        res = RunResult(run_id, event_name, sha)
        t0 = time.time()
        text = subprocess.run(["git", "--git-dir", self.bare(), "show", f"{sha}:{workflow_path}"],
                              check=True, capture_output=True).stdout.decode()
        wf = yaml.safe_load(text)
        name = wf.get("name", workflow_path)
        on = wf.get("on", wf.get(True))
        if not self.triggered(on, event_name, payload, ref):
            res.triggered = False
            self.log(f"[run {run_id}] {name}: not triggered by this {event_name}")
            return res
        res.artifacts = os.path.join(self.base, "artifacts", str(run_id))
        os.makedirs(res.artifacts, exist_ok=True)
        event_path = os.path.join(self.base, "events", f"{run_id}.json")
        os.makedirs(os.path.dirname(event_path), exist_ok=True)
        with open(event_path, "w") as f:
            json.dump(payload, f)
        owner, rname = self.repo.split("/")
        pr = payload.get("pull_request") or {}
        github = {
            "event_name": event_name, "event": payload, "event_path": event_path,
            "sha": sha, "ref": ref, "ref_name": ref.split("/", 2)[-1] if ref.startswith("refs/heads/") else
            (ref[len("refs/pull/"):] if ref.startswith("refs/pull/") else ref),
            "ref_type": "branch", "base_ref": pr.get("base", {}).get("ref", "") if pr else "",
            "head_ref": pr.get("head", {}).get("ref", "") if pr else "",
            "repository": self.repo, "repository_owner": owner,
            "repository_id": "1", "repository_owner_id": "1",
            "actor": payload.get("sender", {}).get("login", "replay-user"),
            "triggering_actor": payload.get("sender", {}).get("login", "replay-user"),
            "run_id": str(run_id), "run_number": str(self.run_number), "run_attempt": "1",
            "workflow": name, "workflow_ref": f"{self.repo}/{workflow_path}@{ref}",
            "server_url": self.git.url, "api_url": self.api.url, "graphql_url": self.api.url + "/graphql",
            "retention_days": "90", "action": "", "job": "", "token": "",
        }
        wf_env_raw = wf.get("env") or {}
        jobs = wf.get("jobs") or {}
        order = self.order(jobs)
        needs_ctx = {}
        for jid in order:
            if only_jobs and jid not in only_jobs:
                continue
            job = jobs[jid]
            if before_job and jid in before_job:
                before_job[jid]()
            jr = self.run_job(jid, job, wf, wf_env_raw, github, needs_ctx, res, fork=fork,
                              permissions_override=(permissions_override or {}).get(jid))
            res.jobs[jid] = jr
            needs_ctx[jid] = {"result": jr.result, "outputs": jr.outputs}
        res.seconds = time.time() - t0
        summary = ", ".join(f"{j} {r.result}" for j, r in res.jobs.items())
        self.log(f"[run {run_id}] {name} ({event_name} {sha[:8]}): {summary} in {res.seconds:.0f} s")
        return res

    @staticmethod
    def triggered(on, event, payload, ref):
        if isinstance(on, str):
            on = {on: None}
        elif isinstance(on, list):
            on = {e: None for e in on}
        if event not in on:
            return False
        spec = on[event] or {}
        if event == "push":
            name = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None
            if name is None:
                return "tags" in spec
            if "branches" in spec and not any(fnmatch.fnmatchcase(name, p) for p in spec["branches"]):
                return False
            if "branches-ignore" in spec and any(fnmatch.fnmatchcase(name, p) for p in spec["branches-ignore"]):
                return False
            return True
        if event == "pull_request":
            types = spec.get("types") or ["opened", "synchronize", "reopened"]
            if payload.get("action") not in types:
                return False
            base = payload["pull_request"]["base"]["ref"]
            if "branches" in spec and not any(fnmatch.fnmatchcase(base, p) for p in spec["branches"]):
                return False
            return True
        return True

    @staticmethod
    def order(jobs):
        done, out = set(), []

        def needs(j):
            n = jobs[j].get("needs") or []
            return [n] if isinstance(n, str) else list(n)

        while len(out) < len(jobs):
            progress = False
            for j in jobs:
                if j not in done and all(n in done for n in needs(j)):
                    out.append(j)
                    done.add(j)
                    progress = True
            if not progress:
                raise RuntimeError("jobs' needs form a cycle or name a missing job")
        return out

    # ------------------------------------------------------------- a job

    def permissions(self, wf, job, fork, override):
        p = job["permissions"] if "permissions" in job else wf.get("permissions")
        if override is not None:
            p = override
        if p is None:  # the repository's default: restricted
            perms = {"contents": "read", "metadata": "read", "packages": "read"}
        elif p == "read-all":
            perms = {s: "read" for s in PERMISSION_SCOPES}
        elif p == "write-all":
            perms = {s: "write" for s in PERMISSION_SCOPES}
        else:
            perms = {k: str(v) for k, v in (p or {}).items()}
            perms.setdefault("metadata", "read")
        if fork:  # a pull request from a fork: read-only, whatever is asked
            perms = {k: ("read" if v == "write" else v) for k, v in perms.items() if k != "id-token"}
        return perms

    def run_job(self, jid, job, wf, wf_env_raw, github, needs_ctx, res, *, fork, permissions_override):
        jr = JobResult(jid)
        t0 = time.time()
        needs = job.get("needs") or []
        needs = [needs] if isinstance(needs, str) else list(needs)
        my_needs = {n: needs_ctx[n] for n in needs if n in needs_ctx}
        job_status = {"failed": False}
        funcs = {
            "success": lambda: all(n["result"] == "success" for n in my_needs.values()),
            "failure": lambda: any(n["result"] == "failure" for n in my_needs.values()),
            "always": lambda: True,
            "cancelled": lambda: False,
        }
        secrets = dict(self.secrets) if not fork else {}
        gh = dict(github, job=jid)
        ctx = {"github": gh, "needs": my_needs, "vars": {}, "inputs": {}}
        if "if" in job and not condition(job["if"], ctx, funcs):
            jr.result = "skipped"
            self.log(f"  job {jid}: skipped (if: {str(job['if']).strip()})")
            return jr
        if "if" not in job and not funcs["success"]():
            jr.result = "skipped"
            self.log(f"  job {jid}: skipped (a job it needs did not succeed)")
            return jr
        self.log(f"  job {jid}: running")
        jr.permissions = self.permissions(wf, job, fork, permissions_override)
        token = self.tokens.issue(f"run {res.run_id} / {jid}", jr.permissions)
        jr.token = token
        gh["token"] = token
        secrets["GITHUB_TOKEN"] = token
        # A fresh runner.
        name = self.repo.split("/")[1]
        ws = os.path.join(self.runner_root, "work", name, name)
        temp = os.path.join(self.runner_root, "temp")
        xdg = os.path.join(self.runner_root, "xdg-cache")
        for d in (os.path.join(self.runner_root, "work"), temp, xdg):
            shutil.rmtree(d, ignore_errors=True)
        os.makedirs(ws)
        os.makedirs(temp)
        os.makedirs(xdg)
        jr.workspace = ws
        gitconfig = os.path.join(self.runner_root, "gitconfig")
        open(gitconfig, "w").close()
        gh["workspace"] = ws
        runner_ctx = {"os": "Linux", "arch": "X64", "name": "replay", "temp": temp,
                      "tool_cache": os.path.join(self.runner_root, "tool-cache"), "environment": "github-hosted"}
        ctx.update(runner=runner_ctx, secrets=secrets, strategy={}, matrix={},
                   job={"status": "success", "services": {}, "container": {}})
        wf_env = {k: interpolate_str(v, ctx, funcs) for k, v in wf_env_raw.items()}
        ctx["env"] = dict(wf_env)
        job_env = dict(wf_env)
        for k, v in (job.get("env") or {}).items():
            job_env[k] = interpolate_str(v, ctx, funcs)
        jr.env = dict(job_env)
        ctx["env"] = dict(job_env)
        steps_ctx = {}
        ctx["steps"] = steps_ctx
        added_env, added_path = {}, []
        post = []
        defaults = (job.get("defaults") or wf.get("defaults") or {}).get("run", {})
        logdir = os.path.join(self.base, "logs", str(res.run_id), jid)
        os.makedirs(logdir, exist_ok=True)
        step_funcs = {
            "success": lambda: not job_status["failed"],
            "failure": lambda: job_status["failed"],
            "always": lambda: True,
            "cancelled": lambda: False,
        }
        job_state = {"ws": ws, "temp": temp, "xdg": xdg, "gitconfig": gitconfig, "github": gh, "res": res,
                     "jr": jr, "post": post, "token": token, "ctx": ctx, "job_status": job_status}
        for i, step in enumerate(job.get("steps") or []):
            sid = step.get("id")
            sname = step.get("name") or (f"uses {step['uses']}" if "uses" in step else
                                         "run " + str(step.get("run", "")).strip().splitlines()[0][:60])
            sr = StepResult(i + 1, sname, sid)
            jr.steps.append(sr)
            step_ctx = dict(ctx, env=dict(job_env, **added_env))
            senv = {}
            for k, v in (step.get("env") or {}).items():
                senv[k] = interpolate_str(v, step_ctx, step_funcs)
            step_ctx["env"] = dict(step_ctx["env"], **senv)
            cond = step.get("if", "success()")
            if not condition(cond, step_ctx, step_funcs):
                sr.outcome = sr.conclusion = "skipped"
                if sid:
                    steps_ctx[sid] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
                self.log(f"    - {sname}: skipped")
                continue
            coe = interpolate(step.get("continue-on-error", False), step_ctx, step_funcs)
            coe = coe is True or to_string(coe) == "true"
            files = {k: os.path.join(temp, f"{k}-{i}") for k in ("output", "env", "path", "summary")}
            for f in files.values():
                open(f, "w").close()
            env = self.base_env(job_state, files)
            env.update(job_env)
            env.update(added_env)
            env.update(senv)
            if added_path:
                env["PATH"] = ":".join(reversed(added_path)) + ":" + env["PATH"]
            sr.secret_env = sorted(k for k, v in env.items() if v and (
                k in ("GITHUB_TOKEN", "SYNCBENCH_DB") or k.endswith("_TOKEN") or "SECRET" in k or "PASSWORD" in k))
            sr.credentials_in_clone = self.clone_has_credentials(ws)
            sr.log = os.path.join(logdir, f"{i + 1:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', sname)[:50]}.log")
            t1 = time.time()
            try:
                if "uses" in step:
                    inputs = {k: interpolate_str(v, step_ctx, step_funcs) for k, v in (step.get("with") or {}).items()}
                    ok = self.run_action(step["uses"], inputs, sr, env, job_state)
                else:
                    script = interpolate_str(step["run"], step_ctx, step_funcs)
                    shell = step.get("shell") or defaults.get("shell")
                    wd = step.get("working-directory") or defaults.get("working-directory")
                    timeout = float(step.get("timeout-minutes") or DEFAULT_STEP_TIMEOUT_MIN) * 60
                    ok = self.run_script(script, shell, os.path.join(ws, wd) if wd else ws, env, sr, timeout, temp)
            except Exception as e:  # a stand-in's own failure: the step fails, loudly
                with open(sr.log, "a") as f:
                    f.write(f"replay: {type(e).__name__}: {e}\n")
                sr.errors.append(f"{type(e).__name__}: {e}")
                ok = False
            sr.seconds = time.time() - t1
            outputs = parse_file_command(files["output"])
            sr.outputs.update(outputs)
            added_env.update(parse_file_command(files["env"]))
            with open(files["path"]) as f:
                added_path.extend(line.strip() for line in f if line.strip())
            with open(files["summary"]) as f:
                jr.summary += f.read()
            sr.outcome = "success" if ok else "failure"
            sr.conclusion = "success" if ok or coe else "failure"
            if sr.conclusion == "failure":
                job_status["failed"] = True
            if sid:
                steps_ctx[sid] = {"outputs": dict(sr.outputs), "outcome": sr.outcome, "conclusion": sr.conclusion}
            mark = "ok" if ok else ("failed (continue-on-error)" if coe else "FAILED")
            self.log(f"    - {sname}: {mark} ({sr.seconds:.1f} s)")
            for w in sr.warnings:
                self.log(f"      warning: {w}")
            for w in sr.errors:
                self.log(f"      error: {w}")
            if not ok and not self.verbose:
                self.log("      " + "\n      ".join(tail(sr.log, 25)))
        for fn in reversed(post):
            try:
                fn(job_status["failed"])
            except Exception as e:
                self.log(f"    post step failed: {e}")
        jr.result = "failure" if job_status["failed"] else "success"
        ctx["job"]["status"] = jr.result
        out_ctx = dict(ctx, env=dict(job_env, **added_env))
        for k, v in (job.get("outputs") or {}).items():
            jr.outputs[k] = interpolate_str(v, out_ctx, step_funcs)
        self.tokens.revoke(token)
        jr.seconds = time.time() - t0
        self.log(f"  job {jid}: {jr.result} ({jr.seconds:.0f} s)")
        return jr

    def base_env(self, st, files):
        # The machine's own setup: tools, locale, toolchain, and how it
        # reaches package registries (proxies, certificate authorities).
        keep = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "CARGO_HOME", "RUSTUP_HOME",
                "RUSTUP_TOOLCHAIN", "SHELL")
        env = {k: v for k, v in os.environ.items() if k in keep or re.search(
            r"PROXY|^SSL_CERT_|_CA_BUNDLE$|^CARGO_(NET|HTTP|REGISTRIES)_", k, re.I)}
        gh = st["github"]
        if self.cargo_lock:
            env["PATH"] = self.cargo_shim() + ":" + env.get("PATH", "/usr/bin:/bin")
        env.update({
            "CI": "true", "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": st["ws"], "GITHUB_REPOSITORY": gh["repository"],
            "GITHUB_REPOSITORY_OWNER": gh["repository_owner"], "GITHUB_EVENT_NAME": gh["event_name"],
            "GITHUB_EVENT_PATH": gh["event_path"], "GITHUB_SHA": gh["sha"], "GITHUB_REF": gh["ref"],
            "GITHUB_REF_NAME": gh["ref_name"], "GITHUB_REF_TYPE": gh["ref_type"],
            "GITHUB_BASE_REF": gh["base_ref"], "GITHUB_HEAD_REF": gh["head_ref"],
            "GITHUB_SERVER_URL": gh["server_url"], "GITHUB_API_URL": gh["api_url"],
            "GITHUB_GRAPHQL_URL": gh["graphql_url"], "GITHUB_RUN_ID": gh["run_id"],
            "GITHUB_RUN_NUMBER": gh["run_number"], "GITHUB_RUN_ATTEMPT": "1", "GITHUB_JOB": gh["job"],
            "GITHUB_ACTOR": gh["actor"], "GITHUB_TRIGGERING_ACTOR": gh["triggering_actor"],
            "GITHUB_WORKFLOW": gh["workflow"], "GITHUB_WORKFLOW_REF": gh["workflow_ref"],
            "GITHUB_RETENTION_DAYS": "90", "GITHUB_ACTION": "", "GITHUB_ACTION_PATH": "",
            "GITHUB_OUTPUT": files["output"], "GITHUB_ENV": files["env"], "GITHUB_PATH": files["path"],
            "GITHUB_STEP_SUMMARY": files["summary"], "GITHUB_STATE": "",
            "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", "RUNNER_NAME": "replay", "RUNNER_TEMP": st["temp"],
            "RUNNER_TOOL_CACHE": os.path.join(self.runner_root, "tool-cache"),
            "RUNNER_ENVIRONMENT": "github-hosted",
            # No git identity, no credential helper: only what the clone holds.
            "GIT_CONFIG_GLOBAL": st["gitconfig"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
            "XDG_CACHE_HOME": st["xdg"],
        })
        return env

    def cargo_shim(self):
        d = os.path.join(self.runner_root, "shim")
        os.makedirs(d, exist_ok=True)
        real = shutil.which("cargo")
        p = os.path.join(d, "cargo")
        with open(p, "w") as f:
            f.write(f'#!/bin/sh\n# The replay: one cargo at a time on this machine.\nexec flock "{self.cargo_lock}" "{real}" "$@"\n')
        os.chmod(p, 0o755)
        return d

    @staticmethod
    def clone_has_credentials(ws):
        if not os.path.isdir(os.path.join(ws, ".git")):
            return False
        r = subprocess.run(["git", "-C", ws, "config", "--local", "--get-regexp", r"^http\..*\.extraheader$"],
                           capture_output=True, env=dict(os.environ, GIT_CONFIG_NOSYSTEM="1"))
        return r.returncode == 0 and bool(r.stdout.strip())

    def run_script(self, script, shell, cwd, env, sr, timeout, temp):
        path = os.path.join(temp, f"step-{sr.index}.sh")
        with open(path, "w") as f:
            f.write(script)
        if not shell:
            cmd = ["bash", "-e", path]
        elif shell == "bash":
            cmd = ["bash", "--noprofile", "--norc", "-eo", "pipefail", path]
        elif shell == "sh":
            cmd = ["sh", "-e", path]
        elif shell == "python":
            cmd = ["python3", path]
        else:
            cmd = [path if a == "{0}" else a for a in shell.split()]
        return self.spawn(cmd, cwd, env, sr, timeout)

    def spawn(self, cmd, cwd, env, sr, timeout):
        masks = []
        with open(sr.log, "a") as log:
            p = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.time() + timeout
            for raw in p.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                m = re.match(r"^::(warning|error|notice|add-mask)(?: [^:]*)?::(.*)$", line)
                if m:
                    kind, msg = m.groups()
                    if kind == "add-mask":
                        masks.append(msg)
                        continue
                    {"warning": sr.warnings, "error": sr.errors, "notice": sr.notices}[kind].append(msg)
                for s in masks:
                    if s:
                        line = line.replace(s, "***")
                log.write(line + "\n")
                if self.verbose:
                    self.log(f"      | {line}")
                if time.time() > deadline:
                    break
            try:
                rc = p.wait(timeout=max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                rc = p.wait()
                log.write(f"replay: the step ran out of its {timeout / 60:.0f} minutes\n")
                sr.errors.append("timed out")
        sr.exit_code = rc
        return rc == 0

    # ------------------------------------------------------------ actions

    def run_action(self, uses, inputs, sr, env, st):
        name, _, ref = uses.partition("@")
        sr.action = {"name": name, "ref": ref, "inputs": inputs}
        fn = ACTIONS.get(name.lower())
        if fn is None:
            raise RuntimeError(f"the replay has no stand-in for {uses}")
        with open(sr.log, "a") as f:
            f.write(f"replay: {uses} with {json.dumps(inputs)}\n")
        return fn(self, inputs, sr, env, st)

    def git_cmd(self, args, cwd, env, sr, check=True):
        with open(sr.log, "a") as f:
            f.write("$ git " + " ".join(a if "extraheader" not in a else a.split("=")[0] + "=***" for a in args) + "\n")
            r = subprocess.run(["git", *args], cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
        if check and r.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed ({r.returncode}); see {sr.log}")
        return r.returncode


def parse_file_command(path):
    out = {}
    with open(path) as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            val = []
            while i < len(lines) and lines[i] != delim:
                val.append(lines[i])
                i += 1
            i += 1
            out[key] = "\n".join(val)
        elif "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def tail(path, n):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-n:]
    except OSError:
        return []


# ------------------------------------------------------------ stand-ins


def auth_header(token):
    return "AUTHORIZATION: basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


def act_checkout(r, inputs, sr, env, st):
    """actions/checkout v4: git init at the path, origin = the server,
    the token as `http.<server>/.extraheader` in the clone's config,
    fetch (depth, or every branch and tag with fetch-depth 0), check out
    (a branch as itself, a pull request's merge ref or a sha detached),
    and the extraheader removed at once with persist-credentials: false,
    else by the post step at the job's end."""
    gh = st["github"]
    repo = inputs.get("repository") or gh["repository"]
    dest = os.path.join(st["ws"], inputs.get("path") or "")
    token = inputs.get("token") or st["token"]
    depth = int(inputs.get("fetch-depth") or "1")
    persist = (inputs.get("persist-credentials") or "true").lower() != "false"
    ref = inputs.get("ref") or ""
    commit = ""
    if not ref:
        if repo == gh["repository"]:
            ref, commit = gh["ref"], gh["sha"]
        else:
            ref = "refs/heads/main"
    elif re.fullmatch(r"[0-9a-fA-F]{40}", ref):
        ref, commit = "", ref
    elif not ref.startswith("refs/"):
        ref = f"refs/heads/{ref}"
    if os.path.isdir(dest):
        for e in os.listdir(dest):
            p = os.path.join(dest, e)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
    os.makedirs(dest, exist_ok=True)
    url = f"{r.git.url}/{repo}"
    key = f"http.{r.git.url}/.extraheader"
    g = lambda *a, check=True: r.git_cmd(list(a), dest, env, sr, check)  # noqa: E731
    g("init", "-q")
    g("remote", "add", "origin", url)
    g("config", "--local", "gc.auto", "0")
    g("config", "--local", key, auth_header(token))
    if ref.startswith("refs/heads/"):
        branch = ref[len("refs/heads/"):]
        target = f"refs/remotes/origin/{branch}"
    elif ref.startswith("refs/pull/"):
        target = "refs/remotes/pull/" + ref[len("refs/pull/"):]
    elif ref.startswith("refs/tags/"):
        target = ref
    else:
        target = None
    if commit:
        spec = f"+{commit}:{target}" if target else commit
    else:
        spec = f"+{ref}:{target}"
    if depth <= 0:
        g("fetch", "--prune", "--no-recurse-submodules", "origin",
          "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
        g("fetch", "--no-recurse-submodules", "origin", spec)
    else:
        g("fetch", "--no-tags", "--prune", "--no-recurse-submodules", f"--depth={depth}", "origin", spec)
    if ref.startswith("refs/heads/"):
        g("checkout", "--force", "-B", branch, target)
    elif target:
        g("checkout", "--force", target)
    else:
        g("checkout", "--force", commit)

    def remove(_failed):
        if os.path.isdir(os.path.join(dest, ".git")):
            subprocess.run(["git", "-C", dest, "config", "--local", "--unset-all", key], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    if not persist:
        remove(False)
    st["post"].append(remove)
    sr.outputs["commit"] = subprocess.run(["git", "-C", dest, "rev-parse", "HEAD"], env=env,
                                          capture_output=True, text=True).stdout.strip()
    sr.outputs["ref"] = ref
    return True


def act_toolchain(r, inputs, sr, env, st):
    """dtolnay/rust-toolchain: the machine's toolchain is used as it is."""
    rc = subprocess.run(["rustc", "--version"], env=env, capture_output=True, text=True)
    with open(sr.log, "a") as f:
        f.write(f"replay: using the installed {rc.stdout.strip()}\n")
    sr.outputs["name"] = "stable"
    sr.outputs["cachekey"] = hashlib.sha1(rc.stdout.encode()).hexdigest()[:12]
    return rc.returncode == 0


def _cache_scopes(gh):
    """GitHub's cache scopes: the run's ref first, then the base branch
    (a pull request's) or the default branch."""
    own = gh["ref"]
    base = f"refs/heads/{gh['base_ref']}" if gh["base_ref"] else "refs/heads/main"
    return [own] if own == base else [own, base]


def _tracked(ws, env):
    out = subprocess.run(["git", "-C", ws, "ls-files", "-s", "-z"], env=env, capture_output=True).stdout
    files = {}
    for rec in out.split(b"\0"):
        if rec:
            meta, _, path = rec.partition(b"\t")
            files[path.decode()] = meta.split()[1].decode()
    return files


def act_rust_cache(r, inputs, sr, env, st):
    """Swatinem/rust-cache: target/ restored from a cache kept across
    jobs and replays (by key, in GitHub's scopes: the run's ref, then the
    base or default branch) and saved by the post step when the job
    succeeded, save-if allows and the key was not an exact hit. Unlike
    the real one it keeps the workspace's own crates, and restores the
    mtimes of files whose content is what the cached build saw, so the
    fresh checkout's new mtimes do not rebuild them (cargo judges by
    mtime): builds stay incremental. For the same reason an exact hit
    whose crates' sources changed since it was saved is saved again
    (where save-if allows): the real one, which drops those crates,
    rebuilds them in every job anyway; kept stale here, every job of the
    replay would rebuild them."""
    gh = st["github"]
    ws = st["ws"]
    h = hashlib.sha1()
    for root, dirs, names in os.walk(ws):
        dirs[:] = [d for d in dirs if d not in (".git", "target")]
        for n in sorted(names):
            if n in ("Cargo.lock", "Cargo.toml"):
                with open(os.path.join(root, n), "rb") as f:
                    h.update(f.read())
    key = "-".join(x for x in (inputs.get("prefix-key") or "v0-rust", inputs.get("shared-key") or gh["job"],
                               inputs.get("key") or "", h.hexdigest()[:16]) if x)
    hit, restored_from, stale = False, None, False
    for scope in _cache_scopes(gh):
        d = os.path.join(r.cache_root, urllib.parse.quote(scope, safe=""), key)
        if os.path.isdir(os.path.join(d, "target")):
            hit, restored_from = True, d
            break
    target = os.path.join(ws, "target")
    log = open(sr.log, "a")
    if restored_from:
        os.utime(restored_from)  # last used: the eviction below goes by it
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(["cp", "-a", os.path.join(restored_from, "target"), target], check=True)
        try:
            with open(os.path.join(restored_from, "sources.json")) as f:
                seen = json.load(f)
        except (OSError, ValueError):
            seen = {}
        kept = 0
        tracked = _tracked(ws, env)
        for path, blob in tracked.items():
            if path in seen and seen[path][0] == blob:
                os.utime(os.path.join(ws, path), ns=(seen[path][1], seen[path][1]))
                kept += 1
        crates = _crate_dirs(ws, tracked)
        changed = sorted(p for p in set(tracked) | set(seen)
                         if any(p.startswith(c) for c in crates)
                         and (p not in tracked or p not in seen or seen[p][0] != tracked[p]))
        stale = bool(changed)
        log.write(f"replay: restored target/ from {restored_from} (key {key}); {kept} unchanged sources keep their mtimes"
                  + (f"; {len(changed)} of the crates' files changed since it was saved (e.g. {changed[0]})"
                     if changed else "") + "\n")
    else:
        log.write(f"replay: no cache for key {key} in {_cache_scopes(gh)}\n")
    log.close()
    sr.outputs["cache-hit"] = "true" if hit else "false"
    save_if = (inputs.get("save-if") or "true").lower() == "true"
    on_failure = (inputs.get("cache-on-failure") or "false").lower() == "true"

    def save(failed):
        if not save_if or (hit and not stale) or (failed and not on_failure) or not os.path.isdir(target):
            return
        d = os.path.join(r.cache_root, urllib.parse.quote(gh["ref"], safe=""), key)
        tmp = d + ".new"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        os.rename(target, os.path.join(tmp, "target"))
        seen = {p: [b, os.stat(os.path.join(ws, p)).st_mtime_ns] for p, b in _tracked(ws, env).items()
                if os.path.exists(os.path.join(ws, p))}
        with open(os.path.join(tmp, "sources.json"), "w") as f:
            json.dump(seen, f)
        shutil.rmtree(d, ignore_errors=True)
        os.rename(tmp, d)
        r.log(f"    post rust-cache: saved target/ as {key} in {gh['ref']}"
              + (" again (the crates' sources changed)" if hit else ""))
        _evict(r.cache_root, keep=d)

    st["post"].append(save)
    return True


def _crate_dirs(ws, tracked):
    """The folders of the workspace's own packages (a Cargo.toml with a
    [package]), each ending in /."""
    dirs = []
    for path in tracked:
        if os.path.basename(path) == "Cargo.toml":
            try:
                with open(os.path.join(ws, path), errors="replace") as f:
                    if "[package]" not in f.read():
                        continue
            except OSError:
                continue
            d = os.path.dirname(path)
            dirs.append(d + "/" if d else "")
    return dirs


def _du(path):
    total = 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_blocks * 512
            except OSError:
                pass
    return total


def _evict(cache_root, keep):
    """GitHub's rule: past 10 GB of caches in a repository, the least
    recently used go (SYNCBENCH_REPLAY_CACHE_GB to change the limit).
    Without it every change of the Cargo manifests would leave another
    target/ of a gigabyte or more here for good."""
    limit = float(os.environ.get("SYNCBENCH_REPLAY_CACHE_GB") or 10) * 1e9
    entries = []
    for scope in os.listdir(cache_root):
        sd = os.path.join(cache_root, scope)
        for key in os.listdir(sd) if os.path.isdir(sd) else []:
            d = os.path.join(sd, key)
            if os.path.isdir(d) and not key.endswith(".new"):
                entries.append((os.stat(d).st_mtime, d))
    sizes = {d: _du(d) for _, d in entries}
    total = sum(sizes.values())
    for _, d in sorted(entries):
        if total <= limit:
            break
        if d != keep:
            shutil.rmtree(d, ignore_errors=True)
            total -= sizes[d]


def _hidden(name):
    return name.startswith(".")


def _glob_files(ws, pattern, include_hidden):
    """@actions/glob as upload-artifact v4 uses it: the search path is the
    pattern's part before its first wildcard; every item whose own name
    starts with a dot is skipped unless hidden files are included, the
    search path itself too; a directory matched brings everything in it."""
    pattern = os.path.normpath(os.path.join(ws, os.path.expanduser(pattern)))
    parts = pattern.split(os.sep)
    fixed = []
    for p in parts:
        if any(c in p for c in "*?["):
            break
        fixed.append(p)
    root = os.sep.join(fixed) or os.sep
    wild = len(fixed) < len(parts)
    found = []

    def matches(path):
        if not wild:
            return path == pattern or path.startswith(pattern + os.sep)
        rx = re.escape(pattern).replace(r"\*\*", "\0").replace(r"\*", "[^/]*").replace(r"\?", "[^/]").replace("\0", ".*")
        return re.fullmatch(rx + "(/.*)?", path) is not None

    def walk(path):
        if not include_hidden and _hidden(os.path.basename(path)):
            return
        if os.path.isdir(path):
            for n in sorted(os.listdir(path)):
                walk(os.path.join(path, n))
        elif os.path.isfile(path) and matches(path):
            found.append(path)

    if os.path.exists(root):
        walk(root)
    return root, found


def act_upload_artifact(r, inputs, sr, env, st):
    """actions/upload-artifact v4: the files the path patterns find
    (hidden ones only with include-hidden-files), relative to the least
    common ancestor of the search paths (a single file: its directory);
    if-no-files-found warn/error/ignore; a second artifact of the same
    name in a run is an error unless overwrite."""
    ws = st["ws"]
    name = inputs.get("name") or "artifact"
    hidden = (inputs.get("include-hidden-files") or "false").lower() == "true"
    lines = [line.strip() for line in (inputs.get("path") or "").splitlines() if line.strip()]
    includes = [line for line in lines if not line.startswith("!")]
    excludes = [line[1:] for line in lines if line.startswith("!")]
    roots, files = [], []
    for p in includes:
        root, fs = _glob_files(ws, p, hidden)
        roots.append(root)
        files.extend(fs)
    for p in excludes:
        _, drop = _glob_files(ws, p, True)
        files = [f for f in files if f not in set(drop)]
    files = sorted(set(files))
    if not files:
        how = inputs.get("if-no-files-found") or "warn"
        msg = f"No files were found with the provided path: {chr(10).join(lines)}. No artifacts will be uploaded."
        if how == "error":
            sr.errors.append(msg)
            return False
        if how == "warn":
            sr.warnings.append(msg)
        return True
    if len(roots) > 1:
        base = os.path.commonpath(roots)
    elif len(files) == 1 and files[0] == roots[0]:
        base = os.path.dirname(files[0])
    else:
        base = roots[0]
    dest = os.path.join(st["res"].artifacts, name)
    if os.path.exists(dest):
        if (inputs.get("overwrite") or "false").lower() != "true":
            sr.errors.append(f"Failed to CreateArtifact: an artifact with this name already exists on the workflow run: {name}")
            return False
        shutil.rmtree(dest)
    for f in files:
        rel = os.path.relpath(f, base)
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        shutil.copy2(f, os.path.join(dest, rel))
    with open(sr.log, "a") as log:
        log.write(f"replay: artifact {name}: {len(files)} files from {base}\n")
    sr.outputs["artifact-id"] = str(abs(hash(dest)) % 10**8)
    sr.outputs["artifact-url"] = f"{r.git.url}/{r.repo}/actions/runs/{st['res'].run_id}/artifacts/{name}"
    return True


def act_download_artifact(r, inputs, sr, env, st):
    """actions/download-artifact v4: an artifact of this run by name into
    path (default the workspace), or every artifact, each in a folder of
    its name; a missing name fails."""
    src_root = st["res"].artifacts
    path = os.path.join(st["ws"], os.path.expanduser(inputs.get("path") or ""))
    name = inputs.get("name")
    if name:
        src = os.path.join(src_root, name)
        if not os.path.isdir(src):
            sr.errors.append(f"Unable to download artifact(s): Artifact not found for name: {name}")
            return False
        shutil.copytree(src, path, dirs_exist_ok=True)
    else:
        pat = inputs.get("pattern") or "*"
        merge = (inputs.get("merge-multiple") or "false").lower() == "true"
        for n in sorted(os.listdir(src_root)):
            if fnmatch.fnmatchcase(n, pat):
                shutil.copytree(os.path.join(src_root, n), path if merge else os.path.join(path, n), dirs_exist_ok=True)
    sr.outputs["download-path"] = path
    return True


def act_upload_pages_artifact(r, inputs, sr, env, st):
    """actions/upload-pages-artifact v3: the folder as a tar (without .git
    and .github), uploaded as the artifact `github-pages`."""
    src = os.path.join(st["ws"], inputs.get("path") or "_site/")
    name = inputs.get("name") or "github-pages"
    dest = os.path.join(st["res"].artifacts, name)
    if os.path.exists(dest):
        sr.errors.append(f"an artifact named {name} already exists")
        return False
    os.makedirs(dest)
    with tarfile.open(os.path.join(dest, "artifact.tar"), "w") as t:
        for root, dirs, names in os.walk(src):
            dirs[:] = [d for d in dirs if d not in (".git", ".github")]
            for n in names:
                full = os.path.join(root, n)
                t.add(full, arcname="./" + os.path.relpath(full, src))
    return True


def act_deploy_pages(r, inputs, sr, env, st):
    """actions/deploy-pages v4: needs `pages: write` and `id-token: write`;
    the `github-pages` artifact unpacked into the replay's deployed/."""
    perms = st["jr"].permissions
    if perms.get("pages") != "write" or perms.get("id-token") != "write":
        sr.errors.append('Ensure GITHUB_TOKEN has permission "id-token: write" and "pages: write"')
        return False
    name = inputs.get("artifact_name") or "github-pages"
    tar = os.path.join(st["res"].artifacts, name, "artifact.tar")
    if not os.path.exists(tar):
        sr.errors.append(f"No artifact named {name} was found for this workflow run")
        return False
    shutil.rmtree(r.deployed, ignore_errors=True)
    os.makedirs(r.deployed)
    with tarfile.open(tar) as t:
        if hasattr(tarfile, "data_filter"):
            t.extractall(r.deployed, filter="data")
        else:  # Python before 3.11.4 (Debian 12's 3.11.2): the same rule by hand
            top = os.path.realpath(r.deployed)
            for m in t.getmembers():
                dest = os.path.realpath(os.path.join(top, m.name))
                if not (m.isfile() or m.isdir()) or (dest != top and not dest.startswith(top + os.sep)):
                    raise RuntimeError(f"the pages artifact holds {m.name!r}: not a file or folder under the site")
            t.extractall(r.deployed)
    sr.outputs["page_url"] = r.api.pages_url()
    return True


ACTIONS = {
    "actions/checkout": act_checkout,
    "dtolnay/rust-toolchain": act_toolchain,
    "swatinem/rust-cache": act_rust_cache,
    "actions/upload-artifact": act_upload_artifact,
    "actions/download-artifact": act_download_artifact,
    "actions/upload-pages-artifact": act_upload_pages_artifact,
    "actions/deploy-pages": act_deploy_pages,
}
