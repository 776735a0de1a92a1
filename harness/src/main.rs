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
// A fixed width: help reads the same on every terminal, and the golden
// copies of every command's help (tests/fixtures/help) compare exactly.
#[command(version, term_width = 100)]
struct Cli {
    /// Results database: a SQLite file, or a PostgreSQL server as
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE (shared by many
    /// runners; holds the job queue) [default: .syncbench/results.sqlite
    /// at the repository root].
    #[arg(long, global = true, env = "SYNCBENCH_DB", hide_env_values = true)]
    db: Option<String>,
    /// The project's git repository: its scenarios/, its commits and, for
    /// the commands that measure, the tree measured [default: the one
    /// around the current directory].
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every flag and argument of every command says what it is for
    /// (`--help` is where a newcomer learns the tool).
    #[test]
    fn every_flag_and_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if !builtin && !a.is_hide_set() && a.get_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let mut cmd = Cli::command();
        cmd.build();
        walk(&cmd, "syncbench", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }
}
