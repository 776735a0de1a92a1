//! The one rule for credentials. Which environment variables hold them
//! (removed from the environment of every child process the harness
//! starts: builds, `build.rs` of a measured commit, scenario commands,
//! servers, drivers, valgrind, git, cargo), and how text that may hold
//! one (a database URL, an error chain, a stored command line, a log
//! line) is shown: with every password replaced by `***`.
//!
//! Every child process starts from [`command`]; clippy's
//! `disallowed-methods` (harness/clippy.toml) refuses
//! `std::process::Command::new` anywhere else in the harness.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::process::Command;
use std::sync::OnceLock;

/// Variables removed whatever their name says: the harness's own
/// database URL and libpq's, the job tokens of GitHub and its Actions
/// runner, an SSH agent (it signs for whoever asks).
const NAMES: &[&str] = &[
    "SYNCBENCH_DB",
    "DATABASE_URL",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSSLKEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "SSH_AUTH_SOCK",
];

/// Parts of a name that say it holds a credential (upper-cased name):
/// contained anywhere, or as its end.
const CONTAINS: &[&str] = &["PASSWORD", "PASSWD", "SECRET", "CREDENTIAL"];
const ENDS: &[&str] = &["TOKEN", "API_KEY", "APIKEY", "ACCESS_KEY", "PRIVATE_KEY"];

/// The user's own additions: comma-separated names, a `*` anywhere in
/// one matching any run of characters (`ACME_*,*_DSN`).
pub const EXTRA_VAR: &str = "SYNCBENCH_SECRET_ENV";

/// Variables a scenario may never pass through (`pass_env`): the
/// harness's own credentials, which measured code must never hold.
const NEVER_PASSED: &[&str] = &["SYNCBENCH_DB", "PGPASSWORD", "PGPASSFILE", EXTRA_VAR];

/// Whether the variable `name` holds a credential, by the built-in rule
/// and the user's additions in `extra` (the value of [`EXTRA_VAR`]).
pub fn is_secret_name(name: &str, extra: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    NAMES.contains(&upper.as_str())
        || CONTAINS.iter().any(|p| upper.contains(p))
        || ENDS.iter().any(|p| upper.ends_with(p))
        || extra
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .any(|p| glob(&p.to_ascii_uppercase(), &upper))
}

/// Whether a value holds a credential whatever its variable is called:
/// a URL with a password (`scheme://user:PASSWORD@host`).
fn is_secret_value(value: &str) -> bool {
    url_password_spans(value).next().is_some()
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The variables of this process removed from children's environments,
/// with their values (for [`redact`]). Read once: the harness never
/// changes its own environment after starting.
fn removed() -> &'static [(OsString, String)] {
    static REMOVED: OnceLock<Vec<(OsString, String)>> = OnceLock::new();
    REMOVED.get_or_init(|| {
        let extra = std::env::var(EXTRA_VAR).unwrap_or_default();
        std::env::vars_os()
            .filter(|(k, v)| {
                let name = k.to_string_lossy();
                is_secret_name(&name, &extra) || is_secret_value(&v.to_string_lossy())
            })
            .map(|(k, v)| (k, v.to_string_lossy().into_owned()))
            .collect()
    })
}

/// The names of the variables this process holds that no child gets,
/// for `--help`-like listings and messages.
pub fn removed_names() -> BTreeSet<String> {
    removed()
        .iter()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect()
}

/// A command for `program` whose environment is this process's without
/// the credentials (by [`is_secret_name`], and any variable whose value
/// is a URL with a password). The one constructor of child processes.
#[allow(clippy::disallowed_methods)] // the one place allowed to
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in removed() {
        cmd.env_remove(name);
    }
    cmd
}

/// Whether a scenario may name `name` in `pass_env`: never the
/// harness's own credentials, nor anything that is not a variable name.
pub fn may_pass(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "{name:?} is not the name of an environment variable"
        ));
    }
    if NEVER_PASSED.contains(&name.to_ascii_uppercase().as_str()) {
        return Err(format!(
            "{name} holds syncbench's own credentials: measured code never gets it"
        ));
    }
    Ok(())
}

