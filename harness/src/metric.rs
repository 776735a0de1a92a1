//! Metrics: a name, a unit and the direction that counts as better.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Seconds,
    Bytes,
    /// Megabytes (10^6) per second.
    MegabytesPerSecond,
    OpsPerSecond,
    /// Percent of one core.
    Percent,
    Count,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Bytes => "B",
            Unit::MegabytesPerSecond => "MB/s",
            Unit::OpsPerSecond => "ops/s",
            Unit::Percent => "%",
            Unit::Count => "count",
        }
    }

    pub fn parse(s: &str) -> Option<Unit> {
        [
            Unit::Seconds,
            Unit::Bytes,
            Unit::MegabytesPerSecond,
            Unit::OpsPerSecond,
            Unit::Percent,
            Unit::Count,
        ]
        .into_iter()
        .find(|u| u.as_str() == s)
    }

    /// The value in human units: 12.3 ms, 4.56 MiB, 789 MB/s.
    pub fn human(self, v: f64) -> String {
        match self {
            Unit::Seconds if v.abs() < 1e-3 => format!("{:.1} µs", v * 1e6),
            Unit::Seconds if v.abs() < 1.0 => format!("{:.1} ms", v * 1e3),
            Unit::Seconds => format!("{v:.2} s"),
            Unit::Bytes if v.abs() >= (1u64 << 30) as f64 => {
                format!("{:.2} GiB", v / (1u64 << 30) as f64)
            }
            Unit::Bytes if v.abs() >= (1u64 << 20) as f64 => {
                format!("{:.1} MiB", v / (1u64 << 20) as f64)
            }
            Unit::Bytes if v.abs() >= 1024.0 => format!("{:.1} KiB", v / 1024.0),
            Unit::Bytes => format!("{v:.0} B"),
            Unit::MegabytesPerSecond => format!("{v:.1} MB/s"),
            Unit::OpsPerSecond => format!("{v:.0} ops/s"),
            Unit::Percent => format!("{v:.2} %"),
            Unit::Count => format!("{v:.0}"),
        }
    }
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::LowerIsBetter => "lower_is_better",
            Direction::HigherIsBetter => "higher_is_better",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "lower_is_better" => Some(Direction::LowerIsBetter),
            "higher_is_better" => Some(Direction::HigherIsBetter),
            _ => None,
        }
    }
}

/// One metric's values over the recorded repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub name: String,
    pub unit: Unit,
    pub direction: Direction,
    pub values: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(Unit::Seconds.human(0.0123), "12.3 ms");
        assert_eq!(Unit::Seconds.human(2.5), "2.50 s");
        assert_eq!(Unit::Bytes.human(5.5 * 1024.0 * 1024.0), "5.5 MiB");
        assert_eq!(Unit::MegabytesPerSecond.human(42.04), "42.0 MB/s");
    }
}
