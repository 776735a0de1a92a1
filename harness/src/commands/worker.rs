//! `syncbench worker`: a benchmark machine taking jobs from the queue.

use super::{Bars, Context, MeasureArgs, outln};
use std::time::Duration;
use syncbench::ops::worker::{self, Event, WorkerSettings};
use syncbench::scenario::parse_duration;
use syncbench::store::queue::Queue;

#[derive(clap::Args)]
pub struct Args {
    /// How the queue names this worker [default: HOST:PID].
    #[arg(long)]
    name: Option<String>,
    /// A job whose worker has not heartbeated for this long is handed to
    /// another worker (heartbeats go every quarter of it).
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    lease: Duration,
    /// Exit once no job this worker could take is pending or running
    /// (else wait for new jobs until stopped: Ctrl-C or SIGTERM put the
    /// job being measured back).
    #[arg(long)]
    until_empty: bool,
    #[command(flatten)]
    pub measure: MeasureArgs,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    if args.measure.variant_chosen() {
        // A worker filtering jobs by its own choice would fail or empty
        // the jobs of everyone else.
        anyhow::bail!(
            "a worker measures the variants each job names: enqueue with --variant NAME \
             (syncbench enqueue --variant mimalloc …); --variant is not taken here"
        );
    }
    let mut queue = Queue::open(&cx.db)?;
    let mut session = args.measure.session(cx)?;
    let settings = WorkerSettings {
        name: args.name.unwrap_or_else(|| {
            format!("{}:{}", syncbench::machine::hostname(), std::process::id())
        }),
        machine_tag: args.measure.machine_tag.clone(),
        lease: args.lease,
        until_empty: args.until_empty,
    };
    eprintln!(
        "syncbench: worker {} ({}) taking jobs from {}",
        settings.name,
        settings
            .machine_tag
            .as_deref()
            .map_or("no tag: jobs for any machine".to_owned(), |t| format!(
                "tag {t}"
            )),
        cx.db
    );
    let json = args.measure.json;
    let mut bars = Bars::new(json);
    let mut waiting_said = false;
    let mut events = |e: Event| {
        let line = match e {
            Event::Waiting if waiting_said => return,
            Event::Waiting => {
                waiting_said = true;
                "waiting for jobs".to_owned()
            }
            Event::Started(job, commit) => {
                waiting_said = false;
                format!(
                    "job #{} (attempt {}): {} {}",
                    job.id,
                    job.attempt,
                    &commit.sha[..12],
                    commit.subject
                )
            }
            Event::Done(job, runs) => format!("job #{} done: {runs} run(s) stored", job.id),
            Event::BuildFailed(job) => format!("job #{} build_failed (not retried)", job.id),
            Event::Retry(job, e) => format!("job #{} failed, will be tried again: {e}", job.id),
            Event::Failed(job, e) => format!("job #{} failed twice the same way: {e}", job.id),
            Event::LostClaim(job) => format!(
                "job #{}: claim lost (no heartbeat within the lease); another worker measures it, these results were discarded",
                job.id
            ),
            Event::Released(job) => format!("job #{} put back in the queue", job.id),
        };
        if json {
            eprintln!("syncbench: {line}");
        } else {
            let _ = outln!("{line}");
        }
    };
    // Names only, from this worker's own scenarios/ (the queue's trust
    // boundary: ops/worker.rs).
    let chooser = |names: &[String]| cx.choose_named(names).map_err(|e| format!("{e:#}"));
    let done = worker::work(
        &mut session,
        &mut queue,
        &cx.root,
        &settings,
        &chooser,
        &mut bars,
        &mut events,
    )?;
    eprintln!(
        "syncbench: worker {} completed {done} job(s)",
        settings.name
    );
    Ok(if session.interrupted() { 130 } else { 0 })
}
