use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use client::MailMode;
use client::{Device, InitOptions};
use protocol::{
    BlobFlag, BlobId, BlobQuery, DocId, FlagChange, Namespace, Order, Revision, UserId,
};
use std::io::{Read, Write};
use std::path::PathBuf;

mod bench;
mod load;

// The allocator, chosen at build time (a variant to measure): glibc's
// malloc unless a feature names another.
#[cfg(all(feature = "mimalloc", feature = "jemalloc"))]
compile_error!("the features `mimalloc` and `jemalloc` each choose the allocator: enable one");
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `--version`: the package's, and the allocator this binary was built with.
const VERSION: &str = if cfg!(feature = "mimalloc") {
    concat!(env!("CARGO_PKG_VERSION"), " (allocator: mimalloc)")
} else if cfg!(feature = "jemalloc") {
    concat!(env!("CARGO_PKG_VERSION"), " (allocator: jemalloc)")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (allocator: glibc)")
};

/// A device of the reference sync system: keeps encrypted documents in a
/// local store and syncs them through `sync-server`. Plaintext never
/// leaves this program.
///
/// Commands that read or write document contents need the passphrase, from
/// the SYNC_PASSPHRASE environment variable or --passphrase-file.
#[derive(Parser)]
#[command(version = VERSION)]
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
    /// Blobs: large encrypted content, streamed to and from the server.
    Blob {
        #[command(subcommand)]
        command: BlobCommand,
    },
    /// Mail: process incoming messages, list the inbox, open a message.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
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

#[derive(Subcommand)]
enum BlobCommand {
    /// Encrypt FILE (streamed) and upload it as NAMESPACE/ID.
    Put {
        namespace: Namespace,
        id: BlobId,
        file: PathBuf,
    },
    /// Download (if not stored here yet), verify and decrypt a blob to
    /// --output or standard output.
    Get {
        namespace: Namespace,
        id: BlobId,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List the blobs on the server.
    List {
        #[arg(long)]
        namespace: Option<Namespace>,
        #[arg(long)]
        flag: Option<BlobFlag>,
        /// Newest first instead of oldest first.
        #[arg(long)]
        newest: bool,
        /// Only print how many blobs match.
        #[arg(long)]
        count: bool,
        #[arg(long)]
        json: bool,
    },
    /// Set a blob's flag (PENDING, PROCESSING, PROCESSED, FAILED).
    Flag {
        namespace: Namespace,
        id: BlobId,
        flag: BlobFlag,
        /// Only if its flag is this now.
        #[arg(long)]
        expect: Option<BlobFlag>,
    },
    /// Delete a blob on the server and here.
    Delete { namespace: Namespace, id: BlobId },
}

#[derive(Subcommand)]
enum MailCommand {
    /// Process the mail delivered to the user: decrypt, parse, store as
    /// metadata document (+ content blob), then remove the incoming copy.
    /// Messages that cannot be decrypted or parsed are flagged FAILED and kept.
    Fetch {
        /// Retake a message another device reserved longer ago than this
        /// (it crashed mid-way), e.g. 10m, 30s.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        lease: std::time::Duration,
        #[arg(long)]
        json: bool,
    },
    /// The inbox, newest first, from metadata alone (run `sync` first).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print one message (raw RFC 5322), fetching its content on demand.
    Open {
        id: BlobId,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Show or set how this device stores processed mail: `blobs`
    /// (metadata document + content blob) or `legacy` (the whole message
    /// inside the document, as the original design did).
    Mode { mode: Option<MailMode> },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 30s, 10m, 2h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: the unit must be s, m or h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Where `get`/`open` write: the file given, or standard output.
fn output(path: Option<&PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    })
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
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
        Command::Blob { command } => return blob_command(&cli, command),
        Command::Mail { command } => return mail_command(&cli, command),
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

fn blob_command(cli: &Cli, command: &BlobCommand) -> anyhow::Result<u8> {
    let device = unlocked(cli)?;
    match command {
        BlobCommand::Put {
            namespace,
            id,
            file,
        } => {
            let f =
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            let len = f.metadata()?.len();
            let info = device.upload_blob(namespace, id, std::io::BufReader::new(f), len)?;
            println!("{namespace}/{id} {} stored", human_bytes(info.size));
        }
        BlobCommand::Get {
            namespace,
            id,
            output: to,
        } => {
            let mut out = output(to.as_ref())?;
            device.read_blob(namespace, id, &mut out)?;
            out.flush()?;
        }
        BlobCommand::List {
            namespace,
            flag,
            newest,
            count,
            json,
        } => {
            let list = device.remote().list_blobs(&BlobQuery {
                namespace: namespace.clone(),
                flag: *flag,
                order: if *newest {
                    Order::Newest
                } else {
                    Order::Oldest
                },
                limit: None,
                count_only: *count,
            })?;
            let mut out = std::io::stdout().lock();
            if *json {
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else if *count {
                writeln!(out, "{}", list.count)?;
            } else {
                for b in &list.blobs {
                    writeln!(
                        out,
                        "{}/{}\t{}\t{}",
                        b.namespace,
                        b.id,
                        human_bytes(b.size),
                        b.flag.map_or("-", BlobFlag::as_str)
                    )?;
                }
            }
        }
        BlobCommand::Flag {
            namespace,
            id,
            flag,
            expect,
        } => {
            device.remote().flag_blob(
                namespace,
                id,
                &FlagChange {
                    flag: *flag,
                    expect: *expect,
                },
            )?;
        }
        BlobCommand::Delete { namespace, id } => {
            if !device.delete_blob(namespace, id)? {
                bail!("no blob {namespace}/{id} on the server");
            }
        }
    }
    Ok(0)
}

fn mail_command(cli: &Cli, command: &MailCommand) -> anyhow::Result<u8> {
    let mut device = unlocked(cli)?;
    let mut out = std::io::stdout().lock();
    match command {
        MailCommand::Fetch { lease, json } => {
            let r = device.process_incoming(*lease)?;
            if *json {
                serde_json::to_writer(&mut out, &r)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "processed {} message(s) ({}); {} failed; {} taken by another device",
                    r.processed,
                    human_bytes(r.bytes),
                    r.failed.len(),
                    r.skipped
                )?;
                for (id, why) in &r.failed {
                    writeln!(out, "FAILED {id}: {why}")?;
                }
            }
            // Failed messages are kept and flagged; the run itself worked.
            return Ok(0);
        }
        MailCommand::List { json } => {
            let inbox = device.mail_list()?;
            if *json {
                serde_json::to_writer_pretty(&mut out, &inbox)?;
                writeln!(out)?;
            } else {
                for m in inbox.iter().map(|s| &s.header) {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}{}",
                        m.id,
                        m.date.as_deref().unwrap_or("-"),
                        m.from,
                        m.subject,
                        human_bytes(m.size),
                        if m.attachments > 0 {
                            format!("\t{} attachment(s)", m.attachments)
                        } else {
                            String::new()
                        }
                    )?;
                }
            }
        }
        MailCommand::Open { id, output: to } => {
            drop(out);
            let mut out = output(to.as_ref())?;
            device.mail_open(id, &mut out)?;
            out.flush()?;
        }
        MailCommand::Mode { mode: Some(mode) } => device.set_mail_mode(*mode)?,
        MailCommand::Mode { mode: None } => {
            let mode = device.mail_mode()?;
            writeln!(
                out,
                "{}",
                serde_json::to_value(mode)?.as_str().unwrap_or_default()
            )?;
        }
    }
    Ok(0)
}
