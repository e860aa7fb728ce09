//! The canary on ECS behind an ALB, end to end: the real binary against moto (two ECS
//! services, target groups, a listener rule with forward weights, `CloudWatch` datapoints of
//! the canary's target group) behind the scenario proxy of `tests/common/codedeploy.rs`,
//! which shows each `UpdateService` rolling as ECS would and reads the rule back from moto
//! after every weight change.

mod common;

use std::time::Duration;

use common::Run;
use common::codedeploy::{Plan, Proxy};
use common::moto::Moto;
use serde_json::Value;

struct Bed {
    moto: Moto,
    proxy: Proxy,
    dir: tempfile::TempDir,
    world: Value,
}

/// `deploy --env production`, polling every 200 ms.
const DEPLOY: &[&str] = &["deploy", "--env", "production", "--poll-interval", "200ms"];

/// The task definition the deploy registers (the one after the world's two).
const NEW_REVISION: &str =
    "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-production:3";

/// The example's production environment as a canary on ECS on the world's load balancer.
fn bed(schedule: &str, extra: &str) -> Bed {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    moto.staging_config(dir.path());
    let world: Value = serde_json::from_str(&moto.world(&["canary"])).unwrap();
    common::codedeploy::canary_config(dir.path(), &world, schedule, extra);
    let proxy = Proxy::start(&moto.endpoint, Plan::Succeed);
    Bed {
        moto,
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
    let mut args = vec!["rollout", action, "--env", "production"];
    if action != "status" {
        args.extend(["--poll-interval", "200ms"]);
    }
    mvd(bed, &args)
}

fn traffic(bed: &Bed, requests: f64, errors: f64, p99_seconds: f64) {
    common::codedeploy::alb_traffic(&bed.moto, &bed.world, requests, errors, p99_seconds);
}

/// The weights moto held after each change, as (stable, canary) in percent.
fn weights(bed: &Bed) -> Vec<(i64, i64)> {
    let stable = bed.world["stable"].as_str().unwrap();
    let canary = bed.world["canary"].as_str().unwrap();
    bed.proxy
        .weights()
        .iter()
        .map(|w| {
            let of = |tg: &str| w.iter().filter(|(t, _)| t == tg).map(|(_, n)| n).sum();
            (of(stable), of(canary))
        })
        .collect()
}

async fn services(moto: &Moto) -> Vec<aws_sdk_ecs::types::Service> {
    let ecs = aws_sdk_ecs::Client::new(&moto.sdk_config().await);
    ecs.describe_services()
        .cluster("movieverse-production")
        .services("movieverse-app")
        .services("movieverse-app-canary")
        .send()
        .await
        .unwrap()
        .services()
        .to_vec()
}

fn updates(bed: &Bed, service: &str) -> Vec<Value> {
    bed.proxy
        .calls("UpdateService")
        .into_iter()
        .filter(|b| b["service"] == service)
        .collect()
}

#[test]
fn the_proxy_reads_metric_math_as_cloudwatch_does() {
    common::metric_math::self_check();
}

/// Faults on the calls that move traffic (#14): the load balancer fails the first two weight
/// writes with a 500 (the SDK does not retry it here: our clients run with its retries off).
/// The write is retried with back-off, said, and the canary ends as without the faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_weight_writes_are_retried_and_the_canary_goes_on() {
    let bed = bed("steps: [50]", "");
    traffic(&bed, 1000.0, 0.0, 0.12);
    bed.proxy.fail_next("ModifyRule", 2);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    for line in [
        "production: retrying in 1 s (1/5): ModifyRule",
        "production: retrying in 2 s (2/5): ModifyRule",
        "promoted",
    ] {
        assert!(r.stderr.contains(line), "`{line}` missing:\n{}", r.dump());
    }
    assert_eq!(weights(&bed), [(50, 50), (100, 0)], "{}", r.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_weighed_step_by_step_then_promoted() {
    let bed = bed("steps: [10, 25, 50]", "");
    traffic(&bed, 1000.0, 0.0, 0.12);
    let report = bed.dir.path().join("comment.md");
    let mut args = DEPLOY.to_vec();
    args.extend(["--report", report.to_str().unwrap()]);
    let r = mvd(&bed, &args);
    assert_eq!(r.code, 0, "{}", r.dump());
    // The pull request comment: a row per weight with the ALB's metrics.
    let comment = std::fs::read_to_string(&report).unwrap();
    assert!(
        comment.contains(
            "| step | weight | success-rate | p99-latency-ms | error-rate | failed checks |"
        ),
        "{comment}"
    );
    for (step, w) in [(1, 10), (2, 25), (3, 50)] {
        assert!(
            comment.contains(&format!("| {step} | {w} % | 100 ✅ | 120 ✅ | 0 ✅ | 0 |")),
            "{comment}"
        );
    }
    // Read back from moto after each change: every step's weight, then all back on stable.
    assert_eq!(
        weights(&bed),
        [(90, 10), (75, 25), (50, 50), (100, 0)],
        "{}",
        r.dump()
    );
    // The canary service ran the new revision, then the stable one did, and the canary went
    // back to 0.
    let canary = updates(&bed, "movieverse-app-canary");
    assert_eq!(canary[0]["taskDefinition"], NEW_REVISION, "{}", r.dump());
    assert_eq!(canary[0]["desiredCount"], 5);
    assert_eq!(canary.last().unwrap()["desiredCount"], 0);
    let stable = updates(&bed, "movieverse-app");
    assert_eq!(stable.len(), 1, "{}", r.dump());
    assert_eq!(stable[0]["taskDefinition"], NEW_REVISION);
    // One registration: the stable service runs the revision the canary ran.
    assert_eq!(bed.proxy.calls("RegisterTaskDefinition").len(), 1);
    // Auto scaling covers the canary service too; scaled down, it is held at 0.
    let targets: Vec<(String, String, String)> = bed
        .proxy
        .calls("RegisterScalableTarget")
        .iter()
        .map(|b| {
            (
                b["ResourceId"].as_str().unwrap_or_default().to_owned(),
                b["MinCapacity"].to_string(),
                b["MaxCapacity"].to_string(),
            )
        })
        .collect();
    let canary_target = "service/movieverse-production/movieverse-app-canary".to_owned();
    assert!(
        targets.contains(&(canary_target.clone(), "2".into(), "10".into())),
        "{targets:?}"
    );
    assert_eq!(
        targets.last(),
        Some(&(canary_target, "0".into(), "0".into())),
        "{targets:?}"
    );
    // Each check judged the ALB's metrics of the canary's target group.
    assert!(
        r.stderr.contains("success-rate 100 (>= 99) ok")
            && r.stderr.contains("p99-latency-ms 120 (<= 500) ok")
            && r.stderr.contains("error-rate 0 (<= 1) ok"),
        "{}",
        r.dump()
    );
    assert!(r.stderr.contains("promoted"), "{}", r.dump());
    let live = services(&bed.moto).await;
    assert_eq!(live[0].task_definition(), Some(NEW_REVISION));

    // A rerun changes nothing: no registration, no update, no weight.
    let before = (
        bed.proxy.calls("UpdateService").len(),
        bed.proxy.weights().len(),
    );
    let again = mvd(&bed, DEPLOY);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert!(again.stderr.contains("no change"), "{}", again.dump());
    assert_eq!(
        (
            bed.proxy.calls("UpdateService").len(),
            bed.proxy.weights().len()
        ),
        before
    );
    assert_eq!(bed.proxy.calls("RegisterTaskDefinition").len(), 1);
}

#[test]
fn a_failing_canary_is_rolled_back_at_the_threshold_with_its_values() {
    let bed = bed("steps: [10, 25, 50]", "");
    traffic(&bed, 1000.0, 80.0, 0.12);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 1, "{}", r.dump());
    // The values that failed, against their bounds.
    assert!(
        r.stderr
            .contains("ROLLED BACK: 2 failed checks reached the threshold of 2 at weight 10%")
            && r.stderr.contains("success-rate = 92 (bound >= 99)")
            && r.stderr.contains("error-rate = 8 (bound <= 1)"),
        "{}",
        r.dump()
    );
    // At 10 % it failed twice: the weight went back to 0 first, then the canary to 0.
    assert_eq!(weights(&bed), [(90, 10), (100, 0)], "{}", r.dump());
    assert_eq!(
        updates(&bed, "movieverse-app-canary").last().unwrap()["desiredCount"],
        0
    );
    assert!(updates(&bed, "movieverse-app").is_empty(), "{}", r.dump());
    // The stable service never left its revision.
    let status = rollout(&bed, "status");
    assert!(
        status.stdout.contains("ended: ROLLED BACK"),
        "{}",
        status.dump()
    );
}

#[test]
fn a_paused_canary_waits_for_rollout_promote() {
    let bed = bed("steps: [10, {pause: manual}, 50]", "");
    traffic(&bed, 1000.0, 0.0, 0.12);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stdout.contains("result=paused"), "{}", r.dump());
    assert_eq!(weights(&bed), [(90, 10)]);
    let status = rollout(&bed, "status");
    assert!(
        status.stdout.contains("paused at step"),
        "{}",
        status.dump()
    );
    let p = rollout(&bed, "promote");
    assert_eq!(p.code, 0, "{}", p.dump());
    assert_eq!(
        weights(&bed),
        [(90, 10), (50, 50), (100, 0)],
        "{}",
        p.dump()
    );
    assert_eq!(
        updates(&bed, "movieverse-app")[0]["taskDefinition"],
        NEW_REVISION
    );
}

