//! `analyze`: an environment's canary analysis replayed against a past window. Would this
//! canary have passed, and at which check would it have failed?
//!
//! The replay plays the environment's real script on the rollout engine, on virtual time
//! from `--from`: workloads and weights take no time, every `Measure` runs the real queries
//! over the window it would have covered, a timed gate waits its time, a manual gate is
//! taken as promoted at once. It stops when the engine decides, or when the next check
//! would fall after `--to` (undecided). Read-only: only the metric providers are asked.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::rollout::provider_error;
use super::{Error, print_out};
use crate::cli::{AnalyzeArgs, OutputFormat};
use crate::config::{Loaded, Strategy};
use crate::metrics::{Measurer, QueryVars};
use crate::rollout::analysis::{MetricOutcome, Verdict, fmt_value};
use crate::rollout::engine::{
    Analysis, CheckRecord, Effect, Engine, Event, Input, Millis, Outcome, State,
};
use crate::rollout::script::canary;

/// How the replay ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Ending {
    Promoted {
        at: String,
    },
    RolledBack {
        at: String,
        reason: String,
        failures: Vec<String>,
    },
    /// The window ended before the engine decided.
    Undecided {
        step: usize,
        weight: u8,
    },
}

#[derive(Debug, Clone, Serialize)]
struct Check {
    at: String,
    step: usize,
    weight: u8,
    #[serde(flatten)]
    record: CheckRecord,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    environment: String,
    from: String,
    to: String,
    /// Seconds between checks.
    interval: u64,
    threshold: u32,
    min_requests: u64,
    queries_per_check: usize,
    checks: Vec<Check>,
    /// Gates on the way, with what the replay did at each.
    gates: Vec<String>,
    ending: Ending,
}

