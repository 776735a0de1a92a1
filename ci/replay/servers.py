"""Stand-ins for GitHub's servers, on 127.0.0.1 (port 0, the bound port
read back):

GitServer  a git remote over smart HTTP (`git-http-backend` as CGI) that
           requires a token for everything, as a private repository
           does: HTTP basic with the token as password (what
           actions/checkout's `http.<url>.extraheader` sends) or a bearer
           token. A token without `contents: write` gets 403 on a push,
           GitHub's answer to a read-only GITHUB_TOKEN; no token, 401.
ApiServer  the REST endpoints the workflow calls: the pull request's
           comments (list, post, update: `syncbench comment`) and
           `GET /repos/{repo}/pages` (the pages job's check), with
           GitHub's refusals: 401 without a token, 403 "Resource not
           accessible by integration" without the permission, 422 for a
           comment over 65,536 characters.

Tokens are issued per job with the job's permissions (Tokens.issue).
Every request is logged (method, path, token's job, status) for the
replay's checks.
"""

import base64
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


class Tokens:
    def __init__(self):
        self.by_value = {}
        self.lock = threading.Lock()

    def issue(self, who, permissions):
        """A GITHUB_TOKEN for `who` (e.g. "run 3 / save") with these
        permissions: {"contents": "write", "pull-requests": "write", …}."""
        token = "ghs_" + secrets.token_hex(18)
        with self.lock:
            self.by_value[token] = {"who": who, "permissions": dict(permissions), "revoked": False}
        return token

    def revoke(self, token):
        """At the job's end, as GitHub does."""
        with self.lock:
            if token in self.by_value:
                self.by_value[token]["revoked"] = True

    def lookup(self, header):
        """The token's record from an Authorization header, or None."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        token = None
        if scheme.lower() == "basic":
            try:
                _, _, token = base64.b64decode(value).decode().partition(":")
            except Exception:
                return None
        elif scheme.lower() in ("bearer", "token"):
            token = value
        with self.lock:
            rec = self.by_value.get(token)
        if rec is None or rec["revoked"]:
            return None
        return rec


def allows(rec, scope, level):
    have = rec["permissions"].get(scope, "none")
    order = {"none": 0, "read": 1, "write": 2}
    return order.get(have, 0) >= order[level]


class _Server:
    def start(self, handler_cls):
        self.log = []
        self.log_lock = threading.Lock()
        server = self

        class H(handler_cls):
            owner = server

            def log_message(self, fmt, *args):  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def record(self, **entry):
        entry["t"] = time.time()
        with self.log_lock:
            self.log.append(entry)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _read_body(h):
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while True:
            line = h.rfile.readline()
            n = int(line.split(b";")[0].strip() or b"0", 16)
            if n == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            parts.append(h.rfile.read(n))
            h.rfile.readline()
        return b"".join(parts)
    n = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(n) if n else b""


class GitServer(_Server):
    """Serves the bare repositories under `root` (root/OWNER/NAME) at
    URL/OWNER/NAME."""

    def __init__(self, root, tokens):
        self.root = root
        self.tokens = tokens

    def start(self):
        return super().start(_GitHandler)


class _GitHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.serve()

    def do_POST(self):
        self.serve()

    def serve(self):
        srv = self.owner
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        push = url.path.endswith("/git-receive-pack") or query.get("service") == ["git-receive-pack"]
        rec = srv.tokens.lookup(self.headers.get("Authorization"))
        who = rec["who"] if rec else None
        body = _read_body(self) if self.command == "POST" else b""
        if rec is None:
            srv.record(method=self.command, path=url.path, push=push, who=None, status=401)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="replay"')
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"Authentication required (the replay's remote is private)\n")
            return
        need = "write" if push else "read"
        if not allows(rec, "contents", need):
            srv.record(method=self.command, path=url.path, push=push, who=who, status=403)
            self.send_response(403)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            repo = "/".join(url.path.strip("/").split("/")[:2])
            self.wfile.write(f"Permission to {repo}.git denied to github-actions[bot].\n".encode())
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": srv.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "REQUEST_METHOD": self.command,
            "REMOTE_USER": who,
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": srv.root,
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        with tempfile.TemporaryFile() as stdin:
            stdin.write(body)
            stdin.seek(0)
            p = subprocess.Popen([HTTP_BACKEND], env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            headers, status = [], 200
            while True:
                line = p.stdout.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                k, _, v = line.decode().partition(":")
                if k.lower() == "status":
                    status = int(v.strip().split()[0])
                else:
                    headers.append((k.strip(), v.strip()))
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            shutil.copyfileobj(p.stdout, self.wfile, 1 << 16)
            err = p.stderr.read()
            p.wait()
        srv.record(method=self.command, path=url.path, push=push, who=who, status=status,
                   stderr=err.decode(errors="replace")[-500:])


class ApiServer(_Server):
    """GitHub's REST API, the part the workflow uses."""

    MAX_BODY = 65536

    def __init__(self, tokens, repo, pages_enabled=True):
        self.tokens = tokens
        self.repo = repo
        self.pages_enabled = pages_enabled
        self.comments = {}  # pr -> [comment]
        self.next_id = 1000
        self.lock = threading.Lock()

    def start(self):
        return super().start(_ApiHandler)

    def pages_url(self):
        owner, name = self.repo.split("/")
        return f"{self.url}/pages/{owner}/{name}/"


