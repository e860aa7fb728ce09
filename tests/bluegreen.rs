//! Blue-green through `CodeDeploy`, end to end: the real binary against moto (ECS service with
//! task sets, `CodeDeploy` application, group and deployments) behind the scenario proxy of
//! `tests/common/codedeploy.rs`, which moves each deployment's status over time as
//! `CodeDeploy` would and answers Stop and Continue.

mod common;

use common::Run;
use common::codedeploy::{DEPLOY, Plan, Proxy};
use common::moto::Moto;
use sha2::Digest as _;

struct Bed {
    moto: Moto,
    proxy: Proxy,
    dir: tempfile::TempDir,
    /// The world's load balancer: green's target group ARN.
    green: String,
    /// The task definition the PRIMARY task set runs, and the one before it.
    current: String,
    previous: String,
}

fn bed(plan: Plan) -> Bed {
    bed_with(plan, false, false)
}

/// The bed, with a group that stops at Ready (`group_gate`) and deploy.yml asking for a
/// manual gate (`config_gate`).
fn bed_with(plan: Plan, group_gate: bool, config_gate: bool) -> Bed {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    moto.staging_config(dir.path());
    // The example checks green at Ready (which needs a group that stops there); these tests
    // deploy without checks unless they add their own.
    common::codedeploy::without_checks(dir.path());
    if config_gate {
        let path = dir.path().join("deploy.yml");
        let text = std::fs::read_to_string(&path).unwrap().replacen(
            "        termination_wait: 5m\n",
            "        termination_wait: 5m\n        gate: manual\n",
            1,
        );
        std::fs::write(path, text).unwrap();
    }
    let world: serde_json::Value = serde_json::from_str(&moto.world(if group_gate {
        &["bluegreen", "gate"]
    } else {
        &["bluegreen"]
    }))
    .unwrap();
    // The production environment on this world's load balancer.
    let path = dir.path().join("deploy.yml");
    let example_tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-blue/0123456789abcdef";
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen(example_tg, world["blue"].as_str().unwrap(), 1)
        .replacen(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/movieverse/0123456789abcdef/1111111111111111",
            world["prod_listener"].as_str().unwrap(),
            1,
        )
        .replacen(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/movieverse/0123456789abcdef/8080808080808080",
            world["test_listener"].as_str().unwrap(),
            1,
        );
    std::fs::write(&path, text).unwrap();
    let proxy = Proxy::start(&moto.endpoint, plan);
    Bed {
        current: world["task_definition"].as_str().unwrap().to_owned(),
        green: world["green"].as_str().unwrap().to_owned(),
        previous: world["previous"].as_str().unwrap().to_owned(),
        moto,
        proxy,
        dir,
    }
}

