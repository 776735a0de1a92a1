"""GitHub Actions expressions (`${{ … }}`), as the workflow runner
evaluates them: literals (null, booleans, numbers, 'strings' with ''),
contexts with `.name`, `['name']` and the `.*` object filter (property
names case-insensitive), `!`, `<`, `<=`, `>`, `>=`, `==`, `!=` (strings
compared case-insensitively, other mixed types as numbers), `&&` and
`||` (returning an operand, as in JavaScript), and the functions
contains, startsWith, endsWith, format, join, toJSON, fromJSON and the
status checks success, always, failure, cancelled.

Not implemented (the replay fails loudly on them): hashFiles, case().
"""

import json
import math
import re


class ExprError(Exception):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>0x[0-9a-fA-F]+|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<str>'(?:[^']|'')*')
    | (?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\].,*])
    | (?P<ident>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.X,
)


def tokenize(text):
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"cannot read the expression at {text[pos:]!r} in {text!r}")
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        out.append((kind, val))
    return out


class _Func:
    def __init__(self, name):
        self.name = name


class Parser:
    """Recursive descent over the tokens; evaluates as it parses, except
    that the right side of && and || is parsed without effects when
    short-circuited (functions of status have none anyway)."""

    def __init__(self, tokens, ctx, funcs):
        self.t = tokens
        self.i = 0
        self.ctx = ctx
        self.funcs = funcs

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else (None, None)

    def take(self, val=None):
        tok = self.peek()
        if val is not None and tok[1] != val:
            raise ExprError(f"expected {val!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self):
        v = self.or_()
        if self.i != len(self.t):
            raise ExprError(f"unexpected {self.peek()[1]!r}")
        return v

    def or_(self):
        v = self.and_()
        while self.peek()[1] == "||":
            self.take()
            r = self.and_()
            v = v if truthy(v) else r
        return v

    def and_(self):
        v = self.eq()
        while self.peek()[1] == "&&":
            self.take()
            r = self.eq()
            v = r if truthy(v) else v
        return v

    def eq(self):
        v = self.cmp()
        while self.peek()[1] in ("==", "!="):
            op = self.take()[1]
            r = self.cmp()
            v = loose_eq(v, r) if op == "==" else not loose_eq(v, r)
        return v

    def cmp(self):
        v = self.unary()
        while self.peek()[1] in ("<", "<=", ">", ">="):
            op = self.take()[1]
            r = self.unary()
            v = compare(v, r, op)
        return v

    def unary(self):
        if self.peek()[1] == "!":
            self.take()
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self):
        v = self.primary()
        while True:
            tok = self.peek()
            if tok[1] == ".":
                self.take()
                nxt = self.take()
                if nxt[1] == "*":
                    v = filter_star(v)
                elif nxt[0] == "ident":
                    v = prop(v, nxt[1])
                else:
                    raise ExprError(f"expected a property name after '.', got {nxt[1]!r}")
            elif tok[1] == "[":
                self.take()
                if self.peek()[1] == "*":
                    self.take()
                    v = filter_star(v)
                else:
                    v = index(v, self.or_())
                self.take("]")
            elif tok[1] == "(" and isinstance(v, _Func):
                self.take()
                args = []
                if self.peek()[1] != ")":
                    args.append(self.or_())
                    while self.peek()[1] == ",":
                        self.take()
                        args.append(self.or_())
                self.take(")")
                v = self.call(v.name, args)
            else:
                if isinstance(v, _Func):
                    raise ExprError(f"{v.name} is a function: call it")
                return v

    def primary(self):
        kind, val = self.take()
        if kind == "num":
            return float(int(val, 16)) if val.lower().startswith("0x") else float(val)
        if kind == "str":
            return val[1:-1].replace("''", "'")
        if val == "(":
            v = self.or_()
            self.take(")")
            return v
        if kind == "ident":
            low = val.lower()
            if low == "true":
                return True
            if low == "false":
                return False
            if low == "null":
                return None
            if self.peek()[1] == "(":
                return _Func(low)
            return prop(self.ctx, val)
        raise ExprError(f"unexpected {val!r}")

    def call(self, name, args):
        f = self.funcs.get(name) or BUILTINS.get(name)
        if f is None:
            raise ExprError(f"the replay does not implement the function {name}()")
        return f(*args)


