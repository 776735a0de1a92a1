//! `syncbench queue`: the job queue's state: pending, running (by whom,
//! since when), failed jobs with their logs, and the workers seen.

use super::{Context, outln};
use syncbench::store::queue::{JobRow, JobState, Queue, WorkerRow};

#[derive(clap::Args)]
pub struct Args {
    /// Also list the jobs done.
    #[arg(long)]
    all: bool,
    /// Print the counts, jobs and workers as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// A worker heard from within this long counts as present.
const RECENT_S: f64 = 600.0;

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let mut queue = Queue::open(&cx.db)?;
    let jobs = queue.jobs(&[])?;
    let workers = queue.workers()?;
    let count = |state: JobState| jobs.iter().filter(|j| j.state == state).count();
    let of =
        |state: JobState| -> Vec<&JobRow> { jobs.iter().filter(|j| j.state == state).collect() };
    if args.json {
        let shown: Vec<&JobRow> = jobs
            .iter()
            .filter(|j| args.all || j.state != JobState::Done)
            .collect();
        let waiting: Vec<_> = of(JobState::Pending)
            .into_iter()
            .filter(|j| !served(j, &workers))
            .map(|j| j.id)
            .collect();
        let counts: serde_json::Map<String, serde_json::Value> = JobState::ALL
            .into_iter()
            .map(|s| (s.as_str().to_owned(), count(s).into()))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "counts": counts,
                "jobs": shown,
                "no_worker_for": waiting,
                "workers": workers,
            }))?
        )?;
        return Ok(0);
    }
    let counts: Vec<String> = JobState::ALL
        .into_iter()
        .map(|s| format!("{} {}", count(s), s.as_str()))
        .collect();
    outln!("{}", counts.join(", "))?;
    print_running(&of(JobState::Running))?;
    print_pending(&of(JobState::Pending), &workers)?;
    for state in [JobState::Failed, JobState::BuildFailed] {
        print_failed(state, &of(state))?;
    }
    if args.all {
        print_done(&of(JobState::Done))?;
    }
    print_workers(&workers)?;
    Ok(0)
}

/// The running jobs: who runs each, for how long, and whether its lease
/// ran out.
fn print_running(running: &[&JobRow]) -> anyhow::Result<()> {
    if running.is_empty() {
        return Ok(());
    }
    outln!("\nrunning:")?;
    for j in running {
        let expired =
            matches!((j.heartbeat_age, j.lease_seconds), (Some(age), Some(lease)) if age > lease);
        outln!(
            "  #{:<5} {}  by {} for {} (heartbeat {} ago, attempt {}){}",
            j.id,
            short(&j.sha),
            j.worker.as_deref().unwrap_or("?"),
            ago(j.started_unix.map(|s| syncbench::model::unix_now() - s)),
            ago(j.heartbeat_age),
            j.attempt,
            if expired {
                ": its lease ran out, the next worker to look takes it over"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

/// The first 20 pending jobs, each with why it waits when no worker that
/// may take it was seen.
fn print_pending(pending: &[&JobRow], workers: &[WorkerRow]) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    outln!("\npending:")?;
    for j in pending.iter().take(20) {
        let note = match (&j.machine_tag, served(j, workers)) {
            (Some(tag), false) => format!(
                "  waiting: no worker tagged {tag} seen in the last {} min",
                RECENT_S as i64 / 60
            ),
            (None, false) => format!(
                "  waiting: no worker seen in the last {} min",
                RECENT_S as i64 / 60
            ),
            _ => String::new(),
        };
        let retry = j
            .last_error
            .as_deref()
            .map_or(String::new(), |e| format!("  (failed once: {e})"));
        outln!(
            "  #{:<5} {}  {}{}{note}{retry}",
            j.id,
            short(&j.sha),
            scenarios(j),
            j.machine_tag
                .as_deref()
                .map_or(String::new(), |t| format!("  [{t}]"))
        )?;
    }
    if pending.len() > 20 {
        outln!("  … and {} more", pending.len() - 20)?;
    }
    Ok(())
}

/// Failed jobs with their error and the first lines of their log.
fn print_failed(state: JobState, failed: &[&JobRow]) -> anyhow::Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    outln!("\n{}:", state.as_str())?;
    for j in failed {
        outln!(
            "  #{:<5} {}  {}: {}",
            j.id,
            short(&j.sha),
            scenarios(j),
            j.last_error.as_deref().unwrap_or("")
        )?;
        for line in j.log.as_deref().unwrap_or("").lines().take(10) {
            outln!("           {line}")?;
        }
    }
    Ok(())
}

/// Done jobs (`--all`): how many runs each recorded, and by whom.
fn print_done(done: &[&JobRow]) -> anyhow::Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    outln!("\ndone:")?;
    for j in done {
        outln!(
            "  #{:<5} {}  {} run(s) by {}",
            j.id,
            short(&j.sha),
            j.runs.unwrap_or(0),
            j.worker.as_deref().unwrap_or("?")
        )?;
    }
    Ok(())
}

/// The workers seen recently, and the job each is on.
fn print_workers(workers: &[WorkerRow]) -> anyhow::Result<()> {
    let recent: Vec<&WorkerRow> = workers.iter().filter(|w| w.seen_age < RECENT_S).collect();
    outln!("\nworkers seen in the last {} min:", RECENT_S as i64 / 60)?;
    if recent.is_empty() {
        outln!("  none")?;
    }
    for w in recent {
        outln!(
            "  {:<24} {:<12} seen {} ago{}",
            w.name,
            w.machine_tag.as_deref().unwrap_or("-"),
            ago(Some(w.seen_age)),
            w.job_id.map_or(String::new(), |j| format!(", on job #{j}"))
        )?;
    }
    Ok(())
}

/// Whether a worker that may take the job was seen recently.
fn served(job: &JobRow, workers: &[WorkerRow]) -> bool {
    workers.iter().any(|w| {
        w.seen_age < RECENT_S && (job.machine_tag.is_none() || job.machine_tag == w.machine_tag)
    })
}

fn scenarios(j: &JobRow) -> String {
    let names = if j.scenarios.is_empty() {
        "default suite".into()
    } else {
        j.scenarios.join(" ")
    };
    if j.variants.is_empty() {
        names
    } else {
        format!("{names} (variants {})", j.variants.join(", "))
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn ago(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}
