//! Variants: the same workload on another build configuration of the
//! system under test (another toolchain, cargo features, profile,
//! `RUSTFLAGS`, dependency versions, or environment and arguments of its
//! processes). A variant is one more axis of a scenario's points, as a
//! profile or backend is of a rustc-perf test case: a point of variant
//! `NAME` carries `variant=NAME` in its key, so its series, confirmations,
//! triage, A/B runs and exports are its own in both stores; the default
//! variant adds nothing, so the series measured before variants existed
//! keep their keys.

use std::collections::BTreeMap;

/// The parameter of a point that names its variant (absent: the default).
pub const VARIANT_PARAM: &str = "variant";

/// The name that always means the default build, whatever a scenario
/// calls it.
pub const DEFAULT: &str = "default";

/// One build configuration. The default variant sets nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Variant {
    pub name: String,
    pub description: String,
    /// The default build (today's): its points carry no `variant`.
    pub is_default: bool,
    /// A rustup toolchain (`1.89`, `stable`, `nightly`): `cargo +T`.
    pub toolchain: Option<String>,
    /// Cargo features, `package/feature` in a workspace.
    pub features: Vec<String>,
    /// A cargo profile instead of the run's (`--cargo-profile`).
    pub profile: Option<String>,
    /// `RUSTFLAGS` of the build.
    pub rustflags: Option<String>,
    /// Dependencies at other versions: `cargo update -p NAME --precise V`
    /// in the build's own copy of `Cargo.lock`.
    pub dependencies: BTreeMap<String, String>,
    /// Environment of the measured processes (not of the build).
    pub env: BTreeMap<String, String>,
    /// Appended to the scenario's `server_args` (sync scenarios).
    pub server_args: Option<String>,
    /// A command scenario's own build and run lines for this variant.
    pub build: Option<String>,
    pub run: Option<String>,
}

impl Variant {
    /// The default build, named `name`.
    pub fn default_named(name: &str) -> Variant {
        Variant {
            name: name.to_owned(),
            is_default: true,
            ..Variant::default()
        }
    }

    /// Whether this variant builds differently from the default (its own
    /// target dir, so builds never overwrite each other).
    pub fn changes_build(&self) -> bool {
        self.toolchain.is_some()
            || !self.features.is_empty()
            || self.profile.is_some()
            || self.rustflags.is_some()
            || !self.dependencies.is_empty()
            || self.build.is_some()
    }

    /// What the variant sets, for `list` and the dashboard: `toolchain
    /// 1.89, features server/mimalloc`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.is_default {
            parts.push("the default build".to_owned());
        }
        if let Some(t) = &self.toolchain {
            parts.push(format!("toolchain {t}"));
        }
        if !self.features.is_empty() {
            parts.push(format!("features {}", self.features.join(",")));
        }
        if let Some(p) = &self.profile {
            parts.push(format!("profile {p}"));
        }
        if let Some(f) = &self.rustflags {
            parts.push(format!("RUSTFLAGS={f:?}"));
        }
        for (name, v) in &self.dependencies {
            parts.push(format!("{name} {v}"));
        }
        for (k, v) in &self.env {
            parts.push(format!("{k}={v}"));
        }
        if let Some(a) = &self.server_args {
            parts.push(format!("server {a}"));
        }
        if let Some(b) = &self.build {
            parts.push(format!("build `{b}`"));
        }
        if let Some(r) = &self.run {
            parts.push(format!("run `{r}`"));
        }
        parts.join(", ")
    }
}

/// A stored point key split into the key without its variant and the
/// variant (`None`: the default): `docs=1,variant=lto` is `("docs=1",
/// Some("lto"))`.
pub fn split_key(key: &str) -> (String, Option<&str>) {
    let prefix = format!("{VARIANT_PARAM}=");
    let mut variant = None;
    let rest: Vec<&str> = key
        .split(',')
        .filter(|part| match part.strip_prefix(&prefix) {
            Some(v) => {
                variant = Some(v);
                false
            }
            None => true,
        })
        .collect();
    (rest.join(","), variant)
}

/// A variant's or toolchain's name: letters, digits, `_ - .`, not
/// starting with `.` or `-` (it becomes a directory and part of a point's
/// key, which `,` and `=` would break).
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '-'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The fields of a scenario that define its workload: a variant that set
/// one would not be asking the same question.
const WORKLOAD_FIELDS: &[&str] = &[
    "name",
    "kind",
    "workload",
    "params",
    "points",
    "repetitions",
    "warmup",
    "timeout",
    "bench",
    "filter",
    "thresholds",
    "backends",
    "proxy",
    "setup",
];

