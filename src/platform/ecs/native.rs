//! ECS native blue/green (the service's own `ECS` controller with `strategy: BLUE_GREEN`): its
//! service deployments, read, answered at their PAUSE hook, and stopped with rollback.
//!
//! The service is updated like any other (`UpdateService` from the rendered service.json,
//! which carries the strategy, the bake time, the hook and the listener rules); ECS starts a
//! service deployment, found with `ListServiceDeployments`. [`Native::get`] reads it with
//! `DescribeServiceDeployments` and [`reading`] (pure) maps it onto the words of
//! [`super::bluegreen`], so that one waiter serves both controllers:
//!
//! | ECS says | the waiter sees |
//! |---|---|
//! | `PENDING` | Created |
//! | `IN_PROGRESS` with a hook `AWAITING_ACTION` | Ready (green takes test traffic) |
//! | `IN_PROGRESS` at `POST_PRODUCTION_TRAFFIC_SHIFT`, `BAKE_TIME`, `CLEAN_UP` | Baking |
//! | `IN_PROGRESS` otherwise | `InProgress` |
//! | `SUCCESSFUL` | Succeeded |
//! | `STOP_REQUESTED`, `STOPPED` | Stopped |
//! | `ROLLBACK_*` | Failed, rolled back by `<arn>#rollback` |
//!
//! ECS rolls a deployment back inside the same service deployment; its rollback is followed
//! as a deployment of its own, `<arn>#rollback` (`ROLLBACK_REQUESTED`/`_IN_PROGRESS` are in
//! progress, `ROLLBACK_SUCCESSFUL` succeeded, `ROLLBACK_FAILED` failed), as `CodeDeploy`'s
//! rollback deployment is.

use aws_sdk_ecs::types::{
    DeploymentLifecycleHookAction, DeploymentLifecycleHookStatus, ServiceDeploymentStatus,
    StopServiceDeploymentStopType,
};

use super::bluegreen::{Observed, Status};
use super::classify;
use crate::platform::observation::{ErrorKind, PlatformError};

/// The ECS operations this module calls (errors name them).
pub const OPERATIONS: [&str; 4] = [
    "ListServiceDeployments",
    "DescribeServiceDeployments",
    "ContinueServiceDeployment",
    "StopServiceDeployment",
];

/// How the rollback of deployment `arn` is named for the waiter.
pub const ROLLBACK_SUFFIX: &str = "#rollback";

/// The statuses of a service deployment still in flight.
pub const IN_FLIGHT: [&str; 5] = [
    "PENDING",
    "IN_PROGRESS",
    "STOP_REQUESTED",
    "ROLLBACK_REQUESTED",
    "ROLLBACK_IN_PROGRESS",
];

/// One service deployment as `DescribeServiceDeployments` shows it (the fields read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub arn: String,
    pub status: String,
    pub stage: Option<String>,
    pub status_reason: Option<String>,
    /// `rollback.reason`.
    pub rollback_reason: Option<String>,
    /// The PAUSE hook awaiting an answer, by id.
    pub awaiting_hook: Option<String>,
    /// `alarms.triggeredAlarmNames`.
    pub triggered_alarms: Vec<String>,
    /// `deploymentCircuitBreaker` when it `TRIGGERED`: failed tasks and threshold.
    pub breaker_tripped: Option<(i32, i32)>,
    /// The PAUSE hooks answered and passed (`SUCCEEDED`): under CANARY and LINEAR, one per
    /// production traffic shift made (the hook fires before each). ⚠ That ECS lists every
    /// execution of the hook, not only the newest, is read from the API's shape and not
    /// confirmed against AWS.
    pub hooks_passed: usize,
}

/// Where a native canary's effect takes its service deployment (`router: ecs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// `n` production traffic shifts made (0: the new tasks are up, held at the hook before
    /// the first shift); the hook before shift `n` is answered CONTINUE.
    Shifts(usize),
    /// Every shift, to the end (`SUCCESSFUL`): promotion.
    End,
    /// Back to the old tasks: ROLLBACK at a hook awaiting, else a stop with rollback, until
    /// ECS has rolled back.
    Back,
}

/// What to do next about deployment `r` to get it `toward` a point. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Wait,
    /// Answer the PAUSE hook: CONTINUE (`true`) or ROLLBACK.
    Answer {
        hook: String,
        go_on: bool,
    },
    /// `StopServiceDeployment` with rollback.
    Stop,
    Done,
    /// It ended otherwise: why.
    Failed(String),
}

