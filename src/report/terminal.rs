//! The terminal reporter. On an interactive terminal: a live line per service (phase, running /
//! pending / desired, elapsed) with events printed above it. Elsewhere (CI, a pipe): one plain
//! line per event, timestamped from the start, so logs read well and diff well.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::strategy::rolling::{Event, Failure, Outcome, Phase};

/// Which platform's words the lines use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    Ecs,
    Kubernetes,
}

pub struct Terminal {
    env: String,
    words: Vocabulary,
    live: Option<(MultiProgress, BTreeMap<String, ProgressBar>)>,
    lines: Vec<String>,
    /// In GitHub Actions: a `::group::` per phase is open.
    group_open: bool,
    /// Also keep the lines (for tests and the job summary later).
    pub capture: bool,
}

impl Terminal {
    /// Live progress when stderr is a terminal and not in CI.
    pub fn new(env: &str, words: Vocabulary) -> Self {
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Self {
            env: env.to_owned(),
            words,
            live: interactive.then(|| {
                (
                    MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                    BTreeMap::new(),
                )
            }),
            lines: Vec::new(),
            group_open: false,
            capture: false,
        }
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    fn say(&mut self, line: &str) {
        if self.capture {
            self.lines.push(line.to_owned());
        }
        match &self.live {
            Some((multi, _)) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn bar(&mut self, service: &str) -> Option<&ProgressBar> {
        let (multi, bars) = self.live.as_mut()?;
        Some(bars.entry(service.to_owned()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
                    .expect("a valid template"),
            );
            bar.set_prefix(service.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }))
    }

    pub fn event(&mut self, service: &str, at: Duration, event: &Event) {
        let stamp = format!("[{:>5}s] {}/{service}", at.as_secs(), self.env);
        let line = match event {
            Event::Phase { phase } => {
                let words = self.words;
                if let Some(bar) = self.bar(service) {
                    bar.set_message(phase_text(*phase, words).to_owned());
                }
                // In Actions, each phase's lines fold under a group named by the phase.
                if self.live.is_none() && crate::report::in_actions() {
                    if self.group_open {
                        eprintln!("::endgroup::");
                        self.group_open = false;
                    }
                    if *phase != Phase::Done {
                        eprintln!(
                            "::group::{}/{service}: {}",
                            self.env,
                            phase_text(*phase, words)
                        );
                        self.group_open = true;
                    }
                }
                match phase {
                    Phase::Done => return,
                    p => format!("{stamp}: {}", phase_text(*p, words)),
                }
            }
            Event::NoChange => match self.words {
                Vocabulary::Ecs => format!(
                    "{stamp}: no change: the task definition and the service settings are as rendered; nothing registered, no deployment started"
                ),
                Vocabulary::Kubernetes => format!(
                    "{stamp}: no change: the server's dry run of every manifest matches the live objects; nothing applied, no rollout started"
                ),
            },
            Event::Registered { revision } => match self.words {
                Vocabulary::Ecs => format!("{stamp}: registered {revision}"),
                Vocabulary::Kubernetes => {
                    format!("{stamp}: new pod template revision {revision}")
                }
            },
            Event::DeploymentStarted { id } => match (self.words, id) {
                (Vocabulary::Kubernetes, _) => format!("{stamp}: applied; rollout started"),
                (Vocabulary::Ecs, id) => format!(
                    "{stamp}: deployment {} started",
                    id.as_deref().unwrap_or("(id not reported)")
                ),
            },
            Event::Progress {
                running,
                pending,
                desired,
                failed,
            } => {
                let text =
                    format!("{running}/{desired} running, {pending} pending, {failed} failed");
                if let Some(bar) = self.bar(service) {
                    bar.set_message(format!("rolling out: {text}"));
                }
                format!("{stamp}: {text}")
            }
            Event::ServiceEvent { message } => format!("{stamp}: event: {message}"),
            Event::Retrying {
                operation,
                message,
                delay,
                attempt,
                of,
            } => format!(
                "{stamp}: retrying in {} ({attempt}/{of}): {operation}: {message}",
                wait(*delay)
            ),
            Event::Finished { outcome } => {
                if let Some(bar) = self.bar(service) {
                    bar.finish_and_clear();
                }
                format!("{stamp}: {}", outcome_text(outcome))
            }
        };
        self.say(&line);
    }
}

fn phase_text(p: Phase, words: Vocabulary) -> &'static str {
    match (p, words) {
        (Phase::Preparing, Vocabulary::Ecs) => {
            "reading the service and comparing it with the rendered task definition"
        }
        (Phase::Preparing, Vocabulary::Kubernetes) => {
            "dry-running every manifest on the API server and comparing with the live objects"
        }
        (Phase::Registering, Vocabulary::Ecs) => "registering the new task definition revision",
        (Phase::Registering, Vocabulary::Kubernetes) => {
            "naming the new pod template revision (server dry run)"
        }
        (Phase::Updating, Vocabulary::Ecs) => "updating the service",
        (Phase::Updating, Vocabulary::Kubernetes) => "applying the manifests (server-side apply)",
        (Phase::RollingOut, _) => "waiting for this deployment to complete",
        (Phase::Diagnosing, Vocabulary::Ecs) => {
            "collecting the failure's reasons (events, stopped tasks)"
        }
        (Phase::Diagnosing, Vocabulary::Kubernetes) => {
            "collecting the failure's reasons (pods, events)"
        }
        (Phase::CleaningUp, Vocabulary::Ecs) => "deregistering old task definition revisions",
        (Phase::CleaningUp, Vocabulary::Kubernetes) => {
            "finishing (old ReplicaSets are pruned by revisionHistoryLimit)"
        }
        (Phase::Reverting, _) => "cancelled: putting the service back on its previous revision",
        (Phase::Done, _) => "done",
    }
}

/// One line saying how it ended.
pub fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::NoChange { revision } => format!("no change, still on {revision}"),
        Outcome::Succeeded { revision, waited: true } => format!("deployed {revision}"),
        Outcome::Succeeded { revision, waited: false } => format!("deployment of {revision} started (not waited for: --no-wait)"),
        // The call's error, with where it went and advice, ends the run: said once, there.
        Outcome::Failed { failure: Failure::Platform(e), .. } => format!("FAILED: {} failed (the error follows)", e.operation),
        Outcome::Failed { failure, .. } => format!("FAILED: {}", failure_text(failure)),
        Outcome::Cancelled { reverted_to: Some(r) } => format!("cancelled; the service was put back on {r}"),
        Outcome::Cancelled { reverted_to: None } => "cancelled; the service was not changed by this deploy, or was left as it was (on_cancel: leave)".into(),
    }
}

pub fn failure_text(f: &Failure) -> String {
    match f {
        Failure::RolledBack { reason } => {
            format!("the platform rolled the deployment back: {reason}")
        }
        Failure::Stalled { reason } => format!("the rollout stalled: {reason}"),
        Failure::DeadlineExceeded { after } => {
            format!("no progress within the deadline ({after}s)")
        }
        Failure::Superseded { by } => {
            format!(
                "another deployment replaced this one (the primary deployment now deploys {by})"
            )
        }
        Failure::Platform(e) => format!("{e}"),
    }
}

/// A back-off as messages say it: `2 s`, or `250 ms` when it is not whole seconds.
pub fn wait(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}