fn cmd(bed: &Bed, args: &[&str]) -> std::process::Command {
    common::codedeploy::mvd_cmd(bed.dir.path(), &bed.proxy, args)
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
    let id = r.output("deployment");
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
    let id = r.output("deployment");
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
    let id = r.output("deployment");
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
    assert_eq!(r.output("deployment"), in_flight);
    assert_eq!(r.output("rollback_deployment"), format!("{in_flight}-rb"));
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
    let id = r.output("deployment");
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
    r.output("deployment");
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

/// `deploy` with `--report`: the run and the pull request comment it wrote.
fn deploy_reported(bed: &Bed) -> (Run, String) {
    let report = bed.dir.path().join("comment.md");
    let mut args = DEPLOY.to_vec();
    args.extend(["--report", report.to_str().unwrap()]);
    let r = mvd(bed, &args);
    let comment = std::fs::read_to_string(&report).unwrap_or_default();
    (r, comment)
}

fn rollout(bed: &Bed, action: &str) -> Run {
    mvd(bed, &common::codedeploy::rollout_args(action))
}

/// The task definition the deploy registered (the one after the world's two).
const NEW_REVISION: &str =
    "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-production:3";

#[test]
fn deploy_creates_the_deployment_for_a_new_revision_and_follows_it_to_the_end() {
    let bed = bed(Plan::Succeed);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    let id = r.output("deployment");
    let body = created(&bed);
    let content = body["revision"]["appSpecContent"]["content"]
        .as_str()
        .unwrap();
    let appspec: serde_json::Value = serde_json::from_str(content).unwrap();
    assert_eq!(
        appspec["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"],
        NEW_REVISION
    );
    for line in [
        "production: step 1/3: deploy green",
        &format!("production: registered {NEW_REVISION}"),
        &format!("{id} Succeeded"),
        "production: step 3/3: keep blue for the termination wait",
        "production: promoted: green serves production, blue is terminated",
    ] {
        assert!(r.stderr.contains(line), "{line}\n{}", r.dump());
    }
    assert!(bed.proxy.calls("StopDeployment").is_empty());

    // CodeDeploy made green the PRIMARY task set: a rerun registers nothing, deploys nothing.
    bed.moto.world(&["primary", NEW_REVISION]);
    let again = mvd(&bed, DEPLOY);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert!(
        again
            .stderr
            .contains("no change: blue already runs this task definition"),
        "{}",
        again.dump()
    );
    assert_eq!(bed.proxy.calls("CreateDeployment").len(), 1);
}

#[test]
fn a_manual_gate_pauses_and_rollout_promote_from_a_second_process_switches() {
    let bed = bed_with(Plan::Gate, true, true);
    let (r, comment) = deploy_reported(&bed);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stdout.contains("result=paused"), "{}", r.dump());
    // The pull request comment says where it waits and how to go on.
    assert!(
        comment.contains("waiting for promotion: green takes test traffic on port 8080 (https://movie-verse.com:8080)")
            && comment.contains("rollout promote --env production"),
        "{comment}"
    );
    let id = r.output("deployment");
    assert!(
        r.stderr
            .contains("green takes test traffic on port 8080; production stays on blue"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("ContinueDeployment").is_empty());

    let status = rollout(&bed, "status");
    assert_eq!(status.code, 0, "{}", status.dump());
    assert!(
        status.stdout.contains(&format!(
            "CodeDeploy deployment {id} of movieverse/movieverse-production: Ready"
        )) && status.stdout.contains("rollout promote --env production"),
        "{}",
        status.dump()
    );

    let promoted = rollout(&bed, "promote");
    assert_eq!(promoted.code, 0, "{}", promoted.dump());
    let continued = bed.proxy.calls("ContinueDeployment");
    assert_eq!(continued.len(), 1, "{}", promoted.dump());
    assert_eq!(continued[0]["deploymentId"], id.as_str());
    assert_eq!(continued[0]["deploymentWaitType"], "READY_WAIT");
    assert!(
        promoted.stderr.contains("production traffic is on green")
            && promoted
                .stderr
                .contains("promoted: green serves production"),
        "{}",
        promoted.dump()
    );
    // Nothing in flight any more: how the last one ended (#14).
    let status = rollout(&bed, "status");
    assert!(
        status.stdout.contains(&format!(
            "no blue-green deployment of movieverse/movieverse-production is in flight; the last: CodeDeploy deployment {id} Succeeded"
        )),
        "{}",
        status.dump()
    );
    let resumed = rollout(&bed, "resume");
    assert_eq!(resumed.code, 0, "{}", resumed.dump());
    assert!(
        resumed
            .stdout
            .contains("green serves production: nothing to continue"),
        "{}",
        resumed.dump()
    );
    let aborted = rollout(&bed, "abort");
    assert_eq!(aborted.code, 1, "{}", aborted.dump());
    assert!(
        aborted.stderr.contains(&format!(
            "nothing to abort; the last: CodeDeploy deployment {id} Succeeded"
        )) && aborted
            .stderr
            .contains("`movieverse-deploy rollback --env production`"),
        "{}",
        aborted.dump()
    );
    assert_eq!(bed.proxy.calls("StopDeployment").len(), 0);
    assert_eq!(
        created(&bed)["deploymentGroupName"],
        "movieverse-production"
    );
}

#[test]
fn rollout_abort_at_the_gate_stops_with_rollback() {
    let bed = bed_with(Plan::Gate, true, true);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    let id = r.output("deployment");
    let aborted = rollout(&bed, "abort");
    assert_eq!(aborted.code, 1, "{}", aborted.dump());
    let stops = bed.proxy.calls("StopDeployment");
    assert_eq!(stops.len(), 1, "{}", aborted.dump());
    assert_eq!(stops[0]["deploymentId"], id.as_str());
    assert_eq!(stops[0]["autoRollbackEnabled"], true);
    assert!(
        aborted
            .stderr
            .contains("rolling back, traffic to blue: rollout abort")
            && aborted.stderr.contains(&format!("{id}-rb Succeeded")),
        "{}",
        aborted.dump()
    );
    assert!(bed.proxy.calls("ContinueDeployment").is_empty());
    // Idempotent: nothing is in flight any more; how the last one ended is said (#14), read
    // through its rollback deployment, CodeDeploy's last attempt.
    let again = rollout(&bed, "abort");
    assert_eq!(again.code, 1, "{}", again.dump());
    assert!(
        again.stderr.contains(&format!(
            "no blue-green deployment of movieverse/movieverse-production is in flight: nothing to abort; the last: CodeDeploy deployment {id} Stopped (MANUAL_STOP: The deployment was stopped by a user request.), rolled back by {id}-rb"
        )),
        "{}",
        again.dump()
    );
    let resumed = rollout(&bed, "resume");
    assert_eq!(resumed.code, 1, "{}", resumed.dump());
    assert!(
        resumed.stderr.contains("nothing to continue; the last:"),
        "{}",
        resumed.dump()
    );
    assert_eq!(bed.proxy.calls("StopDeployment").len(), 1);
}

/// Faults on the way back (#14): `CodeDeploy` fails the first two `StopDeployment` calls of an
/// abort with a 500; the stop is retried with back-off, said, and traffic goes back to blue.
#[test]
fn a_failing_stop_is_retried_and_the_abort_still_goes_back_to_blue() {
    let bed = bed_with(Plan::Gate, true, true);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    let id = r.output("deployment");
    bed.proxy.fail_next("StopDeployment", 2);
    let aborted = rollout(&bed, "abort");
    assert_eq!(aborted.code, 1, "{}", aborted.dump());
    for line in [
        "production: retrying in 1 s (1/5): StopDeployment",
        "production: retrying in 2 s (2/5): StopDeployment",
        "rolling back, traffic to blue: rollout abort",
    ] {
        assert!(
            aborted.stderr.contains(line),
            "`{line}` missing:\n{}",
            aborted.dump()
        );
    }
    assert!(
        aborted.stderr.contains(&format!("{id}-rb Succeeded")),
        "{}",
        aborted.dump()
    );
    // The two that failed were answered by the proxy; the third was served.
    assert_eq!(bed.proxy.calls("StopDeployment").len(), 1);
}

#[test]
fn green_that_fails_is_rolled_back_by_codedeploy_and_the_reason_shown() {
    let bed = bed(Plan::Fail);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 1, "{}", r.dump());
    let id = r.output("deployment");
    assert!(
        r.stderr.contains("HEALTH_CONSTRAINTS: The ECS task set movieverse-green failed its target group health checks")
            && r.stderr.contains(&format!("{id}-rb Succeeded"))
            // Where the deployment stopped: its ECS target's failed lifecycle event.
            && r.stderr.contains("lifecycle events: Install failed (UnknownError: The ECS task set of green did not reach steady state: its tasks failed the target group health checks)")
            // Why green's tasks stopped: the task definition the deploy registered.
            && r.stderr.contains("green's stopped tasks: stopped task 0f1e2d3c4b5a69788796a5b4c3d2e1f0: Essential container in task exited [EssentialContainerExited]; movieverse-app exit 1 (DATABASE_URL: connection refused)"),
        "{}",
        r.dump()
    );
    assert!(
        bed.proxy.calls("StopDeployment").is_empty(),
        "a failed deployment is rolled back by CodeDeploy already"
    );
}