/// The next move for a native canary's service deployment. Pure; the table is tested.
pub fn next(r: &Reading, toward: Toward) -> Next {
    let rolling_back = r.status.starts_with("ROLLBACK") || r.status.starts_with("STOP");
    let ended_back = matches!(r.status.as_str(), "ROLLBACK_SUCCESSFUL" | "STOPPED");
    if toward == Toward::Back {
        return match (&r.awaiting_hook, r.status.as_str()) {
            _ if ended_back => Next::Done,
            (_, "ROLLBACK_FAILED") => Next::Failed(format!(
                "ECS could not roll the service deployment back: {}",
                r.status_reason.as_deref().unwrap_or("ROLLBACK_FAILED")
            )),
            (_, "SUCCESSFUL") => Next::Failed(
                "the service deployment already finished: all traffic is on the new tasks; deploy the previous image to go back".into(),
            ),
            _ if rolling_back => Next::Wait,
            (Some(hook), _) => Next::Answer {
                hook: hook.clone(),
                go_on: false,
            },
            _ => Next::Stop,
        };
    }
    if rolling_back || r.status == "ROLLBACK_FAILED" {
        let why = r
            .rollback_reason
            .as_deref()
            .or(r.status_reason.as_deref())
            .unwrap_or("ECS rolled it back");
        let alarms = if r.triggered_alarms.is_empty() {
            String::new()
        } else {
            format!(" (alarms: {})", r.triggered_alarms.join(", "))
        };
        return Next::Failed(format!("{} {}: {why}{alarms}", r.arn, r.status));
    }
    if r.status == "SUCCESSFUL" {
        return Next::Done;
    }
    match toward {
        Toward::Shifts(n) if r.hooks_passed >= n => {
            let shifted = r.stage.as_deref() != Some("PRODUCTION_TRAFFIC_SHIFT");
            let held = n > 0 || r.awaiting_hook.is_some();
            if shifted && held {
                Next::Done
            } else {
                Next::Wait
            }
        }
        Toward::Shifts(_) | Toward::End => match &r.awaiting_hook {
            Some(hook) => Next::Answer {
                hook: hook.clone(),
                go_on: true,
            },
            None => Next::Wait,
        },
        Toward::Back => unreachable!("handled above"),
    }
}

/// What `r` means to a waiter: the deployment itself, or with `rollback` its rollback
/// (`<arn>#rollback`). Pure.
pub fn reading(r: &Reading, rollback: bool) -> Observed {
    let stage = r.stage.as_deref();
    let shown = match (stage, &r.awaiting_hook) {
        (Some(stage), Some(_)) => format!("{} ({stage}, PAUSE hook awaiting action)", r.status),
        (Some(stage), None) => format!("{} ({stage})", r.status),
        (None, _) => r.status.clone(),
    };
    let id = if rollback {
        format!("{}{ROLLBACK_SUFFIX}", r.arn)
    } else {
        r.arn.clone()
    };
    let mut o = Observed {
        id,
        shown: Some(shown),
        ..Observed::default()
    };
    let why = || {
        let mut parts: Vec<String> = Vec::new();
        if !r.triggered_alarms.is_empty() {
            parts.push(format!(
                "CloudWatch alarm(s) fired: {}",
                r.triggered_alarms.join(", ")
            ));
        }
        if let Some((failed, threshold)) = r.breaker_tripped {
            parts.push(format!(
                "the deployment circuit breaker tripped: {failed} task(s) failed to start or stay healthy (threshold {threshold})"
            ));
        }
        for reason in [&r.rollback_reason, &r.status_reason].into_iter().flatten() {
            if !reason.is_empty() && !parts.contains(reason) {
                parts.push(reason.clone());
            }
        }
        parts.join("; ")
    };
    let code = || {
        if !r.triggered_alarms.is_empty() {
            "ALARM_ACTIVE".to_owned()
        } else if r.breaker_tripped.is_some() {
            "CIRCUIT_BREAKER".to_owned()
        } else {
            r.status.clone()
        }
    };
    let rolling_back = r.status.starts_with("ROLLBACK_");
    if rollback {
        o.status = match r.status.as_str() {
            "ROLLBACK_REQUESTED" | "ROLLBACK_IN_PROGRESS" => Status::InProgress,
            "ROLLBACK_SUCCESSFUL" => Status::Succeeded,
            "ROLLBACK_FAILED" => Status::Failed,
            "STOPPED" => Status::Stopped,
            _ => Status::Created,
        };
        if o.status == Status::Failed {
            let why = why();
            o.error = Some((
                r.status.clone(),
                if why.is_empty() {
                    "ECS could not put blue back".into()
                } else {
                    why
                },
            ));
        }
        return o;
    }
    o.status = match r.status.as_str() {
        "PENDING" => Status::Created,
        "IN_PROGRESS" if r.awaiting_hook.is_some() => Status::Ready,
        "IN_PROGRESS"
            if matches!(
                stage,
                Some("POST_PRODUCTION_TRAFFIC_SHIFT" | "BAKE_TIME" | "CLEAN_UP")
            ) =>
        {
            Status::Baking
        }
        "IN_PROGRESS" => Status::InProgress,
        "SUCCESSFUL" => Status::Succeeded,
        "STOP_REQUESTED" | "STOPPED" => Status::Stopped,
        _ if rolling_back => Status::Failed,
        _ => Status::Unknown,
    };
    o.hook.clone_from(&r.awaiting_hook);
    if matches!(o.status, Status::Failed | Status::Stopped) {
        let why = why();
        o.error = Some((
            code(),
            if why.is_empty() {
                format!("the service deployment is {}", r.status)
            } else {
                why
            },
        ));
    }
    if rolling_back {
        o.rolled_back_by = Some(format!("{}{ROLLBACK_SUFFIX}", r.arn));
        o.rollback_message = Some("ECS rolls the service back to blue".into());
    }
    o
}

