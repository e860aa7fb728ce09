//! `deploy --simulate`: the real engine and the environment's real script, against the
//! simulated world on virtual time. Nothing is contacted; the 15-minute canary of the example
//! plays in well under a second, and prints the pull request comment the run would post.

use std::fmt::Write as _;

use super::{Error, print_out, render_selection};
use crate::cli::{DeployArgs, Selection, SimScenario};
use crate::config::{Loaded, Strategy};
use crate::report::github::{CanaryStep, EnvReport, Report, State as ReportState};
use crate::rollout::analysis::{MetricOutcome, Verdict, fmt_value};
use crate::rollout::engine::{Analysis, Engine, Event, Input, Outcome, State};
use crate::rollout::script::{Gate, Step, Track, compile};
use crate::rollout::simulate::{Scenario, World, play};

/// A fixed virtual start, so the output is the same on every run.
const START: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

pub fn simulate(loaded: &Loaded, name: &str, args: &DeployArgs) -> Result<(), Error> {
    let env = &loaded.config.environments[name];
    let Some(script) = compile(env)
        .filter(|_| !matches!(env.strategy, Strategy::BlueGreen(_)) || env.ecs.is_none())
    else {
        return Err(Error::Usage {
            message: format!(
                "environment `{name}` is blue-green on ECS: CodeDeploy or ECS plays it, and the simulator plays the engine's scripts (rolling, canary, blue-green on Kubernetes)"
            ),
            help: "simulate a canary or rolling environment; `plan` shows the blue-green timeline"
                .into(),
        });
    };
    // Everything is rendered and validated first, as for a real deploy.
    let (git, rendered) = render_selection(
        loaded,
        &Selection {
            env: name.to_owned(),
            image: args.image.clone(),
        },
    )?;
    let image = rendered
        .first()
        .map(|r| r.image.clone())
        .unwrap_or_default();
    let analysis = match &env.strategy {
        Strategy::Canary(c) => Analysis::from_canary(c),
        Strategy::BlueGreen(b) => b
            .analysis
            .as_deref()
            .map_or_else(Analysis::none, Analysis::from_config),
        Strategy::Rolling(_) => Analysis::none(),
    };
    let scenario = match args.scenario {
        SimScenario::Healthy => Scenario::Healthy,
        SimScenario::Failing => Scenario::Failing,
        SimScenario::NoData => Scenario::NoData,
    };
    let hc = &loaded.config.container.health_check;
    let healthy = u64::from(hc.healthy_threshold) * hc.interval.as_secs();
    // The stable workload rolls in batches: one new pod at a time on Kubernetes (surge 1), as
    // many tasks as ECS's maximumPercent leaves room for on ECS (all of them at 200 %).
    let batches = match (&env.kubernetes, &env.ecs) {
        (Some(k), _) => k.replicas.max(1),
        (None, Some(e)) => {
            let desired = e.desired_count.max(1);
            let room =
                desired * crate::render::ecs_max_percent(env, desired).saturating_sub(100) / 100;
            desired.div_ceil(room.max(1))
        }
        (None, None) => 1,
    };
    let mut world = World::new(scenario, u64::from(batches) * healthy, healthy);
    world.preview = matches!(env.strategy, Strategy::BlueGreen(_));
    let engine = Engine {
        script: &script,
        analysis: &analysis,
    };
    let mut state = State::new(&script, &image, START);
    let wall = std::time::Instant::now();
    let transcript = play(&engine, &mut state, &mut world, Input::Start, START, 10_000);
    let took = wall.elapsed();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Simulating {name}: {} on virtual time, scenario {} (the real engine and script; nothing is contacted)",
        script.strategy,
        scenario_name(scenario)
    );
    let total = script.steps.len();
    // Identical consecutive checks (a canary waiting for traffic) fold into one line.
    let mut last_check: Option<(String, u64, usize)> = None;
    let flush = |out: &mut String, last: &mut Option<(String, u64, usize)>| {
        if let Some((_, until, n)) = last.take()
            && n > 0
        {
            let _ = writeln!(
                out,
                "[{:>8}]   … the same {n} more time(s), once an interval",
                crate::plan::fmt_secs((until - START) / 1000)
            );
        }
    };
    // A blue-green is told in the words of its colours.
    let colours = matches!(env.strategy, Strategy::BlueGreen(_));
    let mut weight = 0;
    for (at, event) in &transcript.events {
        if let Event::Check(c) = event {
            let key = format!("{:?}{:?}", c.verdict, c.metrics);
            if let Some((k, until, n)) = &mut last_check
                && *k == key
            {
                *until = *at;
                *n += 1;
                continue;
            }
            flush(&mut out, &mut last_check);
            last_check = Some((key, *at, 0));
        } else {
            flush(&mut out, &mut last_check);
        }
        let stamp = format!("[{:>8}]", crate::plan::fmt_secs((at - START) / 1000));
        let line = match event {
            Event::Step { index, step } if colours => format!(
                "{stamp} step {}/{total}: {}",
                index + 1,
                super::rollout::colour_step_text(*step, weight, None)
            ),
            Event::Reverting { step } if colours => format!(
                "{stamp}   {}",
                super::rollout::colour_step_text(*step, weight, None)
            ),
            Event::Weight { weight: w } if colours => {
                weight = *w;
                format!(
                    "{stamp}   the live Service selects {}",
                    if *w == 100 { "green" } else { "blue" }
                )
            }
            Event::Step { index, step } => {
                format!(
                    "{stamp} step {}/{total}: {}",
                    index + 1,
                    step_text(*step, "workload")
                )
            }
            Event::Weight { weight } => format!("{stamp}   canary weight {weight}%"),
            Event::Check(c) => {
                let metrics = metrics_text(c);
                let verdict = match &c.verdict {
                    Verdict::Pass => "pass".to_owned(),
                    Verdict::Fail(_) => format!(
                        "FAIL ({} failed so far)",
                        state
                            .checks
                            .iter()
                            .filter(|x| x.at <= c.at && matches!(x.verdict, Verdict::Fail(_)))
                            .count()
                    ),
                    Verdict::Inconclusive(r) => format!("not judged: {r}"),
                };
                format!("{stamp}   check at {}%: {metrics} -> {verdict}", c.weight)
            }
            Event::Paused { gate } => match gate {
                Gate::Manual => format!(
                    "{stamp}   paused before promotion: continue with `movieverse-deploy rollout promote --env {name}`"
                ),
                Gate::Timed(s) => format!(
                    "{stamp}   pausing {} before going on",
                    crate::plan::fmt_secs(*s)
                ),
            },
            Event::Continued => format!("{stamp}   continuing"),
            Event::Aborting { reason, .. } => {
                format!("{stamp} rolling back, traffic to stable first: {reason}")
            }
            Event::Reverting { step } => format!("{stamp}   {}", step_text(*step, "workload")),
            Event::Finished { outcome } => {
                format!("{stamp} {}", outcome_text(outcome))
            }
        };
        let _ = writeln!(out, "{line}");
    }
    flush(&mut out, &mut last_check);
    let virtual_secs = (transcript.ended_at - START) / 1000;
    let _ = writeln!(
        out,
        "\nPlayed {} of virtual time in {:.1} ms.",
        crate::plan::fmt_secs(virtual_secs),
        took.as_secs_f64() * 1000.0
    );
    let report = Report {
        app: loaded.config.app.clone(),
        commit: git.sha.clone(),
        run_url: None,
        environments: vec![env_report(
            name,
            env,
            &image,
            &state,
            virtual_secs,
            transcript.paused,
        )],
    };
    let _ = writeln!(
        out,
        "\nThe pull request comment this run would post:\n\n{}",
        crate::report::github::comment(&report)
    );
    print_out(&out)?;
    match state.outcome() {
        None | Some(Outcome::Promoted) => Ok(()),
        Some(Outcome::Cancelled) => Err(Error::Deployment {
            code: 130,
            message: "simulated rollout cancelled".into(),
        }),
        Some(o) => Err(Error::Deployment {
            code: 1,
            message: format!("simulated {name}: {}", outcome_text(o)),
        }),
    }
}

