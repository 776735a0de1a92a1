use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use mx::{Delivered, Exchanger};
use protocol::UserId;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// A mail exchanger for the reference sync system: encrypts RFC 5322
/// messages to a user's public age key and delivers them to the server's
/// services listener, where they wait for the user's devices.
///
/// Exit status: 0 all delivered (or delivered before), 1 some message
/// failed or the user cannot receive mail, 2 bad usage.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deliver messages (files, or every file in the directories given).
    Deliver {
        /// The server's services URL (`services on …` in its first line).
        #[arg(long, env = "SYNC_SERVICES_URL")]
        server: String,
        /// The service token the server was started with.
        #[arg(long, env = "SYNC_SERVICE_TOKEN", hide_env_values = true)]
        token: String,
        /// The recipient's user id.
        #[arg(long)]
        user: UserId,
        /// Deliveries in flight at once.
        #[arg(short = 'j', long, default_value_t = 4)]
        jobs: usize,
        /// Print a JSON summary on stdout.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("sync-mx: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// The files to deliver: each file given, and the files directly inside
/// each directory given, in name order.
fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            inside.sort();
            out.extend(inside);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let Command::Deliver {
        server,
        token,
        user,
        jobs,
        json,
        paths,
    } = cli.command;
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let files = files(&paths)?;
    let mx = Exchanger::new(&server, &token)?;
    // Bounce before anything is sent: an unknown user or a missing key
    // fails the whole run with nothing delivered.
    let recipient = mx.recipient(&user)?;
    let t0 = Instant::now();
    let next = AtomicUsize::new(0);
    let tally = Mutex::new((0u64, 0u64, 0u64, Vec::<(String, String)>::new()));
    std::thread::scope(|s| {
        for _ in 0..jobs.min(files.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let result = std::fs::read(path)
                        .map_err(mx::MxError::from)
                        .and_then(|raw| {
                            mx::check_message(&raw)?;
                            Ok((raw.len() as u64, mx.deliver(&user, &recipient, &raw)?))
                        });
                    let mut t = tally.lock().expect("tally lock");
                    match result {
                        Ok((size, Delivered::New { .. })) => {
                            t.0 += 1;
                            t.2 += size;
                        }
                        Ok((_, Delivered::Duplicate)) => t.1 += 1,
                        Err(e) => {
                            eprintln!("sync-mx: {}: {e}", path.display());
                            t.3.push((path.display().to_string(), e.to_string()));
                        }
                    }
                }
            });
        }
    });
    let (delivered, duplicates, bytes, failed) = tally.into_inner().expect("tally lock");
    let secs = t0.elapsed().as_secs_f64();
    if json {
        let failed: Vec<_> = failed
            .iter()
            .map(|(f, e)| serde_json::json!({"file": f, "error": e}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "delivered": delivered,
                "duplicates": duplicates,
                "failed": failed,
                "bytes": bytes,
                "seconds": secs,
            })
        );
    } else {
        eprintln!(
            "sync-mx: delivered {delivered} message(s), {:.1} MB in {:.2} s ({:.1} MB/s); {duplicates} delivered before; {} failed",
            bytes as f64 / 1e6,
            secs,
            bytes as f64 / 1e6 / secs.max(1e-9),
            failed.len()
        );
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}
