//! The effects boundary: what a strategy asks of a platform, and the implementations.
//!
//! - [`ecs`]: Amazon ECS and Application Auto Scaling through the AWS SDK.
//! - [`kubernetes`]: Kubernetes through kube-rs (server-side apply, Deployment rollouts).
//! - [`sim`]: a deterministic simulator with scripted task health, delays, API errors and
//!   throttling, driven on tokio's clock (paused in tests, so minutes pass in microseconds).

pub mod ecs;
pub mod kubernetes;
pub mod sim;

use std::future::Future;

use serde_json::Value;

use crate::strategy::rolling::{PlatformError, ServiceView, StoppedTask};

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