#[test]
fn the_weights_can_live_on_the_listeners_default_action() {
    let bed = bed("steps: [20]", "");
    let path = bed.dir.path().join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        &format!("listener_rule: {}", bed.world["rule"].as_str().unwrap()),
        &format!("listener_arn: {}", bed.world["listener"].as_str().unwrap()),
        1,
    );
    std::fs::write(&path, text).unwrap();
    traffic(&bed, 1000.0, 0.0, 0.12);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(bed.proxy.calls("ModifyRule").is_empty());
    assert_eq!(bed.proxy.calls("ModifyListener").len(), 2, "{}", r.dump());
    assert_eq!(weights(&bed), [(80, 20), (100, 0)], "{}", r.dump());
}

#[test]
fn rollout_abort_takes_the_traffic_back_first_then_scales_the_canary_down() {
    let bed = bed("steps: [10, {pause: manual}, 50]", "");
    traffic(&bed, 1000.0, 0.0, 0.12);
    let r = mvd(&bed, DEPLOY);
    assert!(r.stdout.contains("result=paused"), "{}", r.dump());
    let a = rollout(&bed, "abort");
    assert_eq!(a.code, 1, "{}", a.dump());
    assert!(a.stderr.contains("rollout abort"), "{}", a.dump());
    assert_eq!(weights(&bed), [(90, 10), (100, 0)], "{}", a.dump());
    // The weight went back before the canary was scaled down.
    let calls = bed.proxy.timed_calls();
    let last_weight = calls
        .iter()
        .rposition(|(op, _)| op == "ModifyRule")
        .unwrap();
    let scaled_down = calls
        .iter()
        .rposition(|(op, _)| op == "UpdateService")
        .unwrap();
    assert!(last_weight < scaled_down, "{calls:?}");
    assert_eq!(
        updates(&bed, "movieverse-app-canary").last().unwrap()["desiredCount"],
        0
    );
    assert!(updates(&bed, "movieverse-app").is_empty());
    // Again: accepted, nothing more to do.
    let again = rollout(&bed, "abort");
    assert_eq!(again.code, 0, "{}", again.dump());
    assert_eq!(weights(&bed).len(), 2);
}