#[test]
fn sigint_while_green_deploys_stops_it_with_rollback() {
    let bed = bed(Plan::Hang);
    let running = common::run_until(&mut cmd(&bed, DEPLOY), "InProgress");
    let (code, stderr, _) = running.signal("INT");
    assert_eq!(code, Some(130), "{stderr}");
    let stops = bed.proxy.calls("StopDeployment");
    assert_eq!(stops.len(), 1, "{stderr}");
    assert_eq!(stops[0]["autoRollbackEnabled"], true);
    assert!(stderr.contains("production: cancelled"), "{stderr}");
}

#[test]
fn a_gate_the_group_does_not_hold_and_a_deployment_in_flight_stop_the_deploy_before_any_change() {
    let bed = bed_with(Plan::Succeed, false, true);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("does not stop at Ready") && r.stderr.contains("nothing was created"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("CreateDeployment").is_empty());

    let bed = self::bed(Plan::Hang);
    let world: serde_json::Value = serde_json::from_str(&bed.moto.world(&["inflight"])).unwrap();
    let in_flight = world["deployment"].as_str().unwrap();
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr.contains(&format!(
            "CodeDeploy deployment {in_flight} of movieverse/movieverse-production is in progress"
        )) && r.stderr.contains("rollout status --env production"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("CreateDeployment").is_empty());
}

#[test]
fn an_alarm_the_group_does_not_watch_stops_the_deploy_before_any_change() {
    let bed = bed(Plan::Succeed);
    bed.proxy.set_group_alarms(&["movieverse-production-5xx"]);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("deploy.yml names the alarm(s) movieverse-production-p99-latency, but the deployment group movieverse/movieverse-production does not watch them (it watches movieverse-production-5xx): CodeDeploy would not roll back when they fire; nothing was created"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("RegisterTaskDefinition").is_empty());
    assert!(bed.proxy.calls("CreateDeployment").is_empty());
}

#[test]
fn an_alarm_that_fires_rolls_back_and_is_named() {
    let bed = bed(Plan::Alarm);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 1, "{}", r.dump());
    let id = r.output("deployment");
    assert!(
        r.stderr.contains("ALARM_ACTIVE")
            && r.stderr
                .contains("Activated alarms: <movieverse-production-5xx>")
            && r.stderr.contains(&format!("{id}-rb Succeeded")),
        "{}",
        r.dump()
    );
}