def prop(obj, name):
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        low = name.lower()
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() == low:
                return v
        return None
    if isinstance(obj, _Star):
        return _Star([prop(x, name) for x in obj.items])
    return None


class _Star:
    """The result of `.*`: an array whose property access maps."""

    def __init__(self, items):
        self.items = items


def filter_star(v):
    if isinstance(v, list):
        return _Star(list(v))
    if isinstance(v, dict):
        return _Star(list(v.values()))
    if isinstance(v, _Star):
        return _Star([y for x in v.items for y in (x if isinstance(x, list) else x.values() if isinstance(x, dict) else [])])
    return _Star([])


def index(v, key):
    if isinstance(v, list) and isinstance(key, float) and key.is_integer():
        i = int(key)
        return v[i] if 0 <= i < len(v) else None
    if isinstance(key, str):
        return prop(v, key)
    return None


def plain(v):
    return v.items if isinstance(v, _Star) else v


def truthy(v):
    v = plain(v)
    if v is None or v is False:
        return False
    if isinstance(v, float):
        return not (v == 0 or math.isnan(v))
    if isinstance(v, str):
        return v != ""
    return True


def to_number(v):
    v = plain(v)
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, float):
        return v
    if isinstance(v, str):
        s = v.strip()
        if s == "":
            return 0.0
        try:
            return float(int(s, 16)) if s.lower().startswith("0x") else float(s)
        except ValueError:
            return math.nan
    return math.nan


def loose_eq(a, b):
    a, b = plain(a), plain(b)
    if type(a) is type(b) or (a is None and b is None):
        if isinstance(a, str):
            return a.lower() == b.lower()
        if isinstance(a, (dict, list)):
            return a is b
        return a == b
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    x, y = to_number(a), to_number(b)
    return not (math.isnan(x) or math.isnan(y)) and x == y


def compare(a, b, op):
    a, b = plain(a), plain(b)
    if isinstance(a, str) and isinstance(b, str):
        x, y = a.lower(), b.lower()
    else:
        x, y = to_number(a), to_number(b)
        if math.isnan(x) or math.isnan(y):
            return False
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def to_string(v):
    v = plain(v)
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, indent=2)
    return str(v)


def _contains(search, item):
    search = plain(search)
    if isinstance(search, list):
        return any(loose_eq(x, item) for x in search)
    return to_string(item).lower() in to_string(search).lower()


def _format(fmt, *args):
    fmt = to_string(fmt)
    out, i = [], 0
    while i < len(fmt):
        c = fmt[i]
        if c == "{" and fmt[i : i + 2] == "{{":
            out.append("{")
            i += 2
        elif c == "}" and fmt[i : i + 2] == "}}":
            out.append("}")
            i += 2
        elif c == "{":
            j = fmt.index("}", i)
            n = int(fmt[i + 1 : j])
            if n >= len(args):
                raise ExprError(f"format(): no argument {n}")
            out.append(to_string(args[n]))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _json_plain(v):
    v = plain(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, list):
        return [_json_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_plain(x) for k, x in v.items()}
    return v


def _from_json(s):
    def num(v):
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, list):
            return [num(x) for x in v]
        if isinstance(v, dict):
            return {k: num(x) for k, x in v.items()}
        return v

    return num(json.loads(to_string(s)))


BUILTINS = {
    "contains": _contains,
    "startswith": lambda a, b: to_string(a).lower().startswith(to_string(b).lower()),
    "endswith": lambda a, b: to_string(a).lower().endswith(to_string(b).lower()),
    "format": _format,
    "join": lambda a, sep=",": to_string(sep).join(to_string(x) for x in (plain(a) if isinstance(plain(a), list) else [a])),
    "tojson": lambda v: json.dumps(_json_plain(v), indent=2),
    "fromjson": _from_json,
}

STATUS = ("success", "always", "failure", "cancelled")


def evaluate(text, ctx, funcs=None):
    """The value of one expression (without the ${{ }})."""
    return plain(Parser(tokenize(text), ctx, funcs or {}).parse())