#[test]
fn killed_mid_canary_a_new_deploy_resumes_with_the_weights_as_saved() {
    let bed = bed("steps: [10, 25, 50]", "");
    traffic(&bed, 1000.0, 0.0, 0.12);
    let mut child = cmd(&bed, DEPLOY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed once the canary takes 25 %.
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    while weights(&bed).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the canary never reached 25 %"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(weights(&bed), [(90, 10), (75, 25)]);
    // Saved before the weight changed: at step 4 (25 %), its weight still 10 %.
    let status = rollout(&bed, "status");
    assert!(
        status
            .stdout
            .contains("at step 4/10 (send 25% of traffic to the canary), weight 10%"),
        "{}",
        status.dump()
    );

    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stderr.contains("resuming the rollout"), "{}", r.dump());
    // Resumed at 25 %: the weight is set again (idempotent), then 50 %, then promotion.
    let w = weights(&bed);
    assert_eq!(w[..2], [(90, 10), (75, 25)]);
    assert_eq!(w.last(), Some(&(100, 0)), "{}", r.dump());
    assert!(w.contains(&(50, 50)));
    assert!(!w[2..].contains(&(90, 10)), "{w:?}");
    assert_eq!(bed.proxy.calls("RegisterTaskDefinition").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_forwards_to_another_target_group_is_refused_before_any_change() {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
    };
    let bed = bed("steps: [10, 50]", "");
    // The rule also forwards to someone else's target group.
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&bed.moto.sdk_config().await);
    let tuple = |tg: &str| {
        TargetGroupTuple::builder()
            .target_group_arn(tg)
            .weight(50)
            .build()
    };
    let other = bed.world["other"].as_str().unwrap();
    elb.modify_rule()
        .rule_arn(bed.world["rule"].as_str().unwrap())
        .actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .forward_config(
                    ForwardActionConfig::builder()
                        .target_groups(tuple(bed.world["stable"].as_str().unwrap()))
                        .target_groups(tuple(other))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr
            .contains(&format!("it forwards to {other} (weight 50)"))
            && r.stderr.contains("nothing was changed"),
        "{}",
        r.dump()
    );
    assert!(bed.proxy.calls("UpdateService").is_empty(), "{}", r.dump());
    assert!(bed.proxy.calls("RegisterTaskDefinition").is_empty());
    assert!(bed.proxy.weights().is_empty());
}

/// ECS native (`router: ecs`) on the world's service, rule and target groups.
const NATIVE: &str = "        router: ecs\n        infrastructure_role: arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers\n";

/// The `ContinueServiceDeployment` answers sent, in order.
fn answers(bed: &Bed) -> Vec<String> {
    bed.proxy
        .calls("ContinueServiceDeployment")
        .iter()
        .map(|b| b["action"].as_str().unwrap_or("CONTINUE").to_owned())
        .collect()
}

