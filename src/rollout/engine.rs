//! The rollout engine: plays a [`Script`] one step at a time. Pure: it is given the input and
//! the absolute time (milliseconds since the Unix epoch, virtual in tests) and returns a
//! [`Decision`]: the effect to run, what happened, the state to save, and when to wake it.
//!
//! The contract with the driver:
//! - `save` is written **before** the effects run: the saved state always knows a traffic or
//!   stable change that may have happened;
//! - at most one effect is outstanding; its result comes back as [`Input::Done`] (or
//!   [`Input::Measured`] for a measurement);
//! - every effect is idempotent ([`Effect`] says what a second call after a crash does), so a
//!   new process resumes by feeding [`Input::Resume`] to the saved state: the outstanding
//!   effect is issued again;
//! - the driver feeds [`Input::Tick`] at `wake_at`, and promote, abort and cancel whenever
//!   they come: they are accepted in every state and are idempotent.

use serde::{Deserialize, Serialize};

use super::analysis::{self, MetricResult, MetricSpec, ProbeResult, Reading, Sample, Verdict};
use super::script::{Gate, Script, Step, Track};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// An effect for the driver. What a repeat does (after a crash, or on resume):
/// - `Deploy`: applies the same revision again; an unchanged workload is left alone, and the
///   wait sees it ready at once;
/// - `SetWeight`: sets the same weight again;
/// - `ScaleDown`: a workload at zero stays at zero;
/// - `Measure`: reads again (no change anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    Deploy(Track),
    SetWeight(u8),
    /// Measure every metric over the window from `since` to now, and run the HTTP checks
    /// and the step webhooks (and the pre-promotion ones when `last`: the last analysed
    /// step before promotion).
    Measure {
        since: Millis,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        last: bool,
        /// The canary's weight while measured (for webhooks' facts).
        #[serde(default)]
        weight: u8,
    },
    ScaleDown(Track),
}

impl Effect {
    /// The effect in words, as in "… failed": for a reason a person reads.
    pub fn doing(&self) -> String {
        match self {
            Self::Deploy(Track::Canary) => "deploying the new workload (canary or green)".into(),
            Self::Deploy(Track::Stable) => "rolling the stable workload to the new revision".into(),
            Self::SetWeight(w) => format!("setting the new revision's share of traffic to {w}%"),
            Self::Measure { .. } => "measuring".into(),
            Self::ScaleDown(Track::Canary) => "scaling the canary workload to zero".into(),
            Self::ScaleDown(Track::Stable) => "scaling the old (blue) workload down".into(),
        }
    }
}

/// What the world said.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A new rollout: the state is fresh.
    Start,
    /// Another process takes the saved rollout over.
    Resume,
    /// The outstanding effect finished (`Err`: it failed for good, with the reason).
    Done(Result<(), String>),
    /// The outstanding measurement: one reading per metric (in the analysis' order), and the
    /// canary's request count when one is measured.
    Measured {
        readings: Vec<Reading>,
        requests: Option<Sample>,
        /// The HTTP checks' and webhooks' results.
        probes: Vec<ProbeResult>,
    },
    /// `wake_at` was reached.
    Tick,
    /// `rollout promote`: past the current pause or analysis; `full` skips every step left
    /// before promotion.
    Promote { full: bool },
    /// `rollout abort`, or an automatic abort.
    Abort { reason: String },
    /// SIGINT / SIGTERM, a cancelled workflow.
    Cancel,
}

/// One analysis check, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub at: Millis,
    pub step: usize,
    pub weight: u8,
    pub verdict: Verdict,
    pub metrics: Vec<MetricResult>,
    /// The HTTP checks and webhooks of this check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeResult>,
    /// The canary's request count in the window, when one was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Outcome {
    /// Every step played: the new revision is stable and takes all traffic.
    Promoted,
    /// Traffic went back to stable and the canary was scaled down.
    RolledBack {
        reason: String,
        /// Each failed metric with its value, bound and step, newest last.
        failures: Vec<String>,
    },
    /// Cancelled (a signal): traffic went back to stable first.
    Cancelled,
    /// A step failed where going back is not possible or itself failed: someone must look.
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Status {
    Running,
    /// At a gate since `since`.
    Paused {
        since: Millis,
    },
    /// Playing the script's `on_abort` steps; `next` is the one to run.
    Aborting {
        reason: String,
        failures: Vec<String>,
        cancelled: bool,
        next: usize,
    },
    Done(Outcome),
}

