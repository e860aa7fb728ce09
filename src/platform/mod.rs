//! The effects boundary: what a strategy asks of a platform, and the implementations.
//!
//! - [`ecs`]: Amazon ECS and Application Auto Scaling through the AWS SDK.
//! - [`kubernetes`]: Kubernetes through kube-rs (server-side apply, Deployment rollouts).
//! - [`lease`]: where a rollout's lease is kept (a Kubernetes `Lease`, a `DynamoDB` item).
//! - [`sim`]: a deterministic simulator with scripted task health, delays, API errors and
//!   throttling, driven on tokio's clock (paused in tests, so minutes pass in microseconds).

pub mod ecs;
pub mod kubernetes;
pub mod lease;
pub mod observation;
pub mod sim;

use std::future::Future;

use serde_json::Value;

use observation::{ErrorKind, PlatformError, ServiceView, StoppedTask};

/// What a failed call's error chain says about the connection, when that is the cause: the
/// kind (a refused connection or an unknown host is [`ErrorKind::Unreachable`], missing or
/// unusable credentials [`ErrorKind::Permission`]) and one line of cause, taken from the
/// innermost error (`Connection refused (os error 111)`), never a debug dump.
pub fn connection_failure(e: &(dyn std::error::Error + 'static)) -> Option<(ErrorKind, String)> {
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    while let Some(next) = chain.last().and_then(|e| e.source()) {
        chain.push(next);
    }
    for e in &chain {
        if let Some(c) = e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
        {
            use aws_credential_types::provider::error::CredentialsError as C;
            let message = match c {
                C::CredentialsNotLoaded(_) => "no AWS credentials were found".to_owned(),
                other => format!(
                    "the AWS credentials could not be loaded: {}",
                    innermost(other)
                ),
            };
            return Some((ErrorKind::Permission, message));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return Some((ErrorKind::Unreachable, "connection refused".to_owned()));
        }
    }
    let inner = innermost(e);
    let lower = inner.to_lowercase();
    if lower.contains("failed to lookup address")
        || lower.contains("dns error")
        || lower.contains("name or service not known")
        || lower.contains("no such host")
    {
        return Some((ErrorKind::Unreachable, format!("unknown host ({inner})")));
    }
    None
}

/// The innermost error's text, on one line.
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    let text = last.to_string();
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// Everything rendered for one service, as the platform needs it.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub cluster: String,
    pub name: String,
    /// The rendered task definition (or manifest set).
    pub definition: Value,
    /// The rendered service settings.
    pub service: Value,
    /// The rendered auto-scaling target and policies, when scaling is on.
    pub scaling: Option<Value>,
    /// Tags for a new revision: the commit and this deployment's id.
    pub tags: Vec<(String, String)>,
    /// Other objects applied with the service (Kubernetes: `ServiceAccount`, RBAC,
    /// `ConfigMap`, `Service`, `Ingress`, `PodDisruptionBudget`); empty on ECS.
    pub manifests: Vec<Value>,
}

/// The service as it is, and what differs from the rendered spec.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub service: ServiceView,
    pub definition_changed: bool,
    pub settings_changed: bool,
}

/// What a watch saw change (see [`Platform::changed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The rollout may have ended (complete or failed): observe at once.
    Settled,
    /// It moved on: worth an observation, no sooner than the poll interval after the last.
    Progress,
}

/// What the rolling strategy needs from a platform. Implementations map their errors to
/// [`PlatformError`] kinds; the driver retries the retryable ones.
pub trait Platform: Send + Sync {
    /// Reads the service and compares it with the spec.
    fn prepare(
        &self,
        spec: &ServiceSpec,
    ) -> impl Future<Output = Result<Prepared, PlatformError>> + Send;
    /// Registers the spec's revision; returns its id (ARN).
    fn register(
        &self,
        spec: &ServiceSpec,
    ) -> impl Future<Output = Result<String, PlatformError>> + Send;
    /// Points the service at `revision` with the spec's settings; returns the new deployment's
    /// id when the platform says it.
    fn update(
        &self,
        spec: &ServiceSpec,
        revision: &str,
    ) -> impl Future<Output = Result<Option<String>, PlatformError>> + Send;
    /// Applies the spec's auto scaling (idempotent).
    fn apply_scaling(
        &self,
        spec: &ServiceSpec,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Resolves when something about these services has changed (a watch), to wake the
    /// driver before its next poll, saying whether the change may settle the rollout; the
    /// default never resolves (polls only). A spurious wake-up costs one observation, never a
    /// wrong decision.
    fn changed(&self, specs: &[&ServiceSpec]) -> impl Future<Output = Wake> + Send {
        let _ = specs;
        std::future::pending()
    }
    /// Whether [`Platform::changed`] reports changes (then the poll is only a fallback).
    fn watches(&self) -> bool {
        false
    }
    /// Observes several services at once (ECS: `DescribeServices`, 10 a call).
    fn observe(
        &self,
        specs: &[&ServiceSpec],
    ) -> impl Future<Output = Result<Vec<ServiceView>, PlatformError>> + Send;
    /// Stopped tasks of a deployment.
    fn diagnose(
        &self,
        spec: &ServiceSpec,
        deployment: &str,
    ) -> impl Future<Output = Result<Vec<StoppedTask>, PlatformError>> + Send;
    /// Deregisters old revisions no one uses, keeping `keep`; returns what it deregistered.
    fn clean_up(
        &self,
        spec: &ServiceSpec,
        keep: u32,
    ) -> impl Future<Output = Result<Vec<String>, PlatformError>> + Send;
    /// Points the service back at `revision`, changing nothing else.
    fn revert(
        &self,
        spec: &ServiceSpec,
        revision: &str,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// The revision before the one the service runs (for `rollback`).
    fn previous_revision(
        &self,
        spec: &ServiceSpec,
    ) -> impl Future<Output = Result<Option<String>, PlatformError>> + Send;
}

/// A unified diff of two JSON values as YAML, headed `from` and `to`.
pub fn yaml_diff(a: &serde_json::Value, b: &serde_json::Value, from: &str, to: &str) -> String {
    let a = crate::render::to_yaml(a).unwrap_or_default();
    let b = crate::render::to_yaml(b).unwrap_or_default();
    similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string()
}