// The termination wait keeps blue: a cancel (or `rollout abort`) then switches traffic back
// at once, through CodeDeploy's rollback.
#[test]
fn sigint_during_the_termination_wait_switches_traffic_back_to_blue() {
    let bed = bed_with(Plan::Bake, true, true);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    let id = r.output("deployment");
    let mut promote = cmd(
        &bed,
        &[
            "rollout",
            "promote",
            "--env",
            "production",
            "--poll-interval",
            "1s",
        ],
    );
    let running = common::run_until(&mut promote, "keep blue for the termination wait");
    let (code, stderr, _) = running.signal("INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert_eq!(bed.proxy.calls("ContinueDeployment").len(), 1, "{stderr}");
    let stops = bed.proxy.calls("StopDeployment");
    assert_eq!(stops.len(), 1, "{stderr}");
    assert_eq!(stops[0]["deploymentId"], id.as_str());
    assert_eq!(stops[0]["autoRollbackEnabled"], true);
    assert!(
        stderr.contains("stop the deployment with rollback: traffic back on blue")
            && stderr.contains(&format!("{id}-rb Succeeded")),
        "{stderr}"
    );
}

// The plan shows the gate: a timed one holds everything after it back by its time, a manual
// one says the run ends there.
#[test]
fn the_plan_shows_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(common::example()).unwrap();
    let plan = |gate: &str| {
        std::fs::write(
            dir.path().join("deploy.yml"),
            example.replacen(
                "        termination_wait: 5m\n",
                &format!("        termination_wait: 5m\n        gate: {gate}\n"),
                1,
            ),
        )
        .unwrap();
        common::run(&["plan", "--env", "production"], dir.path())
    };
    let r = plan("10m");
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout
            .contains("hold green at Ready for 10m (the gate), production on blue")
            && r.stdout.contains(
                "check green on the test listener (health, success-rate, p99-latency-ms, error-rate): every 30s, rolled back at 3 failed checks"
            )
            && r.stdout.contains("total: best 16m 30s, worst 26m 30s"),
        "{}",
        r.dump()
    );
    let r = plan("manual");
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout
            .contains("wait at the gate (Ready): the deploy ends with `result=paused`")
            && r.stdout
                .contains("note: times after the gate count from `rollout promote`"),
        "{}",
        r.dump()
    );
}

// A throttled read while waiting is read again at the next poll, shown; the deployment goes
// on as if nothing happened.
#[test]
fn throttled_reads_are_retried_at_the_next_poll() {
    let bed = bed(Plan::Succeed);
    bed.proxy.throttle_reads(2);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains("retrying in 1s (1/5): GetDeployment")
            && r.stderr.contains("retrying in 1s (2/5)")
            && r.stderr.contains("Rate exceeded")
            && r.stderr.contains("promoted"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("StopDeployment").is_empty());
}

// Played step by step: --no-wait and --timeout are refused before any call, saying what
// bounds the deploy instead.
#[test]
fn no_wait_and_timeout_are_refused_with_what_bounds_the_deploy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::example(), dir.path().join("deploy.yml")).unwrap();
    for flag in [&["--no-wait"][..], &["--timeout", "5m"][..]] {
        let mut args = vec!["deploy", "--env", "production"];
        args.extend_from_slice(flag);
        let r = common::run(&args, dir.path());
        assert_eq!(r.code, 2, "{flag:?}: {}", r.dump());
        assert!(
            r.stderr
                .contains("is blue-green: this process plays it step by step")
                && r.stderr.contains("`progress_deadline` bounds each wait"),
            "{flag:?}: {}",
            r.dump()
        );
    }
}

/// The bed with checks of green at Ready: an HTTP check against the test server, standing
/// in for the test listener (the environment's URL on `test_port`), and `gate`.
fn bed_with_checks(server: &common::probe::Server, gate: Option<&str>) -> Bed {
    let bed = bed_with(Plan::Gate, true, false);
    let port = server.url.rsplit(':').next().unwrap();
    let path = bed.dir.path().join("deploy.yml");
    let gate = gate.map_or_else(String::new, |g| format!("        gate: {g}\n"));
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen(
            "    url: https://movie-verse.com\n",
            "    url: http://127.0.0.1\n",
            1,
        )
        .replacen("        test_port: 8080\n", &format!("        test_port: {port}\n"), 1)
        .replacen(
            "        termination_wait: 5m\n",
            &format!(
                "        termination_wait: 5m\n{gate}        analysis:\n          initial_delay: 0s\n          interval: 1s\n          threshold: 2\n          http:\n            - name: green-health\n              url: \"{{{{ test_url }}}}/health\"\n              body: ok\n              count: 2\n"
            ),
            1,
        );
    std::fs::write(path, text).unwrap();
    bed
}

