//! Amazon ECS (and Application Auto Scaling) through the AWS SDK.
//!
//! Credentials, region and endpoint come from the standard chain and variables
//! (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL` — the tests point it at a moto server).
//! The SDK's own retries are off: the driver retries throttled and transient errors on its
//! own schedule, the same in production and in the simulator.

pub mod alb;
pub mod bluegreen;
pub mod codedeploy;
pub mod convert;
pub mod import;
pub mod native;
pub mod state_tags;

use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types::{DesiredStatus, SortOrder, TaskDefinitionStatus};

use super::{Platform, Prepared, ServiceSpec};
use crate::platform::observation::{
    DeploymentView, ErrorKind, PlatformError, Rollout, ServiceEvent, ServiceView, StoppedTask,
};

pub struct Ecs {
    ecs: aws_sdk_ecs::Client,
    scaling: aws_sdk_applicationautoscaling::Client,
}

impl Ecs {
    /// Clients from the standard AWS configuration, in `region` unless `AWS_REGION` says
    /// otherwise.
    pub async fn from_env(region: &str) -> Self {
        let shared = crate::aws::sdk_config(region, false).await;
        Self::new(
            aws_sdk_ecs::Client::new(&shared),
            aws_sdk_applicationautoscaling::Client::new(&shared),
        )
    }

    pub fn new(ecs: aws_sdk_ecs::Client, scaling: aws_sdk_applicationautoscaling::Client) -> Self {
        Self { ecs, scaling }
    }
}

/// Maps an SDK error to the kinds the strategies act on.
pub fn classify<E>(
    operation: &str,
    err: &SdkError<E, aws_sdk_ecs::config::http::HttpResponse>,
) -> PlatformError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(e) = err {
        let code = e.err().code().unwrap_or("Error");
        // Expired credentials: an assumed role's are renewed before the call is tried again.
        let kind = if crate::aws::is_expiry(code) && crate::aws::expired() {
            ErrorKind::Transient
        } else {
            kind_of(code, e.raw().status().as_u16())
        };
        return PlatformError::new(
            kind,
            operation,
            format!("{code}: {}", e.err().message().unwrap_or("no message")),
        );
    }
    // Not an answer from the service: say the cause in one line (never the SDK's debug text).
    if let Some((kind, cause)) = super::connection_failure(err) {
        return PlatformError::new(kind, operation, cause);
    }
    let (kind, what) = match err {
        SdkError::TimeoutError(_) => (ErrorKind::Transient, "timed out"),
        SdkError::DispatchFailure(_) => (ErrorKind::Transient, "the request could not be sent"),
        SdkError::ResponseError(_) => (ErrorKind::Transient, "the answer could not be read"),
        _ => (ErrorKind::Invalid, "the request could not be built"),
    };
    let cause = super::innermost(err);
    let message = if cause.is_empty() || cause == what {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    };
    PlatformError::new(kind, operation, message)
}

fn kind_of(code: &str, status: u16) -> ErrorKind {
    match code {
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => ErrorKind::Throttled,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken" => ErrorKind::Permission,
        "ClusterNotFoundException"
        | "ServiceNotFoundException"
        | "ServiceNotActiveException"
        | "ObjectNotFoundException"
        | "ApplicationDoesNotExistException"
        | "DeploymentGroupDoesNotExistException"
        | "DeploymentDoesNotExistException" => ErrorKind::NotFound,
        "ServerException"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "InternalServiceException" => ErrorKind::Transient,
        _ if status >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Invalid,
    }
}

fn family_of(revision: &str) -> Option<&str> {
    revision
        .rsplit('/')
        .next()?
        .rsplit_once(':')
        .map(|(family, _)| family)
}

/// `live` cut down to the keys `rendered` has, recursively through objects.
fn restrict(live: &serde_json::Value, rendered: &serde_json::Value) -> serde_json::Value {
    match (live, rendered) {
        (serde_json::Value::Object(l), serde_json::Value::Object(r)) => serde_json::Value::Object(
            r.keys()
                .filter_map(|k| l.get(k).map(|v| (k.clone(), restrict(v, &r[k]))))
                .collect(),
        ),
        _ => live.clone(),
    }
}

