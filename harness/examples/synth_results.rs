//! Writes a synthetic results database for measuring `syncbench report`:
//! COMMITS commits in a line, each with SERIES series (scenario points ×
//! metrics) of REPS repetitions, plus CPU/RSS samples and phases for the
//! newest commits, and known steps: every tenth series slows down by 15%
//! two thirds in, and two other tenths step in the oldest third (+10% at
//! a sixth, -10% at a quarter), where no window may hide them.
//!
//! cargo run --release -p syncbench --example synth_results -- DB [COMMITS SERIES REPS [FROM]]
//! (DB: a SQLite file or a postgres:// URL; FROM: store only the commits
//! from this one on, to append to a database written with fewer COMMITS:
//! the values are those a whole run would write)

use syncbench::git::Commit;
use syncbench::model::records::Sample;
use syncbench::model::{Direction, Phase, RunStatus, Series, Unit};
use syncbench::store::RunRecord;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let db = args
        .first()
        .ok_or("usage: synth_results DB [COMMITS SERIES REPS [FROM]]")?;
    let num = |i: usize, d: usize| args.get(i).map_or(Ok(d), |s| s.parse());
    let (commits, series, reps) = (num(1, 1000)?, num(2, 60)?, num(3, 5)?);
    let from = num(4, 0)?;
    let points = 3;
    let per_point = series.div_ceil(points);
    let mut store = syncbench::store::open(&syncbench::store::Location::parse(db))?;
    let machine = syncbench::machine::detect_machine();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut parent: Option<String> = None;
    let mut batch = Vec::new();
    for c in 0..commits {
        // Distinct in their first characters, as real shas are.
        let mixed = (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let sha = format!("{mixed:016x}{c:024x}");
        let commit = Commit {
            sha: sha.clone(),
            parents: parent.iter().cloned().collect(),
            author: "Synthetic Author <synth@example.org>".into(),
            time_unix: 1_750_000_000 + c as i64 * 3600,
            subject: format!("Commit {c}: change something"),
            dirty: false,
            branch: Some("main".into()),
        };
        for p in 0..points {
            let metrics = (0..per_point)
                .map(|m| {
                    let step = match m % 10 {
                        0 if c > commits * 2 / 3 => 1.15,
                        3 if c >= commits / 6 => 1.10,
                        7 if c >= commits / 4 => 0.90,
                        _ => 1.0,
                    };
                    let base = 0.05 * (1 + m) as f64 * step;
                    Series {
                        name: format!("phase{m}.wall"),
                        unit: Unit::Seconds,
                        direction: Direction::LowerIsBetter,
                        values: (0..reps).map(|_| base * (1.0 + 0.02 * noise())).collect(),
                    }
                })
                .collect();
            let recent = c + 20 >= commits;
            let samples = if recent {
                (0..200)
                    .flat_map(|i| {
                        ["server", "driver"].map(|proc| {
                            (
                                0,
                                Sample {
                                    process: proc.into(),
                                    t_ms: i as f64 * 50.0,
                                    cpu_pct: 50.0 + 40.0 * noise(),
                                    rss_bytes: 20_000_000 + (i * 100_000) as u64,
                                },
                            )
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let phases = if recent {
                [("upload", 0.0, 4000.0), ("download", 4000.0, 10000.0)]
                    .map(|(name, start_ms, end_ms)| Phase {
                        repetition: 0,
                        name: name.into(),
                        start_ms,
                        end_ms,
                    })
                    .to_vec()
            } else {
                Vec::new()
            };
            if c < from {
                continue;
            }
            batch.push(RunRecord {
                machine: machine.clone(),
                commit: commit.clone(),
                scenario: "synthetic".into(),
                point: format!("point={p}"),
                params_json: format!("{{\"point\":{p}}}"),
                status: RunStatus::Ok,
                error: None,
                repetitions: reps as u32,
                harness_version: env!("CARGO_PKG_VERSION").into(),
                toolchain: "synthetic".into(),
                environment: Default::default(),
                command_line: "synth_results".into(),
                started_unix: commit.time_unix as f64,
                finished_unix: commit.time_unix as f64 + 10.0,
                metrics,
                samples,
                phases,
            });
        }
        if batch.len() >= 300 {
            store.record_all(&batch)?;
            batch.clear();
        }
        parent = Some(sha);
    }
    store.record_all(&batch)?;
    eprintln!(
        "{db}: {commits} commits x {} series x {reps} repetitions",
        points * per_point
    );
    Ok(())
}
