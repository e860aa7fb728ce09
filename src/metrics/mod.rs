//! Metric providers: a query over a window returns a value or no data (an edge: HTTP).
//!
//! - [`prometheus`]: an instant query over the HTTP API at the evaluation time.
//!
//! Queries in deploy.yml are templates with the rollout's variables ([`QueryVars`]), checked
//! when the config loads ([`check_query`]) and rendered before each check ([`render_query`]).

pub mod prometheus;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// The variables a metric query may use, as `{{ name }}`.
#[derive(Debug, Clone, Serialize)]
pub struct QueryVars {
    pub app: String,
    pub env: String,
    pub namespace: String,
    /// The Service that fronts the canary / the stable pods.
    pub canary_service: String,
    pub stable_service: String,
    /// The window the check covers, as `PromQL` writes a range (`90s`).
    pub window: String,
}

impl QueryVars {
    /// The names templates may use, for messages.
    pub const NAMES: &'static [&'static str] = &[
        "app",
        "env",
        "namespace",
        "canary_service",
        "stable_service",
        "window",
    ];

    /// Example values, for checking a template when the config loads.
    pub fn example() -> Self {
        Self {
            app: "app".into(),
            env: "env".into(),
            namespace: "namespace".into(),
            canary_service: "app-canary".into(),
            stable_service: "app".into(),
            window: "60s".into(),
        }
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // The same in every build profile (see render::Renderer::new).
    env.set_debug(false);
    env
}

/// Renders a query template. The error names what is wrong, in the template's words.
pub fn render_query(template: &str, vars: &QueryVars) -> Result<String, String> {
    let env = environment();
    env.render_str(
        template,
        minijinja::Value::from(minijinja::value::Serde(vars)),
    )
    .map_err(|e| {
        let detail = e.detail().map_or_else(|| e.to_string(), str::to_owned);
        match e.kind() {
            minijinja::ErrorKind::UndefinedError => {
                let name = e
                    .range()
                    .and_then(|r| template.get(r))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map_or_else(String::new, |s| format!(" `{s}`"));
                format!(
                    "undefined variable{name} in the query; a query may use {}",
                    QueryVars::NAMES
                        .iter()
                        .map(|n| format!("{{{{ {n} }}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            _ => format!("the query template is invalid: {detail}"),
        }
    })
}

/// Checks a query template when the config loads: it must render with the rollout's
/// variables.
pub fn check_query(template: &str) -> Result<(), String> {
    render_query(template, &QueryVars::example()).map(|_| ())
}

/// `90s` for a window of 90 seconds (at least 1 s).
pub fn promql_window(secs: u64) -> String {
    format!("{}s", secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_templates() {
        let vars = QueryVars::example();
        assert_eq!(
            render_query(
                "sum(rate(x{namespace=\"{{ namespace }}\",service=\"{{ canary_service }}\"}[{{ window }}]))",
                &vars
            )
            .unwrap(),
            "sum(rate(x{namespace=\"namespace\",service=\"app-canary\"}[60s]))"
        );
        // PromQL's own braces are not template syntax.
        assert_eq!(
            render_query("sum(x{a=\"b\"})", &vars).unwrap(),
            "sum(x{a=\"b\"})"
        );
        let e = render_query("x{service=\"{{ canary }}\"}", &vars).unwrap_err();
        assert!(
            e.starts_with("undefined variable `canary` in the query"),
            "{e}"
        );
        let e = render_query("x{{ namespace", &vars).unwrap_err();
        assert!(e.starts_with("the query template is invalid"), "{e}");
    }
}
