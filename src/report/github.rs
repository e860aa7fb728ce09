//! What the pull request shows: the report model, and its rendering as the sticky comment, the
//! job summary and `--report FILE`. Pure: the API calls are in [`super::github_api`].
//!
//! The comment is one per app, found again by a hidden marker. It carries its own state (the
//! last report of every environment, base64 JSON in an HTML comment), so a run that deploys one
//! environment keeps the others' rows, and a run that changes nothing renders the same bytes
//! and sends no update.

use std::fmt::Write as _;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// GitHub refuses a comment body over 65,536 characters.
pub const COMMENT_LIMIT: usize = 65_536;
/// `$GITHUB_STEP_SUMMARY` is capped at 1 MiB per step.
pub const SUMMARY_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    InProgress,
    Succeeded,
    NoChange,
    Failed,
    RolledBack,
    Cancelled,
}

impl State {
    fn badge(self) -> &'static str {
        match self {
            State::InProgress => "🔄 in progress",
            State::Succeeded => "✅ deployed",
            State::NoChange => "➖ no change",
            State::Failed => "❌ failed",
            State::RolledBack => "↩️ rolled back",
            State::Cancelled => "⏹️ cancelled",
        }
    }
}

/// One analysis step of a canary: the weight and each metric's value against its bound (the
/// step's deciding check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryStep {
    pub weight: u8,
    /// Metric name, value (None: no data), passed.
    pub metrics: Vec<(String, Option<f64>, bool)>,
    /// Each metric's bound as people read it (`>= 99`, `<= 1.2 × stable (stable 200 → 240)`),
    /// in the metrics' order.
    #[serde(default)]
    pub bounds: Vec<String>,
    /// Each metric's bound as a number, for the charts.
    #[serde(default)]
    pub limits: Vec<Option<f64>>,
    /// Failed checks of the rollout so far, after this step's checks.
    #[serde(default)]
    pub failed_checks: u32,
    /// HTTP checks and webhooks: name, passed.
    #[serde(default)]
    pub probes: Vec<(String, bool)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvReport {
    pub name: String,
    /// `ecs` or `kubernetes`.
    pub target: String,
    pub strategy: String,
    pub image: String,
    /// Task definition revision or `name@digest` of the pod template.
    pub revision: Option<String>,
    pub state: State,
    /// Where the rollout is (`rolled out`, `weight 25 %`, `waiting for tasks`).
    pub phase: String,
    pub duration_secs: u64,
    /// Label and URL (the ECS service, `CodeDeploy`, the run log).
    pub links: Vec<(String, String)>,
    pub failure: Option<String>,
    pub details: Vec<String>,
    pub canary: Vec<CanaryStep>,
    /// The threshold of failed checks, when the canary is analysed.
    #[serde(default)]
    pub threshold: u32,
    /// Each metric's query at its provider (a Prometheus graph, a Datadog metrics explorer):
    /// metric name, URL.
    #[serde(default)]
    pub metric_links: Vec<(String, String)>,
    /// The check that decided a rollback: when, which check, its values against bounds.
    #[serde(default)]
    pub decided_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub app: String,
    pub commit: String,
    pub run_url: Option<String>,
    pub environments: Vec<EnvReport>,
}

/// The hidden marker that finds the app's comment again.
pub fn marker(app: &str) -> String {
    format!("<!-- movieverse-deploy:{app} -->")
}

const STATE_START: &str = "<!-- movieverse-deploy-state:";
/// Failure details kept in the comment's state per environment.
const STATE_DETAIL_LINES: usize = 20;

