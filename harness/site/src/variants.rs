//! Variants side by side: per scenario point, each variant's newest
//! values beside the default's (the ratio, the repetitions' range, and the
//! verdict of an A/B run of the two where one was stored), the trend of
//! every variant overlaid; and the overlays of a series page. A variant
//! added later or dropped keeps its rows: each shows its own newest value
//! and the commit it is from.

use super::chart::Overlay;
use super::data::Data;
use super::{SiteError, Writer, machine_id, series_file, short, slug};
use minijinja::{Environment, context};
use std::collections::BTreeMap;
use syncbench_analysis::history::SeriesHistory;
use syncbench_model::variant::{DEFAULT, split_key};
use syncbench_model::{SeriesKey, Unit};

/// The points of one scenario point on one machine that differ only by
/// variant: variant name (`default` for none) → the stored point key.
struct Family {
    machine: String,
    scenario: String,
    base: String,
    members: BTreeMap<String, String>,
}

impl Family {
    /// Default first, then by name.
    fn ordered(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self
            .members
            .iter()
            .map(|(n, k)| (n.as_str(), k.as_str()))
            .collect();
        v.sort_by_key(|(n, _)| (*n != DEFAULT, *n));
        v
    }

    fn key(&self, point: &str, metric: &str) -> SeriesKey {
        SeriesKey {
            machine: self.machine.clone(),
            scenario: self.scenario.clone(),
            point: point.to_owned(),
            metric: metric.to_owned(),
        }
    }
}

/// Every point measured on more than one variant.
fn families(data: &Data) -> Vec<Family> {
    let mut by: BTreeMap<(String, String, String), BTreeMap<String, String>> = BTreeMap::new();
    for k in data.history.series.keys() {
        let (base, variant) = split_key(&k.point);
        by.entry((k.machine.clone(), k.scenario.clone(), base))
            .or_default()
            .insert(variant.unwrap_or(DEFAULT).to_owned(), k.point.clone());
    }
    by.into_iter()
        .filter(|(_, m)| m.len() > 1)
        .map(|((machine, scenario, base), members)| Family {
            machine,
            scenario,
            base,
            members,
        })
        .collect()
}

/// The other variants of series `k`'s point, as overlays of its trend,
/// and its own variant's name (no overlays: a point with one variant).
pub(super) fn overlays(data: &Data, k: &SeriesKey) -> (Vec<Overlay>, String) {
    let (base, own) = split_key(&k.point);
    let own = own.unwrap_or(DEFAULT).to_owned();
    let mut out = Vec::new();
    for (other, s) in data.history.series.range(
        SeriesKey {
            machine: k.machine.clone(),
            scenario: k.scenario.clone(),
            point: String::new(),
            metric: String::new(),
        }..,
    ) {
        if other.machine != k.machine || other.scenario != k.scenario {
            break;
        }
        let (b, v) = split_key(&other.point);
        if b == base && other.metric == k.metric && other.point != k.point {
            out.push(Overlay {
                name: v.unwrap_or(DEFAULT).to_owned(),
                levels: s.levels.iter().map(|l| l.map(|l| l.level)).collect(),
            });
        }
    }
    (out, own)
}

/// The metrics shown side by side: times of the whole run and of each
/// phase, and each process's peak memory, as the default measured them.
fn headline(data: &Data, f: &Family) -> Vec<String> {
    let default = f.members.get(DEFAULT).or_else(|| f.members.values().next());
    let Some(point) = default else {
        return vec![];
    };
    let mut metrics: Vec<String> = data
        .history
        .series
        .keys()
        .filter(|k| k.machine == f.machine && k.scenario == f.scenario && &k.point == point)
        .map(|k| k.metric.clone())
        .filter(|m| m == "wall" || m.ends_with(".wall") || m.ends_with(".peak_rss"))
        .collect();
    // The whole run's time first.
    metrics.sort_by_key(|m| (m != "wall", m.ends_with(".peak_rss"), m.clone()));
    metrics
}

/// One variant's newest value of a metric, and its ratio to the default's
/// at the same commit.
fn cell(data: &Data, s: &SeriesHistory, default: Option<&SeriesHistory>) -> minijinja::Value {
    let Some(i) = s.present().last().copied() else {
        return context! {};
    };
    let l = s.levels[i].expect("present");
    let unit: Unit = s.unit;
    let ratio = default
        .and_then(|d| d.levels.get(i).copied().flatten())
        .filter(|d| d.level != 0.0)
        .map(|d| l.level / d.level);
    context! {
        value => unit.human(l.level),
        range => format!("{} – {}", unit.human(l.min), unit.human(l.max)),
        ratio => ratio.map(|r| format!("{r:.3}×")),
        at => short(&data.history.order[i]),
    }
}

