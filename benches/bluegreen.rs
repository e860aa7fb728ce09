//! Blue-green (`CodeDeploy`) figures.
//!
//! 1. Detection latency of a deployment's end (Succeeded, or Failed/Stopped for a rollback):
//!    from the moment `CodeDeploy` reports it to the moment the wait returns, for end times from
//!    30 s to 30 min. Ours: `GetDeployment` at once, then every poll interval (5 s by default),
//!    as `run/bluegreen.rs` waits. The anchor: aws-actions' ECS deploy action waits for a
//!    `CodeDeploy` deployment with the SDK waiter `waitUntilDeploymentSuccessful` (`minDelay`
//!    15 s, `maxDelay` 120 s): a first check at once, then before attempt k a delay drawn
//!    uniformly from [15 s, 15 s × 2^(k-1)] (smithy's `exponentialBackoffWithJitter`),
//!    120 s once past the attempt ceiling. Both are simulated on virtual time (the delays are
//!    exact; the waiter's jitter comes from a seeded generator, 2 000 draws per end time).
//! 2. `GetDeployment` calls per minute while waiting, each way.
//! 3. With the real binary against moto and the scenario proxy (tests/common/codedeploy.rs),
//!    for `CodeDeploy` and for ECS native blue/green: the time from starting `rollout
//!    promote` on a deployment held at its gate (Ready; the PAUSE hook) to the binary's line
//!    saying production traffic is on green, and the calls that took. ECS native's waits poll
//!    the same way (`DescribeServiceDeployments` at once, then every poll interval), so
//!    figures 1 and 2 hold for it call for call; its SDK-waiter anchor would be
//!    `waitUntilServicesStable` (15 s..120 s as well).
//!
//! Run: `cargo bench --bench bluegreen` (or scripts/bench).

// Figures in seconds: counts and draws become f64 and back, far inside their precision.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/waiter.rs"]
mod support;

use support::Rng;

use std::time::Instant;

/// Our wait: a check at once, then one every `poll`.
fn ours(end: f64, poll: f64) -> (f64, u32) {
    let checks = (end / poll).ceil();
    (checks * poll - end, checks as u32 + 1)
}

/// The SDK waiter `waitUntilDeploymentSuccessful`: 15 s..120 s.
fn waiter(end: f64, rng: &mut Rng) -> (f64, u32) {
    support::waiter(end, 15.0, 120.0, rng)
}

fn main() {
    let poll = 5.0;
    println!(
        "method: virtual time; ours = GetDeployment at once then every {poll} s; SDK waiter = waitUntilDeploymentSuccessful (15 s..120 s, smithy jitter, 2000 seeded draws per end time)"
    );
    println!();
    println!("detection latency (CodeDeploy reports the end -> the wait returns)");
    println!(
        "{:>12}  {:>13}  {:>22}",
        "ends at", "ours mean/p95", "SDK waiter mean / p95"
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut sum_ours, mut sum_waiter, mut n) = (0.0, 0.0, 0.0);
    let (mut calls_ours, mut calls_waiter, mut waited) = (0.0, 0.0, 0.0);
    let mut worst_ours = 0.0_f64;
    for base in [30.0, 60.0, 120.0, 300.0, 600.0, 1800.0] {
        // The end falls anywhere in the minute after `base` (2 000 draws, the same for both).
        let ends: Vec<f64> = (0..2000).map(|_| base + 60.0 * rng.next()).collect();
        let mut mine: Vec<(f64, u32)> = ends.iter().map(|&e| ours(e, poll)).collect();
        let mut draws: Vec<(f64, u32)> = ends.iter().map(|&e| waiter(e, &mut rng)).collect();
        mine.sort_by(|a, b| a.0.total_cmp(&b.0));
        draws.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mean = |v: &[(f64, u32)]| v.iter().map(|d| d.0).sum::<f64>() / v.len() as f64;
        let calls =
            |v: &[(f64, u32)]| v.iter().map(|d| f64::from(d.1)).sum::<f64>() / v.len() as f64;
        let p95 = |v: &[(f64, u32)]| v[v.len() * 95 / 100].0;
        println!(
            "{:>11}s  {:>4.1}s / {:>4.1}s  {:>13.1}s / {:>5.1}s",
            format!("{base}..{}", base + 60.0),
            mean(&mine),
            p95(&mine),
            mean(&draws),
            p95(&draws)
        );
        sum_ours += mean(&mine);
        sum_waiter += mean(&draws);
        n += 1.0;
        worst_ours = worst_ours.max(mine.last().unwrap().0);
        calls_ours += calls(&mine);
        calls_waiter += calls(&draws);
        waited += base + 30.0;
    }
    println!(
        "mean over these end times: ours {:.1} s (worst {:.1} s, at most one poll), SDK waiter {:.1} s (ratio {:.1}x)",
        sum_ours / n,
        worst_ours,
        sum_waiter / n,
        sum_waiter / sum_ours.max(f64::EPSILON)
    );
    println!();
    println!(
        "GetDeployment calls per minute while waiting: ours {:.1}, SDK waiter {:.1} (over the same waits)",
        calls_ours / waited * 60.0,
        calls_waiter / waited * 60.0
    );
    println!();
    promote_to_green(false);
    promote_to_green(true);
}