/// The previous report kept in a comment body, if any.
pub fn state_of(body: &str) -> Option<Report> {
    let start = body.find(STATE_START)? + STATE_START.len();
    let end = body[start..].find(" -->")? + start;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body[start..end].trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The report to show: this run's environments over the previous report's. An environment
/// with no change keeps its previous row (so a rerun renders the same comment).
pub fn merge(previous: Option<Report>, current: Report, order: &[String]) -> Report {
    let position = |e: &EnvReport| {
        order
            .iter()
            .position(|o| *o == e.name)
            .unwrap_or(usize::MAX)
    };
    let Some(mut out) = previous else {
        let mut current = current;
        current.environments.sort_by_key(position);
        return current;
    };
    let mut changed = false;
    for e in current.environments {
        match out.environments.iter_mut().find(|x| x.name == e.name) {
            Some(old) if e.state == State::NoChange && old.image == e.image => {}
            Some(old) => {
                *old = e;
                changed = true;
            }
            None => {
                out.environments.push(e);
                changed = true;
            }
        }
    }
    if changed {
        // The header names the run that made the last change.
        out.commit = current.commit;
        out.run_url = current.run_url;
    }
    out.app = current.app;
    out.environments.sort_by_key(position);
    out
}

fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Markdown table cells: no pipes or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn short_image(image: &str) -> String {
    match image.split_once("@sha256:") {
        Some((repo, d)) => format!(
            "`{}@sha256:{}…`",
            repo.rsplit('/').next().unwrap_or(repo),
            &d[..d.len().min(12)]
        ),
        None => format!("`{}`", image.rsplit('/').next().unwrap_or(image)),
    }
}

/// The canary's charts: the weight per step, then one chart per metric (each has its own
/// unit) with its bound. A step without data is left out of the metric's chart, never drawn
/// as 0, and named under it.
fn mermaid(env: &EnvReport) -> String {
    let mut out = String::new();
    let steps: Vec<String> = (1..=env.canary.len()).map(|i| i.to_string()).collect();
    let weights: Vec<String> = env.canary.iter().map(|s| s.weight.to_string()).collect();
    let title = env.name.replace('"', "'");
    let _ = write!(
        out,
        "```mermaid\nxychart-beta\n    title \"{title} canary: weight per step\"\n    x-axis \"step\" [{}]\n    y-axis \"weight %\" 0 --> 100\n    bar [{}]\n```\n",
        steps.join(", "),
        weights.join(", ")
    );
    let mut names: Vec<&str> = Vec::new();
    for s in &env.canary {
        for (n, _, _) in &s.metrics {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    for n in &names {
        // (step, value, bound) where the metric has a value.
        let mut points: Vec<(usize, f64, Option<f64>)> = Vec::new();
        let mut gaps: Vec<String> = Vec::new();
        for (i, s) in env.canary.iter().enumerate() {
            let Some(k) = s.metrics.iter().position(|(m, _, _)| m == n) else {
                continue;
            };
            match s.metrics[k].1 {
                Some(v) => points.push((i + 1, v, s.limits.get(k).copied().flatten())),
                None => gaps.push((i + 1).to_string()),
            }
        }
        if points.is_empty() {
            let _ = writeln!(out, "\n_{n}: no data at any step._");
            continue;
        }
        let bound = env
            .canary
            .iter()
            .rev()
            .find_map(|s| {
                let k = s.metrics.iter().position(|(m, _, _)| m == n)?;
                s.bounds.get(k).cloned()
            })
            .map_or_else(String::new, |b| format!(" (bound {})", b.replace('"', "'")));
        let _ = write!(
            out,
            "\n```mermaid\nxychart-beta\n    title \"{}{bound}\"\n    x-axis \"step\" [{}]\n    y-axis \"{}\"\n    line [{}]\n",
            n.replace('"', "'"),
            points
                .iter()
                .map(|p| p.0.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            n.replace('"', "'"),
            points
                .iter()
                .map(|p| format!("{}", p.1))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if points.iter().all(|p| p.2.is_some()) {
            let _ = writeln!(
                out,
                "    line [{}]",
                points
                    .iter()
                    .map(|p| format!("{}", p.2.unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        out.push_str("```\n");
        let mut notes = Vec::new();
        if points.iter().all(|p| p.2.is_some()) {
            notes.push("the second line is the bound".to_owned());
        }
        if !gaps.is_empty() {
            notes.push(format!(
                "no data at step {}: left out, not drawn as 0",
                gaps.join(", ")
            ));
        }
        if !notes.is_empty() {
            let _ = writeln!(out, "_{n}: {}._", notes.join("; "));
        }
    }
    out
}

/// The canary's table: a row per weight step (its deciding check), each metric's value with
/// ✅/❌, the HTTP checks and webhooks, and the failed checks so far; the bounds in a row
/// of their own, and each metric's query linked at its provider.
fn canary_table(o: &mut String, e: &EnvReport) {
    let names: Vec<String> = e.canary[0]
        .metrics
        .iter()
        .map(|(n, _, _)| n.clone())
        .collect();
    let probes: Vec<String> = e.canary[0].probes.iter().map(|(n, _)| n.clone()).collect();
    let header: Vec<String> = names
        .iter()
        .map(|n| match e.metric_links.iter().find(|(m, _)| m == n) {
            Some((_, url)) => format!("[{}]({url})", cell(n)),
            None => cell(n),
        })
        .chain(probes.iter().map(|p| cell(p)))
        .collect();
    let _ = writeln!(
        o,
        "| step | weight | {} | failed checks |",
        header.join(" | ")
    );
    let _ = writeln!(o, "|---|---|{}---|", "---|".repeat(header.len()));
    let last = e.canary.last().expect("a canary step");
    if !last.bounds.is_empty() {
        let bounds: Vec<String> = last
            .bounds
            .iter()
            .map(|b| cell(b))
            .chain(probes.iter().map(|_| "passes".to_owned()))
            .collect();
        let threshold = if e.threshold > 0 {
            format!("< {}", e.threshold)
        } else {
            String::new()
        };
        let _ = writeln!(o, "| _bound_ | | {} | {threshold} |", bounds.join(" | "));
    }
    for (i, s) in e.canary.iter().enumerate() {
        let values: Vec<String> = s
            .metrics
            .iter()
            .map(|(_, v, ok)| match (v, ok) {
                // No data, left out of the check (`on_no_data: skip`).
                (None, true) => "no data ➖".to_owned(),
                (None, false) => "no data ❌".to_owned(),
                (Some(v), ok) => format!("{v} {}", if *ok { "✅" } else { "❌" }),
            })
            .chain(
                s.probes
                    .iter()
                    .map(|(_, ok)| if *ok { "✅" } else { "❌" }.to_owned()),
            )
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} % | {} | {} |",
            i + 1,
            s.weight,
            values.join(" | "),
            s.failed_checks
        );
    }
}

/// The body, with `detail_lines` failure details kept per environment (older ones folded).
fn render(report: &Report, detail_lines: usize, charts: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", marker(&report.app));
    let _ = writeln!(o, "### 🚀 {} deployments\n", report.app);
    if !report.commit.is_empty() {
        let _ = write!(
            o,
            "Commit `{}`",
            &report.commit[..report.commit.len().min(7)]
        );
        if let Some(u) = &report.run_url {
            let _ = write!(o, " · [run log]({u})");
        }
        o.push_str("\n\n");
    }
    o.push_str(
        "| environment | status | strategy | image | revision | phase | duration | links |\n",
    );
    o.push_str("|---|---|---|---|---|---|---|---|\n");
    for e in &report.environments {
        let links: Vec<String> = e.links.iter().map(|(l, u)| format!("[{l}]({u})")).collect();
        let _ = writeln!(
            o,
            "| **{}** ({}) | {} | {} | {} | {} | {} | {} | {} |",
            cell(&e.name),
            cell(&e.target),
            e.state.badge(),
            cell(&e.strategy),
            short_image(&e.image),
            e.revision.as_deref().map_or_else(
                || "–".to_owned(),
                |r| format!("`{}`", cell(r.rsplit('/').next().unwrap_or(r)))
            ),
            cell(&e.phase),
            if e.state == State::NoChange {
                "–".to_owned()
            } else {
                duration(e.duration_secs)
            },
            if links.is_empty() {
                "–".to_owned()
            } else {
                links.join(" · ")
            },
        );
    }
    for e in &report.environments {
        if !e.canary.is_empty() {
            let what = if e.strategy == "blue-green" {
                "checks of green at Ready"
            } else {
                "canary analysis"
            };
            let _ = writeln!(o, "\n#### {}: {what}\n", e.name);
            canary_table(&mut o, e);
            if charts {
                o.push('\n');
                o.push_str(&mermaid(e));
            }
        }
        if let Some(d) = &e.decided_by {
            let _ = writeln!(o, "\n**Decided by:** {}", cell(d));
        }
        if let Some(f) = &e.failure {
            let _ = writeln!(
                o,
                "\n<details><summary><b>{}</b>: {}</summary>\n",
                e.name,
                cell(f)
            );
            let shown = e.details.len().min(detail_lines);
            if shown < e.details.len() {
                let _ = writeln!(
                    o,
                    "_{} earlier line(s) folded; the run log has them all._\n",
                    e.details.len() - shown
                );
            }
            o.push_str("```text\n");
            for d in &e.details[e.details.len() - shown..] {
                let _ = writeln!(o, "{}", d.replace("```", "'''"));
            }
            o.push_str("```\n</details>\n");
        }
    }
    // The state keeps what a later run needs to redraw the rows: the newest details only.
    let mut kept = report.clone();
    for e in &mut kept.environments {
        let n = e.details.len();
        e.details.drain(..n.saturating_sub(STATE_DETAIL_LINES));
    }
    let state = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&kept).expect("a report serializes"));
    let _ = writeln!(o, "\n{STATE_START}{state} -->");
    o
}

/// The sticky comment's body, under GitHub's limit: failure details are folded (oldest
/// first), then the charts dropped, until it fits.
pub fn comment(report: &Report) -> String {
    fit(report, COMMENT_LIMIT)
}

/// The job summary (`$GITHUB_STEP_SUMMARY`), the same content under its 1 MiB cap.
pub fn summary(report: &Report) -> String {
    // The summary is read, never found again: no marker, no state.
    fit(report, SUMMARY_LIMIT)
        .lines()
        .filter(|l| !l.starts_with(STATE_START) && *l != marker(&report.app))
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

fn fit(report: &Report, limit: usize) -> String {
    let mut lines = 200;
    loop {
        let body = render(report, lines, true);
        if body.chars().count() <= limit {
            return body;
        }
        if lines == 0 {
            break;
        }
        lines /= 2;
    }
    let mut body = render(report, 0, false);
    if body.chars().count() > limit {
        // Only the state can still be that large: drop the rows' details from it.
        let mut slim = report.clone();
        for e in &mut slim.environments {
            e.details.clear();
            e.canary.clear();
        }
        body = render(&slim, 0, false);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str, state: State) -> EnvReport {
        EnvReport {
            name: name.into(),
            target: "ecs".into(),
            strategy: "rolling".into(),
            image: "1.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:abcdef0123456789".into(),
            revision: Some("arn:aws:ecs:us-east-1:1:task-definition/movieverse-staging:7".into()),
            state,
            phase: "rolled out".into(),
            duration_secs: 95,
            links: vec![],
            failure: None,
            details: vec![],
            canary: vec![],
            threshold: 0,
            metric_links: vec![],
            decided_by: None,
        }
    }

    fn report(envs: Vec<EnvReport>) -> Report {
        Report {
            app: "movieverse".into(),
            commit: "4f2b9c1e".into(),
            run_url: None,
            environments: envs,
        }
    }

    #[test]
    fn the_state_round_trips_through_the_body() {
        let r = report(vec![env("staging", State::Succeeded)]);
        assert_eq!(state_of(&comment(&r)), Some(r));
    }

    #[test]
    fn a_rerun_with_no_change_renders_the_same_body() {
        let order = vec!["staging".to_owned(), "production".to_owned()];
        let first = merge(None, report(vec![env("staging", State::Succeeded)]), &order);
        let body = comment(&first);
        let mut again = env("staging", State::NoChange);
        again.duration_secs = 1;
        let second = merge(state_of(&body), report(vec![again]), &order);
        assert_eq!(comment(&second), body);
    }

    #[test]
    fn another_environment_keeps_the_first_ones_row() {
        let order = vec!["staging".to_owned(), "production".to_owned()];
        let first = merge(
            None,
            report(vec![env("production", State::Succeeded)]),
            &order,
        );
        let second = merge(
            state_of(&comment(&first)),
            report(vec![env("staging", State::Failed)]),
            &order,
        );
        let names: Vec<&str> = second
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["staging", "production"]);
    }

    #[test]
    fn a_huge_failure_is_folded_under_the_limit() {
        let mut e = env("staging", State::Failed);
        e.failure = Some("the platform rolled the deployment back".into());
        e.details = (0..5000)
            .map(|i| format!("service event {i}: {}", "x".repeat(80)))
            .collect();
        let body = comment(&report(vec![e]));
        assert!(body.chars().count() <= COMMENT_LIMIT, "{}", body.len());
        assert!(body.contains("earlier line(s) folded"));
        assert!(
            body.contains("service event 4999"),
            "the newest detail stays"
        );
    }
}
