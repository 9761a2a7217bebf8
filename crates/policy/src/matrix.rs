//! Reachability matrices between pods ("truth tables"): who can open a connection to whom
//! on one protocol and port, predicted from the model, written by hand, or probed.
//!
//! Rendered like the upstream e2e tests print them: a header of destinations, then one row
//! per source, `.` allowed and `X` denied.

use std::fmt;

use crate::decide::decide_pods;
use crate::model::{Cluster, Key, Proto};

/// Who reaches whom, for one protocol and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    /// The pods, in row (source) and column (destination) order.
    pub pods: Vec<Key>,
    /// `cells[from][to]`: allowed.
    pub cells: Vec<Vec<bool>>,
}

impl Matrix {
    /// Every cell `v`.
    pub fn filled(pods: &[Key], v: bool) -> Matrix {
        Matrix {
            pods: pods.to_vec(),
            cells: vec![vec![v; pods.len()]; pods.len()],
        }
    }

    /// What the model predicts for `proto`/`port` over the family of `v6`. A pair of which
    /// either end has no address of the family is denied.
    pub fn predict(c: &Cluster, pods: &[Key], proto: Proto, port: u16, v6: bool) -> Matrix {
        let mut m = Matrix::filled(pods, false);
        for (i, from) in pods.iter().enumerate() {
            for (j, to) in pods.iter().enumerate() {
                m.cells[i][j] =
                    decide_pods(c, from, to, proto, port, v6).is_some_and(|d| d.allowed);
            }
        }
        m
    }

    /// A matrix written by hand: one row per source (in `pods` order), one character per
    /// destination: `.` allowed, `X` denied; spaces are ignored.
    pub fn parse(pods: &[Key], rows: &[&str]) -> Result<Matrix, String> {
        if rows.len() != pods.len() {
            return Err(format!("{} rows for {} pods", rows.len(), pods.len()));
        }
        let mut m = Matrix::filled(pods, false);
        for (i, r) in rows.iter().enumerate() {
            let cells: Vec<char> = r.chars().filter(|c| !c.is_whitespace()).collect();
            if cells.len() != pods.len() {
                return Err(format!("row {i} ({r:?}) has {} cells", cells.len()));
            }
            for (j, c) in cells.iter().enumerate() {
                m.cells[i][j] = match c {
                    '.' => true,
                    'X' => false,
                    other => return Err(format!("row {i}: {other:?} is neither . nor X")),
                };
            }
        }
        Ok(m)
    }

    /// The cells where `self` and `other` differ: (from, to, self's value).
    pub fn differences(&self, other: &Matrix) -> Vec<(Key, Key, bool)> {
        let mut out = Vec::new();
        for (i, row) in self.cells.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                if other.cells.get(i).and_then(|r| r.get(j)) != Some(v) {
                    out.push((self.pods[i].clone(), self.pods[j].clone(), *v));
                }
            }
        }
        out
    }
}

impl fmt::Display for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-")?;
        for p in &self.pods {
            write!(f, "\t{p}")?;
        }
        writeln!(f)?;
        for (i, row) in self.cells.iter().enumerate() {
            write!(f, "{}", self.pods[i])?;
            for v in row {
                write!(f, "\t{}", if *v { '.' } else { 'X' })?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Two matrices side by side with the differing cells marked (`!`), for failure messages.
pub fn compare(label_a: &str, a: &Matrix, label_b: &str, b: &Matrix) -> String {
    let mut s = format!("{label_a} vs {label_b} (! marks a difference)\n-");
    for p in &a.pods {
        s.push_str(&format!("\t{p}"));
    }
    s.push('\n');
    for (i, row) in a.cells.iter().enumerate() {
        s.push_str(&a.pods[i].to_string());
        for (j, v) in row.iter().enumerate() {
            let w = b.cells.get(i).and_then(|r| r.get(j)).copied();
            let c = |x: bool| if x { '.' } else { 'X' };
            match w {
                Some(w) if w == *v => s.push_str(&format!("\t{}", c(*v))),
                Some(w) => s.push_str(&format!("\t{}!{}", c(*v), c(w))),
                None => s.push_str("\t?"),
            }
        }
        s.push('\n');
    }
    s
}

/// Probed matrices (each for a protocol, a port and a family: `(proto, port, v6)`, and its
/// cells `[from][to]` in `pods` order) against what the model predicts for `c`: one message
/// per matrix that differs, showing both.
pub fn differences_from_model(
    c: &Cluster,
    pods: &[Key],
    probed: impl IntoIterator<Item = ((Proto, u16, bool), Vec<Vec<bool>>)>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for ((proto, port, v6), cells) in probed {
        let want = Matrix::predict(c, pods, proto, port, v6);
        let got = Matrix {
            pods: pods.to_vec(),
            cells,
        };
        if got != want {
            diffs.push(format!(
                "{proto}/{port} IPv{}:\n{}",
                if v6 { 6 } else { 4 },
                compare("probed", &got, "model", &want)
            ));
        }
    }
    diffs
}

/// Probes the truth-table world with `probe` (given every `(proto, port, v6)` of
/// [`crate::cases::probes`], it returns each one's cells `[from][to]` in `pods` order) until
/// every matrix equals the model's for `c`, or `deadline` passed; the differences left.
pub fn converge(
    c: &Cluster,
    pods: &[Key],
    deadline: std::time::Duration,
    mut probe: impl FnMut(&[(Proto, u16, bool)]) -> Vec<Vec<Vec<bool>>>,
) -> Vec<String> {
    let probes = crate::cases::probes();
    let t0 = std::time::Instant::now();
    loop {
        let got = probe(&probes);
        let diffs = differences_from_model(c, pods, probes.iter().copied().zip(got));
        if diffs.is_empty() || t0.elapsed() > deadline {
            return diffs;
        }
    }
}
