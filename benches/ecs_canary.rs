//! Canary on ECS figures (issue #13).
//!
//! 1. Simulated wall time of the example canary on ECS: the example's canary schedule and
//!    analysis timing (environment `production-k8s`: steps 10/25/50/75/100, initial delay 1m,
//!    interval 1m, threshold 5, deadline 60m) moved onto the example's ECS production
//!    environment with the default ALB analysis, played by `deploy --simulate` (the real
//!    engine and script on virtual time, healthy scenario), beside the plan's best and worst.
//! 2. With the real binary against moto and the scenario proxy (tests/common/codedeploy.rs):
//!    a healthy canary of steps 10/25/50 with 1 s checks. The `ELBv2` and ECS calls of each
//!    step: the proxy's log of calls cut at each weight change (`ModifyRule`).
//! 3. Time from a step's decision to its weight visible on the listener: the engine saves
//!    its state (`TagResource` on the stable service) before every effect, so the decision
//!    is the last `TagResource` before a `ModifyRule`; visible is when the proxy's read of the
//!    rule back from moto, made right after the `ModifyRule`, answered with the new weights.
//!
//! 4. (#15) `verify` of the same environment: wall time of the process and the AWS calls it
//!    made, as the proxy saw them.
//!
//! Run: `cargo bench --bench ecs_canary` (or scripts/bench).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

fn bin() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_movieverse-deploy"));
    cmd.env("CI", "true")
        .env("GITHUB_SHA", common::SHA)
        .env("GITHUB_REF", "refs/heads/main");
    cmd
}

