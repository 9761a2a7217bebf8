//! The targets the figures are judged against, and their table.

use super::table::Table;

/// Whether a target is met.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Met.
    Met,
    /// Not met.
    NotMet,
    /// Cannot be judged; why.
    NotEvaluated(String),
}

impl Verdict {
    /// [`Verdict::Met`] when `met`, else [`Verdict::NotMet`].
    pub fn of(met: bool) -> Verdict {
        if met {
            Verdict::Met
        } else {
            Verdict::NotMet
        }
    }
}

/// A target with the figure it is judged on.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The target as stated.
    pub text: &'static str,
    /// The measured figure.
    pub figure: String,
    /// Met or not.
    pub verdict: Verdict,
}

impl Target {
    /// A target that cannot be judged, and why.
    pub fn not_evaluated(text: &'static str, why: &str) -> Target {
        Target {
            text,
            figure: "–".into(),
            verdict: Verdict::NotEvaluated(why.to_string()),
        }
    }
}

/// The targets as a table: target, figure, status.
pub fn table(targets: &[Target]) -> String {
    let mut t = Table::new(&["target", "measured (ours vs reference)", "status"], &[]);
    for tg in targets {
        let v = match &tg.verdict {
            Verdict::Met => "met".to_string(),
            Verdict::NotMet => "**not met**".to_string(),
            Verdict::NotEvaluated(why) => format!("not evaluated: {why}"),
        };
        t.row(vec![tg.text.to_string(), tg.figure.clone(), v]);
    }
    t.render()
}
