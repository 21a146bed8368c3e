//! Printing results: aligned tables for people, JSON for scripts (`-o json`).

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::Serialize;

/// `-o/--output`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON (the API's shapes).
    Json,
}

/// A table printed with aligned columns.
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub(crate) fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints the table, or `empty` on stderr when there are no rows (like kubectl).
    pub(crate) fn print(&self, empty: &str) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            eprintln!("{empty}");
            return Ok(());
        }
        print(&self.render())
    }

    fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header = self
            .header
            .iter()
            .map(|h| (*h).to_owned())
            .collect::<Vec<_>>();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().take(columns).enumerate() {
                if i + 1 < columns {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("cannot encode the output")?;
    text.push('\n');
    print(&text)
}

/// Writes `text` to stdout. A closed pipe (`kms-pam … | head`) is not an error.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// An instant in RFC 3339.
pub(crate) fn time(t: SystemTime) -> String {
    kms_pam::time::format_rfc3339(t)
}

/// An optional instant, `-` when absent.
pub(crate) fn time_or_dash(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// How long ago `t` was: `5s ago`, `never`.
pub(crate) fn ago(t: Option<SystemTime>) -> String {
    match t {
        None => "never".to_owned(),
        Some(t) => {
            let elapsed = SystemTime::now().duration_since(t).unwrap_or_default();
            format!("{} ago", duration(Duration::from_secs(elapsed.as_secs())))
        }
    }
}

/// A duration as users write it: `2h30m`.
pub(crate) fn duration(d: Duration) -> String {
    kms_pam::time::format_duration(d)
}

/// A text, `-` when absent or empty.
pub(crate) fn or_dash(text: Option<&str>) -> String {
    match text {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_to_the_widest_cell() {
        let mut table = Table::new(&["NAME", "STATUS"]);
        table.row(vec!["gw-1".into(), "online".into()]);
        table.row(vec!["gateway-two".into(), "offline".into()]);
        assert_eq!(
            table.render(),
            "NAME         STATUS\ngw-1         online\ngateway-two  offline\n"
        );
    }

    #[test]
    fn absent_values_are_dashes() {
        assert_eq!(or_dash(None), "-");
        assert_eq!(or_dash(Some("")), "-");
        assert_eq!(time_or_dash(None), "-");
        assert_eq!(ago(None), "never");
        assert_eq!(duration(Duration::from_secs(5400)), "1h30m");
    }
}
