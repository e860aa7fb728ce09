//! What platforms report and how their calls fail: the vocabulary of the platform boundary,
//! shared by every strategy and every platform (ECS, Kubernetes, the simulator). A leaf
//! module: it imports nothing of the crate, so strategies and platforms both depend on it and
//! never on each other.

use serde::Serialize;

/// The rollout state of one deployment, as the platform reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rollout {
    InProgress,
    Completed,
    Failed,
}

/// One deployment of a service (an ECS deployment, a Kubernetes `ReplicaSet` rollout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentView {
    pub id: String,
    /// The revision it deploys (task definition ARN, pod template hash).
    pub revision: String,
    pub rollout: Rollout,
    pub reason: Option<String>,
    /// The newest deployment (ECS `PRIMARY`).
    pub primary: bool,
    /// When `rollout` is `Failed`: whether the platform rolled back on its own (the ECS
    /// circuit breaker does; a Kubernetes Deployment past its deadline does not).
    pub rolled_back: bool,
    pub desired: u32,
    pub running: u32,
    pub pending: u32,
    pub failed: u32,
}

/// A service as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceView {
    pub name: String,
    /// The revision the service is set to run; empty when it does not exist yet (a first
    /// Kubernetes deploy creates the Deployment).
    pub revision: String,
    pub deployments: Vec<DeploymentView>,
    /// Service events, newest first, with their time in seconds since the Unix epoch.
    pub events: Vec<ServiceEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceEvent {
    pub at: i64,
    pub message: String,
}

/// A task or pod that stopped (or will not start), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoppedTask {
    /// What it is, as the report names it: `stopped task` (ECS), `pod`, `ReplicaSet`.
    pub what: String,
    pub id: String,
    pub reason: String,
    pub stop_code: Option<String>,
    /// Per container: name, exit code, reason.
    pub containers: Vec<(String, Option<i32>, Option<String>)>,
}

impl StoppedTask {
    /// One line: what, id, reason, stop code, and each container's exit code and reason.
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let t = self;
        let containers: Vec<String> = t
            .containers
            .iter()
            .map(|(name, code, reason)| {
                let mut s = name.clone();
                if let Some(c) = code {
                    let _ = write!(s, " exit {c}");
                }
                if let Some(r) = reason {
                    let _ = write!(s, " ({r})");
                }
                s
            })
            .collect();
        format!(
            "{} {}: {}{}{}",
            t.what,
            t.id,
            t.reason,
            t.stop_code
                .as_ref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default(),
            if containers.is_empty() {
                String::new()
            } else {
                format!("; {}", containers.join(", "))
            }
        )
    }
}

/// Why an effect failed, as the strategies need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Rate limited: retry with back-off.
    Throttled,
    /// A 5xx, a timeout or a dropped connection: retry.
    Transient,
    /// The endpoint cannot be reached at all (connection refused, no such host): retrying
    /// would only wait, so do not.
    Unreachable,
    /// Access denied, expired credentials: do not retry.
    Permission,
    /// The cluster, service or revision does not exist.
    NotFound,
    /// The platform rejected the request as invalid.
    Invalid,
    /// Someone else changed the object since it was read (an optimistic-concurrency check
    /// failed): read it again, do not retry blindly.
    Conflict,
}

impl ErrorKind {
    pub fn retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct PlatformError {
    pub kind: ErrorKind,
    pub operation: String,
    pub message: String,
}

impl PlatformError {
    /// `message` is what the platform said, with the process's secrets blanked
    /// ([`crate::report::scrub`]): an AWS or Kubernetes error may echo a value it was sent.
    pub fn new(kind: ErrorKind, operation: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            operation: operation.into(),
            message: crate::report::scrub(&message.into()),
        }
    }
}
