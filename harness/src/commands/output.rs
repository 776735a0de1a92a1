//! What commands write: stdout that ends quietly on a closed pipe, the
//! `syncbench: …` lines of stderr (through `tracing`), compared points.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use syncbench::history::Compared;
use syncbench::text;

/// Details (process ids, build commands, lost servers) go to stderr
/// through `tracing`: warnings always, the rest with -v
/// (`SYNCBENCH_LOG` overrides, e.g. `SYNCBENCH_LOG=debug`).
pub fn init_logging(verbose: bool) {
    let level = if verbose { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SYNCBENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .event_format(Plain)
        .init();
}

/// `syncbench: MESSAGE`, the form of every line the harness writes to
/// stderr (scripts and tests read "started server pid=N").
struct Plain;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        // Formatted apart first: a log line (a git or server error quoted
        // in it) may hold a password or token, shown redacted.
        let mut line = String::new();
        ctx.field_format().format_fields(
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        writeln!(writer, "syncbench: {}", syncbench::secrets::redact(&line))
    }
}

/// Set once stdout's reader is gone.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout. Once its reader has closed the pipe (`syncbench
/// check | head -1`), output is dropped instead of panicking as
/// `println!` does, and the command goes on to its own exit status: a
/// regression must not pass the gate because a reader stopped reading.
pub fn emit(text: std::fmt::Arguments) -> anyhow::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => Ok(other?),
    }
}

/// `println!` for commands (see [`emit`]).
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::commands::output::emit(format_args!("{}\n", format_args!($($t)*)))
    };
}
pub(crate) use outln;

/// A relative change for a line of text, e.g. `+6.2%`; a change from 0
/// (no percentage of it) is `from 0`, never `+inf%`.
pub fn pct(change_pct: f64) -> String {
    if change_pct.is_finite() {
        format!("{change_pct:+.1}%")
    } else {
        "from 0".to_owned()
    }
}

/// Prints compared points as JSON or tables.
pub fn print_compared(compared: &[Compared], json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(compared)?)?;
    } else {
        for c in compared {
            outln!("\n{} {}  [{}]", c.scenario, c.point, c.machine)?;
            emit(format_args!("{}", text::table(&c.rows)))?;
        }
        if let Some(note) = text::too_few_note(compared.iter().flat_map(|c| &c.rows)) {
            outln!("\n{note}")?;
        }
    }
    Ok(())
}