#[test]
fn checks_of_green_at_ready_pass_and_the_switch_follows_on_its_own() {
    let server = common::probe::Server::start("unused");
    let bed = bed_with_checks(&server, None);
    let plan = mvd(&bed, &["plan", "--env", "production"]);
    assert!(
        plan.stdout.contains(
            "check green on the test listener (green-health, success-rate, p99-latency-ms, error-rate): every 1s, rolled back at 2 failed checks"
        ) && plan
            .stdout
            .contains("the checks of green at Ready fail 2 times: the deployment is stopped with rollback"),
        "{}",
        plan.dump()
    );
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains("check green on the test listener")
            && r.stderr.contains("check of green on the test listener: ")
            && r.stderr
                .contains("green-health ok (2/2 answered 200 within")
            && r.stderr.contains("production traffic is on green"),
        "{}",
        r.dump()
    );
    assert!(server.health_calls() >= 2, "{}", r.dump());
    assert_eq!(bed.proxy.calls("ContinueDeployment").len(), 1);
    assert!(bed.proxy.calls("StopDeployment").is_empty());
    // deploy.yml names no metric: the ALB's three judge green, on green's target group
    // (looked up by name) behind the production load balancer. moto keeps no request of
    // green's, so they have no data and are left out; the HTTP check decides.
    assert!(
        r.stderr.contains("success-rate no data")
            && r.stderr.contains("p99-latency-ms no data")
            && r.stderr.contains("error-rate no data"),
        "{}",
        r.dump()
    );
    let green = bed.green.split_once(":targetgroup/").unwrap().1;
    let reads = bed.proxy.calls("GetMetricData");
    assert!(!reads.is_empty(), "no GetMetricData call");
    for read in &reads {
        let text = read.to_string();
        assert!(
            text.contains(&format!("targetgroup/{green}"))
                && text.contains("app/movieverse/")
                && text.contains("AWS/ApplicationELB"),
            "{text}"
        );
    }
}

#[test]
fn checks_of_green_that_fail_stop_the_deployment_with_rollback_before_any_switch() {
    let server = common::probe::Server::start("unused");
    server.set_health(503, "green: database unreachable");
    let bed = bed_with_checks(&server, None);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr
            .contains("2 failed checks reached the threshold of 2")
            && r.stderr
                .contains("green-health: request 1 of 2: HTTP 503 (expected 200)")
            && r.stderr.contains("body: \"green: database unreachable\""),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("ContinueDeployment").is_empty());
    let stopped = bed.proxy.calls("StopDeployment");
    assert_eq!(stopped.len(), 1, "{}", r.dump());
    assert_eq!(stopped[0]["autoRollbackEnabled"], true);
}

#[test]
fn checks_then_a_manual_gate_pause_with_the_results_on_the_pull_request() {
    let server = common::probe::Server::start("unused");
    let bed = bed_with_checks(&server, Some("manual"));
    let (r, comment) = deploy_reported(&bed);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stdout.contains("result=paused"), "{}", r.dump());
    assert!(
        comment.contains("waiting for promotion")
            && comment.contains("#### production: checks of green at Ready")
            && comment.contains(
                "| step | weight | success-rate | p99-latency-ms | error-rate | green-health | failed checks |"
            )
            && comment.contains("| 1 | 0 % | no data ➖ | no data ➖ | no data ➖ | ✅ | 0 |"),
        "{comment}"
    );
    assert!(bed.proxy.calls("ContinueDeployment").is_empty());
    let promoted = rollout(&bed, "promote");
    assert_eq!(promoted.code, 0, "{}", promoted.dump());
    assert_eq!(bed.proxy.calls("ContinueDeployment").len(), 1);
}

#[test]
fn sigint_at_a_timed_gate_stops_the_deployment_with_rollback() {
    let server = common::probe::Server::start("unused");
    let bed = bed_with_checks(&server, Some("10m"));
    let running = common::run_until(&mut cmd(&bed, DEPLOY), "holding at Ready");
    let (code, stderr, _) = running.signal("INT");
    assert_eq!(code, Some(130), "{stderr}");
    let stops = bed.proxy.calls("StopDeployment");
    assert_eq!(stops.len(), 1, "{stderr}");
    assert_eq!(stops[0]["autoRollbackEnabled"], true);
    assert!(bed.proxy.calls("ContinueDeployment").is_empty(), "{stderr}");
    assert!(stderr.contains("production: cancelled"), "{stderr}");
}

