//! Printing results: aligned tables, goals with their verdict, and JSON files for the record.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

/// A plain-text table with right-aligned columns (the first column left-aligned).
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Self {
            rows: vec![headers.into_iter().map(Into::into).collect()],
        }
    }

    /// Adds a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as text: header, rule, rows.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                let cell = |row: &Vec<String>| row.get(c).map_or(0, |s| s.chars().count());
                self.rows.iter().map(cell).max().unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, row) in self.rows.iter().enumerate() {
            for (c, width) in widths.iter().enumerate() {
                let cell = row.get(c).map_or("", String::as_str);
                let _ = match c {
                    0 => write!(out, "{cell:<width$}"),
                    _ => write!(out, "  {cell:>width$}"),
                };
            }
            out.push('\n');
            if i == 0 {
                let total = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
                out.push_str(&"-".repeat(total));
                out.push('\n');
            }
        }
        out
    }
}

/// A goal of the issue and where the measurement stands.
#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    /// What is measured.
    pub name: String,
    /// The requirement, as the issue states it.
    pub requirement: String,
    /// The measured value, in the requirement's terms.
    pub measured: String,
    /// Met, missed, or `None` when it could not be measured (e.g. no kubectl).
    pub met: Option<bool>,
}

impl Goal {
    /// A goal `measured >= minimum` (or `<=` a maximum when `at_most`).
    pub fn ratio(
        name: &str,
        requirement: &str,
        measured: Option<f64>,
        bound: f64,
        at_most: bool,
    ) -> Self {
        Self {
            name: name.into(),
            requirement: requirement.into(),
            measured: measured.map_or_else(|| "n/a".into(), |m| format!("{m:.2}")),
            met: measured.map(|m| if at_most { m <= bound } else { m >= bound }),
        }
    }

    /// A one-word verdict.
    pub fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        }
    }
}

/// Renders goals as a table.
pub fn goals_table(goals: &[Goal]) -> String {
    let mut table = Table::new(["goal", "requirement", "measured", "verdict"]);
    for goal in goals {
        table.row([
            goal.name.clone(),
            goal.requirement.clone(),
            goal.measured.clone(),
            goal.verdict().to_owned(),
        ]);
    }
    table.render()
}

/// Writes `value` as pretty JSON to `target/bench/<file_name>` and returns the path.
pub fn write_json(file_name: &str, value: &impl Serialize) -> anyhow::Result<PathBuf> {
    let dir = crate::output_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(file_name);
    std::fs::write(&path, serde_json::to_vec_pretty(value)?)?;
    Ok(path)
}

/// What the results were measured on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPUs available to the benchmark.
    pub cpus: usize,
    /// `/proc/cpuinfo`'s model name.
    pub cpu_model: String,
    /// The kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads what `/proc` tells.
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_goals_judge() {
        let mut table = Table::new(["target", "req/s"]);
        table.row(["direct", "52000"]);
        table.row(["kms-pam", "9"]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "target   req/s");
        assert_eq!(lines[2], "direct   52000");
        assert_eq!(lines[3], "kms-pam      9");

        assert_eq!(
            Goal::ratio("x", ">= 2", Some(2.5), 2.0, false).met,
            Some(true)
        );
        assert_eq!(
            Goal::ratio("x", "<= 0.5", Some(0.7), 0.5, true).met,
            Some(false)
        );
        assert_eq!(Goal::ratio("x", ">= 2", None, 2.0, false).verdict(), "n/a");
    }
}