pub struct Native {
    client: aws_sdk_ecs::Client,
}

impl Native {
    /// A client from the standard AWS configuration (the SDK's retries off, as for ECS).
    pub async fn from_env(region: &str) -> Self {
        let shared = crate::aws::sdk_config(region, false).await;
        Self {
            client: aws_sdk_ecs::Client::new(&shared),
        }
    }

    /// The service's deployments still in flight, newest first.
    pub async fn in_flight(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<String>, PlatformError> {
        self.listed(cluster, service, &IN_FLIGHT).await
    }

    /// The service's most recent deployment, ended or not.
    pub async fn latest(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<String>, PlatformError> {
        Ok(self.listed(cluster, service, &[]).await?.into_iter().next())
    }

    /// The service's deployments in `statuses` (all, when empty), newest first.
    async fn listed(
        &self,
        cluster: &str,
        service: &str,
        statuses: &[&str],
    ) -> Result<Vec<String>, PlatformError> {
        let mut request = self
            .client
            .list_service_deployments()
            .cluster(cluster)
            .service(service);
        for s in statuses {
            request = request.status(ServiceDeploymentStatus::from(*s));
        }
        let out = request
            .send()
            .await
            .map_err(|e| classify("ListServiceDeployments", &e))?;
        let mut listed: Vec<(Option<f64>, String)> = out
            .service_deployments()
            .iter()
            .filter_map(|d| {
                let arn = d.service_deployment_arn()?.to_owned();
                Some((
                    d.created_at().map(aws_smithy_types::DateTime::as_secs_f64),
                    arn,
                ))
            })
            .collect();
        listed.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        Ok(listed.into_iter().map(|(_, arn)| arn).collect())
    }

    /// Deployment `id` (or its rollback, `<arn>#rollback`) as the waiter sees it.
    pub async fn get(&self, id: &str) -> Result<Observed, PlatformError> {
        let (arn, rollback) = match id.strip_suffix(ROLLBACK_SUFFIX) {
            Some(arn) => (arn, true),
            None => (id, false),
        };
        Ok(reading(&self.read(arn).await?, rollback))
    }

    /// `DescribeServiceDeployments` of one deployment.
    pub async fn read(&self, arn: &str) -> Result<Reading, PlatformError> {
        let out = self
            .client
            .describe_service_deployments()
            .service_deployment_arns(arn)
            .send()
            .await
            .map_err(|e| classify("DescribeServiceDeployments", &e))?;
        let Some(d) = out.service_deployments().first() else {
            let why = out
                .failures()
                .first()
                .and_then(|f| f.reason())
                .unwrap_or("not found");
            return Err(PlatformError::new(
                ErrorKind::NotFound,
                "DescribeServiceDeployments",
                format!("service deployment {arn}: {why}"),
            ));
        };
        Ok(Reading {
            arn: arn.to_owned(),
            status: d
                .status()
                .map_or_else(|| "UNKNOWN".into(), |s| s.as_str().to_owned()),
            stage: d.lifecycle_stage().map(|s| s.as_str().to_owned()),
            status_reason: d.status_reason().map(str::to_owned),
            rollback_reason: d.rollback().and_then(|r| r.reason()).map(str::to_owned),
            awaiting_hook: d
                .lifecycle_hook_details()
                .iter()
                .find(|h| h.status() == Some(&DeploymentLifecycleHookStatus::AwaitingAction))
                .and_then(|h| h.hook_id())
                .map(str::to_owned),
            hooks_passed: d
                .lifecycle_hook_details()
                .iter()
                .filter(|h| h.status() == Some(&DeploymentLifecycleHookStatus::Succeeded))
                .count(),
            triggered_alarms: d
                .alarms()
                .map(|a| a.triggered_alarm_names().to_vec())
                .unwrap_or_default(),
            breaker_tripped: d
                .deployment_circuit_breaker()
                .filter(|b| b.status().is_some_and(|s| s.as_str() == "TRIGGERED"))
                .map(|b| (b.failure_count(), b.threshold())),
        })
    }

    /// Answers the PAUSE hook `hook` of deployment `arn`: CONTINUE (production traffic moves
    /// to green) or ROLLBACK.
    pub async fn answer(&self, arn: &str, hook: &str, go_on: bool) -> Result<(), PlatformError> {
        self.client
            .continue_service_deployment()
            .service_deployment_arn(arn)
            .hook_id(hook)
            .action(if go_on {
                DeploymentLifecycleHookAction::Continue
            } else {
                DeploymentLifecycleHookAction::Rollback
            })
            .send()
            .await
            .map_err(|e| classify("ContinueServiceDeployment", &e))?;
        Ok(())
    }

    /// `StopServiceDeployment` with ROLLBACK: ECS puts blue back.
    pub async fn stop(&self, arn: &str) -> Result<(), PlatformError> {
        self.client
            .stop_service_deployment()
            .service_deployment_arn(arn)
            .stop_type(StopServiceDeploymentStopType::Rollback)
            .send()
            .await
            .map_err(|e| classify("StopServiceDeployment", &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::ecs::bluegreen::{Verdict, judge};

    fn r(status: &str, stage: Option<&str>) -> Reading {
        Reading {
            arn: "arn:sd/1".into(),
            status: status.into(),
            stage: stage.map(str::to_owned),
            ..Reading::default()
        }
    }

    #[test]
    fn a_native_canary_moves_toward_its_shift() {
        let at = |status: &str, stage: &str, passed: usize, hook: Option<&str>| Reading {
            hooks_passed: passed,
            awaiting_hook: hook.map(str::to_owned),
            ..r(status, Some(stage))
        };
        let go = |h: &str, go_on| Next::Answer {
            hook: h.into(),
            go_on,
        };
        let hold = at("IN_PROGRESS", "PRE_PRODUCTION_TRAFFIC_SHIFT", 0, Some("h1"));
        let shifting = at("IN_PROGRESS", "PRODUCTION_TRAFFIC_SHIFT", 1, None);
        let baking = at("IN_PROGRESS", "BAKE_TIME", 1, None);
        let second = at("IN_PROGRESS", "PRE_PRODUCTION_TRAFFIC_SHIFT", 1, Some("h2"));
        let scaling = at("IN_PROGRESS", "SCALE_UP", 0, None);
        for (reading_, toward, want) in [
            (&scaling, Toward::Shifts(0), Next::Wait),
            (&hold, Toward::Shifts(0), Next::Done),
            (&hold, Toward::Shifts(1), go("h1", true)),
            (&shifting, Toward::Shifts(1), Next::Wait),
            (&baking, Toward::Shifts(1), Next::Done),
            (&second, Toward::Shifts(1), Next::Done),
            (&second, Toward::Shifts(2), go("h2", true)),
            (&second, Toward::End, go("h2", true)),
            (&baking, Toward::End, Next::Wait),
            (&r("SUCCESSFUL", Some("CLEAN_UP")), Toward::End, Next::Done),
            (&second, Toward::Back, go("h2", false)),
            (&baking, Toward::Back, Next::Stop),
            (&r("ROLLBACK_IN_PROGRESS", None), Toward::Back, Next::Wait),
            (&r("ROLLBACK_SUCCESSFUL", None), Toward::Back, Next::Done),
        ] {
            assert_eq!(
                next(reading_, toward),
                want,
                "{reading_:?} toward {toward:?}"
            );
        }
        assert!(matches!(
            next(&r("ROLLBACK_IN_PROGRESS", None), Toward::Shifts(1)),
            Next::Failed(_)
        ));
        assert!(matches!(
            next(&r("SUCCESSFUL", None), Toward::Back),
            Next::Failed(_)
        ));
    }

    #[test]
    fn service_deployments_read_as_the_waiter_knows_them() {
        for (reading_, status) in [
            (r("PENDING", None), Status::Created),
            (r("IN_PROGRESS", Some("SCALE_UP")), Status::InProgress),
            (
                r("IN_PROGRESS", Some("PRODUCTION_TRAFFIC_SHIFT")),
                Status::InProgress,
            ),
            (r("IN_PROGRESS", Some("BAKE_TIME")), Status::Baking),
            (r("IN_PROGRESS", Some("CLEAN_UP")), Status::Baking),
            (r("SUCCESSFUL", None), Status::Succeeded),
            (r("STOPPED", None), Status::Stopped),
            (r("SOMETHING_NEW", None), Status::Unknown),
        ] {
            assert_eq!(reading(&reading_, false).status, status, "{reading_:?}");
        }
        let mut gate = r("IN_PROGRESS", Some("POST_TEST_TRAFFIC_SHIFT"));
        gate.awaiting_hook = Some("hook-1".into());
        let o = reading(&gate, false);
        assert_eq!(
            (o.status, o.hook.as_deref()),
            (Status::Ready, Some("hook-1"))
        );
        assert_eq!(
            o.shown.as_deref(),
            Some("IN_PROGRESS (POST_TEST_TRAFFIC_SHIFT, PAUSE hook awaiting action)")
        );
    }

    #[test]
    fn a_rollback_names_its_cause_and_is_followed_as_its_own_deployment() {
        let mut alarm = r("ROLLBACK_IN_PROGRESS", Some("PRODUCTION_TRAFFIC_SHIFT"));
        alarm.triggered_alarms = vec!["movieverse-production-5xx".into()];
        alarm.rollback_reason = Some("Alarm triggered".into());
        assert_eq!(
            judge(&reading(&alarm, false)),
            Verdict::Ended {
                status: Status::Failed,
                reason: "ALARM_ACTIVE: CloudWatch alarm(s) fired: movieverse-production-5xx; Alarm triggered (ECS rolls the service back to blue)".into(),
                rolled_back_by: Some("arn:sd/1#rollback".into()),
            }
        );
        let mut breaker = r("ROLLBACK_REQUESTED", None);
        breaker.breaker_tripped = Some((3, 3));
        let Verdict::Ended { reason, .. } = judge(&reading(&breaker, false)) else {
            panic!("a rollback ends the deployment")
        };
        assert!(
            reason
                .starts_with("CIRCUIT_BREAKER: the deployment circuit breaker tripped: 3 task(s)"),
            "{reason}"
        );
        // The rollback itself, followed as `<arn>#rollback`.
        for (status, seen) in [
            ("IN_PROGRESS", Status::Created),
            ("ROLLBACK_REQUESTED", Status::InProgress),
            ("ROLLBACK_IN_PROGRESS", Status::InProgress),
            ("ROLLBACK_SUCCESSFUL", Status::Succeeded),
            ("ROLLBACK_FAILED", Status::Failed),
        ] {
            let o = reading(&r(status, None), true);
            assert_eq!(
                (o.status, o.id.as_str()),
                (seen, "arn:sd/1#rollback"),
                "{status}"
            );
        }
        assert_eq!(
            judge(&reading(&r("ROLLBACK_FAILED", None), true)),
            Verdict::Ended {
                status: Status::Failed,
                reason: "ROLLBACK_FAILED: ECS could not put blue back".into(),
                rolled_back_by: None,
            }
        );
    }
}