fn scenario_name(s: Scenario) -> &'static str {
    match s {
        Scenario::Healthy => "healthy",
        Scenario::Failing => "failing",
        Scenario::NoData => "no-data",
    }
}

/// A step in words; `workload` names what a track is (`workload`, `Deployment`).
pub(crate) fn step_text(step: Step, workload: &str) -> String {
    match step {
        Step::Deploy(Track::Canary) => {
            format!("deploy the canary {workload} and wait until it is ready")
        }
        Step::Deploy(Track::Stable) => {
            format!("promote: roll the stable {workload} to the new revision and wait")
        }
        Step::SetWeight(0) => "route all traffic to stable (canary weight 0)".into(),
        Step::SetWeight(w) => format!("send {w}% of traffic to the canary"),
        Step::Analyse => "analyse the canary".into(),
        Step::Pause(Gate::Manual) => "wait for `rollout promote`".into(),
        Step::Pause(Gate::Timed(s)) => format!("wait {}", crate::plan::fmt_secs(s)),
        Step::ScaleDown(t) => format!("scale the {t} {workload} to zero"),
    }
}

/// A check's metrics in one line: name, value, bound, and how each did.
pub(crate) fn metrics_text(c: &crate::rollout::engine::CheckRecord) -> String {
    c.metrics
        .iter()
        .map(|m| {
            let mark = match &m.outcome {
                MetricOutcome::Pass => " ok",
                MetricOutcome::Skipped => " skipped",
                MetricOutcome::Waiting => " waiting",
                MetricOutcome::Error(_) => " query failed",
                MetricOutcome::NoDataFail if !matches!(c.verdict, Verdict::Fail(_)) => "",
                _ => " FAILED",
            };
            format!(
                "{} {} ({}){mark}",
                m.name,
                m.value.map_or_else(|| "no data".to_owned(), fmt_value),
                m.bound,
            )
        })
        .chain(c.probes.iter().map(|p| {
            if p.passed {
                format!("{} ok ({})", p.name, p.detail)
            } else {
                format!("{} FAILED ({})", p.name, p.detail)
            }
        }))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Promoted => "promoted: the new revision is stable and takes all traffic".into(),
        Outcome::RolledBack { reason, failures } => {
            let mut s = format!("ROLLED BACK: {reason}");
            for f in failures {
                let _ = write!(s, "\n  - {f}");
            }
            s
        }
        Outcome::Cancelled => "cancelled: traffic is back on stable".into(),
        Outcome::Failed { reason } => format!("FAILED: {reason}"),
    }
}

