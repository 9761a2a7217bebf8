//! Markdown tables with padded columns, readable on a console as well.

use std::fmt::Write as _;

/// A Markdown table.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Columns aligned right (numbers).
    right: Vec<bool>,
}

impl Table {
    /// A table with `header`; `right[i]` aligns column `i` right.
    pub fn new(header: &[&str], right: &[bool]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            right: right.to_vec(),
        }
    }

    /// A table of medians and p95 of both suites and their ratio, after `labels` (left
    /// aligned) columns.
    pub fn medians(labels: &[&str]) -> Table {
        let mut header = labels.to_vec();
        header.extend(["ours median", "ours p95", "ref median", "ref p95", "ratio"]);
        let mut right = vec![false; labels.len()];
        right.extend([true; 5]);
        Table::new(&header, &right)
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, one line per row, without a newline after the last.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let mut width: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let right = |i: usize| self.right.get(i).copied().unwrap_or(false);
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = " ".repeat(w.saturating_sub(c.chars().count()));
                if right(i) {
                    let _ = write!(s, " {pad}{c} |");
                } else {
                    let _ = write!(s, " {c}{pad} |");
                }
            }
            s
        };
        let mut rule = String::from("|");
        for (i, w) in width.iter().enumerate() {
            if right(i) {
                let _ = write!(rule, "{}:|", "-".repeat(w + 1));
            } else {
                let _ = write!(rule, "{}|", "-".repeat(w + 2));
            }
        }
        let mut lines = vec![line(&self.header), rule];
        lines.extend(self.rows.iter().map(|r| line(r)));
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_and_numbers_aligned_right() {
        let mut t = Table::new(&["name", "ms"], &[false, true]);
        t.row(vec!["bridge".into(), "4.37".into()]);
        t.row(vec!["host-local".into(), "12.5".into(), "extra".into()]);
        t.row(vec!["x".into()]);
        assert_eq!(
            t.render(),
            "| name       |   ms |\n\
             |------------|-----:|\n\
             | bridge     | 4.37 |\n\
             | host-local | 12.5 |\n\
             | x          |      |"
        );
    }
}
