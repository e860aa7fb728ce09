//! The strategy timeline that `plan` prints: each phase with its earliest and latest start,
//! the best and worst total, and what triggers a rollback. Pure arithmetic over the config.
//!
//! The model, stated so that anyone can check a figure by hand:
//! - A new task or pod takes traffic once it passed `healthy_threshold` consecutive health
//!   checks, `interval` apart: the "healthy time" H (60 s with the spec's 2 × 30 s). Image pull
//!   and process start are not known offline and are not counted.
//! - Rolling replaces `max_surge + max_unavailable` tasks per batch; a batch takes at least H
//!   and fails when it makes no progress for `progress_deadline`.
//! - Canary (Flagger's semantics): the canary gets the first weight once ready; the first
//!   check runs after `initial_delay`, then one every `interval`; each passed check moves to
//!   the next weight; after the last weight passes, the stable Deployment is promoted. Failed
//!   checks are counted across the whole rollout and roll back when they reach `threshold`, so
//!   up to `threshold - 1` failures only delay (one interval each). A check is judged only once
//!   `min_requests` is met; unjudged checks wait, bounded by `deadline`.

use serde::Serialize;

use crate::config::{Config, Environment, Strategy, Target};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Phase {
    pub name: String,
    /// Seconds from the start of the deploy.
    pub earliest_start: u64,
    pub latest_start: u64,
    /// Traffic share of the new version during the phase, when it is a traffic phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    pub strategy: &'static str,
    pub phases: Vec<Phase>,
    /// Seconds, when everything goes right at the first try.
    pub best_total: u64,
    /// Seconds, at the latest a successful rollout can finish.
    pub worst_total: u64,
    pub rollback_triggers: Vec<String>,
    pub assumptions: Vec<String>,
    /// Things worth a second look (not errors).
    pub notes: Vec<String>,
}

fn phase(name: impl Into<String>, earliest: u64, latest: u64) -> Phase {
    Phase {
        name: name.into(),
        earliest_start: earliest,
        latest_start: latest,
        weight: None,
    }
}

/// The earliest a canary can be promoted, in seconds from the start: the canary is healthy
/// (the healthy time), the first check waits the initial delay, and each later step takes one
/// passing check (one interval). With the figures: (healthy, delay, steps, interval).
pub fn earliest_promotion(
    config: &Config,
    canary: &crate::config::Canary,
) -> (u64, u64, u64, u64, u64) {
    let hc = &config.container.health_check;
    let healthy = u64::from(hc.healthy_threshold) * hc.interval.as_secs();
    let a = &canary.analysis;
    let n = canary.weights().len() as u64;
    let (delay, interval) = (a.initial_delay.as_secs(), a.interval.as_secs());
    // Timed pauses before promotion add their time (a manual one waits for someone).
    let paused: u64 = crate::rollout::script::canary(canary)
        .steps
        .iter()
        .map(|s| match s {
            crate::rollout::script::Step::Pause(crate::rollout::script::Gate::Timed(t)) => *t,
            _ => 0,
        })
        .sum();
    (
        healthy + delay + n.saturating_sub(1) * interval + paused,
        healthy,
        delay,
        n,
        interval,
    )
}

