//! A strategy compiled to a script of steps. One engine ([`super::engine`]) plays any script;
//! the plan's timeline ([`crate::strategy::timeline`]) walks the same script.
//!
//! - rolling: `Deploy(stable)`: the rolling machine ([`crate::strategy::rolling`]) is the
//!   workload step, on ECS and Kubernetes alike;
//! - canary: `Deploy(canary)`, then per weight `SetWeight(w)` and `Analyse`, then
//!   `Deploy(stable)` (promotion), `SetWeight(0)`, `ScaleDown(canary)`. Abort and cancel play
//!   [`Script::on_abort`]: `SetWeight(0)` first, then `ScaleDown(canary)`.

use serde::{Deserialize, Serialize};

use crate::config::{Canary, Environment, Strategy, Target};

/// Which workload a step acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Track {
    Stable,
    Canary,
}

impl std::fmt::Display for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Track::Stable => "stable",
            Track::Canary => "canary",
        })
    }
}

/// Where a rollout may wait for someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// Until `rollout promote`.
    Manual,
    /// This many seconds (or `rollout promote`, whichever comes first).
    Timed(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Roll the track's workload to the new revision and wait until it is ready. On the
    /// stable track this is the promotion (or, alone, a rolling deploy).
    Deploy(Track),
    /// Send this percentage of traffic to the canary.
    SetWeight(u8),
    /// Judge the canary on the metrics: the first check after the initial delay (on the
    /// first analysis) or one interval after the weight changed, then one every interval,
    /// until a check passes (next step) or the failed checks reach the threshold (abort).
    Analyse,
    /// Wait at a gate.
    Pause(Gate),
    /// Scale the track's workload to zero.
    ScaleDown(Track),
}

/// How checks are timed and counted (the analysis settings of deploy.yml, in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    pub initial_delay: u64,
    pub interval: u64,
    pub threshold: u32,
    /// Roll back when not promoted within this many seconds of the start (0: no limit).
    pub deadline: u64,
    /// Roll back when an analysis step has not passed within this many seconds of its first
    /// check (0: no limit; a blue-green's checks at Ready, bounded by its progress deadline).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step_deadline: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    pub strategy: String,
    pub steps: Vec<Step>,
    /// What abort and cancel play, in order (traffic first).
    pub on_abort: Vec<Step>,
    pub timing: Timing,
}

impl Script {
    /// A short hash of the steps and timing: a saved rollout resumes only on the same script.
    pub fn hash(&self) -> String {
        let text = serde_json::to_string(self).expect("a script serializes");
        crate::sha256_hex(text.as_bytes())[..12].to_owned()
    }

    /// The index of the promotion step (`Deploy(stable)`), if the script has one.
    pub fn promotion(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|s| *s == Step::Deploy(Track::Stable))
    }
}

/// The script of an environment's strategy.
pub fn compile(env: &Environment) -> Option<Script> {
    match &env.strategy {
        Strategy::Rolling(_) => Some(Script {
            strategy: "rolling".into(),
            steps: vec![Step::Deploy(Track::Stable)],
            on_abort: vec![],
            timing: Timing {
                initial_delay: 0,
                interval: 0,
                threshold: 0,
                deadline: 0,
                step_deadline: 0,
            },
        }),
        Strategy::Canary(c) => Some(canary(c)),
        Strategy::BlueGreen(b) if env.target == Target::Kubernetes => Some(blue_green_selector(b)),
        Strategy::BlueGreen(b) => Some(blue_green(b)),
    }
}

