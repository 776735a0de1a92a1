//! Where one point's instructions went at two commits, function by
//! function: the comparison `syncbench profile` prints, stores and the
//! site renders.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use syncbench_model::records::{Cost, Profile};

/// One function at both commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionChange {
    pub process: String,
    pub function: String,
    pub base: Cost,
    pub new: Cost,
}

impl FunctionChange {
    pub fn inclusive_change(&self) -> i64 {
        self.new.inclusive as i64 - self.base.inclusive as i64
    }

    pub fn exclusive_change(&self) -> i64 {
        self.new.exclusive as i64 - self.base.exclusive as i64
    }
}

/// One process's whole count at both commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessTotal {
    pub process: String,
    pub base: u64,
    pub new: u64,
}

/// The comparison that is printed, stored and rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileDiff {
    pub scenario: String,
    pub point: String,
    pub base_sha: String,
    pub new_sha: String,
    pub totals: Vec<ProcessTotal>,
    /// The `keep` largest changes by inclusive count and the `keep`
    /// largest by exclusive count (together), largest inclusive first.
    pub functions: Vec<FunctionChange>,
}

impl ProfileDiff {
    /// The functions sorted by the absolute change of `key`, largest first.
    pub fn top(&self, key: fn(&FunctionChange) -> i64, n: usize) -> Vec<&FunctionChange> {
        let mut v: Vec<&FunctionChange> = self.functions.iter().filter(|f| key(f) != 0).collect();
        v.sort_by_key(|f| std::cmp::Reverse(key(f).unsigned_abs()));
        v.truncate(n);
        v
    }
}

/// Compares two profiles of the same point.
pub fn diff(
    base: &Profile,
    new: &Profile,
    keep: usize,
) -> (Vec<ProcessTotal>, Vec<FunctionChange>) {
    let processes: BTreeSet<&String> = base.keys().chain(new.keys()).collect();
    let empty = BTreeMap::new();
    let mut totals = vec![];
    let mut all = vec![];
    for p in processes {
        let (b, n) = (base.get(p).unwrap_or(&empty), new.get(p).unwrap_or(&empty));
        let total = |f: &BTreeMap<String, Cost>| f.values().map(|c| c.exclusive).sum();
        totals.push(ProcessTotal {
            process: p.clone(),
            base: total(b),
            new: total(n),
        });
        let names: BTreeSet<&String> = b.keys().chain(n.keys()).collect();
        for f in names {
            all.push(FunctionChange {
                process: p.clone(),
                function: f.clone(),
                base: b.get(f).copied().unwrap_or_default(),
                new: n.get(f).copied().unwrap_or_default(),
            });
        }
    }
    let largest = |key: fn(&FunctionChange) -> i64| {
        let mut v: Vec<usize> = (0..all.len()).filter(|&i| key(&all[i]) != 0).collect();
        v.sort_by_key(|&i| std::cmp::Reverse(key(&all[i]).unsigned_abs()));
        v.truncate(keep);
        v
    };
    let kept: BTreeSet<usize> = largest(FunctionChange::inclusive_change)
        .into_iter()
        .chain(largest(FunctionChange::exclusive_change))
        .collect();
    let mut functions: Vec<FunctionChange> = kept.into_iter().map(|i| all[i].clone()).collect();
    functions.sort_by_key(|f| std::cmp::Reverse(f.inclusive_change().unsigned_abs()));
    (totals, functions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(exclusive: u64, inclusive: u64) -> Cost {
        Cost {
            exclusive,
            inclusive,
        }
    }

    #[test]
    fn the_largest_changes_either_way_are_kept() {
        let base: Profile = BTreeMap::from([(
            "server".to_owned(),
            BTreeMap::from([
                ("main".to_owned(), cost(10, 1000)),
                ("hot".to_owned(), cost(500, 600)),
                ("same".to_owned(), cost(300, 300)),
                ("gone".to_owned(), cost(40, 40)),
            ]),
        )]);
        let new: Profile = BTreeMap::from([(
            "server".to_owned(),
            BTreeMap::from([
                ("main".to_owned(), cost(10, 1200)),
                ("hot".to_owned(), cost(690, 790)),
                ("same".to_owned(), cost(300, 300)),
                ("added".to_owned(), cost(50, 50)),
            ]),
        )]);
        let (totals, functions) = diff(&base, &new, 2);
        assert_eq!(totals[0].base, 850);
        assert_eq!(totals[0].new, 1050);
        let names: Vec<&str> = functions.iter().map(|f| f.function.as_str()).collect();
        // Inclusive: main +200, hot +190; exclusive: hot +190, added +50.
        assert_eq!(names, ["main", "hot", "added"]);
        let d = ProfileDiff {
            scenario: "s".into(),
            point: "p".into(),
            base_sha: "a".into(),
            new_sha: "b".into(),
            totals,
            functions,
        };
        let by_self: Vec<&str> = d
            .top(FunctionChange::exclusive_change, 5)
            .iter()
            .map(|f| f.function.as_str())
            .collect();
        assert_eq!(by_self, ["hot", "added"]);
    }
}