fn revision_number(arn: &str) -> u64 {
    arn.rsplit_once(':')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

impl Ecs {
    /// The family's active revisions, newest first. Sorted here by revision number rather than
    /// trusting the server's order.
    async fn active_revisions(&self, family: &str) -> Result<Vec<String>, PlatformError> {
        let mut revisions: Vec<String> = Vec::new();
        let mut pages = self
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(TaskDefinitionStatus::Active)
            .sort(SortOrder::Desc)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ListTaskDefinitions", &e))?;
            revisions.extend(
                page.task_definition_arns()
                    .iter()
                    .filter(|a| family_of(a) == Some(family))
                    .cloned(),
            );
        }
        revisions.sort_by_key(|a| std::cmp::Reverse(revision_number(a)));
        Ok(revisions)
    }
}

/// The task definition the service runs: under `CodeDeploy`, the PRIMARY task set's (the
/// service's own field keeps what it was created with).
fn running_revision(s: &aws_sdk_ecs::types::Service) -> &str {
    s.task_sets()
        .iter()
        .find(|t| t.status() == Some("PRIMARY"))
        .and_then(|t| t.task_definition())
        .or(s.task_definition())
        .unwrap_or_default()
}

fn unix(t: Option<&aws_smithy_types::DateTime>) -> i64 {
    t.map_or(0, aws_smithy_types::DateTime::secs)
}

fn view(s: &aws_sdk_ecs::types::Service) -> ServiceView {
    // A FAILED deployment was rolled back only if the service's circuit breaker rolls back.
    let rolls_back = s
        .deployment_configuration()
        .and_then(|c| c.deployment_circuit_breaker())
        .is_some_and(aws_sdk_ecs::types::DeploymentCircuitBreaker::rollback);
    let deployments = s
        .deployments()
        .iter()
        .map(|d| DeploymentView {
            id: d.id().unwrap_or_default().to_owned(),
            revision: d.task_definition().unwrap_or_default().to_owned(),
            rollout: match d.rollout_state() {
                Some(aws_sdk_ecs::types::DeploymentRolloutState::Completed) => Rollout::Completed,
                Some(aws_sdk_ecs::types::DeploymentRolloutState::Failed) => Rollout::Failed,
                _ => Rollout::InProgress,
            },
            reason: d.rollout_state_reason().map(str::to_owned),
            primary: d.status() == Some("PRIMARY"),
            // ECS marks a deployment FAILED when the circuit breaker trips; with rollback on
            // it goes back to the last good revision, without it the deployment stays.
            rolled_back: rolls_back,
            desired: u32::try_from(d.desired_count()).unwrap_or(0),
            running: u32::try_from(d.running_count()).unwrap_or(0),
            pending: u32::try_from(d.pending_count()).unwrap_or(0),
            failed: u32::try_from(d.failed_tasks()).unwrap_or(0),
        })
        .collect();
    // A service under CodeDeploy (blue-green) has task sets instead of deployments.
    let deployments = if s.deployments().is_empty() {
        task_sets(s)
    } else {
        deployments
    };
    ServiceView {
        name: s.service_name().unwrap_or_default().to_owned(),
        revision: s.task_definition().unwrap_or_default().to_owned(),
        deployments,
        events: s
            .events()
            .iter()
            .map(|e| ServiceEvent {
                at: unix(e.created_at()),
                message: e.message().unwrap_or_default().to_owned(),
            })
            .collect(),
    }
}

/// The task sets of a service under an external controller (`CodeDeploy` blue-green), seen as
/// deployments: the PRIMARY set serves production traffic.
fn task_sets(s: &aws_sdk_ecs::types::Service) -> Vec<DeploymentView> {
    s.task_sets()
        .iter()
        .map(|t| DeploymentView {
            id: t.id().unwrap_or_default().to_owned(),
            revision: t.task_definition().unwrap_or_default().to_owned(),
            rollout: match t.stability_status() {
                Some(aws_sdk_ecs::types::StabilityStatus::SteadyState) => Rollout::Completed,
                _ => Rollout::InProgress,
            },
            reason: Some(match t.external_id() {
                Some(d) => format!(
                    "task set {}, CodeDeploy deployment {d}",
                    t.status().unwrap_or("?")
                ),
                None => format!("task set {}", t.status().unwrap_or("?")),
            }),
            primary: t.status() == Some("PRIMARY"),
            rolled_back: false,
            desired: u32::try_from(t.computed_desired_count()).unwrap_or(0),
            running: u32::try_from(t.running_count()).unwrap_or(0),
            pending: u32::try_from(t.pending_count()).unwrap_or(0),
            failed: 0,
        })
        .collect()
}

