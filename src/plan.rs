//! `plan`: what a deploy would do, computed offline. Pure: the rendered artifacts, the git
//! info and the config come in; a [`Plan`] comes out, printed as text or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::{Config, Target};
use crate::git::GitInfo;
use crate::render::Rendered;
use crate::strategy::timeline::{Timeline, timeline};

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub app: String,
    /// The Kubernetes API server was asked for a dry run (`--server-dry-run`).
    #[serde(skip)]
    pub asked_server: bool,
    pub commit: GitInfo,
    pub image: ImagePlan,
    pub environments: Vec<EnvPlan>,
    /// What the plan noticed that a deploy would trip on, or should not do (a dirty tree, a
    /// missing Containerfile).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImagePlan {
    /// The reference deploys name until the build reports a digest.
    pub reference: String,
    pub tags: Vec<String>,
    pub context: String,
    pub containerfile: String,
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvPlan {
    pub name: String,
    pub target: Target,
    /// `cluster/service` or `namespace`.
    pub location: String,
    pub url: Option<String>,
    pub artifacts: Vec<ArtifactPlan>,
    pub timeline: Timeline,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactPlan {
    pub file: String,
    pub summary: String,
}

pub fn build(config: &Config, git: &GitInfo, image: &str, rendered: &[Rendered]) -> Plan {
    let environments = rendered
        .iter()
        .map(|r| {
            let env = &config.environments[&r.env];
            let location = match (&env.ecs, &env.kubernetes) {
                (Some(e), _) => format!("cluster {}, service {}", e.cluster, e.service),
                (_, Some(k)) => format!("namespace {}", k.namespace),
                _ => String::new(),
            };
            EnvPlan {
                name: r.env.clone(),
                target: env.target,
                location,
                url: env.url.clone(),
                artifacts: r
                    .artifacts
                    .iter()
                    .map(|a| ArtifactPlan {
                        file: a.name.clone(),
                        summary: a.summary.clone(),
                    })
                    .collect(),
                timeline: timeline(config, env),
            }
        })
        .collect();
    Plan {
        asked_server: false,
        app: config.app.clone(),
        commit: git.clone(),
        image: ImagePlan {
            reference: image.to_owned(),
            tags: crate::image::tags(config, git),
            context: config.image.context.clone(),
            containerfile: config.image.containerfile.clone(),
            platforms: config.image.platforms.clone(),
        },
        environments,
        warnings: Vec::new(),
    }
}

/// `1h 2m 5s` style, `0s` for zero.
pub fn fmt_secs(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = Vec::new();
    if h > 0 {
        out.push(format!("{h}h"));
    }
    if m > 0 {
        out.push(format!("{m}m"));
    }
    if s > 0 {
        out.push(format!("{s}s"));
    }
    out.join(" ")
}

/// Terminal styling: bold headers when colour is allowed (a TTY and no `NO_COLOR`).
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn bold(self, s: &str) -> String {
        if self.color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn dim(self, s: &str) -> String {
        if self.color {
            format!("\x1b[2m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

pub fn to_text(plan: &Plan, style: Style) -> String {
    let mut o = String::new();
    let commit = match plan.commit.origin {
        "unknown" => "commit unknown (no git repository and no GITHUB_SHA)".to_owned(),
        origin => format!(
            "commit {}{}{} (from {origin})",
            plan.commit.sha7,
            plan.commit
                .branch
                .as_ref()
                .map(|b| format!(" on {b}"))
                .unwrap_or_default(),
            plan.commit
                .pr
                .map(|n| format!(", PR #{n}"))
                .unwrap_or_default(),
        ),
    };
    let _ = writeln!(
        o,
        "{}",
        style.bold(&format!("Plan for {}: {commit}", plan.app))
    );
    let _ = writeln!(
        o,
        "{}",
        if plan.asked_server {
            "Nothing is changed by a plan; the Kubernetes API server was asked for a dry run.\n"
        } else {
            "Nothing is changed by a plan; no network call was made.\n"
        }
    );
    if !plan.warnings.is_empty() {
        let _ = writeln!(o, "{}", style.bold("Warnings"));
        for w in &plan.warnings {
            let _ = writeln!(o, "  - {w}");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "{}", style.bold("Image"));
    let _ = writeln!(
        o,
        "  build  {} from {} (context {}), {}",
        plan.image.reference,
        plan.image.containerfile,
        plan.image.context,
        plan.image.platforms.join(", ")
    );
    let _ = writeln!(o, "  tags   {}", plan.image.tags.join(", "));
    let _ = writeln!(
        o,
        "  {}",
        style.dim("deploys reference the pushed digest (repo@sha256:…), never a mutable tag")
    );
    for env in &plan.environments {
        let t = &env.timeline;
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{}",
            style.bold(&format!(
                "Environment {} ({}: {}), strategy {}",
                env.name, env.target, env.location, t.strategy
            ))
        );
        if let Some(url) = &env.url {
            let _ = writeln!(o, "  url    {url}");
        }
        let _ = writeln!(o, "  Artifacts");
        let width = env
            .artifacts
            .iter()
            .map(|a| a.file.len())
            .max()
            .unwrap_or(0);
        for a in &env.artifacts {
            let _ = writeln!(o, "    {:width$}  {}", a.file, a.summary);
        }
        let _ = writeln!(o, "  Timeline (from the start of the deploy)");
        let _ = writeln!(
            o,
            "    {:>3}  {:>9}  {:>9}  phase",
            "#", "earliest", "latest"
        );
        for (i, p) in t.phases.iter().enumerate() {
            let _ = writeln!(
                o,
                "    {:>3}  {:>9}  {:>9}  {}",
                i + 1,
                fmt_secs(p.earliest_start),
                fmt_secs(p.latest_start),
                p.name
            );
        }
        let _ = writeln!(
            o,
            "    total: best {}, worst {}",
            fmt_secs(t.best_total),
            fmt_secs(t.worst_total)
        );
        let _ = writeln!(o, "  Rollback when");
        for r in &t.rollback_triggers {
            let _ = writeln!(o, "    - {r}");
        }
        let _ = writeln!(o, "  Assuming");
        for a in &t.assumptions {
            let _ = writeln!(o, "    - {a}");
        }
        for n in &t.notes {
            let _ = writeln!(o, "  note: {n}");
        }
    }
    o
}

/// The plan's text as Markdown for a pull request or a job summary: a heading and the text in
/// a fenced block (its columns stay aligned). A fence longer than any backtick run inside
/// keeps a rendered template's backticks from closing it.
pub fn to_markdown(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!(
        "### movieverse-deploy plan\n\n{fence}text\n{}\n{fence}\n",
        text.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::fmt_secs;

    #[test]
    fn durations() {
        assert_eq!(fmt_secs(0), "0s");
        assert_eq!(fmt_secs(660), "11m");
        assert_eq!(fmt_secs(3725), "1h 2m 5s");
    }
}