#[test]
fn plan_live_says_whether_the_group_holds_at_ready_and_watches_the_alarms() {
    let bed = bed_with(Plan::Gate, true, true);
    let r = mvd(&bed, &["plan", "--env", "production", "--live"]);
    assert_eq!(r.code, 0, "{}", r.dump());
    for line in [
        "Live: production (read, nothing changed)",
        "ok   deployment group movieverse/movieverse-production holds deployments at Ready",
        "ok   it watches the alarms deploy.yml names: movieverse-production-5xx, movieverse-production-p99-latency",
        "ok   no deployment in flight",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.dump());
    }
    // A group that would make the deploy refuse: said before any deploy, nothing changed.
    let bed = bed_with(Plan::Succeed, false, true);
    bed.proxy.set_group_alarms(&[]);
    let r = mvd(&bed, &["plan", "--env", "production", "--live"]);
    assert_eq!(r.code, 0, "{}", r.dump());
    for line in [
        "FAIL deployment group movieverse/movieverse-production does not stop at Ready: `deploy` refuses the gate until it does",
        "FAIL it does not watch movieverse-production-5xx, movieverse-production-p99-latency",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.dump());
    }
    for op in [
        "CreateDeployment",
        "RegisterTaskDefinition",
        "UpdateService",
    ] {
        assert!(bed.proxy.calls(op).is_empty(), "{op}");
    }
}

#[test]
fn return_at_bake_then_rollout_abort_from_another_process_switches_back_to_blue() {
    // The group holds at Ready and deploy.yml has no gate: the deploy switches by itself,
    // then returns instead of holding the runner through the termination wait.
    let bed = bed_with(Plan::Bake, true, false);
    let mut args = DEPLOY.to_vec();
    args.extend(["--return-at", "bake"]);
    let r = mvd(&bed, &args);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout.contains("result=returned") && r.stderr.contains("production traffic is on green"),
        "{}",
        r.dump()
    );
    let id = r.output("deployment");
    assert_eq!(bed.proxy.calls("ContinueDeployment").len(), 1);
    let aborted = rollout(&bed, "abort");
    assert_eq!(aborted.code, 1, "{}", aborted.dump());
    let stops = bed.proxy.calls("StopDeployment");
    assert_eq!(stops.len(), 1, "{}", aborted.dump());
    assert_eq!(stops[0]["deploymentId"], id.as_str());
    assert!(
        aborted.stderr.contains(&format!("{id}-rb Succeeded"))
            && aborted.stderr.contains("production traffic is on blue"),
        "{}",
        aborted.dump()
    );
}

#[test]
fn sigint_while_the_checks_of_green_run_stops_the_deployment_with_rollback() {
    let server = common::probe::Server::start("unused");
    server.set_health(503, "green: warming up");
    let bed = bed_with_checks(&server, None);
    // Failing checks with room for many: the run is in the checks when it is interrupted.
    common::codedeploy::checks_that_keep_failing(bed.dir.path());
    let running = common::run_until(
        &mut cmd(&bed, DEPLOY),
        "check of green on the test listener",
    );
    let (code, stderr, _) = running.signal("INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert_eq!(bed.proxy.calls("StopDeployment").len(), 1, "{stderr}");
    assert!(bed.proxy.calls("ContinueDeployment").is_empty(), "{stderr}");
}

/// `verify` of a blue-green environment through `CodeDeploy`: the deployment group (holding at
/// Ready for the gate; watching deploy.yml's alarms), the alarms, the test listener's port, an
/// SSM parameter as a secret; each missing piece in turn is exit 3 with its deploy.yml line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_deployment_group_its_alarms_the_test_listener_and_the_secrets() {
    let bed = bed_with(Plan::Gate, true, true);
    bed.moto.world(&["identity", "production"]);
    let shared = bed.moto.sdk_config().await;
    aws_sdk_ecr::Client::new(&shared)
        .create_repository()
        .repository_name("movieverse")
        .send()
        .await
        .unwrap();
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&shared);
    for alarm in [
        "movieverse-production-5xx",
        "movieverse-production-p99-latency",
    ] {
        cloudwatch
            .put_metric_alarm()
            .alarm_name(alarm)
            .namespace("AWS/ApplicationELB")
            .metric_name("HTTPCode_Target_5XX_Count")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
            )
            .send()
            .await
            .unwrap();
    }
    let verify = || mvd(&bed, &["verify", "--env", "production"]);
    let line_of = |text: &str| {
        let config = std::fs::read_to_string(bed.dir.path().join("deploy.yml")).unwrap();
        let lines: Vec<&str> = config.lines().collect();
        let n = lines.iter().rposition(|l| l.contains(text)).unwrap();
        format!("deploy.yml:{}", n + 1)
    };
    let edit = |from: &str, to: &str| {
        let path = bed.dir.path().join("deploy.yml");
        let text = std::fs::read_to_string(&path).unwrap();
        let at = text.rfind(from).unwrap();
        std::fs::write(
            &path,
            format!("{}{to}{}", &text[..at], &text[at + from.len()..]),
        )
        .unwrap();
    };
    let r = verify();
    assert_eq!(r.code, 0, "{}", r.dump());
    for line in [
        "ok       CodeDeploy deployment group movieverse-production: exists, holds at Ready",
        "ok       CloudWatch alarms: 2 exist",
        "ok       ECS service movieverse-app: exists, deployment controller CODE_DEPLOY",
        ": exists, port 8080",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.dump());
    }

    // The group does not watch one of the alarms.
    bed.proxy.set_group_alarms(&["movieverse-production-5xx"]);
    let r = verify();
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("production: CodeDeploy deployment group movieverse-production: does not watch the alarm(s) movieverse-production-p99-latency")
            && r.stderr.contains(&format!("--> {}", line_of("deployment_group: movieverse-production"))),
        "{}",
        r.dump()
    );
    bed.proxy.set_group_alarms(&[
        "movieverse-production-5xx",
        "movieverse-production-p99-latency",
    ]);

    // An alarm that does not exist.
    cloudwatch
        .delete_alarms()
        .alarm_names("movieverse-production-p99-latency")
        .send()
        .await
        .unwrap();
    let r = verify();
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains(
            "production: CloudWatch alarms: movieverse-production-p99-latency do(es) not exist"
        ) && r.stderr.contains(&format!(
            "--> {}",
            line_of("alarms: [movieverse-production-5xx")
        )),
        "{}",
        r.dump()
    );
    edit(
        "alarms: [movieverse-production-5xx, movieverse-production-p99-latency]",
        "alarms: [movieverse-production-5xx]",
    );
    bed.proxy.set_group_alarms(&["movieverse-production-5xx"]);
    let r = verify();
    assert_eq!(r.code, 0, "{}", r.dump());

    // The test listener is not on test_port.
    edit("test_port: 8080", "test_port: 8081");
    let r = verify();
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr
            .contains("listens on port 8080, and deploy.yml's test_port is 8081")
            && r.stderr
                .contains(&format!("--> {}", line_of("test_listener_arn: "))),
        "{}",
        r.dump()
    );
    edit("test_port: 8081", "test_port: 8080");

    // A secret as an SSM parameter: missing, then there.
    let parameter = "arn:aws:ssm:us-east-1:123456789012:parameter/movieverse/production/jwt";
    edit(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:movieverse/production/jwt-secret",
        parameter,
    );
    let r = verify();
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("production: SSM parameter /movieverse/production/jwt: does not exist (container movieverse-app reads it)")
            && r.stderr.contains(&format!("--> {}", line_of(parameter))),
        "{}",
        r.dump()
    );
    aws_sdk_ssm::Client::new(&shared)
        .put_parameter()
        .name("/movieverse/production/jwt")
        .value("planted-by-the-test")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let r = verify();
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout
            .contains("ok       SSM parameter /movieverse/production/jwt: exists"),
        "{}",
        r.dump()
    );
    assert!(!r.stdout.contains("planted-by-the-test") && !r.stderr.contains("planted-by-the-test"));
    // Read only.
    for op in [
        "CreateDeployment",
        "RegisterTaskDefinition",
        "UpdateService",
    ] {
        assert!(bed.proxy.calls(op).is_empty(), "{op}");
    }
}

