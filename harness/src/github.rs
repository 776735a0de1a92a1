//! The pull-request comment: one comment per pull request, found again by
//! a marker and updated in place, posted through GitHub's REST API only
//! when something is flagged or the author asked. A comment already
//! posted is updated even when nothing is flagged any more, so it never
//! keeps saying there is a regression that a later push fixed.
//!
//! HTTPS needs the `github` cargo feature (rustls with the ring provider
//! the reference system's crypto already builds); without it only an
//! `http://` API (a local test server) can be reached.

use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// The first line of every comment this posts: how it is found again.
pub const MARKER: &str = "<!-- syncbench comment -->";

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error(
        "GitHub refused the token ({status}): {message}. A pull request from a fork gets a read-only token; elsewhere the job needs `permissions: pull-requests: write`"
    )]
    Forbidden { status: u16, message: String },
    #[error(
        "GitHub's API rate limit is used up (resets at unix time {reset}); the comment is skipped, nothing else is affected"
    )]
    RateLimited { reset: String },
    #[error(
        "GitHub has no pull request {pr} in {repo} (404): check GITHUB_REPOSITORY and the pull request number"
    )]
    NotFound { repo: String, pr: u64 },
    #[error("GitHub answered {status} to {what}: {message}")]
    Status {
        status: u16,
        what: String,
        message: String,
    },
    #[error("reaching GitHub at {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "{0} is an https URL, and this syncbench was built without TLS: build it with `--features github`"
    )]
    NoTls(String),
}

/// Where and as whom to comment.
#[derive(Debug, Clone)]
pub struct Target {
    /// The API's root, e.g. https://api.github.com.
    pub api: String,
    /// owner/name.
    pub repo: String,
    pub pr: u64,
    pub token: String,
}

/// What the comment did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Outcome {
    Posted {
        id: u64,
        url: String,
    },
    Updated {
        id: u64,
        url: String,
    },
    /// Nothing flagged, nobody asked, and no earlier comment to update.
    Quiet,
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    body: Option<String>,
    html_url: String,
    user: Option<User>,
}

#[derive(Deserialize)]
struct User {
    #[serde(rename = "type")]
    kind: String,
}

/// GitHub refuses comments over 65,536 characters; the text is cut short
/// well before (in bytes, never fewer than characters).
pub const MAX_COMMENT: usize = 60_000;

/// Said where the body was cut short.
const CUT_NOTE: &str =
    "\n… (cut short: GitHub limits a comment's length; the whole table is in the job summary)\n";

/// The comment's text: the marker, `body`, then `footer` (the dashboard's
/// link, the state). Over [`MAX_COMMENT`], the body is cut at the end of
/// a line and the code fence and `<details>` it leaves open are closed,
/// so the footer is always there whole and outside any block.
pub fn compose(body: &str, footer: &str) -> String {
    let head = format!("{MARKER}\n");
    let whole = head.len() + body.len() + footer.len();
    if whole <= MAX_COMMENT {
        return format!("{head}{body}{footer}");
    }
    // (1: the line break a last line without one would get.)
    let budget = MAX_COMMENT.saturating_sub(head.len() + CUT_NOTE.len() + footer.len() + 1);
    // The longest run of whole lines that fits with what closes it.
    let mut open = Open::default();
    let (mut keep, mut closing) = (0, String::new());
    let mut at = 0;
    for line in body.split_inclusive('\n') {
        open.read(line);
        at += line.len();
        let close = open.closing();
        if at + close.len() > budget {
            break;
        }
        (keep, closing) = (at, close);
    }
    let mut kept = body[..keep].to_owned();
    if !kept.is_empty() && !kept.ends_with('\n') {
        kept.push('\n');
    }
    format!("{head}{kept}{closing}{CUT_NOTE}{footer}")
}

/// What a prefix of Markdown leaves open: a code fence (its marker, e.g.
/// three backticks or more, or tildes), `<details>` blocks.
#[derive(Default)]
struct Open {
    fence: Option<String>,
    details: usize,
}

