//! A live service read whole, for `init --from ecs:CLUSTER/SERVICE`: the service, the task
//! definition it runs and its auto scaling, as JSON in the shapes this tool renders (so the
//! import is compared with a rendering by the same functions a deploy uses). Reads only.

use aws_sdk_applicationautoscaling::types::{PolicyType, ServiceNamespace};
use serde_json::{Map, Value, json};

use super::{Ecs, classify, convert, running_revision};
use crate::platform::observation::{ErrorKind, PlatformError};

/// A live ECS service, read.
#[derive(Debug, Clone)]
pub struct LiveService {
    /// The service ARN (its region and account).
    pub arn: String,
    pub cluster: String,
    pub name: String,
    /// `ECS`, `CODE_DEPLOY` or `EXTERNAL`.
    pub controller: String,
    pub desired_count: u32,
    pub platform_version: Option<String>,
    pub launch_type: Option<String>,
    /// The settings a deploy sends, canonical ([`convert::service_settings_to_json`]).
    pub settings: Value,
    /// The running task definition ([`convert::task_definition_to_json`]).
    pub definition: Value,
    pub scaling: Option<LiveScaling>,
}

/// A service's Application Auto Scaling.
#[derive(Debug, Clone)]
pub struct LiveScaling {
    pub min: i32,
    pub max: i32,
    /// Target tracking policies, in scaling.json's shape (`PolicyName`, `PolicyType`,
    /// `TargetTrackingScalingPolicyConfiguration`).
    pub policies: Vec<Value>,
    /// Policies of other kinds (step scaling, custom metrics): named, not imported.
    pub skipped: Vec<String>,
}

impl Ecs {
    /// Reads service `name` of `cluster`, the task definition it runs and its auto scaling.
    pub async fn read_service(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<LiveService, PlatformError> {
        let service = self.describe_one(cluster, name).await?;
        let revision = running_revision(&service);
        if revision.is_empty() {
            return Err(PlatformError::new(
                ErrorKind::NotFound,
                "DescribeServices",
                format!("service {name} runs no task definition"),
            ));
        }
        let td = self
            .ecs
            .describe_task_definition()
            .task_definition(revision)
            .send()
            .await
            .map_err(|e| classify("DescribeTaskDefinition", &e))?;
        let definition = td
            .task_definition()
            .map(convert::task_definition_to_json)
            .unwrap_or_default();
        let cluster_name = service
            .cluster_arn()
            .and_then(|a| a.rsplit('/').next())
            .unwrap_or(cluster)
            .to_owned();
        let scaling = self.read_scaling(&cluster_name, name).await?;
        Ok(LiveService {
            arn: service.service_arn().unwrap_or_default().to_owned(),
            cluster: cluster_name,
            name: service.service_name().unwrap_or(name).to_owned(),
            controller: service
                .deployment_controller()
                .map_or("ECS", |c| c.r#type().as_str())
                .to_owned(),
            desired_count: u32::try_from(service.desired_count()).unwrap_or(0),
            platform_version: service.platform_version().map(str::to_owned),
            launch_type: service.launch_type().map(|l| l.as_str().to_owned()),
            settings: convert::service_settings_to_json(&service),
            definition,
            scaling,
        })
    }

    async fn read_scaling(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<LiveScaling>, PlatformError> {
        let resource = format!("service/{cluster}/{service}");
        let targets = self
            .scaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_ids(&resource)
            .send()
            .await
            .map_err(|e| classify("DescribeScalableTargets", &e))?;
        let Some(target) = targets.scalable_targets().first() else {
            return Ok(None);
        };
        let policies = self
            .scaling
            .describe_scaling_policies()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&resource)
            .send()
            .await
            .map_err(|e| classify("DescribeScalingPolicies", &e))?;
        let mut out = LiveScaling {
            min: target.min_capacity(),
            max: target.max_capacity(),
            policies: Vec::new(),
            skipped: Vec::new(),
        };
        for p in policies.scaling_policies() {
            let tracking = p.target_tracking_scaling_policy_configuration();
            let predefined = tracking.and_then(|t| t.predefined_metric_specification());
            match (p.policy_type(), tracking, predefined) {
                (PolicyType::TargetTrackingScaling, Some(t), Some(m)) => {
                    let mut c = Map::new();
                    c.insert("TargetValue".into(), json!(t.target_value()));
                    let mut spec = Map::new();
                    spec.insert(
                        "PredefinedMetricType".into(),
                        json!(m.predefined_metric_type().as_str()),
                    );
                    if let Some(l) = m.resource_label() {
                        spec.insert("ResourceLabel".into(), json!(l));
                    }
                    c.insert("PredefinedMetricSpecification".into(), Value::Object(spec));
                    for (key, v) in [
                        ("ScaleInCooldown", t.scale_in_cooldown()),
                        ("ScaleOutCooldown", t.scale_out_cooldown()),
                    ] {
                        if let Some(v) = v {
                            c.insert(key.into(), json!(v));
                        }
                    }
                    if let Some(d) = t.disable_scale_in() {
                        c.insert("DisableScaleIn".into(), json!(d));
                    }
                    out.policies.push(json!({
                        "PolicyName": p.policy_name(),
                        "PolicyType": "TargetTrackingScaling",
                        "TargetTrackingScalingPolicyConfiguration": c,
                    }));
                }
                _ => out.skipped.push(p.policy_name().to_owned()),
            }
        }
        Ok(Some(out))
    }
}
