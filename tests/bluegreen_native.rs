//! ECS native blue/green (`controller: ecs`), end to end: the real binary against moto (an
//! ECS-controller service, target groups, listener rules) behind the scenario proxy of
//! `tests/common/codedeploy.rs`, which starts a service deployment for each `UpdateService`
//! with `strategy: BLUE_GREEN`, moves it through its lifecycle stages over time as ECS would,
//! holds it at its PAUSE hook, and answers `ContinueServiceDeployment` and
//! `StopServiceDeployment`.

mod common;

use common::Run;
use common::codedeploy::{DEPLOY, Plan, Proxy};
use common::moto::Moto;

struct Bed {
    /// Keeps moto running for the bed's lifetime.
    _moto: Moto,
    proxy: Proxy,
    dir: tempfile::TempDir,
    world: serde_json::Value,
}

use common::codedeploy::ROLE;

/// The example's production environment switched to ECS native blue/green on the world's
/// load balancer, with `extra` lines added to its strategy (a gate, checks).
fn bed(plan: Plan, extra: &str) -> Bed {
    bed_on("native", plan, extra)
}

fn bed_on(world: &str, plan: Plan, extra: &str) -> Bed {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    moto.staging_config(dir.path());
    let world: serde_json::Value = serde_json::from_str(&moto.world(&[world])).unwrap();
    common::codedeploy::native_config(dir.path(), &world, extra);
    let proxy = Proxy::start(&moto.endpoint, plan);
    Bed {
        _moto: moto,
        proxy,
        dir,
        world,
    }
}

fn cmd(bed: &Bed, args: &[&str]) -> std::process::Command {
    common::codedeploy::mvd_cmd(bed.dir.path(), &bed.proxy, args)
}

fn mvd(bed: &Bed, args: &[&str]) -> Run {
    Run::from(&cmd(bed, args).output().unwrap())
}

fn rollout(bed: &Bed, action: &str) -> Run {
    mvd(bed, &common::codedeploy::rollout_args(action))
}

/// The task definition the deploy registers (the one after the world's two).
const NEW_REVISION: &str =
    "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-production:3";

/// The native `UpdateService` calls (those that start a service deployment).
fn updates(bed: &Bed) -> Vec<serde_json::Value> {
    bed.proxy
        .calls("UpdateService")
        .into_iter()
        .filter(|b| b["deploymentConfiguration"]["strategy"] == "BLUE_GREEN")
        .collect()
}

#[test]
fn deploy_updates_the_service_with_the_native_strategy_and_follows_it_to_the_end() {
    let bed = bed(Plan::Succeed, "");
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    let id = r.output("deployment");
    assert!(
        id.contains(":service-deployment/movieverse-production/movieverse-app/"),
        "{id}"
    );
    // The service as ECS native blue/green needs it: the strategy, the bake time, the alarms,
    // and the listener rules, green's target group and the role on the load balancer. No
    // gate and no checks: no PAUSE hook.
    let sent = updates(&bed);
    assert_eq!(sent.len(), 1, "{}", r.dump());
    let u = &sent[0];
    assert_eq!(u["taskDefinition"], NEW_REVISION);
    let d = &u["deploymentConfiguration"];
    assert_eq!(d["bakeTimeInMinutes"], 5);
    assert_eq!(
        d["alarms"],
        serde_json::json!({"alarmNames": ["movieverse-production-5xx", "movieverse-production-p99-latency"], "enable": true, "rollback": true})
    );
    assert!(d.get("lifecycleHooks").is_none(), "{d}");
    let lb = &u["loadBalancers"][0];
    assert_eq!(lb["targetGroupArn"], bed.world["blue"]);
    assert_eq!(
        lb["advancedConfiguration"],
        serde_json::json!({
            "alternateTargetGroupArn": bed.world["green"],
            "productionListenerRule": bed.world["prod_rule"],
            "testListenerRule": bed.world["test_rule"],
            "roleArn": ROLE,
        })
    );
    for line in [
        "production: step 1/3: deploy green: register the task definition, update the service (ECS native blue/green)",
        &format!("production: registered {NEW_REVISION}"),
        &format!("{id} SUCCESSFUL (CLEAN_UP): Succeeded"),
        "production: step 3/3: bake: blue and green both run for the bake time, then ECS stops blue",
        "production: promoted: green serves production, blue is terminated",
    ] {
        assert!(r.stderr.contains(line), "{line}\n{}", r.dump());
    }
    for op in ["ContinueServiceDeployment", "StopServiceDeployment"] {
        assert!(bed.proxy.calls(op).is_empty(), "{op}");
    }
    // The service runs the new revision: a rerun registers nothing and starts nothing.
    let again = mvd(&bed, DEPLOY);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert!(
        again
            .stderr
            .contains("no change: blue already runs this task definition; nothing registered, no ECS service deployment started"),
        "{}",
        again.dump()
    );
    assert_eq!(updates(&bed).len(), 1);
}