/// The variables of a scenario's `pass_env` (checked by [`may_pass`])
/// that this process holds, to give back to its commands.
pub fn passed(names: &[String]) -> Vec<(OsString, OsString)> {
    names
        .iter()
        .filter(|n| may_pass(n).is_ok())
        .filter_map(|n| Some((OsString::from(n), std::env::var_os(n)?)))
        .collect()
}

/// The variables a scenario's command text asks for (`$NAME`, `${NAME}`)
/// that the rule removes and `pass_env` does not give back: named in a
/// warning, with how to pass them.
pub fn asked_but_removed(text: &str, pass_env: &[String]) -> Vec<String> {
    asked_among(text, pass_env, &removed_names())
}

fn asked_among(text: &str, pass_env: &[String], removed: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let braced = bytes.get(i + 1) == Some(&b'{');
            let start = i + 1 + usize::from(braced);
            let end = bytes[start..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .map_or(bytes.len(), |j| start + j);
            let name = &text[start..end];
            if removed.contains(name)
                && !pass_env.iter().any(|p| p == name)
                && !out.iter().any(|o| o == name)
            {
                out.push(name.to_owned());
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The byte ranges of URL passwords in `text`: after `scheme://user:`,
/// up to the `@` that ends the userinfo (a password may hold `/`, `?` or
/// `:`; the userinfo ends at the last `@` before the next space).
fn url_password_spans(text: &str) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    text.match_indices("://").filter_map(move |(i, _)| {
        let start = i + 3;
        let word_end = text[start..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '`')
            .map_or(text.len(), |j| start + j);
        let at = start + text[start..word_end].rfind('@')?;
        let colon = start + text[start..at].find(':')?;
        (colon + 1 < at).then_some(colon + 1..at)
    })
}

/// `text` with every password it may hold replaced by `***`: URL
/// passwords, the value of every `password=` (any case, any number of
/// them, in a query string or a key-value connection string), and the
/// value of every variable [`command`] removes that this process holds.
/// Errors, logs and stored command lines all go through it.
pub fn redact(text: &str) -> String {
    let mut spans: Vec<std::ops::Range<usize>> = url_password_spans(text).collect();
    let lower = text.to_ascii_lowercase();
    for key in ["password=", "passwd=", "pwd=", "token=", "secret="] {
        for (i, _) in lower.match_indices(key) {
            // `token=` inside `access_token=` too, but not `xpwd=`-like
            // words: the key starts the text or follows a separator.
            let before = lower[..i].chars().next_back();
            if key == "pwd=" && before.is_some_and(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            let start = i + key.len();
            let quoted = text[start..].starts_with('\'');
            let end = if quoted {
                text[start + 1..]
                    .find('\'')
                    .map_or(text.len(), |j| start + 2 + j)
            } else {
                text[start..]
                    .find(|c: char| c == '&' || c == ';' || c.is_whitespace())
                    .map_or(text.len(), |j| start + j)
            };
            if end > start {
                spans.push(start..end);
            }
        }
    }
    for (_, value) in removed() {
        // Short values ("1", "true") would blank out ordinary text; a URL
        // is shown without its password (above), its host kept.
        if value.len() >= 6 && !value.contains("://") {
            spans.extend(
                text.match_indices(value.as_str())
                    .map(|(i, v)| i..i + v.len()),
            );
        }
    }
    if spans.is_empty() {
        return text.to_owned();
    }
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in spans {
        if s.start < at {
            if s.end > at {
                at = s.end; // overlaps one already replaced: extend it
            }
            continue;
        }
        out.push_str(&text[at..s.start]);
        out.push_str("***");
        at = s.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_hold_credentials() {
        for name in [
            "SYNCBENCH_DB",
            "GITHUB_TOKEN",
            "github_token",
            "NPM_TOKEN",
            "CARGO_REGISTRY_TOKEN",
            "DB_PASSWORD",
            "MYPASSWORDFILE",
            "AWS_SECRET_ACCESS_KEY",
            "CLIENT_SECRET",
            "OPENAI_API_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "SSH_AUTH_SOCK",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
        ] {
            assert!(is_secret_name(name, ""), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "TOKENIZERS_PARALLELISM",
            "CARGO_TARGET_DIR",
            "SYNCBENCH_MACHINE_TAG",
            "RUSTFLAGS",
            "LANG",
        ] {
            assert!(!is_secret_name(name, ""), "{name}");
        }
    }

    #[test]
    fn the_user_extends_the_list_with_globs() {
        let extra = "ACME_*, *_DSN,EXACT";
        assert!(is_secret_name("ACME_LICENSE", extra));
        assert!(is_secret_name("sentry_dsn", extra));
        assert!(is_secret_name("EXACT", extra));
        assert!(!is_secret_name("EXACTLY", extra));
        assert!(!is_secret_name("MY_ACME", extra));
        assert!(glob("A*B*C", "AXXBYYC"));
        assert!(!glob("A*B*C", "AXXBYY"));
        assert!(glob("*", "ANY"));
        assert!(!glob("AB*B", "AB"));
    }

    #[test]
    fn values_that_are_urls_with_passwords() {
        assert!(is_secret_value("postgres://u:pw@db/x"));
        assert!(!is_secret_value("postgres://u@db/x"));
        assert!(!is_secret_value("https://example.org/a:b"));
        assert!(!is_secret_value("/usr/bin:/bin"));
    }

    #[test]
    fn every_form_of_password_is_redacted() {
        for (text, shown) in [
            ("postgres://u:S3CRET@db/x", "postgres://u:***@db/x"),
            ("postgres://u:p@ss/w?rd@db/x", "postgres://u:***@db/x"),
            (
                "error connecting to postgres://u:a@h/d and postgresql://v:b@k/e",
                "error connecting to postgres://u:***@h/d and postgresql://v:***@k/e",
            ),
            (
                "postgres://h/d?password=a&password=b&user=u",
                "postgres://h/d?password=***&password=***&user=u",
            ),
            ("host=h PASSWORD=x user=u", "host=h PASSWORD=*** user=u"),
            ("host=h password='a b' user=u", "host=h password=*** user=u"),
            (
                "https://x-access-token:ghs_abc@github.com/o/r.git",
                "https://x-access-token:***@github.com/o/r.git",
            ),
            ("?access_token=abc&x=1", "?access_token=***&x=1"),
            ("postgres://u@db/x", "postgres://u@db/x"),
            ("no secret here", "no secret here"),
            ("Pwd=z;Server=s", "Pwd=***;Server=s"),
        ] {
            assert_eq!(redact(text), shown, "{text}");
        }
    }

    #[test]
    fn variables_asked_for_by_a_command() {
        let removed: BTreeSet<String> = ["GITHUB_TOKEN", "SYNCBENCH_DB", "API_TOKEN"]
            .map(String::from)
            .into();
        let text = "curl -H \"$GITHUB_TOKEN\" ${SYNCBENCH_DB} $HOME $GITHUB_TOKEN $API_TOKENS";
        assert_eq!(
            asked_among(text, &[], &removed),
            ["GITHUB_TOKEN", "SYNCBENCH_DB"]
        );
        assert_eq!(
            asked_among(text, &["GITHUB_TOKEN".into()], &removed),
            ["SYNCBENCH_DB"]
        );
    }

    #[test]
    fn the_harness_credentials_are_never_passed() {
        assert!(may_pass("SYNCBENCH_DB").is_err());
        assert!(may_pass("pgpassword").is_err());
        assert!(may_pass("A B").is_err());
        assert!(may_pass("1X").is_err());
        assert!(may_pass("API_TOKEN").is_ok());
        // HOME is set for any test run; the harness's own never passes.
        let passed = passed(&["HOME".into(), "SYNCBENCH_DB".into()]);
        assert_eq!(
            passed.len(),
            usize::from(std::env::var_os("HOME").is_some())
        );
    }
}
