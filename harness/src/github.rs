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

/// GitHub refuses comments over 65,536 characters; the table is cut
/// short well before, with a line saying so.
const MAX_BODY: usize = 60_000;

/// Posts `body` on the pull request, or updates the comment posted before;
/// `wanted`: something is flagged or the author asked. Without it, only
/// an earlier comment is updated (to say what is true now).
pub fn comment(target: &Target, body: &str, wanted: bool) -> Result<Outcome, GithubError> {
    let client = client(&target.api)?;
    let mut body = format!("{MARKER}\n{body}");
    if body.len() > MAX_BODY {
        let mut cut = MAX_BODY;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push_str(
            "\n\n… (cut short: GitHub limits a comment's length; the whole table is in the job summary)\n",
        );
    }
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
