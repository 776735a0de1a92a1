use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use client::{Device, InitOptions};
use protocol::{DocId, Revision, UserId};
use std::io::{Read, Write};
use std::path::PathBuf;

mod bench;

/// A device of the reference sync system: keeps encrypted documents in a
/// local store and syncs them through `sync-server`. Plaintext never
/// leaves this program.
///
/// Commands that read or write document contents need the passphrase, from
/// the SYNC_PASSPHRASE environment variable or --passphrase-file.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The device's directory (holds device.sqlite).
    #[arg(long, env = "SYNC_CLIENT_DIR", default_value = ".", global = true)]
    dir: PathBuf,
    /// File whose first line is the passphrase (instead of SYNC_PASSPHRASE).
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up this directory as a device of a user. The first device of a
    /// user creates the user's secret; later devices open it with the
    /// passphrase (a wrong one is refused and nothing is created).
    Init {
        /// Server URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        server: String,
        /// User id, as printed by `sync-server user add`.
        #[arg(long)]
        user: UserId,
        /// Bearer token, as printed by `sync-server user add`.
        #[arg(long, env = "SYNC_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Store a document from FILE (or standard input).
    Put { id: DocId, file: Option<PathBuf> },
    /// Print a document's content to standard output.
    Get { id: DocId },
    /// Delete a document (the deletion syncs like an edit).
    Delete { id: DocId },
    /// List documents with revision, size and state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Send local changes to the server and receive the others'.
    Sync {
        /// Upload every local document again (after the server lost data).
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        json: bool,
    },
    /// List documents with conflicting versions, or show one document's versions.
    Conflicts {
        id: Option<DocId>,
        #[arg(long)]
        json: bool,
    },
    /// Workload driver for the syncbench harness: runs a named workload
    /// against a server and reports phases as JSON lines on stdout
    /// (the contract in protocol::driver).
    #[command(hide = true)]
    Bench {
        /// Workload to run (docs).
        #[arg(long)]
        workload: String,
        #[arg(long)]
        server: String,
        #[arg(long)]
        user: UserId,
        #[arg(long, env = "SYNC_TOKEN", hide_env_values = true)]
        token: String,
        /// Scratch directory for the workload's devices.
        #[arg(long)]
        work_dir: PathBuf,
        /// Workload parameter NAME=VALUE (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
    },
    /// Resolve a conflict: with the content of FILE, of one version (--keep
    /// REV), or by deleting the document (--delete).
    Resolve {
        id: DocId,
        #[arg(conflicts_with_all = ["keep", "delete"])]
        file: Option<PathBuf>,
        #[arg(long, conflicts_with = "delete")]
        keep: Option<Revision>,
        #[arg(long)]
        delete: bool,
    },
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => std::process::ExitCode::from(code),
        // `sync-client list | head`: the reader has all it wanted.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sync-client: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn passphrase(file: Option<&PathBuf>) -> anyhow::Result<String> {
    if let Some(f) = file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_owned());
    }
    std::env::var("SYNC_PASSPHRASE")
        .context("the passphrase is needed: set SYNC_PASSPHRASE or pass --passphrase-file")
}

fn read_input(file: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    match file {
        Some(f) => buf = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        None => {
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
        }
    }
    Ok(buf)
}

fn unlocked(cli: &Cli) -> anyhow::Result<Device> {
    let mut device = Device::open(&cli.dir)?;
    device.unlock(&passphrase(cli.passphrase_file.as_ref())?)?;
    Ok(device)
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Bench {
            workload,
            server,
            user,
            token,
            work_dir,
            params,
        } => {
            let args = bench::Args {
                workload,
                server,
                user,
                token,
                work_dir,
                params: params.iter().cloned().collect(),
            };
            return bench::run(args);
        }
        Command::Init {
            server,
            user,
            token,
        } => {
            let device = Device::init(
                &cli.dir,
                InitOptions {
                    server: server.clone(),
                    user: user.clone(),
                    token: token.clone(),
                    passphrase: passphrase(cli.passphrase_file.as_ref())?,
                    kdf: client::default_kdf(),
                },
            )?;
            println!("initialised device in {}", device.dir().display());
        }
        Command::Put { id, file } => {
            let content = read_input(file.as_ref())?;
            let rev = unlocked(&cli)?.put(id, &content)?;
            println!("{id} {rev}");
        }
        Command::Get { id } => match unlocked(&cli)?.get(id)? {
            Some(content) => std::io::stdout().write_all(&content)?,
            None => bail!("no document {id:?} (or it was deleted)"),
        },
        Command::Delete { id } => {
            let rev = unlocked(&cli)?.delete(id)?;
            println!("{id} {rev} deleted");
        }
        Command::List { json } => {
            let docs = Device::open(&cli.dir)?.list()?;
            if *json {
                writeln!(out, "{}", serde_json::to_string_pretty(&docs)?)?;
            } else {
                for d in docs {
                    let state = match (d.deleted, d.pending, d.conflicts) {
                        (_, _, n) if n > 0 => format!("{n} conflict(s)"),
                        (true, _, _) => "deleted".into(),
                        (_, true, _) => "not synced".into(),
                        _ => "synced".into(),
                    };
                    writeln!(out, "{}\t{}\t{} B\t{}", d.id, d.rev, d.size, state)?;
                }
            }
        }
        Command::Sync { repair, json } => {
            let mut device = Device::open(&cli.dir)?;
            let r = if *repair {
                device.sync_repair()?
            } else {
                device.sync()?
            };
            if *json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "sent {} ({} unchanged), received {}, new conflicts {}, server generation {}",
                    r.sent, r.unchanged, r.received, r.new_conflicts, r.server_generation
                );
                if r.replica_rotated {
                    println!(
                        "note: this device's store was restored from an older copy; it continues under a new replica id"
                    );
                }
            }
        }
        Command::Conflicts { id: None, json } => {
            let ids = Device::open(&cli.dir)?.conflicts()?;
            if *json {
                writeln!(out, "{}", serde_json::to_string(&ids)?)?;
            } else {
                for id in &ids {
                    writeln!(out, "{id}")?;
                }
            }
        }
        Command::Conflicts { id: Some(id), json } => {
            let versions = unlocked(&cli)?.versions(id)?;
            if *json {
                let v: Vec<_> = versions
                    .iter()
                    .map(|v| {
                        serde_json::json!({
                            "rev": v.rev.to_string(),
                            "current": v.current,
                            "deleted": v.content.is_none(),
                            "content": v.content.as_ref().map(|c| String::from_utf8_lossy(c)),
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                for v in versions {
                    let tag = if v.current { "current" } else { "conflict" };
                    match v.content {
                        Some(c) => writeln!(
                            out,
                            "== {} ({tag}, {} B)\n{}",
                            v.rev,
                            c.len(),
                            String::from_utf8_lossy(&c)
                        ),
                        None => writeln!(out, "== {} ({tag}, deleted)", v.rev),
                    }?
                }
            }
        }
        Command::Resolve {
            id,
            file,
            keep,
            delete,
        } => {
            let mut device = unlocked(&cli)?;
            let content = if *delete {
                None
            } else if let Some(rev) = keep {
                let version = device
                    .versions(id)?
                    .into_iter()
                    .find(|v| v.rev == *rev)
                    .with_context(|| {
                        format!(
                            "{id} has no version {rev}; `sync-client conflicts {id}` lists them"
                        )
                    })?;
                version.content
            } else {
                Some(read_input(file.as_ref())?)
            };
            let rev = device.resolve(id, content.as_deref())?;
            println!("{id} {rev} resolved; sync to share it");
        }
    }
    Ok(0)
}