def _spans(s):
    """(start, end, inner) of each ${{ … }} in s, quotes respected."""
    i = 0
    while True:
        a = s.find("${{", i)
        if a < 0:
            return
        j, q = a + 3, False
        while j < len(s):
            if s[j] == "'":
                q = not q
            elif not q and s.startswith("}}", j):
                break
            j += 1
        else:
            raise ExprError(f"unclosed ${{{{ in {s!r}")
        yield a, j + 2, s[a + 3 : j]
        i = j + 2


def interpolate(value, ctx, funcs=None):
    """A workflow value with its ${{ }} evaluated: a string stays a
    string; a value that is one expression alone keeps its type."""
    if not isinstance(value, str):
        return value
    spans = list(_spans(value))
    if not spans:
        return value
    if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(value):
        return evaluate(spans[0][2], ctx, funcs)
    out, last = [], 0
    for a, b, inner in spans:
        out.append(value[last:a])
        out.append(to_string(evaluate(inner, ctx, funcs)))
        last = b
    out.append(value[last:])
    return "".join(out)


def interpolate_str(value, ctx, funcs=None):
    return to_string(interpolate(value, ctx, funcs)) if isinstance(value, str) else to_string(value)


def condition(text, ctx, funcs):
    """An `if:`: with or without ${{ }}; without a status function it is
    `success() && (…)`."""
    if isinstance(text, bool):
        text = "true" if text else "false"
    text = str(text).strip()
    spans = list(_spans(text))
    if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(text):
        text = spans[0][2]
    elif spans:
        # Text around ${{ }}: the whole is a string, true when not empty.
        return truthy(interpolate_str(text, ctx, funcs))
    toks = tokenize(text)
    uses_status = any(
        k == "ident" and v.lower() in STATUS and n[1] == "("
        for (k, v), n in zip(toks, toks[1:] + [(None, None)])
    )
    v = truthy(Parser(toks, ctx, funcs).parse())
    return v if uses_status else (funcs["success"]() and v)


def self_test():
    """Cases the workflow relies on; raises AssertionError."""
    ctx = {
        "github": {
            "event_name": "pull_request",
            "base_ref": "main",
            "event": {"action": "labeled", "label": {"name": "benchmark"},
                      "pull_request": {"labels": [{"name": "x"}, {"name": "Benchmark"}]}},
            "ref": "refs/pull/1/merge",
        },
        "env": {"SYNCBENCH_DB": ""},
        "steps": {"store": {"outputs": {"shared": "false"}}},
        "needs": {"bench": {"result": "failure", "outputs": {}}},
    }
    f = {"success": lambda: False, "always": lambda: True, "failure": lambda: True, "cancelled": lambda: False}
    ev = lambda e: evaluate(e, ctx, f)  # noqa: E731
    assert ev("github.event_name == 'pull_request' && format('origin/{0}', github.base_ref) || 'main'") == "origin/main"
    assert ev("github.event_name == 'push' && 'x' || 'main'") == "main"
    assert ev("contains(github.event.pull_request.labels.*.name, 'benchmark')") is True
    assert ev("contains(github.event.pull_request.labels.*.name, 'nope')") is False
    assert ev("env.SYNCBENCH_DB != ''") is False
    assert ev("env.MISSING == ''") is True  # null == '' (both 0 as numbers)
    assert ev("needs.bench.outputs.shared != 'true'") is True
    assert ev("GitHub.Event.Label.NAME == 'BENCHMARK'") is True
    assert ev("format('{{{0}}}', 1)") == "{1}"
    assert ev("!(1 < 2)") is False and ev("'abc' < 'abd'") is True
    assert ev("fromJSON('[1,2]')[1] == 2") is True
    assert interpolate("a-${{ github.base_ref }}-${{ '}}' }}", ctx, f) == "a-main-}}"
    assert interpolate("${{ github.event_name == 'pull_request' }}", ctx, f) is True
    assert condition("always() && needs.bench.result != 'cancelled'", ctx, f) is True
    assert condition("github.event_name == 'pull_request'", ctx, f) is False  # success() is false
    assert condition("${{ failure() }}", ctx, f) is True
    return 13