fn invalid(operation: &str, e: &convert::ConvertError) -> PlatformError {
    PlatformError::new(ErrorKind::Invalid, operation, e.to_string())
}

impl Ecs {
    async fn describe(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<aws_sdk_ecs::types::Service>, PlatformError> {
        let mut out = Vec::new();
        for chunk in names.chunks(10) {
            let resp = self
                .ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify("DescribeServices", &e))?;
            if let Some(f) = resp.failures().first()
                && (resp.services().is_empty() || f.reason() == Some("MISSING"))
            {
                return Err(PlatformError::new(
                    ErrorKind::NotFound,
                    "DescribeServices",
                    format!(
                        "service {} in cluster {cluster}: {}; create the service first (this tool updates services, it does not create them)",
                        f.arn().unwrap_or("?"),
                        f.reason().unwrap_or("missing")
                    ),
                ));
            }
            out.extend(resp.services().iter().cloned());
        }
        Ok(out)
    }

    /// The service's stopped tasks that `keep` selects (the first five), with why each one
    /// stopped.
    async fn stopped(
        &self,
        spec: &ServiceSpec,
        keep: impl Fn(&aws_sdk_ecs::types::Task) -> bool,
    ) -> Result<Vec<StoppedTask>, PlatformError> {
        let arns = self
            .ecs
            .list_tasks()
            .cluster(&spec.cluster)
            .service_name(&spec.name)
            .desired_status(DesiredStatus::Stopped)
            .send()
            .await
            .map_err(|e| classify("ListTasks", &e))?
            .task_arns()
            .to_vec();
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        let tasks = self
            .ecs
            .describe_tasks()
            .cluster(&spec.cluster)
            .set_tasks(Some(arns.into_iter().take(100).collect()))
            .send()
            .await
            .map_err(|e| classify("DescribeTasks", &e))?;
        Ok(tasks
            .tasks()
            .iter()
            .filter(|t| keep(t))
            .take(5)
            .map(|t| StoppedTask {
                what: "stopped task".into(),
                id: t
                    .task_arn()
                    .and_then(|a| a.rsplit('/').next())
                    .unwrap_or("?")
                    .to_owned(),
                reason: t.stopped_reason().unwrap_or("no reason given").to_owned(),
                stop_code: t.stop_code().map(|c| c.as_str().to_owned()),
                containers: t
                    .containers()
                    .iter()
                    .map(|c| {
                        (
                            c.name().unwrap_or("?").to_owned(),
                            c.exit_code(),
                            c.reason().map(str::to_owned),
                        )
                    })
                    .collect(),
            })
            .collect())
    }

    /// The service's stopped tasks of `revision` (a task definition ARN): why green's tasks
    /// did not stay up, for a blue-green that failed.
    pub async fn stopped_of(
        &self,
        spec: &ServiceSpec,
        revision: &str,
    ) -> Result<Vec<StoppedTask>, PlatformError> {
        self.stopped(spec, |t| t.task_definition_arn() == Some(revision))
            .await
    }

    /// The cluster's status (`ACTIVE`, `INACTIVE`, …); `None` when there is no such cluster.
    pub async fn cluster_status(&self, name: &str) -> Result<Option<String>, PlatformError> {
        let out = self
            .ecs
            .describe_clusters()
            .clusters(name)
            .send()
            .await
            .map_err(|e| classify("DescribeClusters", &e))?;
        Ok(out
            .clusters()
            .first()
            .map(|c| c.status().unwrap_or("UNKNOWN").to_owned()))
    }

    /// The service's ARN and tags.
    pub async fn tags(
        &self,
        spec: &ServiceSpec,
    ) -> Result<(String, Vec<(String, String)>), PlatformError> {
        let resp = self
            .ecs
            .describe_services()
            .cluster(&spec.cluster)
            .services(&spec.name)
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send()
            .await
            .map_err(|e| classify("DescribeServices", &e))?;
        let service = resp.services().first().ok_or_else(|| {
            PlatformError::new(
                ErrorKind::NotFound,
                "DescribeServices",
                format!(
                    "service {} not found in cluster {}; create the service first (this tool updates services, it does not create them)",
                    spec.name, spec.cluster
                ),
            )
        })?;
        Ok((
            service.service_arn().unwrap_or_default().to_owned(),
            service
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        ))
    }