/// The bed of #14's matrix and kill table: a group that stops at Ready, green checked
/// there over HTTP (`server`) and on `CloudWatch`, the switch following on its own, then a
/// termination wait that lasts three reads (`Plan::Wait`).
fn checked_bed(server: &common::probe::Server) -> Bed {
    let bed = bed_with_checks(server, None);
    bed.proxy.set_plan(Plan::Wait);
    bed
}

/// The `CodeDeploy` deployments as they stand after a run (a stop shows after one more
/// step of the proxy's clock).
fn deployments_now(bed: &Bed) -> Vec<(String, String)> {
    std::thread::sleep(common::codedeploy::STEP * 2);
    bed.proxy.deployments()
}

/// #14's fault matrix for blue-green through `CodeDeploy`: each call of a deploy (a group
/// that stops at Ready, checks of green there) answered by the scenario proxy with a 500
/// twice; with a throttling error, then a connection closed unanswered, then no answer past
/// the binary's call timeout (`common::codedeploy::fault_columns`); with `ExpiredToken`, the
/// binary running with a role whose credentials it must renew; or with a 500 for good
/// (the SDK's own retries are off, so each reaches our code). Each cell must end
/// promoted, or failed safe: no deployment created, or the deployment stopped or failed and
/// rolled back by `CodeDeploy` (production on blue). ARCHITECTURE.md carries the table.
#[test]
fn fault_matrix_codedeploy_blue_green() {
    // (row, operation, the call it arms on, calls let through first)
    let rows: [(&str, &str, Option<&str>, u32); 10] = [
        (
            "read the deployment group (`GetDeploymentGroup`)",
            "GetDeploymentGroup",
            None,
            0,
        ),
        (
            "look for a deployment in flight (`ListDeployments`)",
            "ListDeployments",
            None,
            0,
        ),
        (
            "read the service (`DescribeServices`)",
            "DescribeServices",
            None,
            0,
        ),
        (
            "register the task definition",
            "RegisterTaskDefinition",
            None,
            0,
        ),
        (
            "create the deployment (`CreateDeployment`)",
            "CreateDeployment",
            None,
            0,
        ),
        (
            "follow the deployment to Ready (`GetDeployment`)",
            "GetDeployment",
            None,
            0,
        ),
        (
            "query CloudWatch (`GetMetricData`, the pre-flight)",
            "GetMetricData",
            None,
            0,
        ),
        (
            "check green at Ready (`GetMetricData`)",
            "GetMetricData",
            Some("CreateDeployment"),
            0,
        ),
        (
            "switch production to green (`ContinueDeployment`)",
            "ContinueDeployment",
            None,
            0,
        ),
        (
            "follow the switch and the termination wait (`GetDeployment`)",
            "GetDeployment",
            Some("ContinueDeployment"),
            0,
        ),
    ];
    let faults = common::codedeploy::fault_columns();
    // Without a fault, the bed promotes.
    let server = common::probe::Server::start("unused");
    let bed = checked_bed(&server);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert_eq!(
        bed.proxy.calls("ContinueDeployment").len(),
        1,
        "{}",
        r.dump()
    );
    let cells = common::matrix::run(rows.len(), faults.len(), 8, |row, col| {
        let (_, op, trigger, pass) = rows[row];
        let server = common::probe::Server::start("unused");
        let bed = checked_bed(&server);
        bed.proxy.inject(op, trigger, pass, &faults[col].1);
        let role = common::codedeploy::role_env(&faults[col].1);
        let env = common::codedeploy::MATRIX_ENV;
        let r = Run::from(&cmd(&bed, DEPLOY).envs(env).envs(role).output().unwrap());
        let deployments = deployments_now(&bed);
        let words = match (r.code, deployments.as_slice()) {
            (0, [(_, s)]) if s == "Succeeded" => common::matrix::promoted_after(&r.stderr),
            (0, _) => format!("FAILED: exit 0, deployments {deployments:?}"),
            (code, []) => format!("failed safe: nothing changed, exit {code}"),
            (code, [(_, s)]) if s.ends_with("rolled back") => format!(
                "failed safe: deployment {}, production on blue, exit {code}",
                s.to_lowercase()
            ),
            (code, _) => format!("FAILED: exit {code}, deployments {deployments:?}"),
        };
        common::matrix::Cell::judged(words, || r.dump())
    });
    common::matrix::check(
        "fault-matrix codedeploy",
        &rows.map(|r| r.0),
        &faults.map(|f| f.0),
        &cells,
        "cargo test --test bluegreen fault_matrix_codedeploy_blue_green",
    );
}