/// The rollout's state: small, serialisable, saved before every change of traffic or of the
/// stable revision (Argo Rollouts' `RolloutStatus` is the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`Script::hash`]: a saved rollout resumes only on the same script.
    pub script: String,
    /// The revision being rolled out.
    pub revision: String,
    pub started_at: Millis,
    /// The step being played.
    pub index: usize,
    pub weight: u8,
    pub weight_changed_at: Millis,
    pub failed_checks: u32,
    /// When the current analysis checks next.
    pub next_check_at: Option<Millis>,
    /// The effect issued and not yet finished.
    pub pending: Option<Effect>,
    pub status: Status,
    /// Whether the stable workload runs the new revision.
    pub promoted: bool,
    /// `rollout promote --full` was asked: steps before promotion are skipped.
    pub promote_full: bool,
    pub checks: Vec<CheckRecord>,
    /// A blue-green's two workloads on Kubernetes, named when the rollout starts: the edge
    /// reads them (the selector goes back to `blue` on abort); the engine only carries them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colours: Option<Colours>,
}

/// The workloads of a blue-green where each colour is a Deployment of its own: the one that
/// served before the rollout (`blue`) and the new one (`green`), by revision label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Colours {
    pub blue: String,
    pub green: String,
}

impl State {
    pub fn new(script: &Script, revision: &str, now: Millis) -> Self {
        Self {
            script: script.hash(),
            revision: revision.to_owned(),
            started_at: now,
            index: 0,
            weight: 0,
            weight_changed_at: now,
            failed_checks: 0,
            next_check_at: None,
            pending: None,
            status: Status::Running,
            promoted: false,
            promote_full: false,
            checks: Vec::new(),
            colours: None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.status, Status::Done(_))
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.status {
            Status::Done(o) => Some(o),
            _ => None,
        }
    }
}

/// What reporters see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum Event {
    /// A step starts.
    Step {
        index: usize,
        step: Step,
    },
    /// The canary's traffic share is now `weight`.
    Weight {
        weight: u8,
    },
    Check(CheckRecord),
    /// Waiting at a gate: the process may end here (`result=paused`).
    Paused {
        gate: Gate,
    },
    Continued,
    /// Going back to stable, and why.
    Aborting {
        reason: String,
        cancelled: bool,
    },
    /// A step of going back starts (the script's `on_abort`).
    Reverting {
        step: Step,
    },
    Finished {
        outcome: Outcome,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub effects: Vec<Effect>,
    pub events: Vec<Event>,
    /// Write this state before running the effects.
    pub save: Option<State>,
    /// Feed [`Input::Tick`] at this time (if nothing else comes first).
    pub wake_at: Option<Millis>,
    /// The rollout waits at a manual gate: the process may end, exit 0, `result=paused`.
    pub paused: bool,
}

/// The analysis settings the engine needs beyond the script's timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub metrics: Vec<MetricSpec>,
    pub min_requests: u64,
}

impl Analysis {
    /// A canary's analysis settings from deploy.yml.
    pub fn from_canary(c: &crate::config::Canary) -> Self {
        Self::from_config(&c.analysis)
    }

    /// An analysis block's settings from deploy.yml.
    pub fn from_config(a: &crate::config::Analysis) -> Self {
        Self {
            metrics: a.metrics.iter().map(MetricSpec::from_config).collect(),
            min_requests: a.min_requests(),
        }
    }

    /// No analysis: a script without `Analyse` steps.
    pub fn none() -> Self {
        Self {
            metrics: Vec::new(),
            min_requests: 0,
        }
    }
}

