//! The engine against a simulated world on virtual time: workloads that become ready after
//! their healthy time, a router that takes any weight, and metrics scripted by a scenario.
//! Pure: time only moves when the engine asks to be woken, so a 15-minute canary plays in
//! well under a millisecond. `deploy --simulate` and the engine's tests use it.

use serde::Serialize;

use super::analysis::{MetricSpec, Reading, Sample};
use super::engine::{Decision, Effect, Engine, Event, Input, Millis, State};
use super::script::Track;

/// How the simulated canary behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Every metric well within its bounds.
    Healthy,
    /// Every metric outside its bounds (a success rate of 95 %, 5 % errors, a slow p99).
    Failing,
    /// No traffic reaches the canary: no request count, no metric data.
    NoData,
}

/// The simulated world.
#[derive(Debug, Clone)]
pub struct World {
    pub scenario: Scenario,
    /// Seconds a track's workload takes to be ready after a deploy.
    pub ready_stable: u64,
    pub ready_canary: u64,
    /// Requests the canary serves per interval at 100 % (scaled by the weight).
    pub requests_at_full: f64,
    pub weight: u8,
    /// Green is checked through a preview of its own (a blue-green): it serves the checks'
    /// requests before any production weight, as at 100 %.
    pub preview: bool,
    /// The tracks whose workload runs the new revision and is ready. Deploying a ready track
    /// again is instant (the apply changes nothing), as on a real platform.
    pub ready: Vec<Track>,
}

impl World {
    pub fn new(scenario: Scenario, ready_stable: u64, ready_canary: u64) -> Self {
        Self {
            scenario,
            ready_stable,
            ready_canary,
            requests_at_full: 20_000.0,
            weight: 0,
            preview: false,
            ready: Vec::new(),
        }
    }

    /// The value a metric shows in this scenario: inside its bounds with a margin, or
    /// outside them.
    /// A metric with relative bounds reads the stable track too: the healthy value, which
    /// a healthy canary matches and a failing one leaves by twice its bounds.
    fn sample(&self, m: &MetricSpec) -> Reading {
        let healthy = match (m.min, m.max) {
            (Some(lo), Some(hi)) => f64::midpoint(lo, hi),
            (Some(lo), None) => lo + (100.0 - lo).max(0.0) * 0.9,
            (None, Some(hi)) => hi * 0.3,
            (None, None) => 100.0,
        };
        let r = &m.relative;
        let stable = (!r.is_none()).then_some(healthy);
        let canary = match self.scenario {
            Scenario::Healthy => Sample::Value(round(healthy)),
            Scenario::NoData => Sample::NoData,
            Scenario::Failing => Sample::Value(round(match (m.min, m.max) {
                (Some(lo), _) => lo - 4.0,
                (None, Some(hi)) if hi <= 5.0 => 5.0,
                (None, Some(hi)) => hi * 1.3,
                (None, None) if r.max_ratio.is_some() || r.max_delta.is_some() => {
                    healthy * r.max_ratio.unwrap_or(1.0) * 2.0
                        + r.max_delta.unwrap_or(0.0).abs()
                        + 1.0
                }
                (None, None) => {
                    healthy * r.min_ratio.unwrap_or(1.0) / 2.0
                        - r.min_delta.unwrap_or(0.0).abs()
                        - 1.0
                }
            })),
        };
        Reading {
            canary,
            stable: stable.map(|s| match self.scenario {
                Scenario::NoData => Sample::NoData,
                _ => Sample::Value(round(s)),
            }),
        }
    }

    fn requests(&self, interval_secs: u64) -> Sample {
        match self.scenario {
            Scenario::NoData => Sample::Value(0.0),
            _ => Sample::Value(
                (self.requests_at_full * f64::from(if self.preview { 100 } else { self.weight })
                    / 100.0
                    * (f64::from(u32::try_from(interval_secs.max(60)).unwrap_or(u32::MAX)) / 60.0))
                    .round(),
            ),
        }
    }

    /// Runs one effect: how long it takes, and what it answers.
    fn run(&mut self, effect: Effect, metrics: &[MetricSpec], interval: u64) -> (u64, Input) {
        match effect {
            Effect::Deploy(t) => {
                let took = if self.ready.contains(&t) {
                    0
                } else {
                    self.ready.push(t);
                    match t {
                        Track::Stable => self.ready_stable,
                        Track::Canary => self.ready_canary,
                    }
                };
                (took * 1000, Input::Done(Ok(())))
            }
            Effect::SetWeight(w) => {
                self.weight = w;
                (0, Input::Done(Ok(())))
            }
            Effect::ScaleDown(t) => {
                self.ready.retain(|r| *r != t);
                (0, Input::Done(Ok(())))
            }
            Effect::Measure { .. } => (
                0,
                Input::Measured {
                    readings: metrics.iter().map(|m| self.sample(m)).collect(),
                    probes: Vec::new(),
                    requests: Some(self.requests(interval)),
                },
            ),
        }
    }
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// What a play did: every event and effect with its virtual time.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    pub events: Vec<(Millis, Event)>,
    pub effects: Vec<(Millis, Effect)>,
    /// The states saved, in order.
    pub saves: Vec<State>,
    /// The virtual time the play stopped at.
    pub ended_at: Millis,
    /// Stopped at a manual gate.
    pub paused: bool,
}

/// Plays `first` and whatever follows, until the rollout ends or waits at a manual gate, or
/// `max_decisions` is reached (for cutting a run short in tests).
pub fn play(
    engine: &Engine<'_>,
    state: &mut State,
    world: &mut World,
    first: Input,
    start: Millis,
    max_decisions: usize,
) -> Transcript {
    let mut t = Transcript::default();
    let mut now = start;
    let mut input = first;
    for _ in 0..max_decisions {
        let d: Decision = engine.step(state, input, now);
        t.events.extend(d.events.iter().cloned().map(|e| (now, e)));
        if let Some(s) = d.save {
            t.saves.push(s);
        }
        if d.paused {
            t.paused = true;
            break;
        }
        if let Some(effect) = d.effects.first().copied() {
            t.effects.push((now, effect));
            let (took, answer) = world.run(
                effect,
                &engine.analysis.metrics,
                engine.script.timing.interval,
            );
            now += took;
            input = answer;
        } else if let Some(wake) = d.wake_at {
            now = now.max(wake);
            input = Input::Tick;
        } else {
            break;
        }
    }
    t.ended_at = now;
    t
}
