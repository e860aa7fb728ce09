//! A rolling deploy of one service as a pure state machine.
//!
//! The machine is fed [`Input`]s (what the platform said, what a command returned, a
//! cancellation) together with the time since the deploy started, and answers with a
//! [`Step`]: the [`Command`]s the driver must run next and the [`Event`]s reporters show. It
//! never reads a clock, sleeps, or talks to anything; that is what lets a 10-minute rollout
//! run in the simulator in milliseconds, and every fault be injected.
//!
//! The same vocabulary (prepare, register, update, observe, diagnose, clean up) fits ECS
//! (register a task definition revision, `UpdateService`, `DescribeServices`) and Kubernetes
//! (server-side apply, Deployment status), and blue-green and canary add their own commands
//! (traffic weights, metric checks) beside these without reshaping them.

use std::time::Duration;

use serde::Serialize;

pub use crate::platform::observation::{
    DeploymentView, ErrorKind, PlatformError, Rollout, ServiceEvent, ServiceView, StoppedTask,
};

/// What to do when the deploy is cancelled (SIGINT, SIGTERM, a cancelled workflow).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum CancelPolicy {
    /// Put the service back on the revision it ran before (the default).
    #[default]
    Rollback,
    /// Leave the deployment going; the platform finishes or rolls it back on its own.
    Leave,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Fail when the rollout makes no progress (no more tasks running, no new rollout state)
    /// for this long.
    pub progress_deadline: Duration,
    /// Revisions to keep when cleaning up.
    pub keep_revisions: u32,
    pub on_cancel: CancelPolicy,
    /// Do not wait for the rollout: succeed once it is started.
    pub no_wait: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The service as it is, and whether the rendered revision and settings differ from it.
    Prepared {
        service: ServiceView,
        definition_changed: bool,
        settings_changed: bool,
    },
    /// The new revision is registered.
    Registered {
        revision: String,
    },
    /// The service update was accepted; the new deployment's id when the platform said it.
    Updated {
        deployment: Option<String>,
    },
    /// Auto scaling applied.
    ScalingApplied,
    Observed(ServiceView),
    /// Stopped tasks of the failed deployment.
    Diagnosed {
        stopped: Vec<StoppedTask>,
    },
    CleanedUp {
        deregistered: Vec<String>,
    },
    /// The last command failed for good (the driver retried what could be retried).
    CommandFailed(PlatformError),
    Cancel,
    /// The deploy's overall time limit passed.
    TimedOut,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Read the service and compare the rendered revision and settings with it.
    Prepare,
    /// Register the rendered revision.
    Register,
    /// Point the service at `revision` with the rendered settings.
    Update {
        revision: String,
    },
    ApplyScaling,
    /// Observe the service after one poll interval.
    Observe,
    /// Collect stopped tasks (and events) of the deployment, for the failure report.
    Diagnose {
        deployment: String,
    },
    /// Deregister old revisions no service uses, keeping this many.
    CleanUp {
        keep: u32,
    },
    /// Put the service back on `revision` (cancellation).
    Revert {
        revision: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Preparing,
    Registering,
    Updating,
    RollingOut,
    Diagnosing,
    CleaningUp,
    Reverting,
    Done,
}

/// Why a rollout failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Failure {
    /// The platform gave up on it and rolled back (ECS circuit breaker, `CodeDeploy`).
    RolledBack { reason: String },
    /// The platform gave up on it and left it as it is (Kubernetes `ProgressDeadlineExceeded`).
    Stalled { reason: String },
    /// No progress for the progress deadline.
    DeadlineExceeded { after: u64 },
    /// Someone else's deployment replaced ours; `by` is the revision the primary deployment
    /// now deploys.
    Superseded { by: String },
    /// An effect failed for good.
    Platform(PlatformError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Outcome {
    /// Nothing differed: nothing registered, no deployment started.
    NoChange { revision: String },
    /// Rolled out (or, with no-wait, started).
    Succeeded { revision: String, waited: bool },
    Failed {
        failure: Failure,
        /// Service events since the deploy started, and stopped tasks' reasons.
        details: Vec<String>,
    },
    Cancelled {
        /// The revision the service was put back on, under the rollback policy.
        reverted_to: Option<String>,
    },
}

impl Outcome {
    /// The process exit code this outcome maps to.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::NoChange { .. } | Outcome::Succeeded { .. } => 0,
            Outcome::Failed {
                failure: Failure::Platform(e),
                ..
            } if !matches!(e.kind, ErrorKind::Invalid) => 3,
            Outcome::Failed {
                failure: Failure::Platform(_),
                ..
            } => 2,
            Outcome::Failed { .. } => 1,
            Outcome::Cancelled { .. } => 130,
        }
    }
}

