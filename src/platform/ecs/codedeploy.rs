//! `CodeDeploy`'s ECS blue/green deployments: the `AppSpec` for a task definition, creating a
//! deployment, reading it, stopping it (with or without rollback) and continuing it past its
//! Ready wait.
//!
//! [`CodeDeploy::get`] turns the API's answer into an [`Observed`] of
//! [`super::bluegreen`], whose [`super::bluegreen::judge`] (pure) says what it means for
//! whoever waits on it.

use aws_sdk_codedeploy::types::{
    AppSpecContent, DeploymentStatus, DeploymentWaitType, RevisionLocation, RevisionLocationType,
};
use serde_json::Value;

use super::bluegreen::{Observed, Status};
use super::classify;
use crate::platform::observation::{ErrorKind, PlatformError};

pub struct CodeDeploy {
    client: aws_sdk_codedeploy::Client,
}

/// The `CodeDeploy` operations this module calls (errors name them).
pub const OPERATIONS: [&str; 8] = [
    "ListDeploymentTargets",
    "BatchGetDeploymentTargets",
    "GetDeploymentGroup",
    "ListDeployments",
    "CreateDeployment",
    "GetDeployment",
    "StopDeployment",
    "ContinueDeployment",
];

/// The `AppSpec` for `task_definition`: the rendered one (`appspec.yaml`) with its
/// `TaskDefinition` set, as JSON, and its SHA-256 (hex) as `CreateDeployment` wants it.
///
/// # Errors
/// The rendered `AppSpec` has no `Resources[0].TargetService.Properties`.
pub fn appspec(rendered: &Value, task_definition: &str) -> Result<(String, String), String> {
    let mut spec = rendered.clone();
    let properties = spec
        .pointer_mut("/Resources/0/TargetService/Properties")
        .and_then(Value::as_object_mut)
        .ok_or("the rendered appspec.yaml has no Resources[0].TargetService.Properties")?;
    properties.insert("TaskDefinition".into(), Value::from(task_definition));
    let content = serde_json::to_string(&spec).expect("JSON serializes");
    let sha = crate::sha256_hex(content.as_bytes());
    Ok((content, sha))
}

/// A deployment group, as far as deploy.yml relies on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// It holds a deployment at Ready until `ContinueDeployment`
    /// (`deploymentReadyOption.actionOnTimeout: STOP_DEPLOYMENT`).
    pub stops_at_ready: bool,
    /// The `CloudWatch` alarms it watches (its alarm configuration, when enabled).
    pub alarms: Vec<String>,
    /// Its most recent deployment, ended or not (`lastAttemptedDeployment`).
    pub last_attempted: Option<String>,
}

impl Group {
    /// Those of `alarms` the group does not watch.
    pub fn unwatched<'a>(&self, alarms: &'a [String]) -> Vec<&'a str> {
        alarms
            .iter()
            .filter(|a| !self.alarms.contains(a))
            .map(String::as_str)
            .collect()
    }
}

fn sdk(s: Status) -> DeploymentStatus {
    DeploymentStatus::from(s.name())
}

impl CodeDeploy {
    /// A client from the standard AWS configuration (the SDK's retries off, as for ECS).
    pub async fn from_env(region: &str) -> Self {
        let shared = crate::aws::sdk_config(region, false).await;
        Self {
            client: aws_sdk_codedeploy::Client::new(&shared),
        }
    }

    /// The group's deployments still in flight, newest first as `CodeDeploy` lists them.
    pub async fn in_flight(
        &self,
        application: &str,
        group: &str,
    ) -> Result<Vec<String>, PlatformError> {
        let mut request = self
            .client
            .list_deployments()
            .application_name(application)
            .deployment_group_name(group);
        for s in Status::IN_FLIGHT {
            request = request.include_only_statuses(sdk(s));
        }
        let out = request
            .send()
            .await
            .map_err(|e| classify("ListDeployments", &e))?;
        Ok(out.deployments().to_vec())
    }