/// Renders `variants/SCENARIO.html` for each scenario with points on
/// several variants; returns (scenario, page) for the index's links.
pub(super) fn render_all(
    data: &Data,
    env: &Environment,
    w: &mut Writer,
) -> Result<Vec<(String, String)>, SiteError> {
    let families = families(data);
    let mut pages: BTreeMap<&str, Vec<minijinja::Value>> = BTreeMap::new();
    for f in &families {
        pages
            .entry(f.scenario.as_str())
            .or_default()
            .push(family(data, f));
    }
    let mut links = Vec::new();
    for (scenario, points) in pages {
        let file = format!("variants/{}.html", slug(scenario));
        let html = env.get_template("variants.html")?.render(context! {
            root => "../",
            scenario => scenario,
            points => points,
        })?;
        w.page(&file, &html)?;
        links.push((scenario.to_owned(), file));
    }
    Ok(links)
}

/// One point's table: a row per variant, a column per headline metric,
/// the A/B verdict against the default; and the overlaid trend of `wall`.
fn family(data: &Data, f: &Family) -> minijinja::Value {
    let metrics = headline(data, f);
    let newest = data.len().saturating_sub(1);
    let default_point = f.members.get(DEFAULT);
    let rows: Vec<_> = f
        .ordered()
        .into_iter()
        .map(|(name, point)| {
            let cells: Vec<_> = metrics
                .iter()
                .map(|m| {
                    let own = data.history.series.get(&f.key(point, m));
                    let default = default_point.and_then(|d| data.history.series.get(&f.key(d, m)));
                    match own {
                        Some(s) => cell(data, s, default.filter(|_| name != DEFAULT)),
                        None => context! {},
                    }
                })
                .collect();
            let last = metrics
                .first()
                .and_then(|m| data.history.series.get(&f.key(point, m)))
                .and_then(|s| s.present().last().copied());
            context! {
                name => name,
                is_default => name == DEFAULT,
                href => metrics.first().map(|m| format!("../{}", series_file(&f.key(point, m)))),
                ended => last.filter(|&i| i < newest).map(|i| short(&data.history.order[i]).to_owned()),
                cells => cells,
                ab => default_point.filter(|_| name != DEFAULT).and_then(|d| ab(data, f, d, point)),
            }
        })
        .collect();
    let chart = metrics.first().and_then(|m| overlaid(data, f, m));
    context! {
        point => &f.base,
        machine_short => machine_id(&f.machine),
        metrics => metrics,
        rows => rows,
        chart => chart,
    }
}

/// The newest stored A/B run of `point` against `default_point` (wall
/// first, else any metric).
fn ab(data: &Data, f: &Family, default_point: &str, point: &str) -> Option<minijinja::Value> {
    let runs: Vec<_> = data
        .ab_runs
        .iter()
        .filter(|r| {
            r.machine == f.machine
                && r.scenario == f.scenario
                && r.point == point
                && r.a_point.as_deref() == Some(default_point)
        })
        .collect();
    let r = runs
        .iter()
        .rev()
        .find(|r| r.metric == "wall")
        .or_else(|| runs.last())?;
    let pct = |x: Option<f64>| x.map_or("unbounded".to_owned(), |x| format!("{:+.1}%", x * 100.0));
    Some(context! {
        metric => &r.metric,
        verdict => r.verdict.as_str(),
        class => r.verdict.css_class(),
        change => r.change.map(|c| format!("{:+.1}%", c * 100.0)),
        interval => format!("[{}, {}]", pct(r.low), pct(r.high)),
        pairs => r.pairs,
        at => short(&r.b_sha),
        error => r.error.as_deref().map(|e| e.lines().next().unwrap_or("").to_owned()),
    })
}

/// `metric`'s trend on the default variant (or the first), every other
/// variant drawn over it.
fn overlaid(data: &Data, f: &Family, metric: &str) -> Option<String> {
    let (_, point) = f.ordered().into_iter().next()?;
    let k = f.key(point, metric);
    let s = data.history.series.get(&k)?;
    let (overlays, own) = overlays(data, &k);
    Some(super::series::overlaid_trend(
        data,
        &k,
        s,
        (&overlays, &own),
    ))
}