    /// Sets `add` on the resource `arn` (one `TagResource`), then removes `remove`.
    pub async fn set_tags(
        &self,
        arn: &str,
        add: &[(String, String)],
        remove: Vec<String>,
    ) -> Result<(), PlatformError> {
        self.ecs
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(
                add.iter()
                    .map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| classify("TagResource", &e))?;
        if !remove.is_empty() {
            self.ecs
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| classify("UntagResource", &e))?;
        }
        Ok(())
    }

    /// Scales the service to 0: its auto scaling (when on) first held at 0 to 0, so it
    /// stays there; a later deploy of the service registers the rendered bounds again.
    pub async fn scale_to_zero(&self, spec: &ServiceSpec) -> Result<(), PlatformError> {
        if let Some(scaling) = &spec.scaling {
            let mut held = scaling.clone();
            held["scalableTarget"]["MinCapacity"] = serde_json::json!(0);
            held["scalableTarget"]["MaxCapacity"] = serde_json::json!(0);
            held["policies"] = serde_json::json!([]);
            let held = ServiceSpec {
                scaling: Some(held),
                ..spec.clone()
            };
            self.apply_scaling(&held).await?;
        }
        self.ecs
            .update_service()
            .cluster(&spec.cluster)
            .service(&spec.name)
            .desired_count(0)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("UpdateService", &e))
    }

    /// The service's deployment controller (`ECS`, `CODE_DEPLOY`, `EXTERNAL`; ECS when unset).
    pub async fn controller(&self, spec: &ServiceSpec) -> Result<String, PlatformError> {
        let services = self
            .describe(&spec.cluster, std::slice::from_ref(&spec.name))
            .await?;
        Ok(services
            .first()
            .and_then(|s| s.deployment_controller())
            .map_or_else(|| "ECS".to_owned(), |c| c.r#type().as_str().to_owned()))
    }
}

/// The live service beside what a deploy of a spec would send, both in canonical form (see
/// [`convert::normalize`] and [`convert::service_settings_from_rendered`]).
struct Compared {
    service: aws_sdk_ecs::types::Service,
    /// The running task definition; `None` when the service runs none.
    live_definition: Option<serde_json::Value>,
    definition: serde_json::Value,
    live_settings: serde_json::Value,
    settings: serde_json::Value,
}

/// What a deploy of a spec would change on the live service (`plan --live`; nothing is
/// changed to find it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveDifference {
    pub service: String,
    /// The task definition the service runs.
    pub running: String,
    /// A unified diff from the running task definition to the rendered one; empty when a
    /// deploy of the same image registers nothing.
    pub definition: String,
    /// A unified diff of the service settings a deploy sends; empty when it changes none.
    pub settings: String,
}

/// The live service's settings and the rendered ones, ready to compare: only what the
/// rendered settings say (a setting the template leaves out is not sent on update either, so
/// it must not count as a difference on every run), and without auto scaling (`scaled`) the
/// desired count, which is deploy.yml's then and sent on update. Pure.
pub fn settings_pair(
    live: &serde_json::Value,
    live_desired: u32,
    rendered_service: &serde_json::Value,
    scaled: bool,
) -> (serde_json::Value, serde_json::Value) {
    let mut settings = convert::service_settings_from_rendered(rendered_service);
    let mut live = restrict(live, &settings);
    if !scaled
        && let (Some(n), serde_json::Value::Object(r), serde_json::Value::Object(l)) = (
            rendered_service["desiredCount"].as_i64(),
            &mut settings,
            &mut live,
        )
    {
        r.insert("desiredCount".into(), n.into());
        l.insert("desiredCount".into(), live_desired.into());
    }
    (live, settings)
}

