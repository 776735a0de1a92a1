//! What commands write: stdout that ends quietly on a closed pipe, the
//! `syncbench: …` lines of stderr (through `tracing`), compared points.

use std::io::Write;
use syncbench::analysis::Compared;
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
        write!(writer, "syncbench: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Whether an error is stdout closed by its reader.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes to stdout, returning the error of a closed pipe instead of
/// panicking as `println!` does.
pub fn emit(text: std::fmt::Arguments) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(text)?;
    out.flush()?;
    Ok(())
}

/// `println!` for commands: a closed pipe ends the command quietly.
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::commands::output::emit(format_args!("{}\n", format_args!($($t)*)))
    };
}
pub(crate) use outln;

/// Prints compared points as JSON or tables.
pub fn print_compared(compared: &[Compared], json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(compared)?)?;
    } else {
        for c in compared {
            outln!("\n{} {}  [{}]", c.scenario, c.point, c.machine)?;
            emit(format_args!("{}", text::table(&c.rows)))?;
        }
    }
    Ok(())
}
