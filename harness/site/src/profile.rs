//! A page per stored profile comparison (`syncbench profile`): each
//! process's instructions at both commits and the functions whose counts
//! changed most, inclusive and exclusive. Linked from the compare page of
//! the same commits and from change points of instruction counts.

use super::data::Data;
use super::{SiteError, Writer, profile_file, short};
use minijinja::{Environment, context};
use syncbench_analysis::profile::FunctionChange;
use syncbench_model::Unit;

/// How many functions each table shows.
const ROWS: usize = 30;

pub(super) fn render_all(data: &Data, env: &Environment, w: &mut Writer) -> Result<(), SiteError> {
    for ((scenario, point, base, new), d) in &data.profiles {
        let pct = |change: i64, base: u64| {
            if base == 0 {
                "new".to_owned()
            } else {
                format!("{:+.1}%", 100.0 * change as f64 / base as f64)
            }
        };
        let table = |key: fn(&FunctionChange) -> i64,
                     base_of: fn(&FunctionChange) -> u64,
                     new_of: fn(&FunctionChange) -> u64| {
            d.top(key, ROWS)
                .into_iter()
                .map(|f| {
                    context! {
                        process => &f.process,
                        function => &f.function,
                        base => Unit::Count.human(base_of(f) as f64),
                        new => Unit::Count.human(new_of(f) as f64),
                        change => format!("{:+}", key(f)),
                        pct => pct(key(f), base_of(f)),
                        class => if key(f) > 0 { "regression" } else { "improvement" },
                    }
                })
                .collect::<Vec<_>>()
        };
        let totals: Vec<_> = d
            .totals
            .iter()
            .map(|t| {
                let change = t.new as i64 - t.base as i64;
                context! {
                    process => &t.process,
                    base => Unit::Count.human(t.base as f64),
                    new => Unit::Count.human(t.new as f64),
                    pct => pct(change, t.base),
                    class => if change > 0 { "regression" } else if change < 0 { "improvement" } else { "" },
                }
            })
            .collect();
        let html = env.get_template("profile.html")?.render(context! {
            root => "../",
            scenario => scenario,
            point => point,
            base_short => short(base),
            new_short => short(new),
            base_subject => data.subject(base),
            new_subject => data.subject(new),
            compare_href => (data.measured(base) && data.measured(new))
                .then(|| format!("../compare/{base}..{new}.html")),
            totals => totals,
            inclusive => table(FunctionChange::inclusive_change, |f| f.base.inclusive, |f| f.new.inclusive),
            exclusive => table(FunctionChange::exclusive_change, |f| f.base.exclusive, |f| f.new.exclusive),
        })?;
        w.page(&profile_file(scenario, point, base, new), &html)?;
    }
    Ok(())
}
