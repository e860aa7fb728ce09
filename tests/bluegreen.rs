//! Blue-green through `CodeDeploy`, end to end: the real binary against moto (ECS service with
//! task sets, `CodeDeploy` application, group and deployments) behind the scenario proxy of
//! `tests/common/codedeploy.rs`, which moves each deployment's status over time as
//! `CodeDeploy` would and answers Stop and Continue.

mod common;

use common::Run;
use common::codedeploy::{Plan, Proxy};
use common::moto::Moto;
use sha2::Digest as _;

struct Bed {
    moto: Moto,
    proxy: Proxy,
    dir: tempfile::TempDir,
    /// The task definition the PRIMARY task set runs, and the one before it.
    current: String,
    previous: String,
}

fn bed(plan: Plan) -> Bed {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    moto.staging_config(dir.path());
    let world: serde_json::Value = serde_json::from_str(&moto.world(&["bluegreen"])).unwrap();
    let proxy = Proxy::start(&moto.endpoint, plan);
    Bed {
        current: world["task_definition"].as_str().unwrap().to_owned(),
        previous: world["previous"].as_str().unwrap().to_owned(),
        moto,
        proxy,
        dir,
    }
}

fn cmd(bed: &Bed, args: &[&str]) -> std::process::Command {
    let mut cmd = common::bin_std();
    cmd.current_dir(bed.dir.path()).env("CI", "true");
    for (k, v) in bed.proxy.env() {
        cmd.env(k, v);
    }
    cmd.args(args);
    cmd
}

fn mvd(bed: &Bed, args: &[&str]) -> Run {
    Run::from(&cmd(bed, args).output().unwrap())
}

const ROLLBACK: &[&str] = &["rollback", "--env", "production", "--poll-interval", "1s"];

fn created(bed: &Bed) -> serde_json::Value {
    let calls = bed.proxy.calls("CreateDeployment");
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls[0].clone()
}

fn output(run: &Run, key: &str) -> String {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in\n{}", run.dump()))
        .to_owned()
}

#[test]
fn rollback_deploys_the_previous_task_definition_through_codedeploy() {
    let bed = bed(Plan::Succeed);
    let r = mvd(&bed, ROLLBACK);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains(&format!(
            "rolling back to {} through CodeDeploy",
            bed.previous
        )) && r.stderr.contains(" Created")
            && r.stderr.contains(" Succeeded")
            && r.stderr.contains("rolled back (CodeDeploy deployment"),
        "{}",
        r.dump()
    );
    let id = output(&r, "deployment");
    // The deployment: the environment's application, group and configuration, and the
    // rendered AppSpec pointed at the previous revision, with its digest.
    let body = created(&bed);
    assert_eq!(body["applicationName"], "movieverse");
    assert_eq!(body["deploymentGroupName"], "movieverse-production");
    assert_eq!(
        body["deploymentConfigName"],
        "CodeDeployDefault.ECSAllAtOnce"
    );
    let revision = &body["revision"];
    assert_eq!(revision["revisionType"], "AppSpecContent");
    let content = revision["appSpecContent"]["content"].as_str().unwrap();
    let sha = sha2::Sha256::digest(content.as_bytes())
        .iter()
        .fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
    assert_eq!(revision["appSpecContent"]["sha256"], sha.as_str());
    let appspec: serde_json::Value = serde_json::from_str(content).unwrap();
    let properties = &appspec["Resources"][0]["TargetService"]["Properties"];
    assert_eq!(properties["TaskDefinition"], bed.previous.as_str());
    assert_ne!(properties["TaskDefinition"], bed.current.as_str());
    assert_eq!(
        properties["LoadBalancerInfo"]["ContainerName"],
        "movieverse-app"
    );
    assert_eq!(properties["LoadBalancerInfo"]["ContainerPort"], 5000);
    // Followed to its end, never stopped.
    assert!(
        bed.proxy
            .calls("GetDeployment")
            .iter()
            .all(|c| c["deploymentId"] == id.as_str())
    );
    assert!(bed.proxy.calls("StopDeployment").is_empty());
}

#[test]
fn a_ready_wait_on_the_way_is_continued() {
    let bed = bed(Plan::Gate);
    let r = mvd(&bed, ROLLBACK);
    assert_eq!(r.code, 0, "{}", r.dump());
    let id = output(&r, "deployment");
    let continued = bed.proxy.calls("ContinueDeployment");
    assert_eq!(continued.len(), 1, "{}", r.dump());
    assert_eq!(continued[0]["deploymentId"], id.as_str());
    assert_eq!(continued[0]["deploymentWaitType"], "READY_WAIT");
    assert!(
        r.stderr.contains("Ready (green takes test traffic)")
            && r.stderr.contains("continuing past the Ready wait"),
        "{}",
        r.dump()
    );
}

