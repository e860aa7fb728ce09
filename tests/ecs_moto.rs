//! Contract tests: the real binary and the real AWS SDK against a moto server. They prove the
//! requests we send are ones ECS and Application Auto Scaling accept, and that their effects
//! are what we meant: the task definition registered (and an identical one skipped), the
//! service updated, scaling applied, old revisions deregistered, rollback. moto never moves a
//! deployment forward, so these deploy with `--no-wait`; the waiting is covered by the
//! simulator scenarios (tests/engine.rs) and scripted SDK sequences (`tests/ecs_sequences.rs`).

mod common;

use std::path::Path;

use common::moto::Moto;
use common::{Run, SHA};

/// The example, pointed at the moto world's subnets, security group and target group, with a
/// short revision history so clean-up is visible.
fn config(dir: &Path, moto: &Moto) {
    moto.staging_config(dir);
}

fn mvd(moto: &Moto, dir: &Path, args: &[&str]) -> Run {
    let mut cmd = common::bin();
    cmd.current_dir(dir)
        .env("CI", "true")
        .env("GITHUB_RUN_ID", "77")
        .env("GITHUB_RUN_ATTEMPT", "1");
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    Run::from(&cmd.args(args).output().unwrap())
}

async fn clients(moto: &Moto) -> (aws_sdk_ecs::Client, aws_sdk_applicationautoscaling::Client) {
    let shared = moto.sdk_config().await;
    (
        aws_sdk_ecs::Client::new(&shared),
        aws_sdk_applicationautoscaling::Client::new(&shared),
    )
}

async fn active_revisions(ecs: &aws_sdk_ecs::Client) -> Vec<String> {
    ecs.list_task_definitions()
        .family_prefix("movieverse-staging")
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap()
        .task_definition_arns()
        .to_vec()
}

async fn service(ecs: &aws_sdk_ecs::Client) -> aws_sdk_ecs::types::Service {
    ecs.describe_services()
        .cluster("movieverse-staging")
        .services("movieverse-app")
        .send()
        .await
        .unwrap()
        .services()[0]
        .clone()
}