#[test]
fn a_manual_gate_holds_green_at_the_pause_hook_until_rollout_promote_from_a_second_process() {
    let bed = bed(Plan::Gate, "        gate: manual\n");
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stdout.contains("result=paused"), "{}", r.dump());
    let id = r.output("deployment");
    // The gate is a PAUSE hook after test traffic moved to green, rolled back if unanswered.
    assert_eq!(
        updates(&bed)[0]["deploymentConfiguration"]["lifecycleHooks"],
        serde_json::json!([{
            "targetType": "PAUSE",
            "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
            "timeoutConfiguration": {"timeoutInMinutes": 1440, "action": "ROLLBACK"},
        }])
    );
    assert!(
        r.stderr.contains(&format!(
            "{id} IN_PROGRESS (POST_TEST_TRAFFIC_SHIFT, PAUSE hook awaiting action): Ready (green takes test traffic)"
        )) && r
            .stderr
            .contains("green takes test traffic on port 8080; production stays on blue"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("ContinueServiceDeployment").is_empty());

    let status = rollout(&bed, "status");
    assert_eq!(status.code, 0, "{}", status.dump());
    assert!(
        status.stdout.contains(&format!(
            "ECS service deployment {id} of service movieverse-production/movieverse-app: IN_PROGRESS (POST_TEST_TRAFFIC_SHIFT, PAUSE hook awaiting action)"
        )) && status.stdout.contains("rollout promote --env production"),
        "{}",
        status.dump()
    );
    // A second deploy does not start over it, and names it.
    let second = mvd(&bed, DEPLOY);
    assert_eq!(second.code, 1, "{}", second.dump());
    assert!(
        second.stderr.contains(&format!(
            "ECS service deployment {id} of service movieverse-production/movieverse-app is in progress"
        )) && second.stderr.contains("nothing was changed"),
        "{}",
        second.dump()
    );
    assert_eq!(updates(&bed).len(), 1);

    let promoted = rollout(&bed, "promote");
    assert_eq!(promoted.code, 0, "{}", promoted.dump());
    let answers = bed.proxy.calls("ContinueServiceDeployment");
    assert_eq!(answers.len(), 1, "{}", promoted.dump());
    assert_eq!(answers[0]["serviceDeploymentArn"], id.as_str());
    assert_eq!(answers[0]["hookId"], "hook-post-test-1");
    assert_eq!(answers[0]["action"], "CONTINUE");
    assert!(
        promoted.stderr.contains("production traffic is on green")
            && promoted
                .stderr
                .contains("promoted: green serves production"),
        "{}",
        promoted.dump()
    );
    assert_eq!(bed.proxy.native_status(1), "SUCCESSFUL");
    // Nothing in flight any more: how the last one ended (#14).
    let status = rollout(&bed, "status");
    assert!(
        status.stdout.contains(&format!(
            "no blue-green deployment of service movieverse-production/movieverse-app is in flight; the last: ECS service deployment {id} SUCCESSFUL"
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
}

#[test]
fn rollout_abort_at_the_gate_is_stop_service_deployment_with_rollback() {
    let bed = bed(Plan::Gate, "        gate: manual\n");
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    let id = r.output("deployment");
    let aborted = rollout(&bed, "abort");
    assert_eq!(aborted.code, 1, "{}", aborted.dump());
    let stops = bed.proxy.calls("StopServiceDeployment");
    assert_eq!(stops.len(), 1, "{}", aborted.dump());
    assert_eq!(stops[0]["serviceDeploymentArn"], id.as_str());
    assert_eq!(stops[0]["stopType"], "ROLLBACK");
    assert!(bed.proxy.calls("ContinueServiceDeployment").is_empty());
    assert!(
        aborted
            .stderr
            .contains("rolling back, traffic to blue: rollout abort")
            && aborted
                .stderr
                .contains(&format!("{id}#rollback ROLLBACK_SUCCESSFUL: Succeeded")),
        "{}",
        aborted.dump()
    );
    assert_eq!(bed.proxy.native_status(1), "ROLLBACK_SUCCESSFUL");
    // Nothing in flight any more: how the last one ended (#14).
    let again = rollout(&bed, "abort");
    assert_eq!(again.code, 1, "{}", again.dump());
    assert!(
        again.stderr.contains(&format!(
            "no blue-green deployment of service movieverse-production/movieverse-app is in flight: nothing to abort; the last: ECS service deployment {id} ROLLBACK_SUCCESSFUL"
        )),
        "{}",
        again.dump()
    );
    assert_eq!(bed.proxy.calls("StopServiceDeployment").len(), 1);
}

#[test]
fn green_that_never_becomes_healthy_is_rolled_back_by_the_circuit_breaker_and_said_so() {
    let bed = bed(Plan::Fail, "");
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 1, "{}", r.dump());
    let id = r.output("deployment");
    assert!(
        r.stderr.contains("CIRCUIT_BREAKER: the deployment circuit breaker tripped: 3 task(s) failed to start or stay healthy (threshold 3); ECS deployment circuit breaker: tasks failed to start.")
            && r.stderr.contains(&format!("{id}#rollback"))
            // Why green's tasks stopped: the task definition it registered, read back.
            && r.stderr.contains("green's stopped tasks: stopped task 0f1e2d3c4b5a69788796a5b4c3d2e1f0: Essential container in task exited [EssentialContainerExited]; movieverse-app exit 1 (DATABASE_URL: connection refused)"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("StopServiceDeployment").is_empty());
}

#[test]
fn an_alarm_that_fires_rolls_back_and_is_named() {
    let bed = bed(Plan::Alarm, "");
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr
            .contains("ALARM_ACTIVE: CloudWatch alarm(s) fired: movieverse-production-5xx"),
        "{}",
        r.dump()
    );
}

#[test]
fn sigint_while_green_starts_stops_the_service_deployment_with_rollback() {
    let bed = bed(Plan::Hang, "");
    let running = common::run_until(&mut cmd(&bed, DEPLOY), "IN_PROGRESS (SCALE_UP)");
    let (code, stderr, _) = running.signal("INT");
    assert_eq!(code, Some(130), "{stderr}");
    let stops = bed.proxy.calls("StopServiceDeployment");
    assert_eq!(stops.len(), 1, "{stderr}");
    assert_eq!(stops[0]["stopType"], "ROLLBACK");
    assert!(stderr.contains("production: cancelled"), "{stderr}");
    assert_eq!(bed.proxy.native_status(1), "ROLLBACK_SUCCESSFUL");
}

#[test]
fn sigint_at_the_gate_and_during_the_bake_puts_traffic_back_on_blue() {
    // At a timed gate after passed checks: a stop, not the hook's answer.
    let server = common::probe::Server::start("unused");
    let bed1 = checked(&server, Plan::Gate, "        gate: 10m\n");
    let running = common::run_until(&mut cmd(&bed1, DEPLOY), "holding");
    let (code, stderr, _) = running.signal("INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert_eq!(
        bed1.proxy.calls("StopServiceDeployment").len(),
        1,
        "{stderr}"
    );
    assert!(bed1.proxy.calls("ContinueServiceDeployment").is_empty());
    assert_eq!(bed1.proxy.native_status(1), "ROLLBACK_SUCCESSFUL");
    // During the bake: production traffic goes back to blue.
    let bed2 = bed(Plan::Bake, "");
    let running = common::run_until(&mut cmd(&bed2, DEPLOY), "BAKE_TIME");
    let (code, stderr, _) = running.signal("INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert_eq!(
        bed2.proxy.calls("StopServiceDeployment").len(),
        1,
        "{stderr}"
    );
    assert_eq!(bed2.proxy.native_status(1), "ROLLBACK_SUCCESSFUL");
}

#[test]
fn return_at_bake_ends_the_run_and_a_later_process_follows_or_aborts_the_deployment() {
    let mut args = DEPLOY.to_vec();
    args.extend(["--return-at", "bake"]);
    for abort in [true, false] {
        let bed = bed(Plan::Bake, "");
        let r = mvd(&bed, &args);
        assert_eq!(r.code, 0, "{}", r.dump());
        assert!(
            r.stdout.contains("result=returned")
                && r.stdout
                    .contains("returned before `bake: blue and green both run")
                && r.stderr.contains("production traffic is on green"),
            "{}",
            r.dump()
        );
        let id = r.output("deployment");
        let status = rollout(&bed, "status");
        assert!(
            status.stdout.contains(&format!(
                "{id} of service movieverse-production/movieverse-app: IN_PROGRESS (BAKE_TIME)"
            )),
            "{}",
            status.dump()
        );
        if abort {
            // Ended from another process during the bake: back on blue.
            let aborted = rollout(&bed, "abort");
            assert_eq!(aborted.code, 1, "{}", aborted.dump());
            assert_eq!(bed.proxy.calls("StopServiceDeployment").len(), 1);
            assert_eq!(bed.proxy.native_status(1), "ROLLBACK_SUCCESSFUL");
        } else {
            // Followed to its end by `rollout resume`.
            let mut resume = cmd(
                &bed,
                &[
                    "rollout",
                    "resume",
                    "--env",
                    "production",
                    "--poll-interval",
                    "1s",
                ],
            );
            let running = common::run_until(&mut resume, "BAKE_TIME");
            bed.proxy.end_bakes();
            let (code, stderr) = running.wait();
            assert_eq!(code, Some(0), "{stderr}");
            assert!(
                stderr.contains(&format!("{id} SUCCESSFUL (CLEAN_UP): Succeeded"))
                    && stderr.contains("promoted: green serves production"),
                "{stderr}"
            );
            assert!(bed.proxy.calls("StopServiceDeployment").is_empty());
        }
    }
}

#[test]
fn rollback_deploys_the_previous_task_definition_as_a_native_blue_green() {
    let bed = bed(Plan::Succeed, "");
    let r = mvd(
        &bed,
        &["rollback", "--env", "production", "--poll-interval", "1s"],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    let sent = updates(&bed);
    assert_eq!(sent.len(), 1, "{}", r.dump());
    assert_eq!(sent[0]["taskDefinition"], bed.world["previous"]);
    assert!(
        r.stderr
            .contains("through ECS (service movieverse-production/movieverse-app)")
            && r.stderr.contains("rolled back (ECS service deployment"),
        "{}",
        r.dump()
    );
}

#[test]
fn a_service_on_another_controller_is_refused_before_any_change() {
    // The CodeDeploy world: its service has the CODE_DEPLOY controller.
    let bed = bed_on("bluegreen", Plan::Succeed, "");
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("has the CODE_DEPLOY deployment controller; ECS native blue/green (`controller: ecs`) needs the ECS controller; nothing was changed"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("RegisterTaskDefinition").is_empty());
    assert!(bed.proxy.calls("UpdateService").is_empty());
}

/// The bed with checks of green at the hook: an HTTP check against `server`, standing in
/// for the test listener (the environment's URL on `test_port`), and `extra` lines.
fn checked(server: &common::probe::Server, plan: Plan, extra: &str) -> Bed {
    let bed = bed(
        plan,
        &format!(
            "{extra}        analysis:\n          initial_delay: 0s\n          interval: 1s\n          threshold: 2\n          http:\n            - name: green-health\n              url: \"{{{{ test_url }}}}/health\"\n              count: 2\n"
        ),
    );
    let port = server.url.rsplit(':').next().unwrap();
    let path = bed.dir.path().join("deploy.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen(
            "    url: https://movie-verse.com\n",
            "    url: http://127.0.0.1\n",
            1,
        )
        .replacen(
            "        test_port: 8080\n",
            &format!("        test_port: {port}\n"),
            1,
        );
    std::fs::write(path, text).unwrap();
    bed
}

#[test]
fn checks_that_fail_at_the_hook_answer_it_rollback() {
    let server = common::probe::Server::start("unused");
    server.set_health(503, "green: database unreachable");
    let bed = checked(&server, Plan::Gate, "");
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr
            .contains("2 failed checks reached the threshold of 2")
            && r.stderr.contains("green-health: request 1 of 2: HTTP 503"),
        "{}",
        r.dump()
    );
    let answers = bed.proxy.calls("ContinueServiceDeployment");
    assert_eq!(answers.len(), 1, "{}", r.dump());
    assert_eq!(answers[0]["action"], "ROLLBACK");
    assert!(bed.proxy.calls("StopServiceDeployment").is_empty());
    assert_eq!(bed.proxy.native_status(1), "ROLLBACK_SUCCESSFUL");
    assert!(server.health_calls() >= 2);
}

#[test]
fn checks_that_pass_at_the_hook_answer_it_continue() {
    let server = common::probe::Server::start("unused");
    let bed = checked(&server, Plan::Gate, "");
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains("check of green on the test listener: ")
            && r.stderr.contains("production traffic is on green"),
        "{}",
        r.dump()
    );
    let answers = bed.proxy.calls("ContinueServiceDeployment");
    assert_eq!(answers.len(), 1, "{}", r.dump());
    assert_eq!(answers[0]["action"], "CONTINUE");
    assert_eq!(bed.proxy.native_status(1), "SUCCESSFUL");
}

#[test]
fn plan_live_reads_the_services_controller_and_a_deployment_in_flight() {
    let bed = bed(Plan::Gate, "        gate: manual\n");
    let r = mvd(&bed, &["plan", "--env", "production", "--live"]);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout.contains(
            "ok   service movieverse-production/movieverse-app has the ECS deployment controller"
        ) && r.stdout.contains("ok   no deployment in flight"),
        "{}",
        r.dump()
    );
    let deployed = mvd(&bed, DEPLOY);
    assert_eq!(deployed.code, 0, "{}", deployed.dump());
    let r = mvd(&bed, &["plan", "--env", "production", "--live"]);
    assert!(
        r.stdout.contains(&format!(
            "FAIL ECS service deployment {} is in flight",
            deployed.output("deployment")
        )),
        "{}",
        r.dump()
    );
    let other = bed_on("bluegreen", Plan::Succeed, "");
    let r = mvd(&other, &["plan", "--env", "production", "--live"]);
    assert!(
        r.stdout.contains("FAIL service movieverse-production/movieverse-app has the CODE_DEPLOY deployment controller"),
        "{}",
        r.dump()
    );
    assert!(other.proxy.calls("UpdateService").is_empty());
}