impl Open {
    fn read(&mut self, line: &str) {
        // CommonMark: a fence is indented by at most three spaces.
        let text = line.trim_end();
        let lead = text.len() - text.trim_start_matches(' ').len();
        let t = &text[lead.min(text.len())..];
        let run = |c: char| t.len() - t.trim_start_matches(c).len();
        let fence = match t.chars().next() {
            Some(c @ ('`' | '~')) if lead <= 3 && run(c) >= 3 => Some(&t[..run(c)]),
            _ => None,
        };
        match (&self.fence, fence) {
            // Closed by a bare fence of the same character, at least as long.
            (Some(open), Some(f))
                if f.starts_with(&open[..1]) && f.len() >= open.len() && t.len() == f.len() =>
            {
                self.fence = None
            }
            (Some(_), _) => {}
            (None, Some(f)) => self.fence = Some(f.to_owned()),
            (None, None) => {
                self.details += t.matches("<details").count();
                self.details = self.details.saturating_sub(t.matches("</details>").count());
            }
        }
    }

    /// What closes everything open, innermost first.
    fn closing(&self) -> String {
        let mut out = String::new();
        if let Some(f) = &self.fence {
            out.push_str(f);
            out.push('\n');
        }
        out.push_str(&"</details>\n".repeat(self.details));
        out
    }
}

/// Posts `body` and `footer` (see [`compose`]) on the pull request, or
/// updates the comment posted before; `wanted`: something is flagged or
/// the author asked. Without it, only an earlier comment is updated (to
/// say what is true now).
pub fn comment(
    target: &Target,
    body: &str,
    footer: &str,
    wanted: bool,
) -> Result<Outcome, GithubError> {
    let client = client(&target.api)?;
    let body = compose(body, footer);
    let mut deleted = false;
    if let Some(c) = find(&client, target)? {
        let url = format!(
            "{}/repos/{}/issues/comments/{}",
            target.api, target.repo, c.id
        );
        match send::<Comment>(
            client.patch(&url).json(&json!({ "body": body })),
            target,
            &url,
            "updating the comment",
        ) {
            Ok(c) => {
                return Ok(Outcome::Updated {
                    id: c.id,
                    url: c.html_url,
                });
            }
            // Deleted since it was listed: it was wanted then, post anew.
            Err(GithubError::NotFound { .. }) => deleted = true,
            Err(e) => return Err(e),
        }
    }
    if !(wanted || deleted) {
        return Ok(Outcome::Quiet);
    }
    let url = format!(
        "{}/repos/{}/issues/{}/comments",
        target.api, target.repo, target.pr
    );
    let c: Comment = send(
        client.post(&url).json(&json!({ "body": body })),
        target,
        &url,
        "posting the comment",
    )?;
    Ok(Outcome::Posted {
        id: c.id,
        url: c.html_url,
    })
}