/// `now`, `now-30m`, or an RFC 3339 time (`2026-11-30T10:00:00Z`), as milliseconds.
fn parse_time(text: &str, flag: &str, now: Millis) -> Result<Millis, Error> {
    let bad = |why: String| Error::Usage {
        message: format!("{flag} `{text}`: {why}"),
        help: "write an RFC 3339 time such as 2026-11-30T10:00:00Z, or `now`, or `now-30m`".into(),
    };
    let t = text.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Some(ago) = t.strip_prefix("now-") {
        let d = crate::config::parse_duration(ago).map_err(bad)?;
        return Ok(now.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
    }
    let at = humantime::parse_rfc3339_weak(t).map_err(|e| bad(e.to_string()))?;
    Ok(at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

pub(super) fn stamp(ms: Millis) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        .to_string()
}

pub(super) fn analyze(loaded: &Loaded, args: &AnalyzeArgs) -> Result<(), Error> {
    let names = super::select(loaded, &args.env.env)?;
    let [name] = names.as_slice() else {
        return Err(Error::Usage {
            message: "`--env all` with analyze: replay one environment at a time".into(),
            help: "name the environment, for example `--env production-k8s`".into(),
        });
    };
    let env = &loaded.config.environments[name];
    let Strategy::Canary(c) = &env.strategy else {
        return Err(Error::Usage {
            message: format!(
                "environment `{name}` has no analysis to replay: its strategy is not a canary"
            ),
            help: "run analyze on an environment with `strategy: canary` and `analysis.metrics`"
                .into(),
        });
    };
    let now = super::rollout::now_ms();
    let from = parse_time(&args.from, "--from", now)?;
    let to = parse_time(&args.to, "--to", now)?;
    if from >= to {
        return Err(Error::Usage {
            message: format!("--from {} is not before --to {}", stamp(from), stamp(to)),
            help: "give a window that starts before it ends, for example --from now-1h --to now"
                .into(),
        });
    }
    if to > now + 60_000 {
        return Err(Error::Usage {
            message: format!("--to {} is in the future", stamp(to)),
            help: "replay a past window; `--to now` is the latest".into(),
        });
    }
    let mut script = canary(c);
    if let Some(every) = &args.step_every {
        let d = crate::config::parse_duration(every).map_err(|e| Error::Usage {
            message: format!("--step-every `{every}`: {e}"),
            help: "write a duration such as 1m or 30s".into(),
        })?;
        if d.as_secs() == 0 {
            return Err(Error::Usage {
                message: "--step-every is 0".into(),
                help: "check at an interval of at least 1s, for example 1m".into(),
            });
        }
        script.timing.interval = d.as_secs();
    }
    let analysis = Analysis::from_canary(c);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Environment(anyhow::anyhow!("starting the runtime: {e}")))?;
    let report = runtime.block_on(async {
        let measurer = Measurer::connect(&loaded.config, &c.analysis)
            .await
            .map_err(|e| provider_error(name, "the metric provider cannot be used", &e))?
            .without_probes();
        if !c.analysis.http.is_empty() || !c.analysis.webhooks.is_empty() {
            eprintln!(
                "{name}: the HTTP checks and webhooks are not replayed: they test the present, and a webhook may act"
            );
        }
        measurer
            .preflight(&QueryVars::for_environment(&loaded.config, name, 60), to)
            .await
            .map_err(|(what, e)| {
                provider_error(name, &format!("{what}: the query does not run"), &e)
            })?;
        let engine = Engine {
            script: &script,
            analysis: &analysis,
        };
        let (checks, gates, ending) = replay(&engine, from, to, |since, at, last, weight| {
            let vars = QueryVars::for_environment(&loaded.config, name, (at - since) / 1000);
            let measurer = &measurer;
            let facts = crate::metrics::Facts {
                app: loaded.config.app.clone(),
                environment: name.clone(),
                revision: "analyze".into(),
                phase: crate::config::HookPoint::Step,
                weight,
                window: Some([stamp(since), stamp(at)]),
            };
            async move {
                let not_after = tokio::time::Instant::now() + crate::metrics::TIMEOUT * 6;
                measurer
                    .measure(&vars, since, at, not_after, &facts, last)
                    .await
            }
        })
        .await;
        Ok::<_, Error>(Report {
            environment: name.clone(),
            from: stamp(from),
            to: stamp(to),
            interval: script.timing.interval,
            threshold: script.timing.threshold,
            min_requests: analysis.min_requests,
            queries_per_check: measurer.queries_per_check(),
            checks,
            gates,
            ending,
        })
    })?;
    let text = match args.output {
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&report).expect("the report serializes")
        ),
        OutputFormat::Text => to_text(&report),
    };
    print_out(&text)?;
    match report.ending {
        Ending::RolledBack { .. } => Err(Error::Deployment {
            code: 1,
            message: format!(
                "error: {name}: replayed over this window, the canary would have been rolled back (see the result above)"
            ),
        }),
        _ => Ok(()),
    }
}