#[test]
fn sigint_while_the_checks_of_green_run_stops_the_service_deployment() {
    let server = common::probe::Server::start("unused");
    server.set_health(503, "green: warming up");
    let bed = checked(&server, Plan::Gate, "");
    // Failing checks with room for many: the run is in the checks when it is interrupted.
    common::codedeploy::checks_that_keep_failing(bed.dir.path());
    let running = common::run_until(
        &mut cmd(&bed, DEPLOY),
        "check of green on the test listener",
    );
    let (code, stderr, _) = running.signal("INT");
    assert_eq!(code, Some(130), "{stderr}");
    let stops = bed.proxy.calls("StopServiceDeployment");
    assert_eq!(stops.len(), 1, "{stderr}");
    assert!(
        bed.proxy.calls("ContinueServiceDeployment").is_empty(),
        "{stderr}"
    );
    assert_eq!(bed.proxy.native_status(1), "ROLLBACK_SUCCESSFUL");
}

/// #14's fault matrix for ECS native blue/green: each call of a deploy (green held at the
/// PAUSE hook and checked there over HTTP, then a bake that lasts three reads) answered by
/// the scenario proxy with each column of `common::codedeploy::fault_columns` (a 500 twice;
/// throttled, reset, timed out; a 500 for good; the SDK's own retries are off, so each
/// reaches our code). Each cell must end promoted, or failed safe: no service deployment
/// started, or the one started rolled back (production on blue). ARCHITECTURE.md carries
/// the table.
#[test]
fn fault_matrix_native_blue_green() {
    // (row, operation, the call it arms on)
    let rows: [(&str, &str, Option<&str>); 7] = [
        (
            "read the service (`DescribeServices`)",
            "DescribeServices",
            None,
        ),
        (
            "look for a deployment in flight (`ListServiceDeployments`)",
            "ListServiceDeployments",
            None,
        ),
        (
            "register the task definition",
            "RegisterTaskDefinition",
            None,
        ),
        (
            "update the service (`UpdateService`)",
            "UpdateService",
            None,
        ),
        (
            "follow green to the PAUSE hook (`DescribeServiceDeployments`)",
            "DescribeServiceDeployments",
            None,
        ),
        (
            "answer the hook (`ContinueServiceDeployment`)",
            "ContinueServiceDeployment",
            None,
        ),
        (
            "follow the switch and the bake (`DescribeServiceDeployments`)",
            "DescribeServiceDeployments",
            Some("ContinueServiceDeployment"),
        ),
    ];
    let faults = common::codedeploy::fault_columns();
    let server = common::probe::Server::start("unused");
    let bed = checked(&server, Plan::Wait, "");
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert_eq!(bed.proxy.native_status(1), "SUCCESSFUL", "{}", r.dump());
    let cells = common::matrix::run(rows.len(), faults.len(), 7, |row, col| {
        let (_, op, trigger) = rows[row];
        let server = common::probe::Server::start("unused");
        let bed = checked(&server, Plan::Wait, "");
        bed.proxy.inject(op, trigger, 0, &faults[col].1);
        let role = common::codedeploy::role_env(&faults[col].1);
        let env = common::codedeploy::MATRIX_ENV;
        let r = Run::from(&cmd(&bed, DEPLOY).envs(env).envs(role).output().unwrap());
        // A rollback ends after two steps of the proxy's clock.
        std::thread::sleep(common::codedeploy::STEP * 3);
        let started = bed.proxy.native_count();
        let status = (started == 1).then(|| bed.proxy.native_status(1));
        let words = match (r.code, started, status.as_deref()) {
            (0, 1, Some("SUCCESSFUL")) => common::matrix::promoted_after(&r.stderr),
            (code, 0, _) if code != 0 => format!("failed safe: nothing changed, exit {code}"),
            (code, 1, Some("ROLLBACK_SUCCESSFUL")) if code != 0 => {
                format!("failed safe: rolled back, production on blue, exit {code}")
            }
            (code, n, s) => format!("FAILED: exit {code}, {n} deployment(s), {s:?}"),
        };
        common::matrix::Cell::judged(words, || r.dump())
    });
    common::matrix::check(
        "fault-matrix native-blue-green",
        &rows.map(|r| r.0),
        &faults.map(|f| f.0),
        &cells,
        "cargo test --test bluegreen_native fault_matrix_native_blue_green",
    );
}

