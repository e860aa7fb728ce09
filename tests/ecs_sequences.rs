//! What moto cannot show: a deployment that goes `IN_PROGRESS` then COMPLETED, one the circuit
//! breaker fails, and throttling and 5xx answers. The real `Ecs` platform and the real driver
//! run against SDK clients whose answers are scripted at the SDK boundary (aws-smithy-mocks),
//! on tokio's paused clock.

use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::{
    Container, Deployment, DeploymentRolloutState, Service, ServiceEvent, Task, TaskDefinition,
    TaskStopCode,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use movieverse_deploy::driver::{DriveOptions, Unit, drive};
use movieverse_deploy::platform::ServiceSpec;
use movieverse_deploy::platform::ecs::Ecs;
use movieverse_deploy::strategy::rolling::{
    CancelPolicy, Event, Failure, Outcome, Rolling, Settings,
};
use tokio_util::sync::CancellationToken;

const V1: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-staging:1";
const V2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-staging:2";
const STARTED: i64 = 1_800_000_000;

#[allow(clippy::needless_pass_by_value)] // the SDK enum is not Copy; callers pass literals
fn deployment(
    id: &str,
    revision: &str,
    state: DeploymentRolloutState,
    running: i32,
    primary: bool,
) -> Deployment {
    Deployment::builder()
        .id(id)
        .status(if primary { "PRIMARY" } else { "ACTIVE" })
        .task_definition(revision)
        .rollout_state(state.clone())
        .set_rollout_state_reason(
            (state == DeploymentRolloutState::Failed)
                .then(|| "ECS deployment circuit breaker: tasks failed to start.".to_owned()),
        )
        .desired_count(2)
        .running_count(running)
        .pending_count(2 - running)
        .failed_tasks(if state == DeploymentRolloutState::Failed {
            3
        } else {
            0
        })
        .build()
}

fn service(
    revision: &str,
    deployments: Vec<Deployment>,
    events: Vec<ServiceEvent>,
) -> DescribeServicesOutput {
    DescribeServicesOutput::builder()
        .services(
            Service::builder()
                .service_name("movieverse-app")
                .deployment_configuration(
                    aws_sdk_ecs::types::DeploymentConfiguration::builder()
                        .deployment_circuit_breaker(
                            aws_sdk_ecs::types::DeploymentCircuitBreaker::builder()
                                .enable(true)
                                .rollback(true)
                                .build(),
                        )
                        .build(),
                )
                .task_definition(revision)
                .set_deployments(Some(deployments))
                .set_events(Some(events))
                .build(),
        )
        .build()
}

fn in_progress(running: i32) -> DescribeServicesOutput {
    service(
        V2,
        vec![
            deployment(
                "ecs-svc/2",
                V2,
                DeploymentRolloutState::InProgress,
                running,
                true,
            ),
            deployment(
                "ecs-svc/1",
                V1,
                DeploymentRolloutState::Completed,
                2 - running,
                false,
            ),
        ],
        vec![],
    )
}

fn spec() -> ServiceSpec {
    ServiceSpec {
        cluster: "movieverse-staging".into(),
        name: "movieverse-app".into(),
        definition: serde_json::json!({
            "family": "movieverse-staging",
            "containerDefinitions": [{"name": "movieverse-app", "image": "movieverse:new", "essential": true}]
        }),
        service: serde_json::json!({"cluster": "movieverse-staging", "serviceName": "movieverse-app", "taskDefinition": "movieverse-staging"}),
        scaling: None,
        tags: vec![("commit".into(), "abc".into())],
        manifests: vec![],
    }
}

fn settings() -> Settings {
    Settings {
        progress_deadline: Duration::from_mins(10),
        keep_revisions: 10,
        on_cancel: CancelPolicy::Rollback,
        no_wait: false,
    }
}

fn http(status: u16, body: &'static str) -> HttpResponse {
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

async fn deploy(ecs: Client) -> (Outcome, Vec<(Duration, Event)>) {
    let scaling = aws_sdk_applicationautoscaling::Client::from_conf(
        aws_sdk_applicationautoscaling::Config::builder()
            .behavior_version(aws_sdk_applicationautoscaling::config::BehaviorVersion::latest())
            .region(aws_sdk_applicationautoscaling::config::Region::new(
                "us-east-1",
            ))
            .build(),
    );
    let platform = Ecs::new(ecs, scaling);
    let mut units = [Unit {
        spec: spec(),
        machine: Rolling::new("movieverse-app", settings(), STARTED),
    }];
    let mut events = Vec::new();
    let outcome = drive(
        &platform,
        &mut units,
        &DriveOptions::default(),
        &CancellationToken::new(),
        &mut |_, at, e| events.push((at, e.clone())),
    )
    .await
    .remove(0);
    (outcome, events)
}

fn rules_before_waiting() -> (
    aws_smithy_mocks::Rule,
    aws_smithy_mocks::Rule,
    aws_smithy_mocks::Rule,
) {
    let live = mock!(Client::describe_task_definition).then_output(|| {
        DescribeTaskDefinitionOutput::builder()
            .task_definition(
                TaskDefinition::builder()
                    .family("movieverse-staging")
                    .task_definition_arn(V1)
                    .build(),
            )
            .build()
    });
    let register = mock!(Client::register_task_definition).then_output(|| {
        RegisterTaskDefinitionOutput::builder()
            .task_definition(TaskDefinition::builder().task_definition_arn(V2).build())
            .build()
    });
    let update = mock!(Client::update_service).then_output(|| {
        UpdateServiceOutput::builder()
            .set_service(in_progress(0).services().first().cloned())
            .build()
    });
    (live, register, update)
}

#[tokio::test(start_paused = true)]
async fn in_progress_then_completed_is_detected_within_one_poll() {
    let describe = mock!(Client::describe_services)
        .sequence()
        // Prepare, then a throttled poll, a 5xx poll, progress, completion, and clean-up's read.
        .output(|| {
            service(
                V1,
                vec![deployment(
                    "ecs-svc/1",
                    V1,
                    DeploymentRolloutState::Completed,
                    2,
                    true,
                )],
                vec![],
            )
        })
        .http_response(|| {
            http(
                400,
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            )
        })
        .http_response(|| http(500, r#"{"__type":"ServerException","message":"internal"}"#))
        .output(|| in_progress(0))
        .output(|| in_progress(1))
        .output(|| {
            service(
                V2,
                vec![deployment(
                    "ecs-svc/2",
                    V2,
                    DeploymentRolloutState::Completed,
                    2,
                    true,
                )],
                vec![],
            )
        })
        .repeatedly()
        .build();
    let (live, register, update) = rules_before_waiting();
    let list = mock!(Client::list_task_definitions).then_output(|| {
        ListTaskDefinitionsOutput::builder()
            .task_definition_arns(V1)
            .task_definition_arns(V2)
            .build()
    });
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&describe, &live, &register, &update, &list]
    );
    let (outcome, events) = deploy(ecs).await;
    assert_eq!(
        outcome,
        Outcome::Succeeded {
            revision: V2.into(),
            waited: true
        }
    );
    assert_eq!((register.num_calls(), update.num_calls()), (1, 1));
    // Throttled and 5xx polls were retried (1 s, then 2 s back-off) and did not fail the deploy.
    let progress: Vec<u32> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Progress { running, .. } => Some(*running),
            _ => None,
        })
        .collect();
    assert_eq!(progress, [0, 1, 2]);
    // The deploy finished at the observation that saw COMPLETED: no extra wait after it.
    let completed_at = events
        .iter()
        .find(|(_, e)| matches!(e, Event::Progress { running: 2, .. }))
        .unwrap()
        .0;
    let finished_at = events
        .iter()
        .find(|(_, e)| matches!(e, Event::Finished { .. }))
        .unwrap()
        .0;
    assert_eq!(completed_at, finished_at);
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_failure_reports_events_and_stopped_tasks() {
    let failed_event = ServiceEvent::builder()
        .created_at(aws_smithy_types::DateTime::from_secs(STARTED + 200))
        .message("(service movieverse-app) (deployment ecs-svc/2) deployment failed: tasks failed to start.")
        .build();
    let old_event = ServiceEvent::builder()
        .created_at(aws_smithy_types::DateTime::from_secs(STARTED - 3600))
        .message("an event from before this deploy")
        .build();
    let describe = mock!(Client::describe_services)
        .sequence()
        .output(|| {
            service(
                V1,
                vec![deployment(
                    "ecs-svc/1",
                    V1,
                    DeploymentRolloutState::Completed,
                    2,
                    true,
                )],
                vec![],
            )
        })
        .output(|| in_progress(0))
        .output(move || {
            service(
                V1,
                vec![
                    deployment("ecs-svc/2", V2, DeploymentRolloutState::Failed, 0, false),
                    deployment("ecs-svc/3", V1, DeploymentRolloutState::InProgress, 2, true),
                ],
                vec![failed_event.clone(), old_event.clone()],
            )
        })
        .repeatedly()
        .build();
    let (live, register, update) = rules_before_waiting();
    let list_tasks = mock!(Client::list_tasks).then_output(|| {
        ListTasksOutput::builder()
            .task_arns("arn:aws:ecs:us-east-1:123456789012:task/movieverse-staging/t1")
            .build()
    });
    let describe_tasks = mock!(Client::describe_tasks).then_output(|| {
        DescribeTasksOutput::builder()
            .tasks(
                Task::builder()
                    .task_arn("arn:aws:ecs:us-east-1:123456789012:task/movieverse-staging/t1")
                    .started_by("ecs-svc/2")
                    .stopped_reason("Essential container in task exited")
                    .stop_code(TaskStopCode::EssentialContainerExited)
                    .containers(
                        Container::builder()
                            .name("movieverse-app")
                            .exit_code(137)
                            .reason("OutOfMemoryError: Container killed due to memory usage")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [
            &describe,
            &live,
            &register,
            &update,
            &list_tasks,
            &describe_tasks
        ]
    );
    let (outcome, _) = deploy(ecs).await;
    let Outcome::Failed {
        failure: Failure::RolledBack { reason },
        details,
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("circuit breaker"), "{reason}");
    assert_eq!(
        details,
        &[
            "service event: (service movieverse-app) (deployment ecs-svc/2) deployment failed: tasks failed to start.".to_owned(),
            "stopped task t1: Essential container in task exited [EssentialContainerExited]; movieverse-app exit 137 (OutOfMemoryError: Container killed due to memory usage)".to_owned(),
        ]
    );
    assert_eq!(outcome.exit_code(), 1);
}

#[tokio::test(start_paused = true)]
async fn access_denied_is_not_retried_and_exits_3() {
    let describe = mock!(Client::describe_services)
        .sequence()
        .http_response(|| http(400, r#"{"__type":"AccessDeniedException","message":"User is not authorized to perform: ecs:DescribeServices"}"#))
        .repeatedly()
        .build();
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe]);
    let (outcome, _) = deploy(ecs).await;
    let Outcome::Failed {
        failure: Failure::Platform(e),
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(
        e.message.contains("AccessDeniedException") && e.message.contains("ecs:DescribeServices"),
        "{e}"
    );
    assert_eq!(outcome.exit_code(), 3);
    assert_eq!(describe.num_calls(), 1);
}