/// The fields a variant takes, by kind of scenario.
const BUILD_FIELDS: &[&str] = &[
    "description",
    "default",
    "toolchain",
    "features",
    "profile",
    "rustflags",
    "dependencies",
    "env",
    "server_args",
    "build",
    "run",
];

/// Reads one `[variants.NAME]` table; the error names the field.
/// `cargo_builds`: the harness builds the system with cargo (a sync
/// scenario), so features, profile and dependencies apply; `sync`: it
/// starts the system's servers, so `server_args` applies.
pub fn parse(
    name: &str,
    table: &toml::Table,
    cargo_builds: bool,
) -> Result<Variant, (String, String)> {
    check_fields(name, table)?;
    let v = read(name, table)?;
    check_kind(&v, cargo_builds)?;
    Ok(v)
}

/// The name, and that every field is a variant's.
fn check_fields(name: &str, table: &toml::Table) -> Result<(), (String, String)> {
    let err = |field: &str, m: String| Err((format!("variants.{name}.{field}"), m));
    if !is_plain_name(name) || name == "all" {
        return err(
            "",
            format!(
                "{name:?} is not a variant name: use letters, digits, _ - . (not `all`, which \
                 `--variant all` means)"
            ),
        );
    }
    for key in table.keys() {
        if WORKLOAD_FIELDS.contains(&key.as_str()) {
            return err(
                key,
                "a variant changes how the system is built and run, never the workload: the same \
                 question on another build. A different workload is another scenario (or a \
                 parameter of this one)"
                    .into(),
            );
        }
        if !BUILD_FIELDS.contains(&key.as_str()) {
            return err(
                key,
                format!(
                    "not a field of a variant (they are: {})",
                    BUILD_FIELDS.join(", ")
                ),
            );
        }
    }
    Ok(())
}

