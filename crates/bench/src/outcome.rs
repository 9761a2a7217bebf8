//! A figure of one suite, measured or why it is missing, and the pair of both suites' figures
//! for one binary.

/// A figure of one suite: measured, or why it is missing.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// Measured.
    Done(T),
    /// Our binary does not exist (yet); the reason.
    NotBuilt(String),
    /// Nothing to compare with on this side.
    NoEquivalent,
    /// The run failed; the error.
    Failed(String),
    /// Not run (excluded on the command line).
    Skipped,
}

impl<T> Outcome<T> {
    /// The figure when measured.
    pub fn done(&self) -> Option<&T> {
        match self {
            Outcome::Done(t) => Some(t),
            _ => None,
        }
    }

    /// Short text for a table cell when there is no figure.
    pub fn missing(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "",
            Outcome::NotBuilt(_) => "not built",
            Outcome::NoEquivalent => "n/a",
            Outcome::Failed(_) => "FAILED",
            Outcome::Skipped => "skipped",
        }
    }

    /// `f(figure)` or the missing text.
    pub fn cell(&self, f: impl FnOnce(&T) -> String) -> String {
        match self {
            Outcome::Done(t) => f(t),
            other => other.missing().to_string(),
        }
    }

    /// True when the measurement failed (not merely not built, not comparable or skipped).
    pub fn failed(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }

    /// Why the figure is missing, for the list of failures: the error or what is not built.
    pub fn why(&self) -> Option<&str> {
        match self {
            Outcome::Failed(e) | Outcome::NotBuilt(e) => Some(e.as_str()),
            _ => None,
        }
    }

    /// The same non-`Done` outcome for another figure; `Done` becomes `Skipped`.
    pub fn relabel<U>(self) -> Outcome<U> {
        match self {
            Outcome::Done(_) | Outcome::Skipped => Outcome::Skipped,
            Outcome::NotBuilt(m) => Outcome::NotBuilt(m),
            Outcome::NoEquivalent => Outcome::NoEquivalent,
            Outcome::Failed(m) => Outcome::Failed(m),
        }
    }
}

/// One figure of one of our binaries next to the reference's counterpart.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginPair<T> {
    /// Our plugin.
    pub ours_plugin: String,
    /// The reference's plugin.
    pub ref_plugin: String,
    /// Ours.
    pub ours: Outcome<T>,
    /// The reference.
    pub reference: Outcome<T>,
}

impl<T> PluginPair<T> {
    /// `bridge`, or `flat / ptp` when the two differ.
    pub fn label(&self) -> String {
        plugin_label(&self.ours_plugin, &self.ref_plugin)
    }

    /// True when either side failed.
    pub fn failed(&self) -> bool {
        self.ours.failed() || self.reference.failed()
    }
}

/// `bridge` when both suites run a binary of that name, `flat / ptp` when they differ.
pub fn plugin_label(ours: &str, reference: &str) -> String {
    if ours == reference {
        ours.to_string()
    } else {
        format!("{ours} / {reference}")
    }
}

/// Which side lacks a figure and why: `ours not built`, `reference failed`, or both.
pub fn missing_sides<A, B>(ours: &Outcome<A>, reference: &Outcome<B>) -> String {
    let word = |o: &'static str| if o == "FAILED" { "failed" } else { o };
    let mut v = Vec::new();
    if ours.done().is_none() {
        v.push(format!("ours {}", word(ours.missing())));
    }
    if reference.done().is_none() {
        v.push(format!("reference {}", word(reference.missing())));
    }
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_reasons() {
        let done: Outcome<u32> = Outcome::Done(3);
        assert_eq!(done.cell(|v| v.to_string()), "3");
        assert_eq!(Outcome::<u32>::NoEquivalent.cell(|v| v.to_string()), "n/a");
        assert_eq!(Outcome::<u32>::Failed("x".into()).why(), Some("x"));
        assert!(Outcome::<u32>::Failed("x".into()).failed());
        assert!(!Outcome::<u32>::NotBuilt("y".into()).failed());
        assert_eq!(done.relabel::<()>(), Outcome::Skipped);
        assert_eq!(
            missing_sides(
                &Outcome::<()>::NotBuilt("p".into()),
                &Outcome::<()>::Failed("e".into())
            ),
            "ours not built, reference failed"
        );
    }

    #[test]
    fn pair_labels() {
        let p = |o: &str, r: &str| PluginPair::<u64> {
            ours_plugin: o.into(),
            ref_plugin: r.into(),
            ours: Outcome::Skipped,
            reference: Outcome::Skipped,
        };
        assert_eq!(p("bridge", "bridge").label(), "bridge");
        assert_eq!(p("flat", "ptp").label(), "flat / ptp");
    }
}