pub fn timeline(config: &Config, env: &Environment) -> Timeline {
    let hc = &config.container.health_check;
    let healthy = u64::from(hc.healthy_threshold) * hc.interval.as_secs();
    let health_assumption = format!(
        "a new task or pod is healthy {healthy}s after it starts ({} checks {}s apart); image pull and start-up time are not counted",
        hc.healthy_threshold,
        hc.interval.as_secs()
    );
    match &env.strategy {
        Strategy::Rolling(r) => {
            let (replicas, noun) = match env.target {
                Target::Ecs => (env.ecs.as_ref().map_or(1, |e| e.desired_count), "task"),
                Target::Kubernetes => (env.kubernetes.as_ref().map_or(1, |k| k.replicas), "pod"),
            };
            let per_batch = (r.max_surge.resolve_up(replicas)
                + r.max_unavailable.resolve_down(replicas))
            .max(1);
            let batches = u64::from(replicas.div_ceil(per_batch));
            let deadline = r.progress_deadline.as_secs();
            let mut phases = vec![phase(
                match env.target {
                    Target::Ecs => {
                        "register the task definition (if changed) and update the service"
                    }
                    Target::Kubernetes => "apply the manifests (server-side apply)",
                },
                0,
                0,
            )];
            for b in 0..batches {
                let first = b * u64::from(per_batch) + 1;
                let last = ((b + 1) * u64::from(per_batch)).min(u64::from(replicas));
                phases.push(phase(
                    format!("batch {}/{batches}: start {noun}s {first}..{last} of {replicas}, wait healthy, stop old ones", b + 1),
                    b * healthy,
                    b * deadline,
                ));
            }
            let mut rollback_triggers = vec![format!(
                "no progress for {} (progress deadline): the deploy fails with the last events and stopped {noun}s' reasons",
                r.progress_deadline
            )];
            if env.target == Target::Ecs {
                rollback_triggers.insert(0, "ECS deployment circuit breaker: tasks fail to start or fail health checks repeatedly; ECS rolls back to the previous task definition and the deploy fails".into());
            }
            Timeline {
                strategy: "rolling",
                phases,
                best_total: batches * healthy,
                worst_total: batches * deadline,
                rollback_triggers,
                assumptions: vec![
                    health_assumption,
                    format!(
                        "{per_batch} {noun}(s) per batch: max surge {} + max unavailable {}",
                        r.max_surge, r.max_unavailable
                    ),
                ],
                notes: Vec::new(),
            }
        }
        Strategy::BlueGreen(bg) => {
            let k8s = env.target == Target::Kubernetes;
            let native = !k8s && bg.native();
            let (shift, shift_text) = if k8s {
                (
                    0,
                    "the live Service's selector switches to it, all traffic at once".to_owned(),
                )
            } else if native {
                (
                    0,
                    "ECS moves the production listener rule's forward action to green's target group, all traffic at once".to_owned(),
                )
            } else {
                traffic_shift(&bg.deployment_config)
            };
            let deadline = bg.progress_deadline.as_secs();
            let wait = bg.termination_wait.as_secs();
            // A timed gate holds green at Ready that long; a manual one ends the run there.
            let (hold, gate_phase, gate_note) = match &bg.gate {
                None => (0, None, None),
                Some(crate::config::PauseGate::Timed(d)) => (
                    d.as_secs(),
                    Some(if k8s {
                        format!("hold green for {d} (the gate), production on blue")
                    } else {
                        format!("hold green at Ready for {d} (the gate), production on blue")
                    }),
                    None,
                ),
                Some(crate::config::PauseGate::Manual) => (
                    0,
                    Some(if k8s {
                        "wait at the gate: the deploy ends with `result=paused`; `rollout promote` switches, `rollout abort` scales green to 0".to_owned()
                    } else if native {
                        format!(
                            "wait at the gate (the PAUSE hook): the deploy ends with `result=paused`; `rollout promote` answers CONTINUE, `rollout abort` ROLLBACK; unanswered for {} h, ECS rolls back by itself",
                            crate::config::defaults::NATIVE_PAUSE_TIMEOUT_MINUTES / 60
                        )
                    } else {
                        "wait at the gate (Ready): the deploy ends with `result=paused`; `rollout promote` continues, `rollout abort` stops with rollback".to_owned()
                    }),
                    Some("times after the gate count from `rollout promote`".to_owned()),
                ),
            };
            let mut phases = if k8s {
                vec![
                    phase(
                        format!(
                            "apply the manifests; start green, the Deployment {}-<revision>, beside blue and wait until ready",
                            config.app
                        ),
                        0,
                        0,
                    ),
                    phase(
                        format!("the preview Service {}-preview selects green", config.app),
                        healthy,
                        deadline,
                    ),
                ]
            } else if native {
                vec![
                    phase(
                        "register the task definition and update the service (strategy BLUE_GREEN): ECS starts a service deployment",
                        0,
                        0,
                    ),
                    phase(
                        "ECS starts green's tasks in the alternate target group and waits until they are healthy",
                        0,
                        0,
                    ),
                    phase(
                        format!(
                            "the test listener rule (port {}) forwards to green{}",
                            bg.test_port,
                            if bg.gate.is_some() || bg.analysis.is_some() {
                                "; the PAUSE hook at POST_TEST_TRAFFIC_SHIFT holds it there"
                            } else {
                                ""
                            }
                        ),
                        healthy,
                        deadline,
                    ),
                ]
            } else {
                vec![
                    phase(
                        "register the task definition and create the CodeDeploy deployment",
                        0,
                        0,
                    ),
                    phase(
                        "start the green task set and wait until it is healthy",
                        0,
                        0,
                    ),
                    phase(
                        format!(
                            "test traffic on port {} reaches green (AfterAllowTestTraffic hooks)",
                            bg.test_port
                        ),
                        healthy,
                        deadline,
                    ),
                ]
            };
            // Checks of green at Ready: the first after `initial_delay`; the worst case lets
            // `threshold - 1` checks fail, one interval each, before one passes.
            let (checks, checks_worst) = bg.analysis.as_ref().map_or((0, 0), |a| {
                let first = a.initial_delay.as_secs();
                (
                    first,
                    first + u64::from(a.threshold.saturating_sub(1)) * a.interval.as_secs(),
                )
            });
            if let Some(a) = &bg.analysis {
                let what: Vec<String> = a
                    .http
                    .iter()
                    .map(|h| h.name.clone())
                    .chain(a.metrics.iter().map(|m| m.name.clone()))
                    .chain(
                        a.webhooks
                            .iter()
                            .filter(|w| {
                                w.at.iter()
                                    .any(|p| *p != crate::config::HookPoint::PreRollout)
                            })
                            .map(|w| w.name.clone()),
                    )
                    .collect();
                phases.push(phase(
                    format!(
                        "check green {} ({}): every {}, rolled back at {} failed checks",
                        if k8s {
                            "through the preview Service"
                        } else {
                            "on the test listener"
                        },
                        what.join(", "),
                        a.interval,
                        a.threshold
                    ),
                    healthy,
                    deadline,
                ));
            }
            if let Some(g) = gate_phase {
                phases.push(phase(g, healthy + checks, deadline + checks_worst));
            }
            let hold = hold + checks;
            let deadline = deadline + checks_worst - checks;
            phases.extend([
                phase(
                    format!("shift production traffic to green: {shift_text}"),
                    healthy + hold,
                    deadline + hold,
                ),
                phase(
                    if native {
                        format!(
                            "bake for {} (bakeTimeInMinutes): blue and green both run, instant rollback possible",
                            bg.termination_wait
                        )
                    } else {
                        format!(
                            "keep blue for {} (instant rollback possible)",
                            bg.termination_wait
                        )
                    },
                    healthy + hold + shift,
                    deadline + hold + shift,
                ),
                phase(
                    if k8s {
                        "scale blue to 0"
                    } else if native {
                        "clean up: ECS stops blue's tasks"
                    } else {
                        "terminate the blue task set"
                    },
                    healthy + hold + shift + wait,
                    deadline + hold + shift + wait,
                ),
            ]);
            let mut triggers = vec![if k8s {
                format!(
                    "green is not ready within {}: it never takes traffic, and is scaled to 0",
                    bg.progress_deadline
                )
            } else if native {
                "the green tasks fail to become healthy (the deployment circuit breaker): ECS rolls back automatically".into()
            } else {
                "the green tasks fail to become healthy, or a lifecycle hook fails: CodeDeploy rolls back automatically".into()
            }];
            if let Some(a) = &bg.analysis {
                triggers.push(if k8s {
                    format!(
                        "the checks of green fail {} times: green is scaled to 0 before production traffic moves",
                        a.threshold
                    )
                } else if native {
                    format!(
                        "the checks of green at the PAUSE hook fail {} times: the hook is answered ROLLBACK before production traffic moves",
                        a.threshold
                    )
                } else {
                    format!(
                        "the checks of green at Ready fail {} times: the deployment is stopped with rollback before production traffic moves",
                        a.threshold
                    )
                });
            }
            if !k8s {
                triggers.push(format!(
                    "no traffic switch within {}: the deploy is stopped and rolled back",
                    bg.progress_deadline
                ));
            }
            if !bg.alarms.is_empty() {
                triggers.push(format!(
                    "a CloudWatch alarm fires: {}",
                    bg.alarms.join(", ")
                ));
            }
            triggers.push(if k8s {
                format!(
                    "during the {} wait, `rollout abort` switches the selector back to blue at once",
                    bg.termination_wait
                )
            } else if native {
                format!(
                    "during the {} bake, `rollout abort` (StopServiceDeployment ROLLBACK) moves traffic back to blue at once",
                    bg.termination_wait
                )
            } else {
                format!(
                    "during the {} wait, `rollback` switches traffic back to blue at once",
                    bg.termination_wait
                )
            });
            Timeline {
                strategy: "blue-green",
                phases,
                best_total: healthy + hold + shift + wait,
                worst_total: deadline + hold + shift + wait,
                rollback_triggers: triggers,
                assumptions: vec![health_assumption],
                notes: gate_note.into_iter().collect(),
            }
        }
        Strategy::Canary(c) => {
            let weights = c.weights();
            let a = &c.analysis;
            let (delay, interval) = (a.initial_delay.as_secs(), a.interval.as_secs());
            let slack = u64::from(a.threshold.saturating_sub(1)) * interval;
            // Walk the script the engine plays: each step's earliest start (every check passes
            // at once) and latest (the failed checks the threshold allows come first).
            let script = crate::rollout::script::canary(c);
            let native = c.native() && env.kubernetes.is_none();
            let (replicas, surge) = env.kubernetes.as_ref().map_or((1, 1), |k| (k.replicas, 1));
            let promotion = u64::from(replicas.div_ceil(surge)) * healthy;
            let mut phases = Vec::new();
            let (mut at, mut analysed, mut promote) = (0, false, 0);
            let mut manual_gate = false;
            for step in &script.steps {
                use crate::rollout::script::{Gate, Step, Track};
                let latest = |at: u64| if analysed { at + slack } else { at };
                match *step {
                    Step::Deploy(Track::Canary) if native => {
                        phases.push(phase(
                            "update the service: ECS starts the new tasks in the canary target group and holds at the PAUSE hook before the first shift",
                            at,
                            at,
                        ));
                        at += healthy;
                    }
                    Step::SetWeight(w) if native && w > 0 => phases.push(Phase {
                        name: format!("canary weight {w}% (ECS shifts when the analysis answers the PAUSE hook CONTINUE)"),
                        earliest_start: at,
                        latest_start: latest(at),
                        weight: Some(w),
                    }),
                    // ECS native ends the old tasks itself once all traffic moved.
                    Step::SetWeight(0) if native => {}
                    Step::Deploy(Track::Stable) if native => {
                        promote = at;
                        phases.push(phase(
                            "promote: CONTINUE at the last PAUSE hook; ECS shifts all traffic to the new tasks and ends the deployment",
                            at,
                            latest(at),
                        ));
                        at += promotion;
                    }
                    Step::Deploy(Track::Canary) => {
                        phases.push(phase(
                            match env.ecs.as_ref().filter(|_| env.kubernetes.is_none()) {
                                Some(ecs) => format!(
                                    "start the canary service {} on the new task definition and wait until ready",
                                    c.canary_service_name(ecs)
                                ),
                                None => "apply the manifests; start the canary Deployment and wait until ready".into(),
                            },
                            at,
                            at,
                        ));
                        at += healthy;
                    }
                    Step::SetWeight(0) => phases.push(phase(
                        "route all traffic to stable (canary weight 0) and scale the canary down",
                        at,
                        latest(at),
                    )),
                    Step::SetWeight(w) => phases.push(Phase {
                        name: format!("canary weight {w}%"),
                        earliest_start: at,
                        latest_start: latest(at),
                        weight: Some(w),
                    }),
                    Step::Analyse => {
                        at += if analysed { interval } else { delay };
                        analysed = true;
                    }
                    Step::Pause(Gate::Manual) => {
                        manual_gate = true;
                        phases.push(phase(
                            "wait at the gate for `rollout promote` (the deploy ends with result=paused)",
                            at,
                            latest(at),
                        ));
                    }
                    Step::Pause(Gate::Timed(secs)) => {
                        phases.push(phase(
                            format!("wait {} before promotion", crate::plan::fmt_secs(secs)),
                            at,
                            latest(at),
                        ));
                        at += secs;
                    }
                    Step::Deploy(Track::Stable) => {
                        promote = at;
                        phases.push(phase(
                            if env.kubernetes.is_some() {
                                "promote: roll the stable Deployment to the new version"
                            } else {
                                "promote: roll the stable service to the canary's task definition"
                            },
                            at,
                            latest(at),
                        ));
                        at += promotion;
                    }
                    Step::ScaleDown(_) => {}
                }
            }
            let first_rollback = healthy + delay + slack;
            let mut notes = Vec::new();
            if manual_gate {
                notes.push(
                    "a manual gate waits for `rollout promote`: the totals leave that wait out"
                        .into(),
                );
            }
            if native {
                notes.push(format!(
                    "traffic: ECS native {} moves the listener rule {} to the canary target group; a PAUSE hook before each shift waits for the analysis (CONTINUE, or ROLLBACK at the threshold). ECS plays one weight then all (CANARY, `steps: [W]`) or equal steps to 100% (LINEAR, `step_weight`); other schedules (explicit steps such as 10/25/50/75/100, pauses between steps) need `router: alb`",
                    match c.native_shape() {
                        Some(crate::config::NativeShape::Linear { .. }) => "LINEAR",
                        _ => "CANARY",
                    },
                    c.listener()
                ));
            } else if env.kubernetes.is_none() {
                notes.push(format!(
                    "traffic: the ALB {} {} forwards to the stable and the canary target groups by weight (ModifyRule / ModifyListener); it plays any schedule: explicit steps, step_weight/max_weight, pauses (ECS native, `router: ecs`, plays one weight then all, or equal steps)",
                    if c.listener_rule.is_some() { "listener rule" } else { "listener's default action of" },
                    c.listener()
                ));
            }
            if env.kubernetes.is_none()
                && a.metrics
                    .iter()
                    .any(|m| m.query == crate::config::defaults::alb_metrics()[0].query)
            {
                notes.push("analysis: deploy.yml names no metric, so the ALB's CloudWatch metrics of the canary's target group judge (AWS/ApplicationELB: success rate from RequestCount and HTTPCode_Target_5XX_Count, p99 TargetResponseTime, 5xx rate); name `metrics:` to judge with Prometheus or Datadog instead".into());
            }
            if let (Some(&100), Some(k)) = (weights.last(), env.kubernetes.as_ref())
                && k.canary_replicas < k.replicas
            {
                notes.push(format!(
                        "the last step sends 100% of traffic to {} canary replica(s) while stable runs {}: check the canary can carry full load, or end the steps at 50 (max weight) and let promotion take the rest",
                        k.canary_replicas, k.replicas
                    ));
            }
            Timeline {
                strategy: "canary",
                phases,
                best_total: promote + promotion,
                worst_total: (promote + promotion + slack).min(c.deadline.as_secs().max(promote + promotion)),
                rollback_triggers: vec![
                    format!(
                        "{} failed checks in this rollout (counted cumulatively): traffic returns to stable at once; the earliest is at {}",
                        a.threshold,
                        crate::plan::fmt_secs(first_rollback)
                    ),
                    format!(
                        "a check fails when any metric is outside its bounds: {}",
                        a.metrics
                            .iter()
                            .map(|m| {
                                let bound = match (m.min, m.max) {
                                    (Some(lo), Some(hi)) => format!("{lo}..{hi}"),
                                    (Some(lo), None) => format!(">= {lo}"),
                                    (None, Some(hi)) => format!("<= {hi}"),
                                    (None, None) => "?".into(),
                                };
                                format!("{} {bound}", m.name)
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "a query that errors is a failed check; one that returns no data is too, unless the metric's on_no_data says skip (left out) or wait (checked again)".into(),
                    format!("not promoted within {}: rolled back", c.deadline),
                ],
                assumptions: vec![
                    health_assumption,
                    format!(
                        "every check is judged (the canary serves at least {} requests per interval); worst case allows {} failed checks, one interval each",
                        a.min_requests(),
                        a.threshold.saturating_sub(1)
                    ),
                ],
                notes,
            }
        }
    }
}

/// The traffic shift time of a `CodeDeploy` ECS deployment configuration, in seconds, and a
/// description. Custom configurations are not known offline.
pub fn traffic_shift(config: &str) -> (u64, String) {
    let name = config.strip_prefix("CodeDeployDefault.").unwrap_or(config);
    let parse = |s: &str| -> Option<(u64, u64)> {
        // Linear10PercentEvery3Minutes or Canary10Percent15Minutes
        let digits: Vec<u64> = s
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.parse().ok())
            .collect();
        match digits.as_slice() {
            [p, m] => Some((*p, *m)),
            _ => None,
        }
    };
    if name == "ECSAllAtOnce" {
        return (0, "all at once".into());
    }
    if let Some(rest) = name.strip_prefix("ECSLinear")
        && let Some((pct, minutes)) = parse(rest)
    {
        let steps = 100_u64.div_ceil(pct.max(1)) - 1;
        return (
            steps * minutes * 60,
            format!("{pct}% more every {minutes} min ({} min)", steps * minutes),
        );
    }
    if let Some(rest) = name.strip_prefix("ECSCanary")
        && let Some((pct, minutes)) = parse(rest)
    {
        return (
            minutes * 60,
            format!("{pct}% first, the rest after {minutes} min"),
        );
    }
    (0, format!("as `{config}` defines (not known offline)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codedeploy_shift_times() {
        assert_eq!(traffic_shift("CodeDeployDefault.ECSAllAtOnce").0, 0);
        assert_eq!(
            traffic_shift("CodeDeployDefault.ECSLinear10PercentEvery1Minutes").0,
            9 * 60
        );
        assert_eq!(
            traffic_shift("CodeDeployDefault.ECSLinear10PercentEvery3Minutes").0,
            27 * 60
        );
        assert_eq!(
            traffic_shift("CodeDeployDefault.ECSCanary10Percent5Minutes").0,
            5 * 60
        );
        assert_eq!(traffic_shift("Custom").0, 0);
    }
}