/// What reporters see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum Event {
    Phase {
        phase: Phase,
    },
    NoChange,
    Registered {
        revision: String,
    },
    DeploymentStarted {
        id: Option<String>,
    },
    Progress {
        running: u32,
        pending: u32,
        desired: u32,
        failed: u32,
    },
    ServiceEvent {
        message: String,
    },
    /// A call failed in a way worth another try; the driver tries again after `delay`.
    Retrying {
        operation: String,
        message: String,
        delay: std::time::Duration,
        attempt: u32,
        of: u32,
    },
    Finished {
        outcome: Outcome,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub commands: Vec<Command>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Start,
    Preparing,
    Registering {
        previous: String,
    },
    Updating {
        previous: String,
        revision: String,
    },
    ApplyingScaling {
        previous: String,
        revision: String,
        deployment: Option<String>,
    },
    Waiting {
        previous: String,
        revision: String,
        deployment: Option<String>,
        last_change: Duration,
        last_seen: Option<(Rollout, u32, u32, u32)>,
    },
    Diagnosing {
        failure: Failure,
        details: Vec<String>,
    },
    CleaningUp {
        outcome: Outcome,
    },
    /// Putting the service back on `previous`: after a cancellation (`failure: None`), or
    /// after a platform failure once the service was updated (the failure, reported with
    /// where the service ended).
    Reverting {
        previous: String,
        failure: Option<(Failure, Vec<String>)>,
    },
    Done(Outcome),
}

/// One service's rolling deploy.
#[derive(Debug, Clone)]
pub struct Rolling {
    pub service: String,
    settings: Settings,
    state: State,
    /// Unix time (seconds) the deploy started: service events before it are not ours.
    started_unix: i64,
    /// Events already reported.
    seen_events: usize,
    /// For `rollback`: the revision to put the service on, instead of a new one.
    target: Option<String>,
}

impl Rolling {
    pub fn new(service: impl Into<String>, settings: Settings, started_unix: i64) -> Self {
        Self {
            service: service.into(),
            settings,
            state: State::Start,
            started_unix,
            seen_events: 0,
            target: None,
        }
    }

    /// A rollout to an existing revision (`rollback`): no registration.
    #[must_use]
    pub fn with_target(mut self, revision: impl Into<String>) -> Self {
        self.target = Some(revision.into());
        self
    }