/// Plays the engine from `from` on virtual time, measuring with `measure(since, at)`, until
/// it decides or the next wake-up falls after `to`.
async fn replay<F, Fut>(
    engine: &Engine<'_>,
    from: Millis,
    to: Millis,
    mut measure: F,
) -> (Vec<Check>, Vec<String>, Ending)
where
    F: FnMut(Millis, Millis, bool, u8) -> Fut,
    Fut: std::future::Future<Output = crate::metrics::Measurement>,
{
    let mut state = State::new(engine.script, "replay", from);
    let mut input = Input::Start;
    let mut now = from;
    let mut checks = Vec::new();
    let mut gates = Vec::new();
    loop {
        let d = engine.step(&mut state, input, now);
        for e in &d.events {
            if let Event::Check(r) = e {
                checks.push(Check {
                    at: stamp(r.at),
                    step: r.step,
                    weight: r.weight,
                    record: r.clone(),
                });
            }
        }
        if let Some(outcome) = state.outcome() {
            let ending = match outcome {
                Outcome::Promoted => Ending::Promoted { at: stamp(now) },
                Outcome::RolledBack { reason, failures } => Ending::RolledBack {
                    at: stamp(now),
                    reason: reason.clone(),
                    failures: failures.clone(),
                },
                Outcome::Cancelled | Outcome::Failed { .. } => Ending::RolledBack {
                    at: stamp(now),
                    reason: format!("{outcome:?}"),
                    failures: Vec::new(),
                },
            };
            return (checks, gates, ending);
        }
        if d.paused {
            gates.push(format!(
                "{}: a manual gate at step {}, taken as promoted",
                stamp(now),
                state.index
            ));
            input = Input::Promote { full: false };
            continue;
        }
        if let Some(effect) = d.effects.first().copied() {
            input = match effect {
                Effect::Measure {
                    since,
                    last,
                    weight,
                } => {
                    let m = measure(since, now, last, weight).await;
                    Input::Measured {
                        readings: m.readings,
                        requests: m.requests,
                        probes: m.probes,
                    }
                }
                _ => Input::Done(Ok(())),
            };
        } else if let Some(wake) = d.wake_at.filter(|w| *w <= to) {
            now = now.max(wake);
            input = Input::Tick;
        } else {
            // The next check would fall after the window (or nothing is left to wait for).
            let ending = Ending::Undecided {
                step: state.index,
                weight: state.weight,
            };
            return (checks, gates, ending);
        }
    }
}

fn to_text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "analyze {}: {} to {}, a check every {}, rolled back at {} failed checks{}; {} queries per check",
        r.environment,
        r.from,
        r.to,
        crate::plan::fmt_secs(r.interval),
        r.threshold,
        if r.min_requests > 0 {
            format!(", judged from {} requests", r.min_requests)
        } else {
            String::new()
        },
        r.queries_per_check,
    );
    for c in &r.checks {
        let verdict = match &c.record.verdict {
            Verdict::Pass => "pass".to_owned(),
            Verdict::Fail(_) => "FAIL".to_owned(),
            Verdict::Inconclusive(why) => format!("not judged: {why}"),
        };
        let requests = c
            .record
            .requests
            .map_or_else(String::new, |n| format!(", {n:.0} requests"));
        let _ = writeln!(out, "\n  {}  at {}%{requests}: {verdict}", c.at, c.weight);
        for m in &c.record.metrics {
            let value = m.value.map_or_else(|| "no data".to_owned(), fmt_value);
            let outcome = match &m.outcome {
                MetricOutcome::Pass => "pass".to_owned(),
                MetricOutcome::Fail => "FAIL".to_owned(),
                MetricOutcome::NoDataFail => "FAIL (no data)".to_owned(),
                MetricOutcome::Skipped => "skipped (no data)".to_owned(),
                MetricOutcome::Waiting => "waiting (no data)".to_owned(),
                MetricOutcome::Error(e) => format!("FAIL (query error: {e})"),
            };
            let _ = writeln!(
                out,
                "      {:<18} {:>10}  bound {}  {outcome}",
                m.name, value, m.bound
            );
        }
    }
    for g in &r.gates {
        let _ = writeln!(out, "\n  {g}");
    }
    out.push('\n');
    match &r.ending {
        Ending::Promoted { at } => {
            let _ = writeln!(
                out,
                "result: this canary would have been promoted at {at} ({} checks)",
                r.checks.len()
            );
        }
        Ending::RolledBack {
            at,
            reason,
            failures,
        } => {
            let _ = writeln!(
                out,
                "result: this canary would have been rolled back at {at}: {reason}"
            );
            for f in failures {
                let _ = writeln!(out, "  - {f}");
            }
        }
        Ending::Undecided { weight, .. } => {
            let _ = writeln!(
                out,
                "result: undecided: the window ended with the canary at {weight}% of traffic, before promotion or rollback; replay a longer window"
            );
        }
    }
    out
}