    /// What the deployment group does that deploy.yml relies on.
    pub async fn group(&self, application: &str, group: &str) -> Result<Group, PlatformError> {
        let out = self
            .client
            .get_deployment_group()
            .application_name(application)
            .deployment_group_name(group)
            .send()
            .await
            .map_err(|e| classify("GetDeploymentGroup", &e))?;
        let info = out.deployment_group_info();
        let alarms = info.and_then(|g| g.alarm_configuration());
        Ok(Group {
            last_attempted: info
                .and_then(|g| g.last_attempted_deployment())
                .and_then(|d| d.deployment_id())
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            stops_at_ready: info
                .and_then(|g| g.blue_green_deployment_configuration())
                .and_then(|c| c.deployment_ready_option())
                .and_then(|r| r.action_on_timeout())
                .is_some_and(|a| a.as_str() == "STOP_DEPLOYMENT"),
            alarms: alarms
                .filter(|a| a.enabled())
                .map(|a| {
                    a.alarms()
                        .iter()
                        .filter_map(|x| x.name().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Creates a deployment of `appspec` (content and SHA-256 from [`appspec`]); its id.
    pub async fn create(
        &self,
        application: &str,
        group: &str,
        config: &str,
        appspec: (&str, &str),
        description: &str,
    ) -> Result<String, PlatformError> {
        let content = AppSpecContent::builder()
            .content(appspec.0)
            .sha256(appspec.1)
            .build();
        let revision = RevisionLocation::builder()
            .revision_type(RevisionLocationType::AppSpecContent)
            .app_spec_content(content)
            .build();
        let out = self
            .client
            .create_deployment()
            .application_name(application)
            .deployment_group_name(group)
            .deployment_config_name(config)
            .revision(revision)
            .description(description)
            .send()
            .await
            .map_err(|e| classify("CreateDeployment", &e))?;
        out.deployment_id().map(str::to_owned).ok_or_else(|| {
            PlatformError::new(
                ErrorKind::Transient,
                "CreateDeployment",
                "the answer has no deployment id",
            )
        })
    }

    pub async fn get(&self, id: &str) -> Result<Observed, PlatformError> {
        let out = self
            .client
            .get_deployment()
            .deployment_id(id)
            .send()
            .await
            .map_err(|e| classify("GetDeployment", &e))?;
        let Some(info) = out.deployment_info() else {
            return Err(PlatformError::new(
                ErrorKind::NotFound,
                "GetDeployment",
                format!("no deployment {id}"),
            ));
        };
        let status = match info.status() {
            Some(DeploymentStatus::Created) => Status::Created,
            Some(DeploymentStatus::Queued) => Status::Queued,
            Some(DeploymentStatus::InProgress) => Status::InProgress,
            Some(DeploymentStatus::Baking) => Status::Baking,
            Some(DeploymentStatus::Ready) => Status::Ready,
            Some(DeploymentStatus::Succeeded) => Status::Succeeded,
            Some(DeploymentStatus::Failed) => Status::Failed,
            Some(DeploymentStatus::Stopped) => Status::Stopped,
            _ => Status::Unknown,
        };
        let rollback = info.rollback_info();
        Ok(Observed {
            id: id.to_owned(),
            status,
            shown: None,
            hook: None,
            // An empty `errorInformation` (some answers carry `{}`) is no error.
            error: info
                .error_information()
                .filter(|e| e.code().is_some() || e.message().is_some_and(|m| !m.is_empty()))
                .map(|e| {
                    (
                        e.code()
                            .map_or_else(|| "ERROR".into(), |c| c.as_str().to_owned()),
                        e.message().unwrap_or_default().to_owned(),
                    )
                }),
            rolled_back_by: rollback
                .and_then(|r| r.rollback_deployment_id())
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            rollback_message: rollback
                .and_then(|r| r.rollback_message())
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            rollback_of: rollback
                .and_then(|r| r.rollback_triggering_deployment_id())
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
        })
    }

    /// The lifecycle events of the deployment's ECS target that failed, each with its
    /// diagnostics (`AfterAllowTestTraffic failed (ScriptFailed: …)`): where a failed
    /// deployment stopped.
    pub async fn failed_events(&self, id: &str) -> Result<Vec<String>, PlatformError> {
        let targets = self
            .client
            .list_deployment_targets()
            .deployment_id(id)
            .send()
            .await
            .map_err(|e| classify("ListDeploymentTargets", &e))?
            .target_ids()
            .to_vec();
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .batch_get_deployment_targets()
            .deployment_id(id)
            .set_target_ids(Some(targets))
            .send()
            .await
            .map_err(|e| classify("BatchGetDeploymentTargets", &e))?;
        Ok(out
            .deployment_targets()
            .iter()
            .filter_map(|t| t.ecs_target())
            .flat_map(aws_sdk_codedeploy::types::EcsTarget::lifecycle_events)
            .filter(|e| e.status().is_some_and(|s| s.as_str() == "Failed"))
            .map(|e| {
                let name = e.lifecycle_event_name().unwrap_or("a lifecycle event");
                let code = e
                    .diagnostics()
                    .and_then(|d| d.error_code())
                    .map(|c| c.as_str().to_owned());
                let message = e
                    .diagnostics()
                    .and_then(|d| d.message())
                    .filter(|m| !m.is_empty());
                match (code, message) {
                    (Some(c), Some(m)) => format!("{name} failed ({c}: {m})"),
                    (Some(c), None) => format!("{name} failed ({c})"),
                    (None, Some(m)) => format!("{name} failed ({m})"),
                    (None, None) => format!("{name} failed"),
                }
            })
            .collect())
    }

    /// `StopDeployment`; with `rollback`, `CodeDeploy` puts the previous task set back.
    pub async fn stop(&self, id: &str, rollback: bool) -> Result<(), PlatformError> {
        self.client
            .stop_deployment()
            .deployment_id(id)
            .auto_rollback_enabled(rollback)
            .send()
            .await
            .map_err(|e| classify("StopDeployment", &e))?;
        Ok(())
    }

    /// `ContinueDeployment` (`READY_WAIT`): production traffic moves to green.
    pub async fn continue_ready(&self, id: &str) -> Result<(), PlatformError> {
        self.client
            .continue_deployment()
            .deployment_id(id)
            .deployment_wait_type(DeploymentWaitType::ReadyWait)
            .send()
            .await
            .map_err(|e| classify("ContinueDeployment", &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_appspec_names_the_task_definition_and_its_digest() {
        let rendered = serde_json::json!({
            "version": 0.0,
            "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
                "TaskDefinition": "<TASK_DEFINITION>",
                "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 5000}
            }}}],
            "Hooks": []
        });
        let (content, sha) = appspec(&rendered, "arn:td/app:3").unwrap();
        let back: Value = serde_json::from_str(&content).unwrap();
        assert_eq!(
            back["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"],
            "arn:td/app:3"
        );
        assert_eq!(
            back["Resources"][0]["TargetService"]["Properties"]["LoadBalancerInfo"]["ContainerPort"],
            5000
        );
        assert_eq!(sha.len(), 64);
        assert_eq!(sha, crate::sha256_hex(content.as_bytes()));
        assert!(appspec(&serde_json::json!({"Resources": []}), "x").is_err());
    }
}