    /// The first commands: read the service.
    pub fn start(&mut self) -> Step {
        self.state = State::Preparing;
        Step {
            commands: vec![Command::Prepare],
            events: vec![Event::Phase {
                phase: Phase::Preparing,
            }],
        }
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.state {
            State::Done(o) => Some(o),
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// Feeds one input at `now` (time since the deploy started).
    #[allow(clippy::needless_pass_by_value)]
    pub fn step(&mut self, input: Input, now: Duration) -> Step {
        let state = std::mem::replace(&mut self.state, State::Start);
        let (state, step) = self.transition(state, input, now);
        self.state = state;
        step
    }

    fn finish(outcome: Outcome) -> (State, Step) {
        let events = vec![
            Event::Phase { phase: Phase::Done },
            Event::Finished {
                outcome: outcome.clone(),
            },
        ];
        (
            State::Done(outcome),
            Step {
                commands: vec![],
                events,
            },
        )
    }

    fn observe(state: State) -> (State, Step) {
        (
            state,
            Step {
                commands: vec![Command::Observe],
                events: vec![],
            },
        )
    }

    fn diagnose(
        failure: Failure,
        details: Vec<String>,
        deployment: Option<String>,
    ) -> (State, Step) {
        match deployment {
            Some(id) => (
                State::Diagnosing { failure, details },
                Step {
                    commands: vec![Command::Diagnose { deployment: id }],
                    events: vec![Event::Phase {
                        phase: Phase::Diagnosing,
                    }],
                },
            ),
            None => Self::finish(Outcome::Failed { failure, details }),
        }
    }

    fn transition(&mut self, state: State, input: Input, now: Duration) -> (State, Step) {
        // Cancellation first: what it means depends on how far we got.
        if input == Input::Cancel {
            return self.cancel(state);
        }
        if input == Input::TimedOut {
            let failure = Failure::DeadlineExceeded {
                after: now.as_secs(),
            };
            return match state {
                State::Waiting { deployment, .. } => Self::diagnose(
                    failure,
                    vec![format!(
                        "the deploy's time limit ({}s) passed",
                        now.as_secs()
                    )],
                    deployment,
                ),
                State::Done(o) => (State::Done(o), Step::default()),
                _ => Self::finish(Outcome::Failed {
                    failure,
                    details: vec![format!(
                        "the deploy's time limit ({}s) passed",
                        now.as_secs()
                    )],
                }),
            };
        }
        match (state, input) {
            (
                State::Preparing,
                Input::Prepared {
                    service,
                    definition_changed,
                    settings_changed,
                },
            ) => {
                self.seen_events = 0;
                let previous = service.revision.clone();
                if let Some(target) = self.target.clone().filter(|t| *t != previous) {
                    return (
                        State::Updating {
                            previous,
                            revision: target.clone(),
                        },
                        Step {
                            commands: vec![Command::Update { revision: target }],
                            events: vec![Event::Phase {
                                phase: Phase::Updating,
                            }],
                        },
                    );
                }
                if self.target.is_some() {
                    let (state, mut step) = Self::finish(Outcome::NoChange { revision: previous });
                    step.events.insert(0, Event::NoChange);
                    return (state, step);
                }
                if definition_changed {
                    (
                        State::Registering { previous },
                        Step {
                            commands: vec![Command::Register],
                            events: vec![Event::Phase {
                                phase: Phase::Registering,
                            }],
                        },
                    )
                } else if settings_changed {
                    (
                        State::Updating {
                            previous: previous.clone(),
                            revision: previous.clone(),
                        },
                        Step {
                            commands: vec![Command::Update { revision: previous }],
                            events: vec![Event::Phase {
                                phase: Phase::Updating,
                            }],
                        },
                    )
                } else {
                    let (state, mut step) = Self::finish(Outcome::NoChange { revision: previous });
                    step.events.insert(0, Event::NoChange);
                    (state, step)
                }
            }
            (State::Registering { previous }, Input::Registered { revision }) => (
                State::Updating {
                    previous,
                    revision: revision.clone(),
                },
                Step {
                    commands: vec![Command::Update {
                        revision: revision.clone(),
                    }],
                    events: vec![
                        Event::Registered { revision },
                        Event::Phase {
                            phase: Phase::Updating,
                        },
                    ],
                },
            ),
            (State::Updating { previous, revision }, Input::Updated { deployment }) => (
                State::ApplyingScaling {
                    previous,
                    revision,
                    deployment: deployment.clone(),
                },
                Step {
                    commands: vec![Command::ApplyScaling],
                    events: vec![Event::DeploymentStarted { id: deployment }],
                },
            ),
            (
                State::ApplyingScaling {
                    previous,
                    revision,
                    deployment,
                },
                Input::ScalingApplied,
            ) => {
                if self.settings.no_wait {
                    // The service points at the new revision: old ones can go even unwaited.
                    return (
                        State::CleaningUp {
                            outcome: Outcome::Succeeded {
                                revision,
                                waited: false,
                            },
                        },
                        Step {
                            commands: vec![Command::CleanUp {
                                keep: self.settings.keep_revisions,
                            }],
                            events: vec![Event::Phase {
                                phase: Phase::CleaningUp,
                            }],
                        },
                    );
                }
                let (state, mut step) = Self::observe(State::Waiting {
                    previous,
                    revision,
                    deployment,
                    last_change: now,
                    last_seen: None,
                });
                step.events.push(Event::Phase {
                    phase: Phase::RollingOut,
                });
                (state, step)
            }
            (
                State::Waiting {
                    previous,
                    revision,
                    deployment,
                    last_change,
                    last_seen,
                },
                Input::Observed(service),
            ) => self.on_observed(
                &service,
                previous,
                revision,
                deployment,
                last_change,
                last_seen,
                now,
            ),
            (
                State::Diagnosing {
                    failure,
                    mut details,
                },
                Input::Diagnosed { stopped },
            ) => {
                details.extend(stopped.iter().map(StoppedTask::describe));
                Self::finish(Outcome::Failed { failure, details })
            }
            // A failed diagnosis must not hide the failure it was diagnosing.
            (
                State::Diagnosing {
                    failure,
                    mut details,
                },
                Input::CommandFailed(e),
            ) => {
                details.push(format!("(could not read the failure's reasons: {e})"));
                Self::finish(Outcome::Failed { failure, details })
            }
            // Cleaning up is housekeeping: its failure does not fail a successful deploy.
            (State::CleaningUp { outcome }, Input::CleanedUp { .. } | Input::CommandFailed(_)) => {
                Self::finish(outcome)
            }
            (
                State::Reverting {
                    previous,
                    failure: None,
                },
                Input::Updated { .. },
            ) => Self::finish(Outcome::Cancelled {
                reverted_to: Some(previous),
            }),
            (State::Reverting { failure: None, .. }, Input::CommandFailed(e)) => {
                Self::finish(Outcome::Failed {
                    failure: Failure::Platform(e),
                    details: vec![
                        "cancelled, and putting the service back on its previous revision failed"
                            .into(),
                    ],
                })
            }
            (
                State::Reverting {
                    previous,
                    failure: Some((failure, mut details)),
                },
                Input::Updated { .. },
            ) => {
                details.push(format!(
                    "the service was put back on its previous revision {previous}"
                ));
                Self::finish(Outcome::Failed { failure, details })
            }
            (
                State::Reverting {
                    previous,
                    failure: Some((failure, mut details)),
                },
                Input::CommandFailed(e),
            ) => {
                details.push(format!(
                    "putting the service back on its previous revision {previous} failed too: {e}"
                ));
                Self::finish(Outcome::Failed { failure, details })
            }
            // A platform failure once the service points at the new revision: the deploy
            // stops, so the service goes back to what it ran (a first deploy, or a settings
            // change on the same revision, has nothing to go back to).
            (
                State::ApplyingScaling {
                    previous, revision, ..
                }
                | State::Waiting {
                    previous, revision, ..
                },
                Input::CommandFailed(e),
            ) if previous != revision && !previous.is_empty() => (
                State::Reverting {
                    previous: previous.clone(),
                    failure: Some((Failure::Platform(e), vec![])),
                },
                Step {
                    commands: vec![Command::Revert { revision: previous }],
                    events: vec![Event::Phase {
                        phase: Phase::Reverting,
                    }],
                },
            ),
            (State::Waiting { deployment, .. }, Input::CommandFailed(e)) => {
                Self::diagnose(Failure::Platform(e), vec![], deployment)
            }
            (_, Input::CommandFailed(e)) => Self::finish(Outcome::Failed {
                failure: Failure::Platform(e),
                details: vec![],
            }),
            (State::Done(o), _) => (State::Done(o), Step::default()),
            // An input that does not fit the state is a driver bug; stay put, say nothing.
            (state, _) => (state, Step::default()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_observed(
        &mut self,
        service: &ServiceView,
        previous: String,
        revision: String,
        deployment: Option<String>,
        last_change: Duration,
        last_seen: Option<(Rollout, u32, u32, u32)>,
        now: Duration,
    ) -> (State, Step) {
        let mut events: Vec<Event> = Vec::new();
        // New service events since the deploy started, oldest first.
        let ours: Vec<&ServiceEvent> = service
            .events
            .iter()
            .filter(|e| e.at >= self.started_unix)
            .collect();
        if ours.len() > self.seen_events {
            for e in ours[..ours.len() - self.seen_events].iter().rev() {
                events.push(Event::ServiceEvent {
                    message: e.message.clone(),
                });
            }
            self.seen_events = ours.len();
        }
        let details = || -> Vec<String> {
            ours.iter()
                .rev()
                .map(|e| format!("service event: {}", e.message))
                .collect()
        };
        // Our deployment: by id when the platform gave one, otherwise the one deploying our
        // revision.
        let mine = service.deployments.iter().find(|d| match &deployment {
            Some(id) => &d.id == id,
            None => d.revision == revision && d.primary,
        });
        let Some(mine) = mine else {
            if deployment.is_none()
                && service.revision == revision
                && now.saturating_sub(last_change) < self.settings.progress_deadline
            {
                // The service is set to our revision and the platform has not started the
                // deployment yet (a Kubernetes controller creates the ReplicaSet just after
                // the apply): look again; the progress deadline still bounds the wait.
                let (state, mut step) = Self::observe(State::Waiting {
                    previous,
                    revision,
                    deployment,
                    last_change,
                    last_seen,
                });
                step.events.splice(0..0, events);
                return (state, step);
            }
            let primary = service.deployments.iter().find(|d| d.primary);
            let by = primary.map_or_else(|| service.revision.clone(), |d| d.revision.clone());
            // Ours is gone and the service is back on the revision it ran before: the
            // platform rolled ours back (ECS removes a circuit breaker's failed deployment
            // once its rollback is under way). Anything else replaced it.
            let failure = if by == previous && by != revision {
                Failure::RolledBack {
                    reason: primary
                        .and_then(|d| d.reason.clone())
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| {
                            format!("the platform rolled the deployment back to {previous}")
                        }),
                }
            } else {
                Failure::Superseded { by }
            };
            let (state, mut step) = Self::finish(Outcome::Failed {
                failure,
                details: details(),
            });
            step.events.splice(0..0, events);
            return (state, step);
        };
        let seen = (mine.rollout, mine.running, mine.pending, mine.failed);
        if last_seen != Some(seen) {
            events.push(Event::Progress {
                running: mine.running,
                pending: mine.pending,
                desired: mine.desired,
                failed: mine.failed,
            });
        }
        // Progress is more tasks running or a new rollout state, as Kubernetes counts it:
        // tasks that keep failing and restarting are not progress.
        let progressed = last_seen.is_none_or(|(rollout, running, _, _)| {
            rollout != mine.rollout || mine.running > running
        });
        let last_change = if progressed { now } else { last_change };
        let id = mine.id.clone();
        let (state, mut step) = match mine.rollout {
            Rollout::Completed => (
                State::CleaningUp {
                    outcome: Outcome::Succeeded {
                        revision: revision.clone(),
                        waited: true,
                    },
                },
                Step {
                    commands: vec![Command::CleanUp {
                        keep: self.settings.keep_revisions,
                    }],
                    events: vec![Event::Phase {
                        phase: Phase::CleaningUp,
                    }],
                },
            ),
            Rollout::Failed => {
                let reason = mine
                    .reason
                    .clone()
                    .unwrap_or_else(|| "the platform marked the deployment failed".into());
                let failure = if mine.rolled_back {
                    Failure::RolledBack { reason }
                } else {
                    Failure::Stalled { reason }
                };
                Self::diagnose(failure, details(), Some(id))
            }
            Rollout::InProgress
                if now.saturating_sub(last_change) >= self.settings.progress_deadline =>
            {
                let mut d = details();
                d.insert(
                    0,
                    format!(
                        "last seen: {} running, {} pending of {} desired, {} failed task(s)",
                        mine.running, mine.pending, mine.desired, mine.failed
                    ),
                );
                Self::diagnose(
                    Failure::DeadlineExceeded {
                        after: self.settings.progress_deadline.as_secs(),
                    },
                    d,
                    Some(id),
                )
            }
            Rollout::InProgress => Self::observe(State::Waiting {
                previous,
                revision,
                deployment,
                last_change,
                last_seen: Some(seen),
            }),
        };
        step.events.splice(0..0, events);
        (state, step)
    }

    fn cancel(&mut self, state: State) -> (State, Step) {
        let revert = |previous: String, policy: CancelPolicy| -> (State, Step) {
            match policy {
                CancelPolicy::Rollback => (
                    State::Reverting {
                        previous: previous.clone(),
                        failure: None,
                    },
                    Step {
                        commands: vec![Command::Revert { revision: previous }],
                        events: vec![Event::Phase {
                            phase: Phase::Reverting,
                        }],
                    },
                ),
                CancelPolicy::Leave => Self::finish(Outcome::Cancelled { reverted_to: None }),
            }
        };
        match state {
            // Nothing was changed on the service yet.
            State::Start | State::Preparing | State::Registering { .. } => {
                Self::finish(Outcome::Cancelled { reverted_to: None })
            }
            // The update may have gone through: put the service back.
            State::Updating { previous, revision }
            | State::ApplyingScaling {
                previous, revision, ..
            }
            | State::Waiting {
                previous, revision, ..
            } => {
                // Same revision (a settings change), or a first deploy: nothing to go back to.
                if previous == revision || previous.is_empty() {
                    Self::finish(Outcome::Cancelled { reverted_to: None })
                } else {
                    revert(previous, self.settings.on_cancel)
                }
            }
            // Already failed or done: finish what we were doing.
            State::Diagnosing { failure, details } => {
                Self::finish(Outcome::Failed { failure, details })
            }
            State::CleaningUp { outcome } => Self::finish(outcome),
            s @ (State::Reverting { .. } | State::Done(_)) => (s, Step::default()),
        }
    }
}
