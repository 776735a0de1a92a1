//! `syncbench comment`: the pull request's comment, posted or updated in
//! place through GitHub's API (see `syncbench::github`).

use super::outln;
use anyhow::Context as _;
use std::path::PathBuf;
use syncbench::github::{self, Outcome, Target};

#[derive(clap::Args)]
pub struct Args {
    /// The Markdown to post, e.g. the summary `syncbench check --summary`
    /// wrote.
    #[arg(long, value_name = "FILE")]
    body: PathBuf,
    /// Something is flagged (the gate failed): post the comment.
    #[arg(long)]
    flagged: bool,
    /// The author asked for the comment (e.g. a label): post it even when
    /// nothing is flagged.
    #[arg(long)]
    asked: bool,
    /// A link to the dashboard, added under the body.
    #[arg(long, value_name = "URL")]
    link: Option<String>,
    /// The pull request [default: from GITHUB_REF, refs/pull/N/merge].
    #[arg(long)]
    pr: Option<u64>,
    /// owner/name [default: $GITHUB_REPOSITORY].
    #[arg(long, env = "GITHUB_REPOSITORY", value_name = "OWNER/NAME")]
    repository: String,
    /// The API's root.
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    api: String,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let token = std::env::var("GITHUB_TOKEN")
        .context("GITHUB_TOKEN is not set: pass the workflow's token (env: GITHUB_TOKEN: ${{ github.token }})")?;
    let pr = match args.pr {
        Some(pr) => pr,
        None => std::env::var("GITHUB_REF")
            .ok()
            .and_then(|r| {
                r.strip_prefix("refs/pull/")?
                    .split('/')
                    .next()?
                    .parse()
                    .ok()
            })
            .context("no pull request: give --pr N (GITHUB_REF is not refs/pull/N/merge)")?,
    };
    let body = std::fs::read_to_string(&args.body)
        .with_context(|| format!("reading {}", args.body.display()))?;
    // Kept whole under a body cut short to fit (`github::compose`).
    let mut footer = String::new();
    if let Some(link) = &args.link {
        footer.push_str(&format!("\n\nDashboard: {link}\n"));
    }
    if !args.flagged {
        footer.push_str("\n\n_Nothing flagged: this comment is kept up to date on every push._\n");
    }
    let target = Target {
        api: args.api.trim_end_matches('/').to_owned(),
        repo: args.repository,
        pr,
        token,
    };
    let outcome = github::comment(&target, &body, &footer, args.flagged || args.asked)
        .context("commenting on the pull request")?;
    if args.json {
        outln!("{}", serde_json::to_string(&outcome)?)?;
    } else {
        match &outcome {
            Outcome::Posted { url, .. } => eprintln!("syncbench: posted {url}"),
            Outcome::Updated { url, .. } => eprintln!("syncbench: updated {url}"),
            Outcome::Quiet => eprintln!("syncbench: nothing flagged and nobody asked: no comment"),
        }
    }
    Ok(0)
}