#[test]
fn a_native_canary_judged_healthy_is_continued_at_each_hook() {
    let bed = bed("steps: [10]", NATIVE);
    traffic(&bed, 1000.0, 0.0, 0.12);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    // One UpdateService of the one service: the CANARY strategy with the PAUSE hook before
    // each production traffic shift, the canary target group and rule ECS moves.
    let sent = updates(&bed, "movieverse-app");
    assert_eq!(sent.len(), 1, "{}", r.dump());
    let d = &sent[0]["deploymentConfiguration"];
    assert_eq!(d["strategy"], "CANARY");
    assert_eq!(
        d["canaryConfiguration"],
        serde_json::json!({"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 0})
    );
    assert_eq!(
        d["lifecycleHooks"][0]["lifecycleStages"],
        serde_json::json!(["PRE_PRODUCTION_TRAFFIC_SHIFT"])
    );
    let lb = &sent[0]["loadBalancers"][0];
    assert_eq!(
        lb["advancedConfiguration"]["alternateTargetGroupArn"],
        bed.world["canary"]
    );
    assert_eq!(
        lb["advancedConfiguration"]["productionListenerRule"],
        bed.world["rule"]
    );
    assert!(updates(&bed, "movieverse-app-canary").is_empty());
    // Judged at 10 %, then all: CONTINUE at both hooks; ECS moved the rule (read back).
    assert_eq!(answers(&bed), ["CONTINUE", "CONTINUE"], "{}", r.dump());
    assert_eq!(weights(&bed), [(90, 10), (0, 100)], "{}", r.dump());
    assert!(
        r.stderr
            .contains("check at 10%: success-rate 100 (>= 99) ok"),
        "{}",
        r.dump()
    );
    assert!(
        bed.proxy.calls("ModifyRule").is_empty(),
        "ECS moves the rule, not this tool"
    );
    // A rerun changes nothing.
    let again = mvd(&bed, DEPLOY);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert!(again.stderr.contains("no change"), "{}", again.dump());
    assert_eq!(updates(&bed, "movieverse-app").len(), 1);
    // `rollback` would start another native deployment held at its hook: refused, with the
    // ways back.
    let back = mvd(&bed, &["rollback", "--env", "production"]);
    assert_eq!(back.code, 2, "{}", back.dump());
    assert!(
        back.stderr.contains("rollout abort") && back.stderr.contains("--image"),
        "{}",
        back.dump()
    );
    assert_eq!(updates(&bed, "movieverse-app").len(), 1);
}

#[test]
fn a_native_canary_judged_failing_is_answered_rollback() {
    let bed = bed("steps: [10]", NATIVE);
    traffic(&bed, 1000.0, 80.0, 0.12);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr.contains("error-rate = 8 (bound <= 1)")
            && r.stderr.contains("answering the PAUSE hook ROLLBACK"),
        "{}",
        r.dump()
    );
    assert_eq!(answers(&bed), ["CONTINUE", "ROLLBACK"], "{}", r.dump());
    assert_eq!(weights(&bed), [(90, 10), (100, 0)], "{}", r.dump());
    assert!(bed.proxy.calls("StopServiceDeployment").is_empty());
}

#[test]
fn a_native_linear_canary_is_judged_at_every_step() {
    let bed = bed("step_weight: 25\n        max_weight: 75", NATIVE);
    traffic(&bed, 1000.0, 0.0, 0.12);
    let r = mvd(&bed, DEPLOY);
    assert_eq!(r.code, 0, "{}", r.dump());
    let d = &updates(&bed, "movieverse-app")[0]["deploymentConfiguration"];
    assert_eq!(d["strategy"], "LINEAR");
    assert_eq!(d["linearConfiguration"]["stepPercent"], 25.0);
    assert_eq!(
        weights(&bed),
        [(75, 25), (50, 50), (25, 75), (0, 100)],
        "{}",
        r.dump()
    );
    for w in [25, 50, 75] {
        assert!(
            r.stderr
                .contains(&format!("check at {w}%: success-rate 100")),
            "{}",
            r.dump()
        );
    }
}

/// The line of deploy.yml (in `bed`) that holds `text`, as `deploy.yml:N`.
fn line_of(bed: &Bed, text: &str) -> String {
    let config = std::fs::read_to_string(bed.dir.path().join("deploy.yml")).unwrap();
    let lines: Vec<&str> = config.lines().collect();
    let n = lines
        .iter()
        .rposition(|l| l.contains(text))
        .unwrap_or_else(|| panic!("`{text}` is not in deploy.yml"));
    format!("deploy.yml:{}", n + 1)
}

/// [`edit`] of the last `from` (the example names production's roles after staging's).
fn edit_last(bed: &Bed, from: &str, to: &str) {
    let path = bed.dir.path().join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text
        .rfind(from)
        .unwrap_or_else(|| panic!("`{from}` is not in deploy.yml"));
    let text = format!("{}{to}{}", &text[..at], &text[at + from.len()..]);
    std::fs::write(&path, text).unwrap();
}

fn edit(bed: &Bed, from: &str, to: &str) {
    let path = bed.dir.path().join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "`{from}` is not in deploy.yml");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_when_everything_exists_and_names_each_missing_piece_with_its_line() {
    let bed = bed("steps: [10, 50]", "");
    let ecr = aws_sdk_ecr::Client::new(&bed.moto.sdk_config().await);
    ecr.create_repository()
        .repository_name("movieverse")
        .send()
        .await
        .unwrap();
    bed.moto.world(&["identity", "production"]);
    let verify = |bed: &Bed| mvd(bed, &["verify", "--env", "production"]);
    let r = verify(&bed);
    assert_eq!(r.code, 0, "{}", r.dump());
    let mut report = r.stdout.clone();
    for (key, name) in [
        ("stable", "[stable target group]"),
        ("canary", "[canary target group]"),
        ("rule", "[listener rule]"),
    ] {
        report = report.replace(bed.world[key].as_str().unwrap(), name);
    }
    insta::with_settings!({filters => vec![(r"in \d+\.\d s", "in [t] s")]}, {
        insta::assert_snapshot!("verify_ecs_canary_report", report);
    });
    for line in [
        "ok       ECR repository movieverse: exists",
        "ok       IAM role movieverse-task-execution: exists",
        "ok       IAM role movieverse-task: exists",
        "ok       secret arn:aws:secretsmanager:us-east-1:123456789012:secret:movieverse/production/database-url: exists (container movieverse-app)",
        "ok       secret arn:aws:secretsmanager:us-east-1:123456789012:secret:movieverse/datadog-api-key: exists (container datadog-agent)",
        "ok       log group /ecs/movieverse-production: exists",
        "ok       ECS cluster movieverse-production: ACTIVE",
        "ok       ECS service movieverse-app: exists, deployment controller ECS",
        "ok       ECS service movieverse-app-canary: exists, deployment controller ECS",
        "ok       metric providers: 3 metric(s): every provider answers, every query runs",
        "0 problem(s); nothing was changed",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.dump());
    }
    assert_eq!(
        r.stdout.matches("ok       target group").count(),
        2,
        "{}",
        r.dump()
    );
    assert!(r.stdout.contains("ok       listener rule"), "{}", r.dump());
    // The Action's dry run (`plan --verify`) shows the same checks after the plan.
    let planned = mvd(&bed, &["plan", "--env", "production", "--verify"]);
    assert_eq!(planned.code, 0, "{}", planned.dump());
    assert!(
        planned.stdout.contains("Verify (read-only checks of what a deploy depends on)\nproduction:\n  ok       ECR repository movieverse: exists")
            && planned.stdout.contains("15 check(s) in"),
        "{}",
        planned.dump()
    );
    // Read only: nothing was updated, tagged or weighed.
    for op in [
        "UpdateService",
        "TagResource",
        "ModifyRule",
        "RegisterTaskDefinition",
    ] {
        assert!(bed.proxy.calls(op).is_empty(), "{op}");
    }

    // Each missing piece in turn: exit 3, named with its deploy.yml line.
    let canary = bed.world["canary"].as_str().unwrap().to_owned();
    let rule = bed.world["rule"].as_str().unwrap().to_owned();
    let gone_tg = canary.replace("movieverse-canary", "movieverse-gone");
    let last = if rule.ends_with('0') { '1' } else { '0' };
    let gone_rule = format!("{}{last}", &rule[..rule.len() - 1]);
    for (from, to, key, says) in [
        (
            "        listener_rule: ".to_owned(),
            "        canary_service: movieverse-app-blue\n        listener_rule: ".to_owned(),
            "canary_service: movieverse-app-blue".to_owned(),
            "ECS service movieverse-app-blue: does not exist in cluster movieverse-production"
                .to_owned(),
        ),
        (
            format!("canary_target_group: {canary}"),
            format!("canary_target_group: {gone_tg}"),
            format!("canary_target_group: {gone_tg}"),
            format!("target group {gone_tg}: does not exist"),
        ),
        (
            format!("listener_rule: {rule}"),
            format!("listener_rule: {gone_rule}"),
            format!("listener_rule: {gone_rule}"),
            format!("listener rule {gone_rule}: does not exist"),
        ),
        (
            "      cluster: movieverse-production".to_owned(),
            "      cluster: movieverse-elsewhere".to_owned(),
            "cluster: movieverse-elsewhere".to_owned(),
            "ECS cluster movieverse-elsewhere: does not exist".to_owned(),
        ),
        (
            "role/movieverse-task\n".to_owned(),
            "role/movieverse-gone\n".to_owned(),
            "task_role_arn: arn:aws:iam::123456789012:role/movieverse-gone".to_owned(),
            "IAM role movieverse-gone: does not exist".to_owned(),
        ),
        (
            "secret:movieverse/production/jwt-secret".to_owned(),
            "secret:movieverse/production/jwt-gone".to_owned(),
            "JWT_SECRET: arn:aws:secretsmanager:us-east-1:123456789012:secret:movieverse/production/jwt-gone".to_owned(),
            "secret arn:aws:secretsmanager:us-east-1:123456789012:secret:movieverse/production/jwt-gone: does not exist (container movieverse-app reads it)".to_owned(),
        ),
    ] {
        edit_last(&bed, &from, &to);
        let r = verify(&bed);
        assert_eq!(r.code, 3, "{key}\n{}", r.dump());
        assert!(
            r.stdout.contains(&format!("MISSING  {says}")),
            "{says}\n{}",
            r.dump()
        );
        assert!(
            r.stderr.contains(&format!("production: {says}"))
                && r.stderr.contains(&format!("--> {}", line_of(&bed, &key))),
            "{says} at {}\n{}",
            line_of(&bed, &key),
            r.dump()
        );
        edit_last(&bed, &to, &from);
    }
    // A log group that is missing: the app container's options create it.
    aws_sdk_cloudwatchlogs::Client::new(&bed.moto.sdk_config().await)
        .delete_log_group()
        .log_group_name("/ecs/movieverse-production")
        .send()
        .await
        .unwrap();
    let r = verify(&bed);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout.contains("ok       log group /ecs/movieverse-production: missing; the first task creates it (awslogs-create-group)"),
        "{}",
        r.dump()
    );
    // The repository last: deleted, `build` creates it (the example says so); once deploy.yml
    // does not let it, it is missing.
    ecr.delete_repository()
        .repository_name("movieverse")
        .send()
        .await
        .unwrap();
    let r = verify(&bed);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout
            .contains("ECR repository movieverse: missing; `build` creates it"),
        "{}",
        r.dump()
    );
    edit(&bed, "create_repository: true", "create_repository: false");
    let r = verify(&bed);
    assert_eq!(r.code, 3, "{}", r.dump());
    let planned = mvd(&bed, &["plan", "--env", "production", "--verify"]);
    assert_eq!(planned.code, 3, "{}", planned.dump());
    assert!(
        planned
            .stderr
            .contains("ECR repository movieverse: does not exist"),
        "{}",
        planned.dump()
    );
    assert!(
        r.stderr
            .contains("ECR repository movieverse: does not exist")
            && r.stderr.contains(&format!(
                "--> {}",
                line_of(&bed, "  repository: movieverse")
            )),
        "{}",
        r.dump()
    );
}