impl Ecs {
    /// Service `name` of `cluster`, described.
    async fn describe_one(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<aws_sdk_ecs::types::Service, PlatformError> {
        self.describe(cluster, &[name.to_owned()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                PlatformError::new(
                    ErrorKind::NotFound,
                    "DescribeServices",
                    format!("service {name} not found in cluster {cluster}"),
                )
            })
    }

    async fn compare(&self, spec: &ServiceSpec) -> Result<Compared, PlatformError> {
        let service = self.describe_one(&spec.cluster, &spec.name).await?;
        let current = running_revision(&service);
        let live_definition = if current.is_empty() {
            None
        } else {
            self.ecs
                .describe_task_definition()
                .task_definition(current)
                .send()
                .await
                .map_err(|e| classify("DescribeTaskDefinition", &e))?
                .task_definition()
                .map(|td| convert::normalize(&convert::task_definition_to_json(td)))
        };
        let (live_settings, settings) = settings_pair(
            &convert::service_settings_to_json(&service),
            u32::try_from(service.desired_count()).unwrap_or(0),
            &spec.service,
            spec.scaling.is_some(),
        );
        Ok(Compared {
            service,
            live_definition,
            definition: convert::normalize(&spec.definition),
            live_settings,
            settings,
        })
    }

    /// What a deploy of `spec` would change: the running task definition and the service's
    /// settings against the rendered ones, as diffs (empty: no change). Reads only.
    pub async fn live_difference(
        &self,
        spec: &ServiceSpec,
    ) -> Result<LiveDifference, PlatformError> {
        let c = self.compare(spec).await?;
        let diff = |live: Option<&serde_json::Value>, rendered: &serde_json::Value| {
            if live == Some(rendered) {
                String::new()
            } else {
                super::yaml_diff(
                    &convert::hide_plain_secrets(live.unwrap_or(&serde_json::Value::Null)),
                    &convert::hide_plain_secrets(rendered),
                    "live",
                    "rendered",
                )
            }
        };
        Ok(LiveDifference {
            service: spec.name.clone(),
            running: running_revision(&c.service).to_owned(),
            definition: diff(c.live_definition.as_ref(), &c.definition),
            settings: diff(Some(&c.live_settings), &c.settings),
        })
    }
}

impl Platform for Ecs {
    async fn prepare(&self, spec: &ServiceSpec) -> Result<Prepared, PlatformError> {
        let c = self.compare(spec).await?;
        Ok(Prepared {
            service: view(&c.service),
            definition_changed: c.live_definition.as_ref() != Some(&c.definition),
            settings_changed: c.live_settings != c.settings,
        })
    }

    async fn register(&self, spec: &ServiceSpec) -> Result<String, PlatformError> {
        // The family's newest revision is reused when it is the rendered one (registered by
        // a run that was cut short, or by a canary's own service for the stable one to run):
        // `DescribeTaskDefinition` of the family alone reads its newest active revision.
        if let Some(family) = spec.definition["family"].as_str() {
            match self
                .ecs
                .describe_task_definition()
                .task_definition(family)
                .send()
                .await
            {
                Ok(out) => {
                    if let Some(td) = out.task_definition()
                        && convert::normalize(&convert::task_definition_to_json(td))
                            == convert::normalize(&spec.definition)
                        && let Some(arn) = td.task_definition_arn()
                    {
                        return Ok(arn.to_owned());
                    }
                }
                // A new family has no revision yet.
                Err(e) if kind_of(e.code().unwrap_or_default(), 400) == ErrorKind::Invalid => {}
                Err(e) => return Err(classify("DescribeTaskDefinition", &e)),
            }
        }
        let request = convert::fill_register(
            self.ecs.register_task_definition(),
            &spec.definition,
            &spec.tags,
        )
        .map_err(|e| invalid("RegisterTaskDefinition", &e))?;
        let resp = request
            .send()
            .await
            .map_err(|e| classify("RegisterTaskDefinition", &e))?;
        resp.task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_owned)
            .ok_or_else(|| {
                PlatformError::new(
                    ErrorKind::Transient,
                    "RegisterTaskDefinition",
                    "the answer has no task definition ARN",
                )
            })
    }

    async fn update(
        &self,
        spec: &ServiceSpec,
        revision: &str,
    ) -> Result<Option<String>, PlatformError> {
        let request = convert::fill_update_service(
            self.ecs.update_service(),
            &spec.service,
            revision,
            spec.scaling.is_none(),
        )
        .map_err(|e| invalid("UpdateService", &e))?;
        let resp = request
            .send()
            .await
            .map_err(|e| classify("UpdateService", &e))?;
        Ok(resp.service().and_then(|s| {
            s.deployments()
                .iter()
                .find(|d| d.status() == Some("PRIMARY") && d.task_definition() == Some(revision))
                .and_then(|d| d.id().map(str::to_owned))
        }))
    }

