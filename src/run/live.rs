//! `plan --live` on ECS: what a deploy would change on each live service (the task definition
//! and the service settings, as diffs against what is running), and for blue-green what the
//! deploy relies on. Reads only: nothing is changed to find it.

use std::fmt::Write as _;

use super::{Error, deploy, select};
use crate::cli::Selection;
use crate::config::{Loaded, Strategy};
use crate::platform::ecs::{Ecs, LiveDifference};

/// What `plan --live` read of one ECS environment.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct LiveFacts {
    pub env: String,
    /// Each service of the environment (not a canary's own service): what a deploy changes.
    pub services: Vec<LiveDifference>,
    /// Each fact: whether it is as the deploy needs it, and what it is.
    pub facts: Vec<(bool, String)>,
}

/// `plan --live`: every ECS environment selected, read. Kubernetes environments are left out
/// (`--server-dry-run` asks their API server).
pub(super) fn live(loaded: &Loaded, selection: &Selection) -> Result<Vec<LiveFacts>, Error> {
    let names = select(loaded, &selection.env)?;
    let rt = deploy::runtime()?;
    let mut out = Vec::new();
    for name in names {
        let env = &loaded.config.environments[&name];
        let Some(ecs) = &env.ecs else { continue };
        let specs = deploy::specs(loaded, &name, selection.image.clone())?;
        let own = ecs.all_services(&loaded.config.app, &name).len();
        let facts = rt.block_on(async {
            let platform = Ecs::from_env(&loaded.config.region).await;
            let mut services = Vec::new();
            for spec in specs.iter().take(own) {
                let mut d = platform.live_difference(spec).await.map_err(|e| {
                    deploy::platform_error(
                        loaded,
                        &name,
                        &e,
                        &format!("{name}: read service {}", spec.name),
                    )
                })?;
                // Only a rolling deploy sends the service's settings; blue-green and canary
                // services keep theirs (or ECS and CodeDeploy move them).
                if !matches!(env.strategy, Strategy::Rolling(_)) {
                    d.settings.clear();
                }
                services.push(d);
            }
            let facts = match &env.strategy {
                Strategy::BlueGreen(b) => {
                    super::bluegreen::live_facts(loaded, &name, b, selection.image.clone()).await?
                }
                _ => Vec::new(),
            };
            Ok::<_, Error>(LiveFacts {
                env: name.clone(),
                services,
                facts,
            })
        })?;
        out.push(facts);
    }
    Ok(out)
}

/// `plan --live`'s findings as text, after the plan.
pub(super) fn live_text(all: &[LiveFacts]) -> String {
    let mut out = String::new();
    for l in all {
        let _ = writeln!(out, "\nLive: {} (read, nothing changed)", l.env);
        for s in &l.services {
            let _ = writeln!(out, "  service {} runs {}", s.service, short(&s.running));
            if s.definition.is_empty() {
                let _ = writeln!(
                    out,
                    "    task definition: unchanged (a deploy of this image registers nothing)"
                );
            } else {
                let _ = writeln!(
                    out,
                    "    task definition: a deploy registers a new revision:"
                );
                indent(&mut out, &s.definition);
            }
            if s.settings.is_empty() {
                let _ = writeln!(out, "    service settings: unchanged");
            } else {
                let _ = writeln!(out, "    service settings: a deploy changes them:");
                indent(&mut out, &s.settings);
            }
        }
        for (ok, fact) in &l.facts {
            let _ = writeln!(out, "  {} {fact}", if *ok { "ok  " } else { "FAIL" });
        }
    }
    out
}

/// `family:revision` of a task definition ARN.
fn short(arn: &str) -> &str {
    if arn.is_empty() {
        "no task definition"
    } else {
        arn.rsplit('/').next().unwrap_or(arn)
    }
}

fn indent(out: &mut String, diff: &str) {
    for line in diff.lines() {
        let _ = writeln!(out, "      {line}");
    }
}