/// #14's fault matrix for the canary on ECS (`router: alb`), with the real binary against moto
/// behind the scenario proxy: each call the canary makes × each column of
/// `common::codedeploy::fault_columns` (a 500 twice; a throttling error, a connection closed
/// unanswered and no answer past the call timeout, one after the other; `ExpiredToken`, the
/// binary running with a role whose credentials it must renew; a 500 for good; our
/// SDK clients run with their own retries off, so each reaches our code). Each cell must end promoted, or failed safe: the listener's
/// weights all on stable (or never moved), the stable service not moved to the new revision
/// unless the promotion was done. Seven beds at a time. ARCHITECTURE.md carries the table.
#[test]
fn fault_matrix_ecs_canary() {
    let rows: [(&str, &str, u32); 7] = [
        (
            "read the services (`DescribeServices`)",
            "DescribeServices",
            0,
        ),
        ("register the task definition", "RegisterTaskDefinition", 0),
        ("save the rollout state (`TagResource`)", "TagResource", 0),
        (
            "roll the canary service (`UpdateService`)",
            "UpdateService",
            0,
        ),
        ("set the weights (`ModifyRule`)", "ModifyRule", 0),
        ("query CloudWatch (`GetMetricData`)", "GetMetricData", 0),
        (
            "promote: roll the stable service (`UpdateService`)",
            "UpdateService",
            1,
        ),
    ];
    let faults = common::codedeploy::fault_columns();
    let cells = common::matrix::run(rows.len(), faults.len(), 7, |row, col| {
        let (_, op, after) = rows[row];
        let bed = bed("steps: [50]", "");
        traffic(&bed, 1000.0, 0.0, 0.12);
        // `after` calls of the operation go through first.
        bed.proxy.inject(op, None, after, &faults[col].1);
        let role = common::codedeploy::role_env(&faults[col].1);
        let env = common::codedeploy::MATRIX_ENV;
        let r = Run::from(&cmd(&bed, DEPLOY).envs(env).envs(role).output().unwrap());
        judge_alb_cell(&bed, &r, common::matrix::promoted_after(&r.stderr))
    });
    common::matrix::check(
        "fault-matrix ecs-canary",
        &rows.map(|r| r.0),
        &faults.map(|f| f.0),
        &cells,
        "cargo test --test ecs_canary fault_matrix_ecs_canary",
    );
}