pub struct Engine<'a> {
    pub script: &'a Script,
    pub analysis: &'a Analysis,
}

impl Engine<'_> {
    /// Plays one input at `now`.
    pub fn step(&self, state: &mut State, input: Input, now: Millis) -> Decision {
        let mut d = Decision::default();
        if state.is_done() {
            return d;
        }
        match input {
            Input::Start => self.enter(state, now, &mut d),
            Input::Resume => self.resume(state, now, &mut d),
            Input::Done(result) => self.done(state, result, now, &mut d),
            Input::Measured {
                readings,
                requests,
                probes,
            } => {
                self.measured(state, &readings, &probes, requests.as_ref(), now, &mut d);
            }
            Input::Tick => self.tick(state, now, &mut d),
            Input::Promote { full } => self.promote(state, full, now, &mut d),
            Input::Abort { reason } => self.abort(state, reason, Vec::new(), false, &mut d),
            Input::Cancel => self.abort(state, "cancelled".into(), Vec::new(), true, &mut d),
        }
        if !state.is_done() && d.effects.is_empty() && !d.paused {
            d.wake_at = self.wake_at(state);
        }
        d
    }

    /// When to look again: the next check, the end of a timed pause, the deadline.
    fn wake_at(&self, state: &State) -> Option<Millis> {
        if state.pending.is_some() {
            return None;
        }
        let deadline = self.deadline(state);
        let own = match (&state.status, self.script.steps.get(state.index)) {
            (Status::Running, Some(Step::Analyse)) => state.next_check_at,
            (Status::Paused { since }, Some(Step::Pause(Gate::Timed(secs)))) => {
                Some(since + secs * 1000)
            }
            _ => None,
        };
        match (own, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time by which the canary must be promoted, while it is not.
    fn deadline(&self, state: &State) -> Option<Millis> {
        let t = self.script.timing.deadline;
        (t > 0
            && !state.promoted
            && matches!(state.status, Status::Running | Status::Paused { .. }))
        .then_some(state.started_at + t * 1000)
    }

    /// Starts the step at `state.index` (or finishes).
    fn enter(&self, state: &mut State, now: Millis, d: &mut Decision) {
        loop {
            let Some(step) = self.script.steps.get(state.index).copied() else {
                Self::finish(state, Outcome::Promoted, d);
                return;
            };
            // `promote --full`: what stands between here and promotion is skipped.
            let before_promotion = self.script.promotion().is_some_and(|p| state.index < p);
            if state.promote_full
                && before_promotion
                && matches!(step, Step::Analyse | Step::Pause(_) | Step::SetWeight(_))
            {
                state.index += 1;
                continue;
            }
            d.events.push(Event::Step {
                index: state.index,
                step,
            });
            match step {
                Step::Deploy(t) => Self::issue(state, Effect::Deploy(t), d),
                Step::SetWeight(w) => Self::issue(state, Effect::SetWeight(w), d),
                Step::ScaleDown(t) => Self::issue(state, Effect::ScaleDown(t), d),
                Step::Analyse => {
                    let first = !self.script.steps[..state.index].contains(&Step::Analyse);
                    let delay = if first {
                        self.script.timing.initial_delay
                    } else {
                        self.script.timing.interval
                    };
                    state.next_check_at = Some(state.weight_changed_at.max(now) + delay * 1000);
                    // Saved, so a resumed process checks at the same time.
                    d.save = Some(state.clone());
                }
                Step::Pause(gate) => {
                    state.status = Status::Paused { since: now };
                    d.events.push(Event::Paused { gate });
                    d.paused = gate == Gate::Manual;
                    d.save = Some(state.clone());
                }
            }
            return;
        }
    }

    /// Issues an effect: saved first, so a crash during it is resumed by issuing it again.
    fn issue(state: &mut State, effect: Effect, d: &mut Decision) {
        state.pending = Some(effect);
        d.effects.push(effect);
        d.save = Some(state.clone());
    }

    fn advance(&self, state: &mut State, now: Millis, d: &mut Decision) {
        state.index += 1;
        state.next_check_at = None;
        self.enter(state, now, d);
    }

    fn resume(&self, state: &mut State, now: Millis, d: &mut Decision) {
        if let Some(effect) = state.pending {
            d.effects.push(effect);
            return;
        }
        match &state.status {
            Status::Paused { .. } => {
                if let Some(Step::Pause(gate)) = self.script.steps.get(state.index) {
                    d.paused = *gate == Gate::Manual;
                    d.events.push(Event::Paused { gate: *gate });
                }
            }
            Status::Aborting { .. } => self.abort_next(state, d),
            Status::Running if state.index == 0 && state.checks.is_empty() => {
                self.enter(state, now, d);
            }
            Status::Running => self.tick(state, now, d),
            Status::Done(_) => {}
        }
    }

    fn done(&self, state: &mut State, result: Result<(), String>, now: Millis, d: &mut Decision) {
        let Some(effect) = state.pending.take() else {
            return;
        };
        if let Status::Aborting { .. } = state.status {
            match result {
                Ok(()) => {
                    if let Effect::SetWeight(w) = effect {
                        state.weight = w;
                        state.weight_changed_at = now;
                        d.events.push(Event::Weight { weight: w });
                    }
                    if let Status::Aborting { next, .. } = &mut state.status {
                        *next += 1;
                    }
                    self.abort_next(state, d);
                }
                Err(e) => Self::finish(
                    state,
                    Outcome::Failed {
                        reason: format!(
                            "going back to stable failed while {}: {e}; the new revision may still take {}% of traffic (the rollout is recorded: `rollout abort` tries the way back again)",
                            effect.doing(),
                            state.weight
                        ),
                    },
                    d,
                ),
            }
            return;
        }
        match result {
            Ok(()) => {
                match effect {
                    Effect::SetWeight(w) => {
                        state.weight = w;
                        state.weight_changed_at = now;
                        d.events.push(Event::Weight { weight: w });
                    }
                    Effect::Deploy(Track::Stable) => state.promoted = true,
                    _ => {}
                }
                self.advance(state, now, d);
            }
            Err(e) if state.promoted => {
                // The new revision is stable already: there is nothing to go back to; the
                // remaining steps only tidy up.
                Self::finish(
                    state,
                    Outcome::Failed {
                        reason: format!(
                            "the new revision is stable and takes the traffic, but {} failed after the promotion: {e}; only tidying up was left (the canary workload may still run: scale it to zero by hand)",
                            effect.doing()
                        ),
                    },
                    d,
                );
            }
            Err(e) => self.abort(
                state,
                format!("{} failed: {e}", effect.doing()),
                vec![],
                false,
                d,
            ),
        }
    }

    fn measured(
        &self,
        state: &mut State,
        readings: &[Reading],
        probes: &[ProbeResult],
        requests: Option<&Sample>,
        now: Millis,
        d: &mut Decision,
    ) {
        if !matches!(state.pending, Some(Effect::Measure { .. })) {
            return;
        }
        state.pending = None;
        let (verdict, metrics) = analysis::judge_check(
            &self.analysis.metrics,
            readings,
            probes,
            requests,
            self.analysis.min_requests,
        );
        let record = CheckRecord {
            at: now,
            step: state.index,
            weight: state.weight,
            verdict: verdict.clone(),
            metrics,
            probes: probes.to_vec(),
            requests: match requests.cloned().map(Sample::normalised) {
                Some(Sample::Value(n)) => Some(n),
                _ => None,
            },
        };
        state.checks.push(record.clone());
        d.events.push(Event::Check(record));
        let interval = self.script.timing.interval * 1000;
        match verdict {
            Verdict::Pass => self.advance(state, now, d),
            Verdict::Fail(_) => {
                state.failed_checks += 1;
                if state.failed_checks >= self.script.timing.threshold.max(1) {
                    let failures = failed_metrics(self.script, state);
                    let reason = format!(
                        "{} failed checks reached the threshold of {} at weight {}%",
                        state.failed_checks, self.script.timing.threshold, state.weight,
                    );
                    self.abort(state, reason, failures, false, d);
                } else {
                    state.next_check_at = Some(now + interval);
                    d.save = Some(state.clone());
                }
            }
            Verdict::Inconclusive(_) => {
                state.next_check_at = Some(now + interval);
                d.save = Some(state.clone());
            }
        }
    }

    fn tick(&self, state: &mut State, now: Millis, d: &mut Decision) {
        if let Some(deadline) = self.deadline(state)
            && now >= deadline
            && state.pending.is_none()
        {
            let waiting = state
                .checks
                .last()
                .and_then(|c| match &c.verdict {
                    Verdict::Inconclusive(r) => {
                        Some(format!("; the last check was inconclusive: {r}"))
                    }
                    _ => None,
                })
                .unwrap_or_default();
            let reason = format!(
                "not promoted within the deadline ({}){waiting}",
                crate::plan::fmt_secs(self.script.timing.deadline)
            );
            let failures = failed_metrics(self.script, state);
            self.abort(state, reason, failures, false, d);
            return;
        }
        if state.pending.is_some() {
            return;
        }
        // An analysis step that neither passes nor fails ends at its own deadline.
        let limit = self.script.timing.step_deadline;
        if limit > 0
            && matches!(state.status, Status::Running)
            && self.script.steps.get(state.index) == Some(&Step::Analyse)
            && let Some(first) = state.checks.iter().find(|c| c.step == state.index)
            && now >= first.at + limit * 1000
        {
            let last = state
                .checks
                .last()
                .map(|c| match &c.verdict {
                    Verdict::Inconclusive(r) => format!("; the last check was inconclusive: {r}"),
                    Verdict::Fail(r) => format!("; the last check failed: {}", r.join("; ")),
                    Verdict::Pass => String::new(),
                })
                .unwrap_or_default();
            let reason = format!(
                "the checks did not pass within {} of the first one{last}",
                crate::plan::fmt_secs(limit)
            );
            let failures = failed_metrics(self.script, state);
            self.abort(state, reason, failures, false, d);
            return;
        }
        match (&state.status, self.script.steps.get(state.index)) {
            (Status::Running, Some(Step::Analyse))
                if state.next_check_at.is_some_and(|t| now >= t) =>
            {
                let effect = Effect::Measure {
                    since: state.weight_changed_at,
                    last: !self.script.steps[state.index + 1..]
                        .iter()
                        .any(|s| matches!(s, Step::Analyse)),
                    weight: state.weight,
                };
                state.pending = Some(effect);
                d.effects.push(effect);
            }
            (Status::Paused { since }, Some(Step::Pause(Gate::Timed(secs))))
                if now >= since + secs * 1000 =>
            {
                state.status = Status::Running;
                d.events.push(Event::Continued);
                self.advance(state, now, d);
            }
            _ => {}
        }
    }

    fn promote(&self, state: &mut State, full: bool, now: Millis, d: &mut Decision) {
        if matches!(state.status, Status::Aborting { .. }) {
            return;
        }
        if full {
            state.promote_full = true;
        }
        let step = self.script.steps.get(state.index).copied();
        match (&state.status, step) {
            (Status::Paused { .. }, _) => {
                state.status = Status::Running;
                d.events.push(Event::Continued);
                self.advance(state, now, d);
            }
            (Status::Running, Some(Step::Analyse)) if state.pending.is_none() || full => {
                // The current analysis counts as passed.
                state.pending = None;
                self.advance(state, now, d);
            }
            _ => {
                // Mid-effect: `--full` takes effect at the next step.
                d.save = Some(state.clone());
            }
        }
    }

    fn abort(
        &self,
        state: &mut State,
        reason: String,
        failures: Vec<String>,
        cancelled: bool,
        d: &mut Decision,
    ) {
        if matches!(state.status, Status::Aborting { .. }) {
            // Already going back: said again, it carries on from where it stands (the step
            // in flight is issued again; each is idempotent).
            match state.pending {
                Some(effect) => d.effects.push(effect),
                None => self.abort_next(state, d),
            }
            return;
        }
        // A pending measurement or deploy is dropped: its result is no longer wanted. A
        // weight change in flight is covered by the weight 0 that follows.
        state.pending = None;
        state.next_check_at = None;
        d.events.push(Event::Aborting {
            reason: reason.clone(),
            cancelled,
        });
        state.status = Status::Aborting {
            reason,
            failures,
            cancelled,
            next: 0,
        };
        self.abort_next(state, d);
    }

    fn abort_next(&self, state: &mut State, d: &mut Decision) {
        let Status::Aborting {
            reason,
            failures,
            cancelled,
            next,
        } = state.status.clone()
        else {
            return;
        };
        let step = self.script.on_abort.get(next).copied();
        if let Some(step @ (Step::SetWeight(_) | Step::ScaleDown(_) | Step::Deploy(_))) = step {
            d.events.push(Event::Reverting { step });
        }
        match step {
            Some(Step::SetWeight(w)) => Self::issue(state, Effect::SetWeight(w), d),
            Some(Step::ScaleDown(t)) => Self::issue(state, Effect::ScaleDown(t), d),
            Some(Step::Deploy(t)) => Self::issue(state, Effect::Deploy(t), d),
            Some(Step::Analyse | Step::Pause(_)) => {
                if let Status::Aborting { next, .. } = &mut state.status {
                    *next += 1;
                }
                self.abort_next(state, d);
            }
            None => {
                let outcome = if cancelled {
                    Outcome::Cancelled
                } else if state.promoted {
                    Outcome::Failed {
                        reason: format!(
                            "{reason} (after promotion: the new revision stays stable)"
                        ),
                    }
                } else {
                    Outcome::RolledBack { reason, failures }
                };
                Self::finish(state, outcome, d);
            }
        }
    }

    fn finish(state: &mut State, outcome: Outcome, d: &mut Decision) {
        state.pending = None;
        state.next_check_at = None;
        state.status = Status::Done(outcome.clone());
        d.events.push(Event::Finished { outcome });
        d.save = Some(state.clone());
    }
}

/// Each metric that failed in this rollout, once: its latest failing value, bound and
/// weight, and in how many checks it failed.
fn failed_metrics(script: &Script, state: &State) -> Vec<String> {
    use analysis::MetricOutcome as O;
    let mut out: Vec<(String, String, usize)> = Vec::new();
    for c in state
        .checks
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Fail(_)))
    {
        let at = format!(
            " at step {} (weight {}%)",
            weight_step(script, c.step),
            c.weight
        );
        for m in &c.metrics {
            let what = match &m.outcome {
                O::Fail => format!(
                    "{} = {} (bound {})",
                    m.name,
                    analysis::fmt_value(m.value.unwrap_or(f64::NAN)),
                    m.bound
                ),
                O::NoDataFail => format!("{}: no data (bound {})", m.name, m.bound),
                O::Error(e) => format!("{}: the query failed: {e}", m.name),
                _ => continue,
            };
            tally(&mut out, &m.name, format!("{what}{at}"));
        }
        for p in c.probes.iter().filter(|p| !p.passed) {
            tally(&mut out, &p.name, format!("{}: {}{at}", p.name, p.detail));
        }
    }
    out.into_iter()
        .map(|(_, text, n)| {
            if n == 1 {
                text
            } else {
                format!("{text}; failed in {n} checks")
            }
        })
        .collect()
}

/// Counts one more failure of `name`, keeping its newest text.
fn tally(out: &mut Vec<(String, String, usize)>, name: &str, text: String) {
    match out.iter_mut().find(|(n, _, _)| n == name) {
        Some(entry) => {
            entry.1 = text;
            entry.2 += 1;
        }
        None => out.push((name.to_owned(), text, 1)),
    }
}

/// Which weight step (1-based, as the report numbers them) the script step `index` belongs to.
pub fn weight_step(script: &Script, index: usize) -> usize {
    script.steps[..=index.min(script.steps.len().saturating_sub(1))]
        .iter()
        .filter(|s| matches!(s, Step::SetWeight(w) if *w > 0))
        .count()
}