pub(crate) fn env_report(
    name: &str,
    env: &crate::config::Environment,
    image: &str,
    state: &State,
    secs: u64,
    paused: bool,
) -> EnvReport {
    let (report_state, phase, failure, details) = match state.outcome() {
        Some(Outcome::Promoted) => (ReportState::Succeeded, "promoted".to_owned(), None, vec![]),
        Some(Outcome::RolledBack { reason, failures }) => (
            ReportState::RolledBack,
            "rolled back".to_owned(),
            Some(reason.clone()),
            failures.clone(),
        ),
        Some(Outcome::Cancelled) => (ReportState::Cancelled, "cancelled".into(), None, vec![]),
        Some(Outcome::Failed { reason }) => (
            ReportState::Failed,
            "failed".into(),
            Some(reason.clone()),
            vec![],
        ),
        None if paused => (
            ReportState::InProgress,
            format!(
                "⏸️ paused at weight {}%: to continue, run the promote workflow (workflow_dispatch inputs: environment `{name}`, action `continue`; or `abort`), or `movieverse-deploy rollout promote --env {name}`",
                state.weight
            ),
            None,
            vec![],
        ),
        None => (
            ReportState::InProgress,
            format!("weight {}%", state.weight),
            None,
            vec![],
        ),
    };
    EnvReport {
        name: name.to_owned(),
        target: env.target.to_string(),
        strategy: env.strategy.name().to_owned(),
        image: image.to_owned(),
        revision: None,
        state: report_state,
        phase,
        duration_secs: secs,
        links: vec![],
        failure,
        details,
        // One row per weight step: its last check (the one that decided it).
        canary: state
            .checks
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                state
                    .checks
                    .get(i + 1)
                    .is_none_or(|next| next.step != c.step)
            })
            .map(|(i, c)| CanaryStep {
                weight: c.weight,
                metrics: c
                    .metrics
                    .iter()
                    .map(|m| {
                        (
                            m.name.clone(),
                            // As people read it: 100, not 99.99999999999999.
                            m.value.map(round2),
                            matches!(m.outcome, MetricOutcome::Pass | MetricOutcome::Skipped),
                        )
                    })
                    .collect(),
                bounds: c.metrics.iter().map(|m| m.bound.clone()).collect(),
                limits: c.metrics.iter().map(|m| m.limit.map(round2)).collect(),
                failed_checks: u32::try_from(
                    state.checks[..=i]
                        .iter()
                        .filter(|c| matches!(c.verdict, Verdict::Fail(_)))
                        .count(),
                )
                .unwrap_or(u32::MAX),
                probes: c
                    .probes
                    .iter()
                    .map(|p| (p.name.clone(), p.passed))
                    .collect(),
            })
            .collect(),
        threshold: match &env.strategy {
            crate::config::Strategy::Canary(c) => c.analysis.threshold,
            _ => 0,
        },
        metric_links: vec![],
        decided_by: decided_by(env, state),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The check that decided a rollback: when it ran, at which weight, each failure with its
/// value and bound, and the query (or URL) of each failed metric.
fn decided_by(env: &crate::config::Environment, state: &State) -> Option<String> {
    if !matches!(state.outcome(), Some(Outcome::RolledBack { .. })) {
        return None;
    }
    let c = state
        .checks
        .iter()
        .rev()
        .find(|c| matches!(c.verdict, Verdict::Fail(_)))?;
    let Verdict::Fail(reasons) = &c.verdict else {
        return None;
    };
    let at = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(c.at),
    );
    let mut text = format!(
        "the check at {at} (weight {}%): {}",
        c.weight,
        reasons.join("; ")
    );
    if let crate::config::Strategy::Canary(canary) = &env.strategy {
        for m in c.metrics.iter().filter(|m| {
            !matches!(
                m.outcome,
                MetricOutcome::Pass | MetricOutcome::Skipped | MetricOutcome::Waiting
            )
        }) {
            if let Some(q) = canary.analysis.metrics.iter().find(|q| q.name == m.name) {
                let _ = write!(
                    text,
                    "; {} query ({}): `{}`",
                    m.name,
                    q.provider,
                    q.query.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
        }
        for p in c.probes.iter().filter(|p| !p.passed) {
            if let Some(h) = canary.analysis.http.iter().find(|h| h.name == p.name) {
                let _ = write!(text, "; {} URL: {}", p.name, h.url);
            }
        }
    }
    Some(text)
}
