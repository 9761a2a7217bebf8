//! The prose of the report: the templates in `crates/bench/templates`, compiled into the
//! binary and filled with figures the code has formatted (minijinja, Jinja2 syntax).
//!
//! Whitespace: a line holding only a `{% ... %}` tag produces nothing; every other line is
//! written as it stands, and a template's last newline is kept.

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use crate::error::Error;

/// Every template by name: the report and the console summary, which include the sections
/// of the scenarios.
const TEMPLATES: [(&str, &str); 13] = [
    (
        "benchmarks.md",
        include_str!("../../templates/benchmarks.md"),
    ),
    ("console.txt", include_str!("../../templates/console.txt")),
    ("latency.md", include_str!("../../templates/latency.md")),
    ("parallel.md", include_str!("../../templates/parallel.md")),
    ("scale.md", include_str!("../../templates/scale.md")),
    ("services.md", include_str!("../../templates/services.md")),
    (
        "cluster_ipam.md",
        include_str!("../../templates/cluster_ipam.md"),
    ),
    ("agent.md", include_str!("../../templates/agent.md")),
    ("policy.md", include_str!("../../templates/policy.md")),
    (
        "cluster_scale.md",
        include_str!("../../templates/cluster_scale.md"),
    ),
    ("cost.md", include_str!("../../templates/cost.md")),
    ("floor.md", include_str!("../../templates/floor.md")),
    ("problems.md", include_str!("../../templates/problems.md")),
];

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()?,
    );
    // Markdown and plain text: nothing to escape. A name the code misspells, or a figure
    // it forgot, is an error rather than an empty string.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(env)
}

/// Renders the template `name` with `context`.
pub fn render(name: &str, context: Value) -> Result<String, Error> {
    let env = environment().map_err(Error::Template)?;
    env.get_template(name)
        .and_then(|t| t.render(context))
        .map_err(Error::Template)
}