fn client(api: &str) -> Result<reqwest::blocking::Client, GithubError> {
    if api.starts_with("https://") && !cfg!(feature = "github") {
        return Err(GithubError::NoTls(api.to_owned()));
    }
    #[cfg(feature = "github")]
    {
        // Once per process; a second install is refused and harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::blocking::Client::builder()
        .user_agent(concat!("syncbench/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|source| GithubError::Http {
            url: api.to_owned(),
            source,
        })
}

/// The comment posted before, if any: the pull request's comments, a
/// hundred a page, newest pages last.
fn find(
    client: &reqwest::blocking::Client,
    target: &Target,
) -> Result<Option<Comment>, GithubError> {
    // Bounded: a pull request with more than 3000 comments gets a new one.
    for page in 1..=30 {
        let url = format!(
            "{}/repos/{}/issues/{}/comments?per_page=100&page={page}",
            target.api, target.repo, target.pr
        );
        let list: Vec<Comment> = send(client.get(&url), target, &url, "listing the comments")?;
        let last = list.len() < 100;
        // Ours: the marker, written by a bot (the workflow's token is
        // github-actions[bot]); a person's comment that quotes the marker
        // is never edited.
        if let Some(c) = list.into_iter().find(|c| {
            c.body.as_deref().is_some_and(|b| b.starts_with(MARKER))
                && c.user.as_ref().is_some_and(|u| u.kind == "Bot")
        }) {
            return Ok(Some(c));
        }
        if last {
            break;
        }
    }
    Ok(None)
}

fn send<T: serde::de::DeserializeOwned>(
    request: reqwest::blocking::RequestBuilder,
    target: &Target,
    url: &str,
    what: &str,
) -> Result<T, GithubError> {
    let http = |source| GithubError::Http {
        url: url.to_owned(),
        source,
    };
    let r = request
        .bearer_auth(&target.token)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .map_err(http)?;
    let status = r.status().as_u16();
    if r.status().is_success() {
        return r.json().map_err(http);
    }
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let remaining = header("x-ratelimit-remaining");
    // A secondary rate limit: 403 with retry-after, requests still left.
    let retry_after = header("retry-after");
    let reset =
        header("x-ratelimit-reset").map_or("an unknown time".into(), |t| format!("unix time {t}"));
    let message = r
        .json::<serde_json::Value>()
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Err(match status {
        429 => GithubError::RateLimited { reset },
        403 if remaining.as_deref() == Some("0") => GithubError::RateLimited { reset },
        403 if retry_after.is_some() => GithubError::RateLimited {
            reset: format!("now + {} s", retry_after.unwrap_or_default()),
        },
        401 | 403 => GithubError::Forbidden { status, message },
        404 => GithubError::NotFound {
            repo: target.repo.clone(),
            pr: target.pr,
        },
        _ => GithubError::Status {
            status,
            what: what.to_owned(),
            message,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOOTER: &str = "\n\nDashboard: https://o.github.io/r/\n";

    fn fences(text: &str) -> usize {
        text.lines()
            .filter(|l| l.trim_start().starts_with("```"))
            .count()
    }

    #[test]
    fn a_body_under_the_limit_is_left_as_it_is() {
        let body = "## syncbench\n\n```\nopen\n<details><summary>x</summary>\n| a |\n";
        assert_eq!(compose(body, FOOTER), format!("{MARKER}\n{body}{FOOTER}"));
    }

    /// Far over the limit, inside a code fence and a `<details>`: cut
    /// within the limit, both closed, the footer and its link last.
    #[test]
    fn a_long_body_is_cut_closing_what_it_opened_and_keeps_the_footer() {
        let mut body = String::from(
            "**1 regression(s)**\n\n<details><summary>Every series</summary>\n\n```text\n",
        );
        for i in 0..20_000 {
            body.push_str(&format!("| svc | n={i} | wall | +20.0% 🔴 |\n"));
        }
        body.push_str("```\n\n</details>\n");
        assert!(body.len() > 5 * MAX_COMMENT);
        let text = compose(&body, FOOTER);
        assert!(text.len() <= MAX_COMMENT, "{}", text.len());
        assert!(text.len() > MAX_COMMENT - 200, "cut where it had to");
        assert!(text.starts_with(MARKER));
        assert_eq!(fences(&text) % 2, 0, "an open fence");
        assert_eq!(
            text.matches("<details>").count(),
            text.matches("</details>").count()
        );
        assert!(text.ends_with(FOOTER), "{}", &text[text.len() - 300..]);
        let note = text.find("cut short").unwrap();
        assert!(note > text.rfind("```").unwrap() && note > text.rfind("</details>").unwrap());
        // Whole lines only: every table row kept is complete.
        let last_row = text[..text.rfind("```").unwrap()]
            .trim_end()
            .lines()
            .last()
            .unwrap();
        assert!(last_row.ends_with("🔴 |"), "{last_row}");
    }

    #[test]
    fn fences_of_other_lengths_and_tildes_are_closed_by_their_own() {
        let open = |body: &str| {
            let mut o = Open::default();
            body.split_inclusive('\n').for_each(|l| o.read(l));
            o.closing()
        };
        assert_eq!(open("````md\n```\nstill inside\n"), "````\n");
        assert_eq!(open("~~~\n```\n"), "~~~\n");
        assert_eq!(open("```\ncode\n```\n"), "");
        assert_eq!(open("```\n<details>\n"), "```\n", "HTML in code is code");
        assert_eq!(
            open("<details><summary>a</summary>\n<details>\n</details>\n"),
            "</details>\n"
        );
        assert_eq!(open("    ```\nindented: code, not a fence\n"), "");
    }
}