/// How a cell of a canary matrix on the ALB ended, by what moto holds: `promoted` (the words
/// for it) when the run succeeded with the stable service on the new revision and the
/// listener's weights on stable; failed safe when it failed with the weights on stable (or
/// never moved) and the stable service not moved, or moved by the promotion; wrong otherwise.
fn judge_alb_cell(bed: &Bed, r: &Run, promoted_words: String) -> common::matrix::Cell {
    let w = weights(bed);
    // What moto holds (a failed call is recorded by the proxy too).
    let promoted = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(services(&bed.moto))
        .iter()
        .any(|sv| {
            sv.service_name() == Some("movieverse-app")
                && sv.task_definition() == Some(NEW_REVISION)
        });
    let on_stable = w.last().is_none_or(|l| *l == (100, 0));
    let (recorded, status) = recorded(bed);
    let words = if r.code == 0 && promoted && on_stable {
        promoted_words
    } else if r.code != 0 && on_stable && !promoted {
        if w.is_empty() && bed.proxy.calls("UpdateService").is_empty() {
            format!("failed safe: nothing changed, exit {}", r.code)
        } else {
            format!("failed safe: on stable, {recorded}, exit {}", r.code)
        }
    } else if r.code != 0 && on_stable && promoted {
        format!(
            "failed safe after the promotion: all traffic on the new stable, {recorded}, exit {}",
            r.code
        )
    } else {
        format!(
            "FAILED: exit {}, weights {w:?}, promoted {promoted}",
            r.code
        )
    };
    common::matrix::Cell::judged(words, || format!("{}\n{}", r.dump(), status.dump()))
}

/// The success rate the Datadog matrix's canary is judged by (`min: 99`), as sent.
const DD_SUCCESS: &str =
    "100 * sum:app.ok{service:movieverse-app-canary} / sum:app.all{service:movieverse-app-canary}";

/// #14's fault matrix for the Datadog provider, in a canary on ECS (`router: alb`, `steps:
/// [50]`) judged by one Datadog metric, with the real binary against the Datadog fake
/// (`tests/common/datadog.rs`): the key check and the query of the pre-flight, and the query of
/// the check at 50% × a 503 twice; a 429 (`X-RateLimit-Reset: 1`), the connection closed
/// unanswered, then no answer past the 10 s call timeout, one after the other; a 503 for
/// good. A check may wait an interval (15 s here) for its answer, the pre-flight 30 s. Each
/// cell must end promoted or failed safe, judged as [`fault_matrix_ecs_canary`]'s.
/// ARCHITECTURE.md carries the table.
#[test]
fn fault_matrix_datadog_ecs_canary() {
    use common::datadog::{API_KEY, APP_KEY, Answer, Fake};
    let rows: [(&str, &str, u32); 3] = [
        (
            "check the keys (`/api/v1/validate`, the pre-flight)",
            "/api/v1/validate",
            0,
        ),
        ("query Datadog (the pre-flight)", "/api/v1/query", 0),
        ("query Datadog (the check at 50%)", "/api/v1/query", 1),
    ];
    let faults = || -> [(&str, Vec<Answer>); 3] {
        [
            ("503 twice", vec![Answer::Unavailable; 2]),
            (
                "429, reset, timed out",
                vec![
                    Answer::RateLimited {
                        reset: 1,
                        times: 1,
                        then: Box::new(Answer::Empty),
                    },
                    Answer::Reset,
                    Answer::Hang(11),
                ],
            ),
            ("503 for good", vec![Answer::Unavailable; 99]),
        ]
    };
    let cells = common::matrix::run(rows.len(), faults().len(), 9, |row, col| {
        let (_, path, after) = rows[row];
        let bed = bed("steps: [50]", "");
        let dd = Fake::start();
        dd.answer_all(Answer::Points(vec![Some(99.9)]));
        let deploy_yml = bed.dir.path().join("deploy.yml");
        let text = std::fs::read_to_string(&deploy_yml).unwrap();
        let analysis = "          interval: 1s\n          threshold: 2\n";
        let providers = "providers:\n";
        assert!(
            text.contains(analysis) && text.contains(providers),
            "{text}"
        );
        let text = text
            .replacen(
                analysis,
                "          interval: 15s\n          threshold: 2\n          metrics:\n            - name: success-rate\n              provider: datadog\n              query: \"100 * sum:app.ok{service:{{ canary_service }}} / sum:app.all{service:{{ canary_service }}}\"\n              min: 99\n",
                1,
            )
            .replacen(
                providers,
                &format!("providers:\n  datadog:\n    address: {}\n", dd.url),
                1,
            );
        std::fs::write(&deploy_yml, text).unwrap();
        dd.inject(path, after, faults()[col].1.clone());
        let r = Run::from(
            &cmd(&bed, DEPLOY)
                .envs(common::codedeploy::MATRIX_ENV)
                .env("DD_API_KEY", API_KEY)
                .env("DD_APP_KEY", APP_KEY)
                .output()
                .unwrap(),
        );
        let asked = dd
            .queries()
            .iter()
            .filter(|s| s.query.as_deref() == Some(DD_SUCCESS))
            .count();
        let words = match r.stderr.matches("asking again in").count() {
            0 => "promoted".to_owned(),
            1 => "promoted after 1 retry".to_owned(),
            n => format!("promoted after {n} retries"),
        };
        let cell = judge_alb_cell(&bed, &r, words);
        // The canary was judged by Datadog: the metric was asked for.
        if asked == 0 && r.code == 0 {
            return common::matrix::Cell::judged(
                "FAILED: promoted without asking Datadog".to_owned(),
                || r.dump(),
            );
        }
        cell
    });
    common::matrix::check(
        "fault-matrix datadog-ecs-canary",
        &rows.map(|r| r.0),
        &faults().map(|f| f.0),
        &cells,
        "cargo test --test ecs_canary fault_matrix_datadog_ecs_canary",
    );
}