const REV: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-staging:";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_registers_updates_scales_skips_identical_and_rolls_back() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &moto);
    let (ecs, aas) = clients(&moto).await;

    // First deploy: a new revision, the service on it, scaling applied.
    let r = mvd(
        &moto,
        dir.path(),
        &["deploy", "--env", "staging", "--no-wait"],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains(&format!("registered {REV}2")),
        "{}",
        r.dump()
    );
    let svc = service(&ecs).await;
    assert_eq!(svc.task_definition(), Some(format!("{REV}2").as_str()));
    let td = ecs
        .describe_task_definition()
        .task_definition(format!("{REV}2"))
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let tags: Vec<(String, String)> = td
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    assert!(tags.contains(&("commit".into(), SHA.into())), "{tags:?}");
    assert!(
        tags.contains(&("deployment".into(), "gha-77-1".into())),
        "{tags:?}"
    );
    let def = td.task_definition().unwrap();
    assert_eq!((def.cpu(), def.memory()), (Some("512"), Some("1024")));
    let app = &def.container_definitions()[0];
    assert_eq!(
        app.image(),
        Some(
            format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse:sha-{}",
                &SHA[..7]
            )
            .as_str()
        )
    );
    assert!(
        app.secrets()
            .iter()
            .all(|s| s.value_from().starts_with("arn:aws:secretsmanager:"))
    );
    assert_eq!(def.container_definitions()[1].essential(), Some(false));
    let targets = aas
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    let target = &targets.scalable_targets()[0];
    assert_eq!(
        (
            target.resource_id(),
            target.min_capacity(),
            target.max_capacity()
        ),
        ("service/movieverse-staging/movieverse-app", 2, 10)
    );
    let policies = aas
        .describe_scaling_policies()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    let mut targets: Vec<(f64, i32, i32)> = policies
        .scaling_policies()
        .iter()
        .map(|p| {
            let c = p.target_tracking_scaling_policy_configuration().unwrap();
            (
                c.target_value(),
                c.scale_in_cooldown().unwrap(),
                c.scale_out_cooldown().unwrap(),
            )
        })
        .collect();
    targets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(targets, [(70.0, 300, 60), (80.0, 300, 60)]);

    // A rerun with the same input registers nothing and starts nothing: through a proxy
    // that records every ECS call, no RegisterTaskDefinition and no UpdateService, and the
    // service keeps its one deployment.
    let before = active_revisions(&ecs).await;
    let deployments = async |ecs: &aws_sdk_ecs::Client| {
        service(ecs)
            .await
            .deployments()
            .iter()
            .filter_map(|d| d.id().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let deployed = deployments(&ecs).await;
    let proxy = common::codedeploy::Proxy::start(&moto.endpoint, common::codedeploy::Plan::Succeed);
    let mut cmd = common::bin();
    cmd.current_dir(dir.path()).env("CI", "true");
    for (k, v) in proxy.env() {
        cmd.env(k, v);
    }
    let r = Run::from(
        &cmd.args(["deploy", "--env", "staging", "--no-wait"])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stderr.contains("no change"), "{}", r.dump());
    assert_eq!(active_revisions(&ecs).await, before);
    assert!(
        !proxy.calls("DescribeServices").is_empty(),
        "the proxy saw the rerun's calls"
    );
    for op in ["RegisterTaskDefinition", "UpdateService", "CreateService"] {
        assert!(proxy.calls(op).is_empty(), "{op}: {:?}", proxy.calls(op));
    }
    assert_eq!(deployments(&ecs).await, deployed);

    // A new image: a new revision; with revision_history 3 the older unused ones go.
    moto.world(&["register", "movieverse-staging", "3"]);
    let r = mvd(
        &moto,
        dir.path(),
        &[
            "deploy",
            "--env",
            "staging",
            "--no-wait",
            "--image",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains(&format!("registered {REV}6")),
        "{}",
        r.dump()
    );
    let active = active_revisions(&ecs).await;
    for n in [4, 5, 6] {
        assert!(
            active.contains(&format!("{REV}{n}")),
            "revision {n} kept: {active:?}"
        );
    }
    assert!(
        !active.contains(&format!("{REV}2")) && !active.contains(&format!("{REV}3")),
        "old revisions deregistered: {active:?}"
    );
    assert!(
        active.contains(&format!("{REV}1")),
        "a revision a deployment still uses is kept: {active:?}"
    );

    // status shows the service.
    let r = mvd(&moto, dir.path(), &["status", "--env", "staging"]);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout
            .contains(&format!("staging/movieverse-app: runs {REV}6")),
        "{}",
        r.dump()
    );

    // rollback goes to the revision before.
    let r = mvd(
        &moto,
        dir.path(),
        &["rollback", "--env", "staging", "--no-wait"],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert_eq!(
        service(&ecs).await.task_definition(),
        Some(format!("{REV}5").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_service_is_an_environment_error_and_invalid_input_calls_nothing() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &moto);
    let (ecs, _) = clients(&moto).await;
    let text = std::fs::read_to_string(dir.path().join("deploy.yml")).unwrap();

    // A service that does not exist: exit 3, and what to do about it.
    std::fs::write(
        dir.path().join("deploy.yml"),
        text.replacen(
            "      service: movieverse-app\n",
            "      service: no-such-service\n",
            1,
        ),
    )
    .unwrap();
    let r = mvd(
        &moto,
        dir.path(),
        &["deploy", "--env", "staging", "--no-wait"],
    );
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("no-such-service") && r.stderr.contains("create the service first"),
        "{}",
        r.dump()
    );

    // Invalid input: exit 2 before any AWS call, nothing registered.
    let before = active_revisions(&ecs).await;
    std::fs::write(
        dir.path().join("deploy.yml"),
        text.replacen(
            "      memory: 1024\n      desired_count: 2\n",
            "      memory: 512\n      desired_count: 2\n",
            1,
        ),
    )
    .unwrap();
    let r = mvd(&moto, dir.path(), &["deploy", "--env", "staging"]);
    assert_eq!(r.code, 2, "{}", r.dump());
    assert_eq!(active_revisions(&ecs).await, before);

    // A blue-green environment whose CodeDeploy group does not exist: the deploy reads the
    // group first and stops there (exit 3), having registered nothing.
    std::fs::write(dir.path().join("deploy.yml"), &text).unwrap();
    let r = mvd(&moto, dir.path(), &["deploy", "--env", "production"]);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr
            .contains("read the deployment group movieverse/movieverse-production"),
        "{}",
        r.dump()
    );
    assert!(
        ecs.list_task_definitions()
            .family_prefix("movieverse-production")
            .send()
            .await
            .unwrap()
            .task_definition_arns()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_waiting_puts_the_service_back_and_exits_130() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &moto);
    let (ecs, _) = clients(&moto).await;
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("movieverse-deploy"));
    cmd.current_dir(dir.path())
        .env("GITHUB_SHA", SHA)
        .env("GITHUB_REF", "refs/heads/main")
        .env("CI", "true")
        .args(["deploy", "--env", "staging", "--poll-interval", "60s"]);
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    // The poll interval is a minute: the signal lands while the deploy waits.
    let running = common::run_until(&mut cmd, "waiting for this deployment to complete");
    assert_eq!(
        service(&ecs).await.task_definition(),
        Some(format!("{REV}2").as_str()),
        "{}",
        running.seen
    );
    let (code, seen) = running.interrupt();
    assert_eq!(code, Some(130), "{seen}");
    assert!(
        seen.contains(&format!("cancelled; the service was put back on {REV}1")),
        "{seen}"
    );
    assert_eq!(
        service(&ecs).await.task_definition(),
        Some(format!("{REV}1").as_str())
    );
}