/// The real binary: `rollout promote` on a deployment held at its gate (`native`: ECS native
/// blue/green's PAUSE hook; else `CodeDeploy`'s Ready), until its line saying production
/// traffic is on green.
fn promote_to_green(native: bool) {
    use common::codedeploy::{Plan, Proxy};
    let mut times = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..5 {
        let moto = common::moto::Moto::start();
        let dir = tempfile::tempdir().unwrap();
        moto.staging_config(dir.path());
        if native {
            let world: serde_json::Value = serde_json::from_str(&moto.world(&["native"])).unwrap();
            common::codedeploy::native_config(dir.path(), &world, "        gate: manual\n");
        } else {
            // The gate without the example's checks (their URL is not on this machine).
            common::codedeploy::without_checks(dir.path());
            let path = dir.path().join("deploy.yml");
            let text = std::fs::read_to_string(&path).unwrap().replacen(
                "        termination_wait: 5m\n",
                "        termination_wait: 5m\n        gate: manual\n",
                1,
            );
            std::fs::write(path, text).unwrap();
            moto.world(&["bluegreen", "gate"]);
        }
        let proxy = Proxy::start(&moto.endpoint, Plan::Bake);
        let run = |args: &[&str]| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_movieverse-deploy"));
            cmd.current_dir(dir.path())
                .env("CI", "true")
                .env("GITHUB_SHA", common::SHA)
                .env("GITHUB_REF", "refs/heads/main")
                .args(args);
            for (k, v) in proxy.env() {
                cmd.env(k, v);
            }
            cmd
        };
        let out = run(&["deploy", "--env", "production"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ops: &[&str] = if native {
            &[
                "ListServiceDeployments",
                "DescribeServiceDeployments",
                "ContinueServiceDeployment",
            ]
        } else {
            &["ListDeployments", "GetDeployment", "ContinueDeployment"]
        };
        let before: usize = ops.iter().map(|op| proxy.calls(op).len()).sum();
        let started = Instant::now();
        let mut promote = run(&["rollout", "promote", "--env", "production"]);
        let running = common::run_until(&mut promote, "production traffic is on green");
        times.push(started.elapsed());
        calls.push(ops.iter().map(|op| proxy.calls(op).len()).sum::<usize>() - before);
        let _ = running.signal("KILL");
    }
    times.sort();
    calls.sort_unstable();
    println!(
        "rollout promote -> production traffic on green, {} (real binary, moto + scenario proxy, 5 runs): median {:.2} s, max {:.2} s, {} calls ({})",
        if native {
            "ECS native (the PAUSE hook)"
        } else {
            "CodeDeploy (Ready)"
        },
        times[2].as_secs_f64(),
        times[4].as_secs_f64(),
        calls[2],
        if native {
            "ListServiceDeployments, then DescribeServiceDeployments x4: the deployment in flight, before the switch, the hook's id, the switch seen; and ContinueServiceDeployment"
        } else {
            "ListDeployments, then GetDeployment x3: the deployment in flight, before the switch, the switch seen; and ContinueDeployment"
        }
    );
}