/// #14's kill table for blue-green through `CodeDeploy`: the real binary killed with SIGKILL
/// as each step of a checked deploy begins (a bed each, together), then `deploy` run again,
/// then `rollout resume`. `CodeDeploy` keeps playing the deployment without us (held at
/// Ready, or in its termination wait): a second `deploy` refuses to start another over it
/// and names it; `rollout resume` picks it up where it stands and follows it to the end.
/// Killed before the deployment was created, `deploy` again simply deploys. The termination
/// wait lasts until the second `deploy` was refused (`Plan::Bake`, then `end_waits`).
/// ARCHITECTURE.md carries the table.
#[test]
fn killed_at_every_step_a_codedeploy_blue_green_is_refused_again_and_resumed() {
    // Deploy green, check it, switch, blue's termination wait.
    common::matrix::kill_table(
        "kill-table codedeploy",
        [
            "killed as it began",
            "the deployment after the kill",
            "`deploy` again",
            "`rollout resume`",
        ],
        4,
        "cargo test --test bluegreen killed_at_every_step",
        |step| {
            let server = common::probe::Server::start("unused");
            // The termination wait lasts until the second run is refused.
            let bed = bed_with_checks(&server, None);
            bed.proxy.set_plan(Plan::Bake);
            let mut first = cmd(&bed, DEPLOY);
            let (killed_at, seen) = common::matrix::kill_at_step(&mut first, step, 4);
            let after = bed.proxy.deployments();
            // Ready, or a step further when the kill came after `ContinueDeployment`:
            // either way CodeDeploy plays it on.
            let shown = match after.as_slice() {
                [] => "none created".to_owned(),
                [(_, s)] if ["Created", "InProgress", "Ready"].contains(&s.as_str()) => {
                    "in flight: CodeDeploy plays it on".to_owned()
                }
                other => panic!("killed at step {step}: {other:?}\n{seen}"),
            };
            let [again_words, resumed] = common::codedeploy::rerun_after_kill(
                step,
                bed.dir.path(),
                &bed.proxy,
                after.first().map(|d| d.0.as_str()),
                || bed.proxy.calls("CreateDeployment").len(),
                "production: CodeDeploy deployment ",
            );
            assert_eq!(
                deployments_now(&bed).last().map(|d| d.1.as_str()),
                Some("Succeeded"),
                "killed at step {step}"
            );
            [killed_at, shown, again_words, resumed]
        },
    );
}
