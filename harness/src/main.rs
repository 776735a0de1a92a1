//! `syncbench`: parses the command line, builds the context every
//! command needs, and dispatches to `commands/`.

mod commands;

use clap::Parser;
use commands::{Cmd, Context};
use std::path::PathBuf;

/// Continuous benchmarking for the reference sync system and any command.
///
/// Runs scenarios (scenarios/*.toml) against the working tree, measures
/// wall time, CPU and memory of every process, stores the raw figures in
/// SQLite (.syncbench/results.sqlite) or PostgreSQL, and compares them with the baseline
/// branch.
///
/// Exit status: 0 all runs ok and no regression; 1 a run failed or an
/// error; 2 bad usage; 130 interrupted (Ctrl-C).
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Results database: a SQLite file, or a PostgreSQL server as
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE (shared by many
    /// runners; holds the job queue) [default: .syncbench/results.sqlite
    /// at the repository root].
    #[arg(long, global = true, env = "SYNCBENCH_DB", hide_env_values = true)]
    db: Option<String>,
    /// The repository (and tree) to measure [default: the one around the current directory].
    #[arg(long, global = true)]
    repo: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

fn main() -> std::process::ExitCode {
    syncbench::proc::hide_from_other_processes();
    let cli = Cli::parse();
    if std::env::args().any(|a| syncbench::secrets::redact(&a) != a) {
        // The one copy a child can read whatever the harness does.
        eprintln!(
            "syncbench: warning: a password on the command line is visible to every process \
             on this machine (ps, /proc/PID/cmdline), measured code included; pass the URL in \
             SYNCBENCH_DB instead (syncbench keeps it from the processes it starts)"
        );
    }
    commands::init_logging(cli.command.verbose());
    let result = Context::new(cli.db, cli.repo).and_then(|cx| commands::dispatch(&cx, cli.command));
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            // The one place errors are printed: any password or token in
            // the chain (a URL, a quoted server message) shown as ***.
            eprintln!(
                "syncbench: error: {}",
                syncbench::secrets::redact(&format!("{e:#}"))
            );
            std::process::ExitCode::from(1)
        }
    }
}