/// Figure 1.
fn simulated() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    let text = common::with_production_strategy(
        &std::fs::read_to_string(root.join("examples/movieverse/deploy.yml")).unwrap(),
        "    strategy:\n      canary:\n        steps: [10, 25, 50, 75, 100]\n        deadline: 60m\n        canary_target_group: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-canary/fedcba9876543210\n        listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/1111111111111111/aaaaaaaaaaaaaaaa\n        analysis:\n          initial_delay: 1m\n          interval: 1m\n          threshold: 5\n",
    );
    std::fs::write(dir.path().join("deploy.yml"), text).unwrap();
    std::fs::write(dir.path().join("Containerfile"), "FROM scratch\n").unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args(["deploy", "--env", "production", "--simulate"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let played = text
        .lines()
        .find(|l| l.starts_with("Played"))
        .unwrap_or("(no `Played` line)")
        .to_owned();
    let plan = bin()
        .current_dir(dir.path())
        .args(["plan", "--env", "production"])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    let total = plan
        .lines()
        .find(|l| l.trim_start().starts_with("total:"))
        .unwrap_or("(no total)")
        .trim()
        .to_owned();
    println!(
        "example canary on ECS (steps 10/25/50/75/100, 1m checks, default ALB analysis), deploy --simulate, healthy: {played}; plan: {total}"
    );
}

/// Figures 2 and 3.
fn real() {
    use common::codedeploy::{Plan, Proxy};
    let moto = common::moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    moto.staging_config(dir.path());
    let world: serde_json::Value = serde_json::from_str(&moto.world(&["canary"])).unwrap();
    common::codedeploy::canary_config(dir.path(), &world, "steps: [10, 25, 50]", "");
    moto.world(&["identity", "production"]);
    common::codedeploy::alb_traffic(&moto, &world, 1000.0, 0.0, 0.12);
    let proxy = Proxy::start(&moto.endpoint, Plan::Succeed);
    verify_figure(dir.path(), &proxy);
    let skip = proxy.timed_calls().len();
    let mut cmd = bin();
    cmd.current_dir(dir.path())
        .args(["deploy", "--env", "production", "--poll-interval", "200ms"]);
    for (k, v) in proxy.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = proxy.timed_calls().split_off(skip);
    let elb = |op: &str| {
        [
            "DescribeRules",
            "DescribeListeners",
            "ModifyRule",
            "ModifyListener",
            "DescribeTargetGroups",
        ]
        .contains(&op)
    };
    let ecs = |op: &str| {
        [
            "DescribeServices",
            "UpdateService",
            "RegisterTaskDefinition",
            "DescribeTaskDefinition",
            "ListTaskDefinitions",
            "DeregisterTaskDefinition",
            "TagResource",
            "UntagResource",
            "ListTasks",
            "DescribeTasks",
        ]
        .contains(&op)
    };
    // Segments: before the first weight, then from each weight change to the next.
    let weights = proxy.weights();
    let names: Vec<String> = std::iter::once("deploy the canary service".to_owned())
        .chain(weights.iter().zip(1..).map(|(w, i)| {
            let canary: i64 = w
                .iter()
                .filter(|(tg, _)| tg == world["canary"].as_str().unwrap())
                .map(|(_, n)| n)
                .sum();
            if i == weights.len() {
                format!("weight {canary}% and the canary to 0")
            } else {
                format!("at weight {canary}% (checks, then the next step)")
            }
        }))
        .collect();
    let mut segment = 0;
    let mut counts = vec![(0usize, 0usize, std::collections::BTreeMap::new()); names.len()];
    for (op, _) in &calls {
        if op == "ModifyRule" {
            segment += 1;
        }
        let c = &mut counts[segment.min(names.len() - 1)];
        if elb(op) {
            c.0 += 1;
        } else if ecs(op) {
            c.1 += 1;
        }
        if elb(op) || ecs(op) {
            *c.2.entry(op.clone()).or_insert(0usize) += 1;
        }
    }
    println!(
        "ELBv2 and ECS calls per step (real binary, moto + scenario proxy, steps 10/25/50, 1 s checks, 200 ms poll; the promotion's rolling of the stable service falls in the last weight's segment):"
    );
    for (name, (e, s, ops)) in names.iter().zip(&counts) {
        let detail: Vec<String> = ops.iter().map(|(op, n)| format!("{op} {n}")).collect();
        println!(
            "  {name:<52} ELBv2 {e:>2}, ECS {s:>3}  ({})",
            detail.join(", ")
        );
    }
    // Figure 3: the last TagResource before each ModifyRule, to the rule read back.
    let seen = proxy.weights_seen_at();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut last_save = None;
    let mut modify = 0;
    for (op, at) in &calls {
        match op.as_str() {
            "TagResource" => last_save = Some(*at),
            "ModifyRule" => {
                if let (Some(saved), Some(visible)) = (last_save, seen.get(modify)) {
                    latencies.push(visible.duration_since(saved));
                }
                modify += 1;
            }
            _ => {}
        }
    }
    latencies.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!(
        "decision (state saved) -> weight visible on the listener, {} weight changes: median {:.1} ms, max {:.1} ms (each: save, read the rule, ModifyRule, the proxy's read back)",
        latencies.len(),
        latencies.get(latencies.len() / 2).map_or(0.0, ms),
        latencies.last().map_or(0.0, ms)
    );
}

/// Figure 4 (#15): `verify` of the same environment, 5 runs: wall time of the process and
/// the AWS calls it made (through the proxy).
fn verify_figure(dir: &std::path::Path, proxy: &common::codedeploy::Proxy) {
    let mut times = Vec::new();
    let mut calls = Vec::new();
    let mut checks = String::new();
    for _ in 0..5 {
        let before = proxy.timed_calls().len();
        let mut cmd = bin();
        cmd.current_dir(dir).args(["verify", "--env", "production"]);
        for (k, v) in proxy.env() {
            cmd.env(k, v);
        }
        let started = std::time::Instant::now();
        let out = cmd.output().unwrap();
        times.push(started.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        checks = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.split_once(" check(s) in").map(|(n, _)| n.to_owned()))
            .unwrap_or_default();
        let made: Vec<String> = proxy.timed_calls()[before..]
            .iter()
            .map(|(op, _)| op.clone())
            .collect();
        calls.push(made);
    }
    times.sort();
    let mut ops = std::collections::BTreeMap::new();
    for op in &calls[0] {
        *ops.entry(op.clone()).or_insert(0) += 1;
    }
    let detail: Vec<String> = ops.iter().map(|(op, n)| format!("{op} {n}")).collect();
    println!(
        "verify --env production (the canary environment, {checks} checks; real binary, moto + proxy, 5 runs): median {:.2} s, max {:.2} s wall; {} AWS calls seen by the proxy ({})",
        times[2].as_secs_f64(),
        times[4].as_secs_f64(),
        calls[0].len(),
        detail.join(", ")
    );
}

fn main() {
    simulated();
    real();
}