/// What `rollout status` says is recorded (promoted, rolled back, failed, aborted), and
/// its run.
fn recorded(bed: &Bed) -> (&'static str, Run) {
    let status = rollout(bed, "status");
    let recorded = ["promoted", "rolled back", "failed", "aborted"]
        .into_iter()
        .find(|k| status.stdout.contains(k))
        .unwrap_or("nothing recorded");
    (recorded, status)
}

/// #14's fault matrix for the ECS native canary (`router: ecs`, `steps: [10]`): each call
/// × each fault column, as [`fault_matrix_ecs_canary`]. Each cell must end promoted
/// (the service deployment successful, all traffic on the new revision), or failed safe:
/// no service deployment started, or the one started rolled back by ECS with the listener's
/// weights back on stable. ARCHITECTURE.md carries the table.
#[test]
fn fault_matrix_native_canary() {
    // (row, operation, the call it arms on, calls let through first)
    let rows: [(&str, &str, Option<&str>, u32); 10] = [
        (
            "read the service (`DescribeServices`)",
            "DescribeServices",
            None,
            0,
        ),
        (
            "read the listener rule (`DescribeRules`)",
            "DescribeRules",
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
            "save the rollout state (`TagResource`)",
            "TagResource",
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
            "update the service (`UpdateService`)",
            "UpdateService",
            None,
            0,
        ),
        (
            "follow the deployment (`DescribeServiceDeployments`)",
            "DescribeServiceDeployments",
            None,
            0,
        ),
        (
            "answer the first hook (`ContinueServiceDeployment`)",
            "ContinueServiceDeployment",
            None,
            0,
        ),
        (
            "query CloudWatch at 10% (`GetMetricData`)",
            "GetMetricData",
            Some("ContinueServiceDeployment"),
            0,
        ),
        (
            "answer the last hook (`ContinueServiceDeployment`)",
            "ContinueServiceDeployment",
            None,
            1,
        ),
    ];
    let faults = common::codedeploy::fault_columns();
    let cells = common::matrix::run(rows.len(), faults.len(), 7, |row, col| {
        let (_, op, trigger, pass) = rows[row];
        let bed = bed("steps: [10]", NATIVE);
        traffic(&bed, 1000.0, 0.0, 0.12);
        bed.proxy.inject(op, trigger, pass, &faults[col].1);
        let role = common::codedeploy::role_env(&faults[col].1);
        let env = common::codedeploy::MATRIX_ENV;
        let r = Run::from(&cmd(&bed, DEPLOY).envs(env).envs(role).output().unwrap());
        // A rollback ends after two steps of the proxy's clock.
        std::thread::sleep(common::codedeploy::STEP * 3);
        let w = weights(&bed);
        let started = bed.proxy.native_count();
        let status = (started == 1).then(|| bed.proxy.native_status(1));
        let (recorded, rollout_status) = recorded(&bed);
        let last = w.last().copied();
        let words = match (r.code, status.as_deref(), last) {
            (0, Some("SUCCESSFUL"), Some((0, 100))) => common::matrix::promoted_after(&r.stderr),
            (code, None, None) if code != 0 => format!("failed safe: nothing changed, exit {code}"),
            (code, Some("ROLLBACK_SUCCESSFUL"), None | Some((100, 0))) if code != 0 => {
                format!("failed safe: rolled back by ECS, on stable, {recorded}, exit {code}")
            }
            (code, s, _) => format!("FAILED: exit {code}, deployment {s:?}, weights {w:?}"),
        };
        common::matrix::Cell::judged(words, || format!("{}\n{}", r.dump(), rollout_status.dump()))
    });
    common::matrix::check(
        "fault-matrix native-canary",
        &rows.map(|r| r.0),
        &faults.map(|f| f.0),
        &cells,
        "cargo test --test ecs_canary fault_matrix_native_canary",
    );
}