/// The blue-green script on Kubernetes, where we switch the traffic ourselves (DESIGN §2b's
/// "Service selector switch" router): green is a Deployment of its own beside blue.
/// - `Deploy(canary)`: green, until ready; the preview Service selects it;
/// - `Analyse` (the checks of green through the preview Service), `Pause(gate)`, as deploy.yml
///   asks;
/// - `SetWeight(100)`: the live Service's selector switches to green, all at once;
/// - `Pause(termination_wait)`: blue stays scaled (an abort switches back at once; `rollout
///   promote` ends the wait early);
/// - `ScaleDown(stable)`: blue to 0.
///
/// Abort and cancel play `SetWeight(0)` (the selector back on blue), then `ScaleDown(canary)`.
pub fn blue_green_selector(b: &crate::config::BlueGreen) -> Script {
    let mut script = blue_green(b);
    script.strategy = "blue-green".into();
    let wait = b.termination_wait.as_secs();
    if wait > 0 {
        let at = script.steps.len() - 1;
        script.steps.insert(at, Step::Pause(Gate::Timed(wait)));
    }
    script.on_abort = vec![Step::SetWeight(0), Step::ScaleDown(Track::Canary)];
    script
}

/// The blue-green script through `CodeDeploy`, which shifts the traffic itself: the steps
/// start and observe what the platform does (DESIGN §2b).
/// - `Deploy(canary)`: green, until `CodeDeploy` holds it at Ready (test traffic on the test
///   listener), or has finished on its own (a group without a Ready wait);
/// - `Pause(gate)` when deploy.yml asks for one;
/// - `SetWeight(100)`: `ContinueDeployment`, production traffic to green;
/// - `ScaleDown(stable)`: blue is kept for the termination wait (an abort then switches back
///   at once), then terminated: the deployment succeeds.
///
/// Abort and cancel play `SetWeight(0)`: `StopDeployment` with rollback, traffic on blue.
pub fn blue_green(b: &crate::config::BlueGreen) -> Script {
    let mut steps = vec![Step::Deploy(Track::Canary)];
    if b.analysis.is_some() {
        steps.push(Step::Analyse);
    }
    if let Some(g) = &b.gate {
        steps.push(Step::Pause(match g {
            crate::config::PauseGate::Manual => Gate::Manual,
            crate::config::PauseGate::Timed(d) => Gate::Timed(d.as_secs()),
        }));
    }
    steps.extend([Step::SetWeight(100), Step::ScaleDown(Track::Stable)]);
    Script {
        strategy: "blue-green".into(),
        steps,
        on_abort: vec![Step::SetWeight(0)],
        timing: b.analysis.as_ref().map_or(
            Timing {
                initial_delay: 0,
                interval: 0,
                threshold: 0,
                deadline: 0,
                step_deadline: 0,
            },
            |a| Timing {
                initial_delay: a.initial_delay.as_secs(),
                interval: a.interval.as_secs(),
                threshold: a.threshold,
                // A gate may wait for days: no overall limit. Checks that neither pass nor
                // fail (no data, too little test traffic) end at the progress deadline.
                deadline: 0,
                step_deadline: b.progress_deadline.as_secs(),
            },
        ),
    }
}

/// The canary script: Flagger's and Argo Rollouts' shape.
pub fn canary(c: &Canary) -> Script {
    let gate = |g: &crate::config::PauseGate| match g {
        crate::config::PauseGate::Manual => Gate::Manual,
        crate::config::PauseGate::Timed(d) => Gate::Timed(d.as_secs()),
    };
    let mut steps = vec![Step::Deploy(Track::Canary)];
    for s in c.schedule() {
        match s {
            crate::config::CanaryStep::Weight(w) => {
                steps.push(Step::SetWeight(w));
                steps.push(Step::Analyse);
            }
            crate::config::CanaryStep::Pause { pause } => steps.push(Step::Pause(gate(&pause))),
        }
    }
    if let Some(g) = &c.pause_before_promotion {
        steps.push(Step::Pause(gate(g)));
    }
    steps.extend([
        Step::Deploy(Track::Stable),
        Step::SetWeight(0),
        Step::ScaleDown(Track::Canary),
    ]);
    let a = &c.analysis;
    Script {
        strategy: "canary".into(),
        steps,
        on_abort: vec![Step::SetWeight(0), Step::ScaleDown(Track::Canary)],
        timing: Timing {
            initial_delay: a.initial_delay.as_secs(),
            interval: a.interval.as_secs(),
            threshold: a.threshold,
            deadline: c.deadline.as_secs(),
            step_deadline: 0,
        },
    }
}
