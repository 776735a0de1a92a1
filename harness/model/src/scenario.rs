//! Scenario files (`scenarios/*.toml`): what to run, with which parameters,
//! how often. Errors name the file, the line and the field.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

pub use crate::variant::{VARIANT_PARAM, Variant};

/// A sync point's own workload, where it names one (else the scenario's).
pub const WORKLOAD_PARAM: &str = "workload";

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}:{line}: field `{field}`: {message}")]
    Field {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no scenario {0:?}: not a file, and not a name in scenarios/ (`syncbench list` shows them)"
    )]
    NotFound(String),
    #[error(
        "{0:?} is not a scenario name: a job names scenarios of the worker's own scenarios/ \
         by name (letters, digits, _ - .), never a path; nothing was run"
    )]
    NotAName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A workload of the reference system's driver (`sync-client bench`).
    Sync { workload: String },
    /// Any shell command, measured from outside.
    Command { build: Option<String>, run: String },
    /// `cargo bench ARGS -- FILTER` in the tree; each criterion benchmark
    /// it runs becomes a point of its own (its full id).
    Criterion {
        bench: String,
        filter: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    pub kind: Kind,
    pub repetitions: u32,
    pub warmup: u32,
    pub timeout: Duration,
    /// Part of the suite `syncbench run` runs when given no scenario.
    pub default: bool,
    pub points: Vec<Point>,
    /// Also count instructions: once per point under valgrind where the
    /// kernel has no hardware counters (repeatable where CPU time is not).
    /// Commands: all their processes together; sync scenarios: each
    /// process, per phase too.
    pub instructions: bool,
    /// Smallest relative change (0.05 = 5%) that counts, per metric name
    /// or metric suffix (`wall`, `peak_rss`, `upload.wall`…).
    pub thresholds: Thresholds,
    /// A shell command run once before the build (not measured): installs
    /// what the scenario needs, e.g. nginx.
    pub setup: Option<String>,
    /// Variables the credential rule (secrets.rs) removes that the
    /// scenario's setup, build and run commands get back.
    pub pass_env: Vec<String>,
    /// How the server side is laid out (sync scenarios).
    pub servers: Servers,
    /// The workload runs for a fixed time (`load`), so how much work it
    /// does follows throughput: its counts are not exact.
    pub fixed_time: bool,
    /// The build configurations measured, the default first; `points`
    /// holds every point once per variant, the variants' after the
    /// default's.
    pub variants: Vec<Variant>,
}

/// The processes serving a sync scenario. Each field is a template:
/// `{param}` is replaced by the point's value, so a scenario can sweep them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers {
    /// Extra `sync-server serve` flags, e.g. `--workers {workers}`.
    pub args: String,
    /// How many server processes, each on a port of its own.
    pub backends: String,
    /// `none`, or `nginx` (round-robin over the backends).
    pub proxy: String,
    /// The system's Prometheus endpoint, read at every phase boundary
    /// (empty: none). `{services}` and `{server}` stand for each server's
    /// services and user API URLs; a URL without them is read as is.
    pub prometheus: String,
}

impl Default for Servers {
    fn default() -> Self {
        Servers {
            args: String::new(),
            backends: "1".into(),
            proxy: "none".into(),
            prometheus: String::new(),
        }
    }
}

/// [`Servers`] resolved for one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub args: Vec<String>,
    pub backends: usize,
    pub nginx: bool,
}

impl Servers {
    pub fn resolve(&self, point: &Point) -> Result<Layout, String> {
        let args = point.substitute(&self.args);
        let backends = point.substitute(&self.backends);
        let proxy = point.substitute(&self.proxy);
        let n: usize = backends
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| format!("backends = {backends:?}: give a number from 1 to 64"))?;
        let nginx = match proxy.trim() {
            "none" => false,
            "nginx" => true,
            p => return Err(format!("proxy = {p:?}: use \"none\" or \"nginx\"")),
        };
        if n > 1 && !nginx {
            return Err(format!(
                "{n} backends need a proxy in front (proxy = \"nginx\"); for several processes on one port use --workers in `server_args`"
            ));
        }
        Ok(Layout {
            args: args.split_whitespace().map(str::to_owned).collect(),
            backends: n,
            nginx,
        })
    }
}

/// One combination of parameter values: a series of its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Point(pub BTreeMap<String, String>);

impl Point {
    /// Canonical text, e.g. `docs=1000,size=10KiB` (empty without params).
    pub fn key(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn json(&self) -> String {
        serde_json::to_string(&self.0).expect("string map serializes")
    }

    /// The variant this point is measured on (`None`: the default).
    pub fn variant(&self) -> Option<&str> {
        self.0.get(VARIANT_PARAM).map(String::as_str)
    }

    /// The parameters a sync driver gets: all but the variant and the
    /// workload.
    pub fn params(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0
            .iter()
            .filter(|(k, _)| *k != VARIANT_PARAM && *k != WORKLOAD_PARAM)
    }

    /// The sync workload this point runs: its own, else `scenario_default`.
    pub fn workload<'a>(&'a self, scenario_default: &'a str) -> &'a str {
        self.0
            .get(WORKLOAD_PARAM)
            .map_or(scenario_default, String::as_str)
    }

    /// This point on variant `v` (the default variant adds nothing).
    pub fn with_variant(&self, v: &Variant) -> Point {
        let mut p = self.clone();
        p.0.remove(VARIANT_PARAM);
        if !v.is_default {
            p.0.insert(VARIANT_PARAM.to_owned(), v.name.clone());
        }
        p
    }

    /// Replaces `{name}` with the parameter's value, `{{` and `}}` with
    /// literal braces ([`render`]). Names that are not parameters stay as
    /// they are (the harness's own, like `{server}`, are filled later;
    /// others were refused when the file loaded).
    pub fn substitute(&self, template: &str) -> String {
        render(template, &|name| {
            Some(
                self.0
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| format!("{{{name}}}")),
            )
        })
        .unwrap_or_else(|_| template.to_owned())
    }
}