#[test]
fn a_rollback_codedeploy_fails_says_why_and_what_rolls_it_back() {
    let bed = bed(Plan::Fail);
    let r = mvd(&bed, ROLLBACK);
    assert_eq!(r.code, 1, "{}", r.dump());
    let id = output(&r, "deployment");
    assert!(
        r.stderr.contains(&format!(
            "the rollback deployment {id} did not succeed: HEALTH_CONSTRAINTS: The ECS task set movieverse-green failed its target group health checks"
        )) && r.stderr.contains(&format!("CodeDeploy rolls it back with {id}-rb")),
        "{}",
        r.dump()
    );
}

#[test]
fn a_deployment_in_flight_is_stopped_with_rollback_and_the_rollback_followed() {
    let moto_bed = bed(Plan::Hang);
    let world: serde_json::Value =
        serde_json::from_str(&moto_bed.moto.world(&["inflight"])).unwrap();
    let in_flight = world["deployment"].as_str().unwrap();
    let r = mvd(&moto_bed, ROLLBACK);
    assert_eq!(r.code, 0, "{}", r.dump());
    let stops = moto_bed.proxy.calls("StopDeployment");
    assert_eq!(stops.len(), 1, "{}", r.dump());
    assert_eq!(stops[0]["deploymentId"], in_flight);
    assert_eq!(stops[0]["autoRollbackEnabled"], true);
    assert!(
        moto_bed.proxy.calls("CreateDeployment").is_empty(),
        "nothing new is deployed over a deployment in flight"
    );
    assert_eq!(output(&r, "deployment"), in_flight);
    assert_eq!(output(&r, "rollback_deployment"), format!("{in_flight}-rb"));
    assert!(
        r.stderr.contains(&format!(
            "{in_flight} of movieverse/movieverse-production is in flight"
        )) && r.stderr.contains(&format!("{in_flight}-rb Succeeded")),
        "{}",
        r.dump()
    );
}

#[test]
fn sigint_stops_the_rollback_with_codedeploys_rollback_and_exits_130() {
    let bed = bed(Plan::Hang);
    let running = common::run_until(&mut cmd(&bed, ROLLBACK), "InProgress");
    let (code, stderr, _) = running.signal("INT");
    assert_eq!(code, Some(130), "{stderr}");
    let stops = bed.proxy.calls("StopDeployment");
    assert_eq!(stops.len(), 1, "{stderr}");
    assert_eq!(stops[0]["autoRollbackEnabled"], true);
    let created = created(&bed);
    assert_eq!(created["deploymentGroupName"], "movieverse-production");
    assert!(stderr.contains("was stopped with rollback"), "{stderr}");
}

#[test]
fn the_time_limit_and_no_wait_leave_codedeploy_to_carry_on() {
    let bed = bed(Plan::Hang);
    let mut args = ROLLBACK.to_vec();
    args.extend(["--timeout", "2s"]);
    let r = mvd(&bed, &args);
    assert_eq!(r.code, 1, "{}", r.dump());
    let id = output(&r, "deployment");
    assert!(
        r.stderr.contains(&format!(
            "the rollback deployment {id} has not finished after"
        )) && r.stderr.contains("CodeDeploy carries on with it"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("StopDeployment").is_empty());

    // --no-wait: created, not followed. (The deployment above is still in flight: it is
    // the one stopped.)
    let bed = self::bed(Plan::Succeed);
    let mut args = ROLLBACK.to_vec();
    args.push("--no-wait");
    let r = mvd(&bed, &args);
    assert_eq!(r.code, 0, "{}", r.dump());
    output(&r, "deployment");
    assert!(bed.proxy.calls("GetDeployment").is_empty(), "{}", r.dump());
}

#[test]
fn a_service_with_nothing_before_says_so_and_deploys_nothing() {
    let bed = bed(Plan::Succeed);
    // Deregistering revision 1 leaves nothing before the running one.
    let r = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ecs = aws_sdk_ecs::Client::new(&bed.moto.sdk_config().await);
            ecs.deregister_task_definition()
                .task_definition(&bed.previous)
                .send()
                .await
                .unwrap();
        });
        mvd(&bed, ROLLBACK)
    };
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr
            .contains("there is no earlier task definition revision to roll back to"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("CreateDeployment").is_empty());
}