/// SIGKILL at each phase of a rolling deploy (#14), then `deploy` again: it goes on from what
/// the killed run left (a registered revision is reused, not registered twice; a service
/// already updated is "no change") and ends on the new revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_every_phase_a_rolling_deploy_run_again_ends_on_the_new_revision() {
    for (i, phase) in [
        "reading the service",
        "registering the new task definition revision",
        "updating the service",
        "waiting for this deployment to complete",
    ]
    .into_iter()
    .enumerate()
    {
        let moto = Moto::start();
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), &moto);
        let (ecs, _) = clients(&moto).await;
        let mut cmd = common::bin_std();
        cmd.current_dir(dir.path()).env("CI", "true").args([
            "deploy",
            "--env",
            "staging",
            "--poll-interval",
            "60s",
        ]);
        for (k, v) in moto.env() {
            cmd.env(k, v);
        }
        let (code, seen) = common::gate::kill_at(&mut cmd, phase);
        assert_eq!(code, None, "{phase}: killed\n{seen}");
        let again = mvd(
            &moto,
            dir.path(),
            &["deploy", "--env", "staging", "--no-wait"],
        );
        assert_eq!(again.code, 0, "{phase}: {}\n{seen}", again.dump());
        assert_eq!(
            service(&ecs).await.task_definition(),
            Some(format!("{REV}2").as_str()),
            "{phase} ({i}): {}\n{seen}",
            again.dump()
        );
        // Never a second registration of the same task definition.
        assert_eq!(
            active_revisions(&ecs).await.len(),
            2,
            "{phase}: {:?}\n{}",
            active_revisions(&ecs).await,
            again.dump()
        );
    }
}