    async fn apply_scaling(&self, spec: &ServiceSpec) -> Result<(), PlatformError> {
        let Some(scaling) = &spec.scaling else {
            return Ok(());
        };
        convert::apply_scaling(&self.scaling, scaling)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                convert::ScalingError::Convert(c) => invalid("PutScalingPolicy", &c),
                convert::ScalingError::Api {
                    operation, message, ..
                } => {
                    let kind = if message.contains("Throttl") {
                        ErrorKind::Throttled
                    } else if message.contains("AccessDenied") {
                        ErrorKind::Permission
                    } else {
                        ErrorKind::Invalid
                    };
                    PlatformError::new(kind, operation, message)
                }
            })
    }

    async fn observe(&self, specs: &[&ServiceSpec]) -> Result<Vec<ServiceView>, PlatformError> {
        // One DescribeServices call per cluster and 10 services.
        let mut clusters: Vec<(&str, Vec<String>)> = Vec::new();
        for s in specs {
            match clusters.iter_mut().find(|(c, _)| *c == s.cluster) {
                Some((_, names)) => names.push(s.name.clone()),
                None => clusters.push((&s.cluster, vec![s.name.clone()])),
            }
        }
        let mut views = Vec::new();
        for (cluster, names) in clusters {
            views.extend(self.describe(cluster, &names).await?.iter().map(view));
        }
        Ok(views)
    }

    async fn diagnose(
        &self,
        spec: &ServiceSpec,
        deployment: &str,
    ) -> Result<Vec<StoppedTask>, PlatformError> {
        // ListTasks cannot combine startedBy with other filters: list the service's stopped
        // tasks, then keep the ones this deployment started.
        self.stopped(spec, |t| t.started_by().is_none_or(|s| s == deployment))
            .await
    }

    async fn clean_up(&self, spec: &ServiceSpec, keep: u32) -> Result<Vec<String>, PlatformError> {
        let Some(family) = spec.definition["family"].as_str() else {
            return Ok(Vec::new());
        };
        let in_use: Vec<String> = self
            .describe(&spec.cluster, std::slice::from_ref(&spec.name))
            .await?
            .iter()
            .flat_map(|s| {
                s.deployments()
                    .iter()
                    .filter_map(|d| d.task_definition().map(str::to_owned))
                    .chain(s.task_definition().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect();
        let revisions = self.active_revisions(family).await?;
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let mut removed = Vec::new();
        for arn in revisions.into_iter().skip(keep) {
            if in_use.contains(&arn) {
                continue;
            }
            self.ecs
                .deregister_task_definition()
                .task_definition(&arn)
                .send()
                .await
                .map_err(|e| classify("DeregisterTaskDefinition", &e))?;
            removed.push(arn);
        }
        Ok(removed)
    }

    async fn revert(&self, spec: &ServiceSpec, revision: &str) -> Result<(), PlatformError> {
        self.ecs
            .update_service()
            .cluster(&spec.cluster)
            .service(&spec.name)
            .task_definition(revision)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("UpdateService", &e))
    }

    async fn previous_revision(&self, spec: &ServiceSpec) -> Result<Option<String>, PlatformError> {
        let service = self
            .describe(&spec.cluster, std::slice::from_ref(&spec.name))
            .await?;
        let current = service
            .first()
            .map(running_revision)
            .unwrap_or_default()
            .to_owned();
        let Some(family) = family_of(&current) else {
            return Ok(None);
        };
        let revisions = self.active_revisions(family).await?;
        Ok(revisions
            .iter()
            .position(|r| *r == current)
            .and_then(|i| revisions.get(i + 1).cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_compared_on_the_rendered_keys_only() {
        let live = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}, "extra": true});
        let rendered = serde_json::json!({"a": 1, "b": {"c": 2}});
        assert_eq!(restrict(&live, &rendered), rendered);
        let rendered = serde_json::json!({"a": 1, "b": {"c": 5}, "missing": 1});
        assert_ne!(restrict(&live, &rendered), rendered);
    }

    #[test]
    fn error_codes_map_to_kinds() {
        assert_eq!(kind_of("ThrottlingException", 400), ErrorKind::Throttled);
        assert_eq!(kind_of("AccessDeniedException", 400), ErrorKind::Permission);
        assert_eq!(
            kind_of("ServiceNotFoundException", 400),
            ErrorKind::NotFound
        );
        assert_eq!(kind_of("ServerException", 500), ErrorKind::Transient);
        assert_eq!(kind_of("Whatever", 503), ErrorKind::Transient);
        assert_eq!(
            kind_of("InvalidParameterException", 400),
            ErrorKind::Invalid
        );
        assert_eq!(
            family_of("arn:aws:ecs:us-east-1:1:task-definition/movieverse-staging:12"),
            Some("movieverse-staging")
        );
    }
}