/// The fields' values, each of the right type.
fn read(name: &str, table: &toml::Table) -> Result<Variant, (String, String)> {
    let err = |field: &str, m: String| Err((format!("variants.{name}.{field}"), m));
    let string = |field: &str| -> Result<Option<String>, (String, String)> {
        match table.get(field) {
            None => Ok(None),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(_) => Err((
                format!("variants.{name}.{field}"),
                "must be a non-empty string".into(),
            )),
        }
    };
    let map = |field: &str| -> Result<BTreeMap<String, String>, (String, String)> {
        match table.get(field) {
            None => Ok(BTreeMap::new()),
            Some(toml::Value::Table(t)) => t
                .iter()
                .map(|(k, v)| match v {
                    toml::Value::String(s) if !s.is_empty() => Ok((k.clone(), s.clone())),
                    _ => Err((
                        format!("variants.{name}.{field}.{k}"),
                        "must be a non-empty string".into(),
                    )),
                })
                .collect(),
            Some(_) => Err((
                format!("variants.{name}.{field}"),
                "must be a table, e.g. { NAME = \"value\" }".into(),
            )),
        }
    };
    let features = match table.get("features") {
        None => vec![],
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|f| match f {
                toml::Value::String(s) if !s.is_empty() && !s.contains([',', ' ']) => Ok(s.clone()),
                _ => Err((
                    format!("variants.{name}.features"),
                    "each feature is a string without spaces or commas, e.g. \"server/mimalloc\""
                        .into(),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return err("features", "must be an array of strings".into()),
    };
    let is_default = match table.get("default") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => return err("default", "must be true or false".into()),
    };
    let toolchain = string("toolchain")?.map(|t| t.trim_start_matches('+').to_owned());
    if let Some(t) = &toolchain
        && !is_plain_name(t)
    {
        return err(
            "toolchain",
            format!("{t:?} is not a toolchain name (e.g. \"1.89\", \"stable\", \"nightly\")"),
        );
    }
    let profile = string("profile")?;
    if let Some(p) = &profile
        && !is_plain_name(p)
    {
        return err("profile", format!("{p:?} is not a cargo profile name"));
    }
    let env = map("env")?;
    for k in env.keys() {
        let valid = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return err("env", format!("{k:?} is not an environment variable name"));
        }
    }
    let v = Variant {
        name: name.to_owned(),
        description: string("description")?.unwrap_or_default(),
        is_default,
        toolchain,
        features,
        profile,
        rustflags: string("rustflags")?,
        dependencies: map("dependencies")?,
        env,
        server_args: string("server_args")?,
        build: string("build")?,
        run: string("run")?,
    };
    Ok(v)
}

/// Fields that apply to this kind of scenario, and a default that sets
/// nothing while every other variant sets something.
fn check_kind(v: &Variant, cargo_builds: bool) -> Result<(), (String, String)> {
    let name = &v.name;
    let err = |field: &str, m: String| Err((format!("variants.{name}.{field}"), m));
    let cargo_only = [
        ("features", !v.features.is_empty()),
        ("profile", v.profile.is_some()),
        ("dependencies", !v.dependencies.is_empty()),
    ];
    for (field, set) in cargo_only {
        if set && !cargo_builds {
            return err(
                field,
                "only sync scenarios, which syncbench builds with cargo, take this field; a \
                 command scenario builds itself: give the variant its own `build` line"
                    .into(),
            );
        }
    }
    if cargo_builds {
        for (field, set) in [("build", v.build.is_some()), ("run", v.run.is_some())] {
            if set {
                return err(field, "only command scenarios take this field".into());
            }
        }
    } else if v.server_args.is_some() {
        return err("server_args", "only sync scenarios take this field".into());
    }
    let sets_something = v.changes_build() || !v.env.is_empty() || v.server_args.is_some();
    if v.is_default && sets_something {
        return err(
            "default",
            format!(
                "the default variant is the build as it is, so it sets nothing; it sets {}",
                v.summary()
                    .trim_start_matches("the default build")
                    .trim_start_matches(", ")
            ),
        );
    }
    if !v.is_default && !sets_something {
        return err(
            "",
            "sets nothing, so it would measure the default build again; to name the default \
             build, write `default = true`"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().expect("toml")
    }

    #[test]
    fn a_key_splits_into_its_point_and_variant() {
        assert_eq!(
            split_key("docs=1,variant=lto,x=2"),
            ("docs=1,x=2".into(), Some("lto"))
        );
        assert_eq!(split_key("docs=1"), ("docs=1".into(), None));
        assert_eq!(split_key("variant=a"), (String::new(), Some("a")));
        assert_eq!(split_key(""), (String::new(), None));
    }

    #[test]
    fn a_variant_reads_every_build_field() {
        let v = parse(
            "lto",
            &table(
                "toolchain = \"+nightly\"\nfeatures = [\"server/mimalloc\"]\nprofile = \"release-lto\"\n\
                 rustflags = \"-C target-cpu=native\"\ndependencies = { tokio = \"1.40.0\" }\n\
                 env = { SYNC_X = \"1\" }\nserver_args = \"--workers 2\"\n",
            ),
            true,
        )
        .unwrap();
        assert_eq!(v.toolchain.as_deref(), Some("nightly"));
        assert_eq!(v.features, ["server/mimalloc"]);
        assert_eq!(v.dependencies["tokio"], "1.40.0");
        assert_eq!(v.env["SYNC_X"], "1");
        assert!(v.changes_build());
        assert!(
            v.summary().contains("profile release-lto"),
            "{}",
            v.summary()
        );
    }

    #[test]
    fn workload_fields_and_misplaced_fields_are_refused_by_name() {
        let (field, m) = parse("x", &table("points = []\ntoolchain = \"1.89\""), true).unwrap_err();
        assert_eq!(field, "variants.x.points");
        assert!(m.contains("never the workload"), "{m}");
        let (field, m) = parse("x", &table("feature = [\"a\"]"), true).unwrap_err();
        assert_eq!(field, "variants.x.feature");
        assert!(m.contains("toolchain, features"), "{m}");
        let (field, _) = parse("x", &table("features = [\"a\"]"), false).unwrap_err();
        assert_eq!(field, "variants.x.features");
        let (field, _) = parse("x", &table("run = \"true\""), true).unwrap_err();
        assert_eq!(field, "variants.x.run");
        let (_, m) = parse("x", &table("description = \"nothing\""), true).unwrap_err();
        assert!(m.contains("sets nothing"), "{m}");
        let (_, m) = parse("x", &table("default = true\ntoolchain = \"1.89\""), true).unwrap_err();
        assert!(m.contains("it sets toolchain 1.89"), "{m}");
        for bad in ["all", "a,b", "a=b", ".x", ""] {
            assert!(
                parse(bad, &table("env = { A = \"1\" }"), true).is_err(),
                "{bad}"
            );
        }
        assert!(parse("x", &table("toolchain = \"1.89 nightly\""), true).is_err());
        assert!(parse("x", &table("env = { \"A B\" = \"1\" }"), true).is_err());
    }
}
