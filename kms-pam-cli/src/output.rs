//! Printing results: aligned tables for people, JSON for scripts (`-o json`).
//!
//! Much of what is printed was typed by someone else: a member's `--reason`, a resource name, a
//! request path kubectl sent. Text for people therefore never carries control characters to the
//! terminal: [`inert`] spells them out (`\u{1b}`), every table cell goes through it, and
//! [`print`] does the same to whatever else reaches it, line breaks aside. JSON is printed
//! exactly as serde wrote it (control characters are escaped there by JSON itself).

use std::borrow::Cow;
use std::fmt::Write as _;
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

    /// Adds a row (one cell per column); control characters in a cell are made [`inert`].
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| inert(&c).into_owned()).collect());
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

/// Prints `value` as pretty JSON, exactly.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("cannot encode the output")?;
    text.push('\n');
    write_stdout(&text)
}

/// Writes text for people to stdout: line breaks are kept, every other control character is made
/// [`inert`]. Fields that may hold a line break of their own are passed through [`inert`] first.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let lines: Vec<Cow<'_, str>> = text.split('\n').map(inert).collect();
    write_stdout(&lines.join("\n"))
}

/// Text someone else may have written, safe to show on a terminal: control characters (C0 with
/// ESC, BEL, CR, LF and TAB; DEL; C1) and the Unicode controls that reorder text are written out
/// as `\u{1b}`, so they can neither drive the terminal nor fake a line of output.
pub(crate) fn inert(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    // `is_control` is Unicode category Cc: U+0000-U+001F, U+007F-U+009F.
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes to stdout. A closed pipe (`kms-pam … | head`) is not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
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

/// A text, `-` when absent or empty, made [`inert`].
pub(crate) fn or_dash(text: Option<&str>) -> String {
    match text {
        Some(t) if !t.is_empty() => inert(t).into_owned(),
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
    fn control_characters_are_spelled_out() {
        let hostile = "ok\x1b]0;pwned\x07\r\nforged\trow\x7f\u{9b}31m\u{202e}txt";
        assert_eq!(
            inert(hostile),
            "ok\\u{1b}]0;pwned\\u{7}\\u{d}\\u{a}forged\\u{9}row\\u{7f}\\u{9b}31m\\u{202e}txt"
        );
        assert!(matches!(inert("plain ünïcode"), Cow::Borrowed(_)));
        let mut table = Table::new(&["REASON"]);
        table.row(vec![hostile.to_owned()]);
        let rendered = table.render();
        assert_eq!(rendered.lines().count(), 2, "{rendered}");
        assert!(!rendered.chars().any(|c| c.is_control() && c != '\n'));
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