/// #14's kill table for the canary on ECS (`router: alb`): the real binary killed with
/// SIGKILL as each step of `steps: [25, 50]` begins (a bed each, together), then `deploy` run
/// again. After the kill a split weight is always covered by a rollout recorded in flight in
/// the stable service's tags; the rerun resumes it, registers nothing new, and ends promoted
/// with every weight back on stable. ARCHITECTURE.md carries the table.
#[test]
fn killed_at_every_step_an_ecs_canary_run_again_resumes_and_is_promoted() {
    // deploy, 25 %, analyse, 50 %, analyse, promote, back to stable, scale down.
    common::matrix::kill_table(
        "kill-table ecs-canary",
        [
            "killed as it began",
            "weights after the kill (stable, canary)",
            "recorded",
            "run again",
        ],
        8,
        "cargo test --test ecs_canary killed_at_every_step",
        |step| {
            let bed = bed("steps: [25, 50]", "");
            traffic(&bed, 1000.0, 0.0, 0.12);
            let mut cmd = cmd(&bed, DEPLOY);
            let (killed_at, seen) = common::matrix::kill_at_step(&mut cmd, step, 8);
            let w = weights(&bed).last().copied().unwrap_or((100, 0));
            let status = rollout(&bed, "status");
            let in_flight = status.stdout.contains("at step");
            assert!(
                w == (100, 0) || in_flight,
                "killed at step {step}: weights {w:?} without a rollout recorded in flight\n{}\n{seen}",
                status.dump()
            );
            let r = mvd(&bed, DEPLOY);
            assert_eq!(r.code, 0, "killed at step {step}, run again:\n{}", r.dump());
            assert!(
                r.stderr.contains("resuming the rollout"),
                "killed at step {step}: the rerun resumes:\n{}",
                r.dump()
            );
            assert_eq!(weights(&bed).last(), Some(&(100, 0)), "{}", r.dump());
            assert_eq!(
                bed.proxy.calls("RegisterTaskDefinition").len(),
                1,
                "killed at step {step}: registered once"
            );
            let stable = tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(services(&bed.moto));
            assert!(
                stable.iter().any(|sv| {
                    sv.service_name() == Some("movieverse-app")
                        && sv.task_definition() == Some(NEW_REVISION)
                }),
                "killed at step {step}: the stable service runs the new revision\n{}",
                r.dump()
            );
            let recorded = if in_flight {
                "in flight"
            } else {
                "nothing yet"
            };
            // The weights as each step begins: a step sets the weights the next begins with.
            let at = [
                (100, 0),
                (100, 0),
                (75, 25),
                (75, 25),
                (50, 50),
                (50, 50),
                (50, 50),
                (100, 0),
            ];
            let i = step as usize - 1;
            [
                killed_at,
                common::matrix::as_before(step, &w, &at[i], |w| format!("{}/{}", w.0, w.1)),
                recorded.to_owned(),
                "resumed, promoted".to_owned(),
            ]
        },
    );
}

/// #14's kill table for the ECS native canary (`router: ecs`, `steps: [10]`): the real
/// binary killed with SIGKILL as each step begins (a bed each, together), then `deploy` run
/// again. ECS holds the service deployment at its PAUSE hook meanwhile (or ends it, once
/// the last hook was answered); the rollout recorded in flight in the service's tags covers
/// any split of the traffic, and the rerun resumes it: it follows the deployment ECS plays,
/// starts no second one, and ends promoted. ARCHITECTURE.md carries the table.
#[test]
fn killed_at_every_step_a_native_canary_run_again_resumes_and_is_promoted() {
    // Update the service, CONTINUE to 10 %, analyse, promote (CONTINUE), then the last two
    // steps of the engine's script (ECS has done them).
    common::matrix::kill_table(
        "kill-table native-canary",
        [
            "killed as it began",
            "weights after the kill (stable, canary)",
            "recorded",
            "run again",
        ],
        6,
        "cargo test --test ecs_canary killed_at_every_step_a_native",
        |step| {
            let bed = bed("steps: [10]", NATIVE);
            traffic(&bed, 1000.0, 0.0, 0.12);
            let mut cmd = cmd(&bed, DEPLOY);
            let (killed_at, seen) = common::matrix::kill_at_step(&mut cmd, step, 6);
            let (st, ca) = weights(&bed).last().copied().unwrap_or((100, 0));
            let (recorded, status) = recorded(&bed);
            let in_flight = status.stdout.contains("at step");
            assert!(
                (st, ca) == (100, 0) || in_flight,
                "killed at step {step}: weights {st}/{ca} without a rollout recorded in flight\n{}\n{seen}",
                status.dump()
            );
            let r = mvd(&bed, DEPLOY);
            assert_eq!(r.code, 0, "killed at step {step}, run again:\n{}", r.dump());
            assert!(
                r.stderr.contains("resuming the rollout"),
                "killed at step {step}: the rerun resumes:\n{}",
                r.dump()
            );
            assert_eq!(updates(&bed, "movieverse-app").len(), 1, "{}", r.dump());
            assert_eq!(bed.proxy.native_count(), 1, "{}", r.dump());
            assert_eq!(bed.proxy.native_status(1), "SUCCESSFUL", "{}", r.dump());
            assert_eq!(weights(&bed).last(), Some(&(0, 100)), "{}", r.dump());
            let recorded = if in_flight { "in flight" } else { recorded };
            // The weights as each step begins (ECS has moved them once a step is done).
            let at = [(100, 0), (100, 0), (90, 10), (90, 10), (0, 100), (0, 100)];
            let i = step as usize - 1;
            [
                killed_at,
                common::matrix::as_before(step, &(st, ca), &at[i], |w| format!("{}/{}", w.0, w.1)),
                recorded.to_owned(),
                "resumed, promoted".to_owned(),
            ]
        },
    );
}