const WORKER: &str = "    ecs:\n      cluster: movieverse-staging\n      service: movieverse-app\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_services_of_an_environment_deploy_together() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &moto);
    let text = std::fs::read_to_string(dir.path().join("deploy.yml")).unwrap();
    assert_eq!(text.matches(WORKER).count(), 1);
    let text = text.replacen(
        WORKER,
        &format!("{WORKER}      services:\n        - name: movieverse-worker\n          command: [python, -m, movieverse.worker]\n          desired_count: 1\n"),
        1,
    );
    std::fs::write(dir.path().join("deploy.yml"), text).unwrap();
    let (ecs, _) = clients(&moto).await;
    let r = mvd(
        &moto,
        dir.path(),
        &["deploy", "--env", "staging", "--no-wait"],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stderr.contains("staging/movieverse-app: registered arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-staging:2"), "{}", r.dump());
    assert!(r.stderr.contains("staging/movieverse-worker: registered arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-staging-movieverse-worker:2"), "{}", r.dump());
    let worker = ecs
        .describe_services()
        .cluster("movieverse-staging")
        .services("movieverse-worker")
        .send()
        .await
        .unwrap()
        .services()[0]
        .clone();
    let td = ecs
        .describe_task_definition()
        .task_definition(worker.task_definition().unwrap())
        .send()
        .await
        .unwrap();
    let app = &td.task_definition().unwrap().container_definitions()[0];
    assert_eq!(app.command(), ["python", "-m", "movieverse.worker"]);
    // A rerun changes nothing in either service.
    let r = mvd(
        &moto,
        dir.path(),
        &["deploy", "--env", "staging", "--no-wait"],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert_eq!(
        r.stderr.matches("no change, still on").count(),
        2,
        "{}",
        r.dump()
    );
    // status reads both in one call.
    let r = mvd(&moto, dir.path(), &["status", "--env", "staging"]);
    assert!(
        r.stdout.contains("staging/movieverse-app: runs")
            && r.stdout.contains("staging/movieverse-worker: runs"),
        "{}",
        r.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_every_environment_rolling_and_blue_green() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &moto);
    let world: serde_json::Value = serde_json::from_str(&moto.world(&["bluegreen"])).unwrap();
    let blue = world["task_definition"].as_str().unwrap();

    // One blue-green environment: its task set is shown (it was refused before).
    let r = mvd(&moto, dir.path(), &["status", "--env", "production"]);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout.contains("production: ecs blue-green")
            && r.stdout
                .contains(&format!("production/movieverse-app: runs {blue}"))
            && r.stdout.contains("(primary)")
            && r.stdout.contains("CodeDeploy deployment d-BLUE12345"),
        "{}",
        r.dump()
    );

    // Every environment: both ECS ones are read; the Kubernetes one has no cluster here, is
    // reported, and makes the exit code, without hiding the others.
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .env("CI", "true")
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"));
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    let r = Run::from(&cmd.args(["status", "--env", "all"]).output().unwrap());
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stdout.contains("staging: ecs rolling")
            && r.stdout.contains("staging/movieverse-app: runs ")
            && r.stdout.contains("production: ecs blue-green")
            && r.stdout
                .contains("production-k8s: kubernetes canary\n  cannot be read"),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr.contains("some environments could not be read"),
        "{}",
        r.dump()
    );
}

/// ECS's circuit breaker rolls the deployment back and removes it before our next look: the
/// binary reports the platform's rollback with ECS's reason (not "another deployment
/// replaced this one"), exit 1.
#[test]
fn a_circuit_breaker_rollback_whose_deployment_is_gone_is_reported_as_the_rollback() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &moto);
    let first = mvd(
        &moto,
        dir.path(),
        &["deploy", "--env", "staging", "--no-wait"],
    );
    assert_eq!(first.code, 0, "{}", first.dump());
    // A new image: the deploy registers revision 3, and ECS rolls back to revision 2.
    let text = std::fs::read_to_string(dir.path().join("deploy.yml")).unwrap();
    std::fs::write(
        dir.path().join("deploy.yml"),
        text.replacen("LOG_LEVEL: info", "LOG_LEVEL: debug", 1),
    )
    .unwrap();
    let proxy = common::codedeploy::Proxy::start(&moto.endpoint, common::codedeploy::Plan::Succeed);
    proxy.circuit_breaker_back_to(&format!("{REV}2"));
    let mut cmd = common::bin();
    cmd.current_dir(dir.path()).env("CI", "true");
    for (k, v) in proxy.env() {
        cmd.env(k, v);
    }
    let r = Run::from(
        &cmd.args(["deploy", "--env", "staging", "--poll-interval", "1s"])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr
            .contains("ECS deployment circuit breaker: rolling back to deploymentId")
            && !r.stderr.contains("replaced"),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr.contains(
            "FAILED: the platform rolled the deployment back: ECS deployment circuit breaker"
        ),
        "{}",
        r.dump()
    );
}