class _ApiHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.serve()

    def do_POST(self):
        self.serve()

    def do_PATCH(self):
        self.serve()

    def reply(self, status, value, rec=None):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-RateLimit-Remaining", "4999")
        self.end_headers()
        self.wfile.write(data)
        self.owner.record(method=self.command, path=self.path, who=rec["who"] if rec else None, status=status)

    def serve(self):
        srv = self.owner
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        body = _read_body(self) if self.command in ("POST", "PATCH") else b""
        rec = srv.tokens.lookup(self.headers.get("Authorization"))
        if rec is None:
            return self.reply(401, {"message": "Bad credentials"})
        if parts[:1] != ["repos"] or "/".join(parts[1:3]) != srv.repo:
            return self.reply(404, {"message": "Not Found"}, rec)
        rest = parts[3:]
        denied = {"message": "Resource not accessible by integration"}
        if rest == ["pages"] and self.command == "GET":
            if not srv.pages_enabled:
                return self.reply(404, {"message": "Not Found"}, rec)
            return self.reply(200, {"url": f"{srv.url}/repos/{srv.repo}/pages", "status": "built",
                                    "build_type": "workflow", "html_url": srv.pages_url()}, rec)
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments" and rest[1].isdigit():
            pr = int(rest[1])
            if self.command == "GET":
                per = int(query.get("per_page", ["30"])[0])
                page = int(query.get("page", ["1"])[0])
                with srv.lock:
                    items = list(srv.comments.get(pr, []))
                return self.reply(200, items[(page - 1) * per : page * per], rec)
            if self.command == "POST":
                if not allows(rec, "pull-requests", "write"):
                    return self.reply(403, denied, rec)
                text = json.loads(body or b"{}").get("body", "")
                if len(text) > srv.MAX_BODY:
                    return self.reply(422, {"message": "Validation Failed", "errors": [
                        {"resource": "IssueComment", "code": "custom", "field": "body",
                         "message": "body is too long (maximum is 65536 characters)"}]}, rec)
                with srv.lock:
                    srv.next_id += 1
                    c = {"id": srv.next_id, "body": text,
                         "html_url": f"{srv.url}/{srv.repo}/pull/{pr}#issuecomment-{srv.next_id}",
                         "user": {"login": "github-actions[bot]", "type": "Bot"},
                         "created_at": _now(), "updated_at": _now(), "edits": 0}
                    srv.comments.setdefault(pr, []).append(c)
                return self.reply(201, c, rec)
        if len(rest) == 3 and rest[:2] == ["issues", "comments"] and rest[2].isdigit() and self.command == "PATCH":
            if not allows(rec, "pull-requests", "write"):
                return self.reply(403, denied, rec)
            text = json.loads(body or b"{}").get("body", "")
            if len(text) > srv.MAX_BODY:
                return self.reply(422, {"message": "Validation Failed"}, rec)
            with srv.lock:
                for cs in srv.comments.values():
                    for c in cs:
                        if c["id"] == int(rest[2]):
                            c.update(body=text, updated_at=_now(), edits=c["edits"] + 1)
                            return self.reply(200, c, rec)
            return self.reply(404, {"message": "Not Found"}, rec)
        return self.reply(404, {"message": "Not Found (the replay's API has no such endpoint)"}, rec)


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