/// #14's kill table for ECS native blue/green: the real binary killed with SIGKILL as each
/// step of a checked deploy begins (a bed each, together), then `deploy` run again, then
/// `rollout resume`. ECS keeps the service deployment (held at the PAUSE hook, or baking):
/// a second `deploy` refuses to start another over it and names it; `rollout resume` picks
/// it up where it stands and follows it to the end. The bake lasts until the second `deploy`
/// was refused (`Plan::Bake`, then `end_waits`). ARCHITECTURE.md carries the table.
#[test]
fn killed_at_every_step_a_native_blue_green_is_refused_again_and_resumed() {
    // Deploy green, check it at the hook, CONTINUE, the bake.
    common::matrix::kill_table(
        "kill-table native-blue-green",
        [
            "killed as it began",
            "the service deployment after the kill",
            "`deploy` again",
            "`rollout resume`",
        ],
        4,
        "cargo test --test bluegreen_native killed_at_every_step",
        |step| {
            let server = common::probe::Server::start("unused");
            // The bake lasts until the second run is refused.
            let bed = checked(&server, Plan::Bake, "");
            let mut first = cmd(&bed, DEPLOY);
            let (killed_at, seen) = common::matrix::kill_at_step(&mut first, step, 4);
            let started = bed.proxy.native_count();
            let shown = match started {
                0 => "none started".to_owned(),
                1 => {
                    let status = bed.proxy.native_status(1);
                    assert!(
                        ["PENDING", "IN_PROGRESS"].contains(&status.as_str()),
                        "killed at step {step}: {status}\n{seen}"
                    );
                    "in flight: ECS holds it at the hook or bakes it".to_owned()
                }
                n => panic!("killed at step {step}: {n} deployments\n{seen}"),
            };
            let [again_words, resumed] = common::codedeploy::rerun_after_kill(
                step,
                bed.dir.path(),
                &bed.proxy,
                (started == 1).then_some(""),
                || updates(&bed).len(),
                "production: ECS service deployment ",
            );
            assert_eq!(bed.proxy.native_count(), 1, "killed at step {step}");
            assert_eq!(
                bed.proxy.native_status(1),
                "SUCCESSFUL",
                "killed at step {step}"
            );
            [killed_at, shown, again_words, resumed]
        },
    );
}