/// A template filled in: `{name}` becomes `value(name)` (an error naming
/// it when that is `None`); `{{` and `}}` are literal braces; the shell's
/// `${…}` and braces around anything but a name (`{a,b}`, `{1..3}`,
/// `{ cmd; }`) are left as written.
pub fn render(template: &str, value: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}', '$']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let taken = if tail.starts_with("{{") {
            out.push('{');
            2
        } else if tail.starts_with("}}") {
            out.push('}');
            2
        } else if tail.starts_with("${") {
            let end = tail.find('}').map_or(tail.len(), |j| j + 1);
            out.push_str(&tail[..end]);
            end
        } else if let Some(name) = tail
            .strip_prefix('{')
            .and_then(|t| t.split_once('}'))
            .map(|(name, _)| name)
            .filter(|n| {
                n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        {
            out.push_str(&value(name).ok_or_else(|| name.to_owned())?);
            name.len() + 2
        } else {
            out.push_str(&tail[..1]);
            1
        };
        rest = &tail[taken..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A scenario file's path and text, for errors that name the line.
struct Fields<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Fields<'_> {
    fn field(&self, span: std::ops::Range<usize>, field: &str, message: String) -> ScenarioError {
        ScenarioError::Field {
            path: self.path.to_owned(),
            line: self.text[..span.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1,
            field: field.to_owned(),
            message,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    kind: Spanned<String>,
    workload: Option<Spanned<String>>,
    build: Option<Spanned<String>>,
    run: Option<Spanned<String>>,
    /// criterion scenarios: arguments to `cargo bench`, and the filter.
    bench: Option<Spanned<String>>,
    filter: Option<Spanned<String>>,
    #[serde(default = "default_repetitions")]
    repetitions: Spanned<u32>,
    #[serde(default = "default_warmup")]
    warmup: u32,
    /// "60s", "2m", or a number of seconds.
    timeout: Option<Spanned<toml::Value>>,
    #[serde(default = "yes")]
    default: bool,
    #[serde(default)]
    params: BTreeMap<String, Spanned<toml::Value>>,
    points: Option<Spanned<Vec<BTreeMap<String, toml::Value>>>>,
    #[serde(default)]
    thresholds: BTreeMap<String, f64>,
    #[serde(default)]
    instructions: Option<Spanned<bool>>,
    setup: Option<String>,
    /// Variables the credential rule removes that this scenario's
    /// commands really need (secrets.rs).
    #[serde(default)]
    pass_env: Vec<Spanned<String>>,
    server_args: Option<Spanned<String>>,
    backends: Option<Spanned<toml::Value>>,
    proxy: Option<Spanned<String>>,
    prometheus: Option<Spanned<String>>,
    #[serde(default)]
    fixed_time: bool,
    /// `[variants.NAME]`: build configurations (variant.rs).
    #[serde(default)]
    variants: BTreeMap<String, Spanned<toml::Table>>,
}

fn default_repetitions() -> Spanned<u32> {
    Spanned::new(0..0, 5)
}
fn default_warmup() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Parses `500ms`, `30s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 30s"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: use a unit of ms, s, m or h")),
    };
    seconds(secs).ok_or_else(|| format!("{s:?} is not a duration this tool can wait for"))
}

/// A duration of `secs` seconds, if it is one (finite, not negative, not
/// centuries beyond what a clock can add).
fn seconds(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d < Duration::from_secs(100 * 365 * 86_400))
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let file: File = toml::from_str(text).map_err(|e| ScenarioError::Invalid {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let f = Fields { path, text };
        let kind = Self::kind(&file, &f)?;
        if *file.repetitions.get_ref() == 0 {
            return Err(f.field(
                file.repetitions.span(),
                "repetitions",
                "must be at least 1".into(),
            ));
        }
        let timeout = Self::timeout(&file, &f)?;
        let points = Self::points(&file, &f)?;
        let variants = Self::variants(&file, &f, &kind)?;
        let instructions = Self::instructions(&file, &f, &kind)?;
        let servers = Self::servers(&file, &f, &kind)?;
        for name in &file.pass_env {
            crate::secrets::may_pass(name.get_ref())
                .map_err(|m| f.field(name.span(), "pass_env", m))?;
        }
        Self::templates(&file, &f, &points)?;
        if matches!(kind, Kind::Command { .. }) {
            // A command's metrics are known before it runs: a key naming
            // none of them is a typo, found now.
            for key in file.thresholds.keys() {
                if !crate::COMMAND_METRICS
                    .iter()
                    .any(|m| crate::threshold_names(key, m))
                {
                    return Err(ScenarioError::Invalid {
                        path: path.to_owned(),
                        message: format!(
                            "[thresholds] {key}: a command scenario records no such metric{}; \
                             it records {} (a threshold names one in full or by its last part)",
                            closest(key, crate::COMMAND_METRICS)
                                .map_or(String::new(), |c| format!(" (did you mean {c}?)")),
                            crate::COMMAND_METRICS.join(", ")
                        ),
                    });
                }
            }
        }
        // Every point must resolve (a typo in a template is found now, not
        // an hour into a run).
        for p in &points {
            servers.resolve(p).map_err(|e| ScenarioError::Invalid {
                path: path.to_owned(),
                message: format!("point {}: {e}", p.key()),
            })?;
        }
        let points = variants
            .iter()
            .flat_map(|v| points.iter().map(|p| p.with_variant(v)))
            .collect();
        Ok(Scenario {
            variants,
            pass_env: file.pass_env.into_iter().map(Spanned::into_inner).collect(),
            setup: file.setup,
            servers,
            instructions,
            name: file.name.into_inner(),
            description: file.description,
            path: path.to_owned(),
            kind,
            repetitions: file.repetitions.into_inner(),
            warmup: file.warmup,
            timeout,
            default: file.default,
            points,
            thresholds: Thresholds(file.thresholds),
            fixed_time: file.fixed_time,
        })
    }

    fn kind(file: &File, f: &Fields) -> Result<Kind, ScenarioError> {
        let kind = match file.kind.get_ref().as_str() {
            "sync" => Self::sync_kind(file, f)?,
            "command" => {
                let run = file.run.as_ref().ok_or_else(|| {
                    f.field(
                        file.kind.span(),
                        "run",
                        "a command scenario needs `run`, the command to measure".into(),
                    )
                })?;
                if run.get_ref().trim().is_empty() {
                    return Err(f.field(run.span(), "run", "is empty".into()));
                }
                if let Some(w) = &file.workload {
                    return Err(f.field(
                        w.span(),
                        "workload",
                        "only sync scenarios take this field".into(),
                    ));
                }
                Kind::Command {
                    build: file.build.as_ref().map(|b| b.get_ref().clone()),
                    run: run.get_ref().clone(),
                }
            }
            "criterion" => {
                for (name, v) in [
                    ("workload", &file.workload),
                    ("build", &file.build),
                    ("run", &file.run),
                ] {
                    if let Some(v) = v {
                        return Err(f.field(
                            v.span(),
                            name,
                            "criterion scenarios take `bench` and `filter` instead".into(),
                        ));
                    }
                }
                if let Some((name, v)) = file.params.iter().next() {
                    return Err(f.field(
                        v.span(),
                        &format!("params.{name}"),
                        "criterion scenarios have no parameters: each benchmark is a point".into(),
                    ));
                }
                Kind::Criterion {
                    bench: file
                        .bench
                        .as_ref()
                        .map(|b| b.get_ref().clone())
                        .unwrap_or_default(),
                    filter: file.filter.as_ref().map(|f| f.get_ref().clone()),
                }
            }
            other => {
                return Err(f.field(
                    file.kind.span(),
                    "kind",
                    format!("{other:?} is not a kind: use \"sync\", \"command\" or \"criterion\""),
                ));
            }
        };
        if !matches!(kind, Kind::Criterion { .. }) {
            for (name, v) in [("bench", &file.bench), ("filter", &file.filter)] {
                if let Some(v) = v {
                    return Err(f.field(
                        v.span(),
                        name,
                        "only criterion scenarios take this field".into(),
                    ));
                }
            }
        }
        Ok(kind)
    }

    /// A sync scenario's kind: its workload (or every point's), and no
    /// command fields.
    fn sync_kind(file: &File, f: &Fields) -> Result<Kind, ScenarioError> {
        // Each point may name its own (one question asked of
        // several workloads, as scenarios/variants.toml does).
        let every_point_names_one = file.points.as_ref().is_some_and(|list| {
            list.get_ref()
                .iter()
                .all(|p| p.contains_key(WORKLOAD_PARAM))
        });
        let w = match &file.workload {
            Some(w) => w.get_ref().clone(),
            None if every_point_names_one => String::new(),
            None => {
                return Err(f.field(
                    file.kind.span(),
                    "workload",
                    "a sync scenario needs `workload` (e.g. \"docs\"), or a `workload` in \
                         every point"
                        .into(),
                ));
            }
        };
        for (name, v) in [("build", &file.build), ("run", &file.run)] {
            if let Some(v) = v {
                return Err(f.field(
                    v.span(),
                    name,
                    "only command scenarios take this field".into(),
                ));
            }
        }
        Ok(Kind::Sync { workload: w })
    }

    fn timeout(file: &File, f: &Fields) -> Result<Duration, ScenarioError> {
        let timeout = match &file.timeout {
            None => Duration::from_secs(600),
            Some(t) => match t.get_ref() {
                toml::Value::String(text) => parse_duration(text),
                toml::Value::Integer(n) if *n > 0 && seconds(*n as f64).is_some() => {
                    Ok(Duration::from_secs(*n as u64))
                }
                toml::Value::Float(f) if *f > 0.0 && seconds(*f).is_some() => {
                    Ok(seconds(*f).expect("checked"))
                }
                v => Err(format!(
                    "{v} is not a duration: give seconds (60) or a string such as \"60s\" or \"2m\""
                )),
            }
            .map_err(|e| f.field(t.span(), "timeout", e))?,
        };
        Ok(timeout)
    }

    fn points(file: &File, f: &Fields) -> Result<Vec<Point>, ScenarioError> {
        let reserved = |span: std::ops::Range<usize>, field: &str| {
            f.field(
                span,
                field,
                format!(
                    "`{VARIANT_PARAM}` names a point's build configuration ([variants.NAME]); \
                     call this parameter something else"
                ),
            )
        };
        let mut axes: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value) in &file.params {
            if name == VARIANT_PARAM {
                return Err(reserved(value.span(), "params.variant"));
            }
            let values = match value.get_ref() {
                toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>(),
                v => scalar(v).map(|s| vec![s]),
            }
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                f.field(
                    value.span(),
                    &format!("params.{name}"),
                    "must be a value or a non-empty array of strings, numbers or booleans".into(),
                )
            })?;
            axes.push((name.clone(), values));
        }
        let mut points = vec![Point(BTreeMap::new())];
        // The matrix: every combination of the swept parameters.
        for (name, values) in &axes {
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut p = p.clone();
                        p.0.insert(name.clone(), v.clone());
                        p
                    })
                })
                .collect();
        }
        if let Some(list) = &file.points {
            if !axes.is_empty() {
                return Err(f.field(
                    list.span(),
                    "points",
                    "use either `params` (a matrix) or `points` (a list), not both".into(),
                ));
            }
            if list.get_ref().iter().any(|p| p.contains_key(VARIANT_PARAM)) {
                return Err(reserved(list.span(), "points"));
            }
            points = list
                .get_ref()
                .iter()
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| scalar(v).map(|s| (k.clone(), s)))
                        .collect::<Option<BTreeMap<_, _>>>()
                        .map(Point)
                        .ok_or_else(|| {
                            f.field(
                                list.span(),
                                "points",
                                "values must be strings, numbers or booleans".into(),
                            )
                        })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(points)
    }

    /// The default variant (named by the table that says `default = true`,
    /// else `default`), then the others in name order.
    fn variants(file: &File, f: &Fields, kind: &Kind) -> Result<Vec<Variant>, ScenarioError> {
        let mut default = Variant::default_named(crate::variant::DEFAULT);
        let mut others = Vec::new();
        for (name, table) in &file.variants {
            let v = crate::variant::parse(name, table.get_ref(), matches!(kind, Kind::Sync { .. }))
                .map_err(|(field, m)| f.field(table.span(), &field, m))?;
            if matches!(kind, Kind::Criterion { .. }) {
                return Err(f.field(
                    table.span(),
                    "variants",
                    "criterion scenarios have no variants yet: `cargo bench` builds what it \
                     measures; use a command scenario with a `build` line per variant"
                        .into(),
                ));
            }
            if name == crate::variant::DEFAULT && !v.is_default {
                return Err(f.field(
                    table.span(),
                    &format!("variants.{name}"),
                    "`default` is the name of the build as it is: give this variant another name"
                        .into(),
                ));
            }
            if v.is_default {
                if default.name != crate::variant::DEFAULT {
                    return Err(f.field(
                        table.span(),
                        &format!("variants.{name}.default"),
                        format!(
                            "two variants say they are the default ({} and {name}); one build is",
                            default.name
                        ),
                    ));
                }
                default = v;
            } else {
                others.push(v);
            }
        }
        Ok(std::iter::once(default).chain(others).collect())
    }

    /// The variant a point of this scenario is measured on.
    pub fn variant_of(&self, point: &Point) -> &Variant {
        point
            .variant()
            .and_then(|name| self.variants.iter().find(|v| v.name == name))
            .unwrap_or(&self.variants[0])
    }

    /// The variant `name` (`default` always names the default build).
    pub fn variant_named(&self, name: &str) -> Option<&Variant> {
        if name == crate::variant::DEFAULT {
            return self.variants.first();
        }
        self.variants.iter().find(|v| v.name == name)
    }

    fn instructions(file: &File, f: &Fields, kind: &Kind) -> Result<bool, ScenarioError> {
        let instructions = match &file.instructions {
            Some(i) if *i.get_ref() && matches!(kind, Kind::Criterion { .. }) => {
                return Err(f.field(
                    i.span(),
                    "instructions",
                    "criterion benchmarks are not counted under valgrind; use a command scenario"
                        .into(),
                ));
            }
            Some(i) => *i.get_ref(),
            None => false,
        };
        Ok(instructions)
    }

    /// Every `{name}` of a template is a parameter (of every point) or one
    /// of the harness's own placeholders for that field.
    fn templates(file: &File, f: &Fields, points: &[Point]) -> Result<(), ScenarioError> {
        let fields = [
            (
                "run",
                file.run.as_ref().map(|v| (v.span(), v.get_ref().clone())),
                &[][..],
            ),
            (
                "server_args",
                file.server_args
                    .as_ref()
                    .map(|v| (v.span(), v.get_ref().clone())),
                &[],
            ),
            (
                "backends",
                file.backends
                    .as_ref()
                    .and_then(|v| Some((v.span(), scalar(v.get_ref())?))),
                &[],
            ),
            (
                "proxy",
                file.proxy.as_ref().map(|v| (v.span(), v.get_ref().clone())),
                &[],
            ),
            (
                "prometheus",
                file.prometheus
                    .as_ref()
                    .map(|v| (v.span(), v.get_ref().clone())),
                &["server", "services"],
            ),
        ];
        for (field, template, own) in fields {
            let Some((span, template)) = template else {
                continue;
            };
            for p in points {
                let known = |name: &str| {
                    p.0.get(name)
                        .cloned()
                        .or_else(|| own.contains(&name).then(String::new))
                };
                if let Err(name) = render(&template, &known) {
                    let params: Vec<&str> = p.0.keys().map(String::as_str).collect();
                    let params = if params.is_empty() {
                        "it has none".to_owned()
                    } else {
                        params.join(", ")
                    };
                    let own = if own.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " nor one of syncbench's own here ({})",
                            own.iter()
                                .map(|o| format!("{{{o}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    return Err(f.field(
                        span,
                        field,
                        format!(
                            "{{{name}}} is not a parameter of this scenario (parameters: {params}){own}; \
                             add it under [params], or write {{{{{name}}}}} for the literal text {{{name}}} \
                             (`{{{{` and `}}}}` are braces, as in awk '{{{{print $1}}}}')"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn servers(file: &File, f: &Fields, kind: &Kind) -> Result<Servers, ScenarioError> {
        let mut servers = Servers::default();
        for (name, span, value, slot) in [
            (
                "server_args",
                file.server_args.as_ref().map(|v| v.span()),
                file.server_args.as_ref().map(|v| v.get_ref().clone()),
                &mut servers.args,
            ),
            (
                "backends",
                file.backends.as_ref().map(|v| v.span()),
                file.backends.as_ref().and_then(|v| scalar(v.get_ref())),
                &mut servers.backends,
            ),
            (
                "proxy",
                file.proxy.as_ref().map(|v| v.span()),
                file.proxy.as_ref().map(|v| v.get_ref().clone()),
                &mut servers.proxy,
            ),
            (
                "prometheus",
                file.prometheus.as_ref().map(|v| v.span()),
                file.prometheus.as_ref().map(|v| v.get_ref().clone()),
                &mut servers.prometheus,
            ),
        ] {
            let Some(span) = span else { continue };
            if !matches!(kind, Kind::Sync { .. }) {
                return Err(f.field(span, name, "only sync scenarios take this field".into()));
            }
            *slot = value.ok_or_else(|| {
                f.field(span.clone(), name, "must be a string or a number".into())
            })?;
        }
        Ok(servers)
    }
}

/// The threshold where a scenario file sets none: the smallest relative
/// change (5%) that counts.
pub const DEFAULT_THRESHOLD: f64 = 0.05;

/// The threshold of metrics that count work rather than time: instruction
/// counts, the driver's and server's request counters, the server's blob
/// bytes and fsyncs repeat within a few tenths of a percent (README: "Metrics, and how far to trust
/// each"), so 1% is a real change. I/O counters keep the general default:
/// a server's per-phase I/O moves with its background checkpoints.
pub fn exact_threshold(metric: &str) -> Option<f64> {
    // The server's SQLite statements and commits are not here: under
    // concurrent writers they follow the group commit's batching (3%
    // between runs of mail delivery).
    let exact = metric.ends_with(".instructions")
        || metric.contains("http.requests")
        || metric.ends_with(".http.sent")
        || metric.ends_with(".http.received")
        || metric.contains("server.counter.http_requests")
        || metric.contains("server.counter.blob_bytes_written")
        || metric.contains("server.counter.fsyncs");
    exact.then_some(0.01)
}

/// Smallest relative changes that count (0.05 = 5%), per metric name or
/// last part of it (`wall`, `peak_rss`, `upload.wall`…).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds(pub BTreeMap<String, f64>);

/// The name of `names` (or the last part of one) nearest `key`, if one is
/// within two edits: what a typo most likely meant.
fn closest(key: &str, names: &[&str]) -> Option<String> {
    fn edits(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let next = (row[j + 1] + 1)
                    .min(row[j] + 1)
                    .min(prev + usize::from(ca != *cb));
                prev = row[j + 1];
                row[j + 1] = next;
            }
        }
        row[b.len()]
    }
    names
        .iter()
        .flat_map(|n| [n.to_string(), n.rsplit('.').next().unwrap_or(n).to_string()])
        .map(|n| (edits(key, &n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

impl Thresholds {
    /// The keys that name none of `metrics` (what a run recorded): said
    /// after a run of a scenario whose metrics are known only then.
    pub fn unmatched<'a>(&'a self, metrics: &[&str]) -> Vec<(&'a str, Option<String>)> {
        self.0
            .keys()
            .filter(|k| !metrics.iter().any(|m| crate::threshold_names(k, m)))
            .map(|k| (k.as_str(), closest(k, metrics)))
            .collect()
    }

    /// The setting for the full metric name, else for its last part.
    pub fn get(&self, metric: &str) -> Option<f64> {
        self.0
            .get(metric)
            .or_else(|| metric.rsplit('.').next().and_then(|m| self.0.get(m)))
            .copied()
    }
}

/// The thresholds of every scenario of a directory by name, and the
/// smallest change that counts where a file sets none.
#[derive(Debug, Clone, Default)]
pub struct ThresholdBook {
    by_scenario: BTreeMap<String, Thresholds>,
    /// Scenarios whose workload runs for a fixed time.
    fixed_time: std::collections::BTreeSet<String>,
    default: f64,
}

impl ThresholdBook {
    /// Reads every scenario file of `dir`; a file that does not load
    /// contributes nothing (the results stored for it still compare).
    pub fn load(dir: &Path, default: f64) -> ThresholdBook {
        let mut by_scenario = BTreeMap::new();
        let mut fixed_time = std::collections::BTreeSet::new();
        for path in std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
        {
            if path.extension().is_some_and(|e| e == "toml")
                && let Ok(s) = Scenario::load(&path)
            {
                if s.fixed_time {
                    fixed_time.insert(s.name.clone());
                }
                by_scenario.insert(s.name, s.thresholds);
            }
        }
        ThresholdBook {
            by_scenario,
            fixed_time,
            default,
        }
    }

    /// No scenario's thresholds: `default` everywhere.
    pub fn new(default: f64) -> ThresholdBook {
        ThresholdBook {
            default,
            ..ThresholdBook::default()
        }
    }

    /// One scenario's thresholds, with `default` for the rest.
    pub fn of(scenario: &Scenario, default: f64) -> ThresholdBook {
        ThresholdBook {
            by_scenario: BTreeMap::from([(scenario.name.clone(), scenario.thresholds.clone())]),
            fixed_time: scenario
                .fixed_time
                .then(|| scenario.name.clone())
                .into_iter()
                .collect(),
            default,
        }
    }

    /// The scenario file's own threshold for the metric, if it sets one.
    pub fn explicit(&self, scenario: &str, metric: &str) -> Option<f64> {
        self.by_scenario.get(scenario).and_then(|t| t.get(metric))
    }

    /// The threshold where neither the scenario nor the series' history
    /// says more.
    pub fn default_threshold(&self) -> f64 {
        self.default
    }

    /// The smallest relative change that counts for a scenario's metric:
    /// the scenario's setting, else the default of the metric's kind
    /// (exact counts need no 5% margin), else the book's default.
    pub fn min_effect(&self, scenario: &str, metric: &str) -> f64 {
        self.by_scenario
            .get(scenario)
            .and_then(|t| t.get(metric))
            .or_else(|| {
                self.is_exact(scenario, metric)
                    .then(|| exact_threshold(metric))
                    .flatten()
            })
            .unwrap_or(self.default)
    }

    /// Whether a scenario's metric counts work exactly: an exact kind
    /// (`exact_threshold`) in a workload that does a fixed amount of work.
    pub fn is_exact(&self, scenario: &str, metric: &str) -> bool {
        exact_threshold(metric).is_some() && !self.fixed_time.contains(scenario)
    }
}

/// All scenarios in `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| ScenarioError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| ScenarioError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|e| e == "toml") {
            out.push(Scenario::load(&path)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The points of `scenarios` on the variants `names` (`all`: every one;
/// `default`: each scenario's default build). A scenario declaring none
/// of them drops out; a name no scenario declares is an error that lists
/// the names there are.
pub fn select_variants(
    scenarios: Vec<Scenario>,
    names: &[String],
) -> Result<Vec<Scenario>, String> {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(scenarios);
    }
    for name in names {
        if !scenarios.iter().any(|s| s.variant_named(name).is_some()) {
            let known: std::collections::BTreeSet<&str> = scenarios
                .iter()
                .flat_map(|s| s.variants.iter().map(|v| v.name.as_str()))
                .chain([crate::variant::DEFAULT])
                .collect();
            return Err(format!(
                "no variant {name:?} in the scenarios chosen (they have: {}; `all` is every one)",
                known.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(scenarios
        .into_iter()
        .filter_map(|mut s| {
            let chosen: Vec<String> = names
                .iter()
                .filter_map(|n| s.variant_named(n).map(|v| v.name.clone()))
                .collect();
            let keep = |p: &Point| chosen.contains(&s.variant_of(p).name);
            let points: Vec<Point> = s.points.iter().filter(|p| keep(p)).cloned().collect();
            (!points.is_empty()).then(|| {
                s.points = points;
                s
            })
        })
        .collect())
}

/// A scenario by file path or by name in `dir`.
pub fn find(dir: &Path, what: &str) -> Result<Scenario, ScenarioError> {
    let as_path = Path::new(what);
    if what.ends_with(".toml") || as_path.is_file() {
        return Scenario::load(as_path);
    }
    find_in(dir, what)
}

/// The scenario `what` names in `dir`: its file `what.toml`, or the file
/// that declares that name.
fn find_in(dir: &Path, what: &str) -> Result<Scenario, ScenarioError> {
    let named = dir.join(format!("{what}.toml"));
    if named.is_file() {
        return Scenario::load(&named);
    }
    // A file named otherwise may declare the name; a broken sibling file
    // must not hide the one asked for.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for path in entries.flatten().map(|e| e.path()) {
            if path.extension().is_some_and(|e| e == "toml") {
                match Scenario::load(&path) {
                    Ok(s) if s.name == what => return Ok(s),
                    _ => {}
                }
            }
        }
    }
    Err(ScenarioError::NotFound(what.to_owned()))
}

/// The scenario called `name` in `dir` only: a plain name (letters,
/// digits, `_`, `-`, `.`, not starting with `.`), never a path. What a
/// worker takes from a job: the job's writer chooses among the worker's
/// own scenarios, never a file of its choosing.
pub fn find_named(dir: &Path, name: &str) -> Result<Scenario, ScenarioError> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain {
        return Err(ScenarioError::NotAName(name.to_owned()));
    }
    find_in(dir, name.strip_suffix(".toml").unwrap_or(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, String> {
        Scenario::parse(Path::new("scenarios/x.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn templates_fill_names_and_keep_escaped_and_shell_braces() {
        let p = Point([("n".to_owned(), "7".to_owned())].into());
        assert_eq!(p.substitute("seq {n}"), "seq 7");
        assert_eq!(p.substitute("awk '{{print $1}}' {n}"), "awk '{print $1}' 7");
        assert_eq!(p.substitute("echo {{n}}"), "echo {n}");
        assert_eq!(
            p.substitute("echo ${HOME} ${n:-1} $n"),
            "echo ${HOME} ${n:-1} $n"
        );
        assert_eq!(
            p.substitute("for f in {a,b} {1..3}; do :; done"),
            "for f in {a,b} {1..3}; do :; done"
        );
        assert_eq!(p.substitute("f() { echo; }; f"), "f() { echo; }; f");
        assert_eq!(p.substitute("{server}/metrics"), "{server}/metrics");
        assert_eq!(render("x {m} y", &|_| None), Err("m".to_owned()));
    }

    #[test]
    fn a_threshold_naming_no_metric_is_refused_with_the_likely_one() {
        let e =
            parse("name = \"x\"\nkind = \"command\"\nrun = \"true\"\n[thresholds]\nwal = 0.05\n")
                .unwrap_err();
        assert!(
            e.contains("[thresholds] wal") && e.contains("did you mean wall?"),
            "{e}"
        );
        for ok in ["wall", "peak_rss", "command.peak_rss", "io.rchar", "rchar"] {
            let text = format!(
                "name = \"x\"\nkind = \"command\"\nrun = \"true\"\n[thresholds]\n\"{ok}\" = 0.05\n"
            );
            let r = parse(&text);
            // io.rchar is neither the full name nor the last part.
            assert_eq!(r.is_ok(), ok != "io.rchar", "{ok}: {r:?}");
        }
        let t = Thresholds([("uplod.wall".to_owned(), 0.1), ("wall".to_owned(), 0.1)].into());
        assert_eq!(
            t.unmatched(&["upload.wall", "wall"]),
            [("uplod.wall", Some("upload.wall".to_owned()))]
        );
    }

    #[test]
    fn a_placeholder_that_is_no_parameter_is_refused_with_the_fix() {
        let e =
            parse("name = \"x\"\nkind = \"command\"\nrun = \"./prog {m}\"\n[params]\nn = [1, 2]\n")
                .unwrap_err();
        assert!(e.contains("line 3") || e.contains(":3:"), "{e}");
        assert!(
            e.contains("{m} is not a parameter of this scenario (parameters: n)"),
            "{e}"
        );
        assert!(e.contains("write {{m}}"), "{e}");
        let e = parse(
            "name = \"x\"\nkind = \"sync\"\nworkload = \"docs\"\nprometheus = \"{srv}/metrics\"\n",
        )
        .unwrap_err();
        assert!(e.contains("{server}, {services}"), "{e}");
        assert!(parse(
            "name = \"x\"\nkind = \"command\"\nrun = \"awk '{{print $1}}' ${HOME} {n}\"\n[params]\nn = [1]\n"
        )
        .is_ok());
    }

    #[test]
    fn exact_counts_get_a_small_threshold_unless_the_scenario_says() {
        let mut t = Thresholds::default();
        t.0.insert("upload.server.instructions".into(), 0.03);
        let book = ThresholdBook {
            by_scenario: BTreeMap::from([("s".into(), t)]),
            fixed_time: ["load".to_owned()].into(),
            default: 0.05,
        };
        assert_eq!(book.min_effect("s", "upload.server.instructions"), 0.03);
        assert_eq!(book.min_effect("s", "download.server.instructions"), 0.01);
        assert_eq!(book.min_effect("other", "upload.http.requests.send"), 0.01);
        assert_eq!(
            book.min_effect("s", "upload.server.counter.fsyncs.blob"),
            0.01
        );
        assert_eq!(
            book.min_effect("s", "upload.server.counter.sqlite_commits"),
            0.05
        );
        assert_eq!(book.min_effect("s", "upload.server.io.wchar"), 0.05);
        assert_eq!(book.min_effect("s", "wall"), 0.05);
        // A workload that runs for a fixed time does as much as it can.
        assert_eq!(book.min_effect("load", "load.server.instructions"), 0.05);
        assert!(!book.is_exact("load", "load.http.requests"));
        assert!(book.is_exact("s", "upload.http.requests"));
    }

    #[test]
    fn timeout_is_seconds_or_a_duration() {
        let with = |t: &str| {
            parse(&format!(
                "name = \"c\"\nkind = \"command\"\nrun = \"true\"\ntimeout = {t}\n"
            ))
        };
        assert_eq!(with("60").unwrap().timeout, Duration::from_secs(60));
        assert_eq!(with("1.5").unwrap().timeout, Duration::from_millis(1500));
        assert_eq!(with("\"2m\"").unwrap().timeout, Duration::from_secs(120));
        for bad in [
            "0",
            "-5",
            "true",
            "[1]",
            "1e300",
            "\"9999999999999999h\"",
            "\"-1s\"",
        ] {
            let e = with(bad).unwrap_err();
            assert!(e.contains("field `timeout`"), "{bad}: {e}");
        }
    }

    /// Every TOML example in README.md is a scenario that loads as its
    /// comments say (one once put `instructions = true` under `[params]`,
    /// where it became a matrix axis and counted nothing).
    #[test]
    fn readme_examples_load() {
        let readme = include_str!("../../../README.md");
        let blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .map(|b| &b[..b.find("```").expect("closed block")])
            .collect();
        assert!(blocks.len() >= 2, "{} blocks", blocks.len());
        for block in blocks {
            let text = if block.contains("kind =") {
                block.to_owned()
            } else {
                // A fragment: the server layout of a sync scenario.
                format!(
                    "name = \"x\"\nkind = \"sync\"\nworkload = \"load\"\n{block}\n[params]\nruntime = \"current-thread\"\nworkers = 2\nbackends = 2\nproxy = \"nginx\"\n"
                )
            };
            let s = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            for p in &s.points {
                assert!(!p.0.contains_key("instructions"), "{text}");
            }
            assert_eq!(
                s.instructions,
                text.contains("instructions = true"),
                "{text}"
            );
        }
    }

    #[test]
    fn matrix_and_defaults() {
        let s = parse(
            "name = \"doc-sync\"\nkind = \"sync\"\nworkload = \"docs\"\n[params]\ndocs = [1000, 10]\nsize = [\"10KiB\", \"1MiB\"]\n",
        )
        .unwrap();
        assert_eq!(
            (s.repetitions, s.warmup, s.timeout),
            (5, 1, Duration::from_secs(600))
        );
        let keys: Vec<_> = s.points.iter().map(Point::key).collect();
        assert_eq!(
            keys,
            [
                "docs=1000,size=10KiB",
                "docs=1000,size=1MiB",
                "docs=10,size=10KiB",
                "docs=10,size=1MiB"
            ]
        );
    }

    #[test]
    fn explicit_points_and_substitution() {
        let s = parse(
            "name = \"c\"\nkind = \"command\"\nrun = \"seq {n}\"\ntimeout = \"2m\"\npoints = [{n = 3}, {n = 5}]\n",
        )
        .unwrap();
        assert_eq!(s.timeout, Duration::from_secs(120));
        assert_eq!(s.points[1].substitute("seq {n}"), "seq 5");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = parse("name = \"x\"\nkind = \"command\"\nrun = \"true\"\nrepetitons = 3\n")
            .unwrap_err();
        assert!(e.starts_with("scenarios/x.toml: "), "{e}");
        assert!(e.contains("line 4") && e.contains("repetitons"), "{e}");

        let e = parse("name = \"x\"\nkind = \"command\"\nrun = \"true\"\ntimeout = \"soon\"\n")
            .unwrap_err();
        assert!(e.starts_with("scenarios/x.toml:4: field `timeout`"), "{e}");

        let e = parse("name = \"x\"\n\nkind = \"shell\"\n").unwrap_err();
        assert!(e.starts_with("scenarios/x.toml:3: field `kind`"), "{e}");

        let e = parse("name = \"x\"\nkind = \"sync\"\n").unwrap_err();
        assert!(e.contains("field `workload`"), "{e}");

        let e = parse("name = \"x\"\nkind = \"command\"\nrun = \"true\"\n[params]\nn = []\n")
            .unwrap_err();
        assert!(e.starts_with("scenarios/x.toml:5: field `params.n`"), "{e}");

        let e = parse("name = \"x\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = \"many\"\n")
            .unwrap_err();
        assert!(e.contains("line 4") && e.contains("repetitions"), "{e}");
    }

    const SYNC: &str = "name = \"v\"\nkind = \"sync\"\nworkload = \"docs\"\n\
                        params = { docs = [1, 2] }\n";

    #[test]
    fn variants_multiply_the_points_and_the_default_keeps_its_keys() {
        let s = parse(&format!(
            "{SYNC}[variants.glibc]\ndefault = true\n\
             [variants.mimalloc]\nfeatures = [\"server/mimalloc\"]\n\
             [variants.lto]\nprofile = \"release-lto\"\n"
        ))
        .unwrap();
        let names: Vec<&str> = s.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["glibc", "lto", "mimalloc"]);
        let keys: Vec<String> = s.points.iter().map(Point::key).collect();
        assert_eq!(
            keys,
            [
                "docs=1",
                "docs=2",
                "docs=1,variant=lto",
                "docs=2,variant=lto",
                "docs=1,variant=mimalloc",
                "docs=2,variant=mimalloc"
            ]
        );
        assert_eq!(s.variant_of(&s.points[0]).name, "glibc");
        assert_eq!(s.variant_of(&s.points[5]).features, ["server/mimalloc"]);
        assert_eq!(s.points[5].params().count(), 1);
        assert_eq!(s.variant_named("default").unwrap().name, "glibc");
        assert!(s.variant_named("jemalloc").is_none());
        // Without variants: one default variant, the points as they were.
        let plain = parse(SYNC).unwrap();
        assert_eq!(plain.variants.len(), 1);
        assert_eq!(plain.points.len(), 2);
        assert_eq!(plain.points[1].key(), "docs=2");
    }

    #[test]
    fn bad_variants_are_refused_with_their_line() {
        // The same name twice: TOML itself refuses the second table.
        let e = parse(&format!(
            "{SYNC}[variants.a]\ntoolchain = \"1.89\"\n[variants.a]\ntoolchain = \"nightly\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("duplicate") && e.contains("line 7"), "{e}");
        let e = parse(&format!(
            "{SYNC}[variants.a]\ndefault = true\n[variants.b]\ndefault = true\n"
        ))
        .unwrap_err();
        assert!(e.contains("two variants say they are the default"), "{e}");
        let e = parse(&format!("{SYNC}[variants.b]\nparams = {{ docs = 3 }}\n")).unwrap_err();
        assert!(
            e.contains(":5:")
                && e.contains("variants.b.params")
                && e.contains("never the workload"),
            "{e}"
        );
        let e = parse(&format!("{SYNC}[variants.default]\ntoolchain = \"1.89\"\n")).unwrap_err();
        assert!(e.contains("give this variant another name"), "{e}");
        let e =
            parse("name = \"x\"\nkind = \"command\"\nrun = \"true\"\nparams = { variant = [1] }\n")
                .unwrap_err();
        assert!(
            e.contains("params.variant") && e.contains("something else"),
            "{e}"
        );
        let e = parse("name = \"x\"\nkind = \"criterion\"\n[variants.a]\nenv = { A = \"1\" }\n")
            .unwrap_err();
        assert!(e.contains("criterion scenarios have no variants"), "{e}");
    }

    #[test]
    fn a_sync_scenario_may_name_each_points_workload() {
        let s = parse(
            "name = \"w\"\nkind = \"sync\"\npoints = [\n\
             { workload = \"docs\", docs = 1 },\n{ workload = \"mail\", messages = 2 },\n]\n",
        )
        .unwrap();
        assert_eq!(s.points[0].workload("x"), "docs");
        assert_eq!(s.points[1].workload("x"), "mail");
        // The driver gets the workload's own parameters only.
        let params: Vec<_> = s.points[1].params().map(|(k, _)| k.as_str()).collect();
        assert_eq!(params, ["messages"]);
        let e = parse(
            "name = \"w\"\nkind = \"sync\"\npoints = [{ workload = \"docs\" }, { docs = 1 }]\n",
        )
        .unwrap_err();
        assert!(e.contains("or a `workload` in every point"), "{e}");
    }
}
