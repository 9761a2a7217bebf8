//! Label selectors (`matchLabels` and `matchExpressions` with `In`, `NotIn`, `Exists`,
//! `DoesNotExist`), checked once and then matched against label sets.
//!
//! Semantics of Kubernetes: every requirement must hold (AND); an empty selector selects
//! everything; `NotIn` and `DoesNotExist` hold for an object without the key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::names;

/// What one requirement asks of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// The label is present with one of these values.
    In(BTreeSet<String>),
    /// The label is absent or has none of these values.
    NotIn(BTreeSet<String>),
    /// The label is present (any value).
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One requirement on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// What it asks.
    pub op: Operator,
}

impl Requirement {
    /// Whether `labels` satisfy it.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match &self.op {
            Operator::In(set) => v.is_some_and(|v| set.contains(v)),
            Operator::NotIn(set) => v.is_none_or(|v| !set.contains(v)),
            Operator::Exists => v.is_some(),
            Operator::DoesNotExist => v.is_none(),
        }
    }
}

/// A checked selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

impl Selector {
    /// The selector that selects everything (`{}`).
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// An equality selector (a Service's `selector`): every key with its value.
    pub fn from_map(m: &BTreeMap<String, String>) -> Selector {
        Selector {
            reqs: m
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    op: Operator::In(BTreeSet::from([v.clone()])),
                })
                .collect(),
        }
    }

    /// Checks and converts a Kubernetes `LabelSelector`. Errors name the field relative to
    /// the selector (`matchExpressions[1].values: ...`).
    pub fn parse(s: &LabelSelector) -> Result<Selector, Vec<String>> {
        let mut errors = Vec::new();
        let mut reqs = Vec::new();
        for (k, v) in s.match_labels.iter().flatten() {
            if let Some(e) = names::label_key(k) {
                errors.push(format!("matchLabels: {e}"));
            }
            if let Some(e) = names::label_value(v) {
                errors.push(format!("matchLabels.{k}: {e}"));
            }
            reqs.push(Requirement {
                key: k.clone(),
                op: Operator::In(BTreeSet::from([v.clone()])),
            });
        }
        for (i, e) in s.match_expressions.iter().flatten().enumerate() {
            let at = format!("matchExpressions[{i}]");
            if let Some(msg) = names::label_key(&e.key) {
                errors.push(format!("{at}.key: {msg}"));
            }
            let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
            for v in &values {
                if let Some(msg) = names::label_value(v) {
                    errors.push(format!("{at}.values: {msg}"));
                }
            }
            let op = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    errors.push(format!(
                        "{at}.values: {} needs at least one value",
                        e.operator
                    ));
                    continue;
                }
                "In" => Operator::In(values),
                "NotIn" => Operator::NotIn(values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    errors.push(format!(
                        "{at}.values: must be empty for operator {}",
                        e.operator
                    ));
                    continue;
                }
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    errors.push(format!(
                        "{at}.operator: {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                    ));
                    continue;
                }
            };
            reqs.push(Requirement {
                key: e.key.clone(),
                op,
            });
        }
        if errors.is_empty() {
            Ok(Selector { reqs })
        } else {
            Err(errors)
        }
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.reqs.iter().all(|r| r.matches(labels))
    }

    /// Whether it selects everything.
    pub fn is_everything(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The requirements.
    pub fn requirements(&self) -> &[Requirement] {
        &self.reqs
    }
}

impl fmt::Display for Selector {
    /// kubectl's notation: `app=web,tier in (a,b),!legacy`; `<none>` for everything.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reqs.is_empty() {
            return f.write_str("<none>");
        }
        let parts: Vec<String> = self
            .reqs
            .iter()
            .map(|r| {
                let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
                match &r.op {
                    Operator::In(s) if s.len() == 1 => format!("{}={}", r.key, list(s)),
                    Operator::In(s) => format!("{} in ({})", r.key, list(s)),
                    Operator::NotIn(s) => format!("{} notin ({})", r.key, list(s)),
                    Operator::Exists => r.key.clone(),
                    Operator::DoesNotExist => format!("!{}", r.key),
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn sel(ml: &[(&str, &str)], me: Vec<LabelSelectorRequirement>) -> Selector {
        Selector::parse(&LabelSelector {
            match_labels: (!ml.is_empty()).then(|| labels(ml)),
            match_expressions: (!me.is_empty()).then_some(me),
        })
        .unwrap()
    }

    #[test]
    fn empty_selects_everything() {
        let s = sel(&[], vec![]);
        assert!(s.is_everything());
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
        assert_eq!(s.to_string(), "<none>");
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = sel(&[("app", "web"), ("tier", "fe")], vec![]);
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "be")])));
        assert_eq!(s.to_string(), "app=web,tier=fe");
    }

    #[test]
    fn each_operator() {
        let in_ = sel(&[], vec![expr("env", "In", &["prod", "stage"])]);
        assert!(in_.matches(&labels(&[("env", "prod")])));
        assert!(!in_.matches(&labels(&[("env", "dev")])));
        assert!(!in_.matches(&labels(&[])), "In needs the key");

        let notin = sel(&[], vec![expr("env", "NotIn", &["prod"])]);
        assert!(notin.matches(&labels(&[("env", "dev")])));
        assert!(!notin.matches(&labels(&[("env", "prod")])));
        assert!(notin.matches(&labels(&[])), "NotIn holds without the key");

        let exists = sel(&[], vec![expr("env", "Exists", &[])]);
        assert!(exists.matches(&labels(&[("env", "")])));
        assert!(!exists.matches(&labels(&[])));

        let dne = sel(&[], vec![expr("env", "DoesNotExist", &[])]);
        assert!(dne.matches(&labels(&[])));
        assert!(!dne.matches(&labels(&[("env", "x")])));

        let both = sel(
            &[("app", "web")],
            vec![
                expr("env", "In", &["a", "b"]),
                expr("legacy", "DoesNotExist", &[]),
            ],
        );
        assert!(both.matches(&labels(&[("app", "web"), ("env", "b")])));
        assert!(!both.matches(&labels(&[("app", "web"), ("env", "b"), ("legacy", "1")])));
        assert_eq!(both.to_string(), "app=web,env in (a,b),!legacy");
    }

    #[test]
    fn equality_selectors_of_services() {
        let s = Selector::from_map(&labels(&[("app", "web")]));
        assert!(s.matches(&labels(&[("app", "web"), ("x", "1")])));
        assert!(!s.matches(&labels(&[("app", "db")])));
    }

    #[test]
    fn mistakes_are_named_by_field() {
        let e = Selector::parse(&LabelSelector {
            match_labels: Some(labels(&[("bad key!", "v"), ("ok", "-bad")])),
            match_expressions: Some(vec![
                expr("a", "In", &[]),
                expr("b", "Exists", &["x"]),
                expr("c", "Equals", &["x"]),
            ]),
        })
        .unwrap_err();
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(
            e[0].starts_with("matchLabels: label key \"bad key!\""),
            "{e:?}"
        );
        assert!(e[1].starts_with("matchLabels.ok: label value"), "{e:?}");
        assert_eq!(
            e[2],
            "matchExpressions[0].values: In needs at least one value"
        );
        assert_eq!(
            e[3],
            "matchExpressions[1].values: must be empty for operator Exists"
        );
        assert!(
            e[4].starts_with("matchExpressions[2].operator: \"Equals\""),
            "{e:?}"
        );
    }
}
