//! Deployment engine figures, measured in the simulator on tokio's paused clock (virtual time:
//! exact and repeatable, independent of machine load).
//!
//! 1. Detection latency: from the moment the platform reaches COMPLETED (or FAILED) to the
//!    moment the deploy returns, for completion times from 30 s to 10 min, for our driver
//!    (fixed 5 s poll) and, side by side, for a model of the SDK `services-stable` waiter the
//!    aws-actions ECS action uses (`waitUntilServicesStable`, 15 s..120 s): a check at once,
//!    then smithy's exponential back-off with jitter, drawn from a seeded generator (2 000
//!    draws per completion time, `benches/support/waiter.rs`).
//! 2. API calls per minute while waiting on 1, 10 and 50 services.
//! 3. Wall time of a 10-minute rollout scenario.
//!
//! Run: `cargo bench --bench engine` (or scripts/bench).

#[path = "support/waiter.rs"]
mod support;

use std::time::{Duration, Instant};

use movieverse_deploy::driver::{DriveOptions, Unit, drive};
use movieverse_deploy::platform::ServiceSpec;
use movieverse_deploy::platform::sim::{Health, Scenario, Sim};
use movieverse_deploy::strategy::rolling::{CancelPolicy, Rolling, Settings};
use tokio_util::sync::CancellationToken;

fn spec(name: &str) -> ServiceSpec {
    ServiceSpec {
        cluster: "bench".into(),
        name: name.into(),
        definition: serde_json::json!({"family": name}),
        service: serde_json::json!({}),
        scaling: None,
        tags: vec![],
        manifests: vec![],
    }
}

fn settings() -> Settings {
    Settings {
        progress_deadline: Duration::from_hours(1),
        keep_revisions: 100,
        on_cancel: CancelPolicy::Rollback,
        no_wait: false,
    }
}

/// Runs `n` services whose rollout takes `per_task` × 2 tasks; returns (latency after the
/// platform finished, describe calls, virtual duration).
async fn ours(n: usize, per_task: Duration, health: Health) -> (Duration, u32, Duration) {
    let names: Vec<String> = (0..n).map(|i| format!("svc-{i}")).collect();
    let scenario = Scenario {
        per_task,
        health,
        ..Scenario::default()
    };
    let sim = Sim::new(names.iter().map(|s| (s.clone(), scenario.clone())));
    let mut units: Vec<Unit> = names
        .iter()
        .map(|s| Unit {
            spec: spec(s),
            machine: Rolling::new(s.clone(), settings(), 0),
        })
        .collect();
    let start = tokio::time::Instant::now();
    drive(
        &sim,
        &mut units,
        &DriveOptions::default(),
        &CancellationToken::new(),
        &mut |_, _, _| {},
    )
    .await;
    let end = tokio::time::Instant::now();
    let finished = names
        .iter()
        .filter_map(|s| sim.finishes_at(s))
        .max()
        .expect("the scenario finishes");
    (
        end.duration_since(finished),
        sim.calls().get("DescribeServices").copied().unwrap_or(0),
        end.duration_since(start),
    )
}

/// The SDK waiter `waitUntilServicesStable` (15 s..120 s, with jitter): its mean and
/// worst latency over 2 000 seeded draws for a state reached at `finish`.
fn waiter_latency(finish: Duration, rng: &mut support::Rng) -> (Duration, Duration) {
    let draws: Vec<f64> = (0..2000)
        .map(|_| support::waiter(finish.as_secs_f64(), 15.0, 120.0, rng).0)
        .collect();
    let mean = draws.iter().sum::<f64>() / 2000.0;
    let worst = draws.iter().copied().fold(0.0, f64::max);
    (
        Duration::from_secs_f64(mean),
        Duration::from_secs_f64(worst),
    )
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    println!(
        "method: simulator on tokio's paused clock (virtual time); poll interval 5 s; 2 tasks per service"
    );
    println!();
    println!("detection latency (platform final state -> deploy returns)");
    println!(
        "{:>12}  {:>8}  {:>22}",
        "completes at", "ours", "SDK waiter mean (worst)"
    );
    let (mut sum_ours, mut sum_waiter, mut worst_ours, mut worst_waiter) =
        (0.0, 0.0, Duration::ZERO, Duration::ZERO);
    let mut rng = support::Rng(0x9E37_79B9_7F4A_7C15);
    let times = [31_u64, 61, 97, 122, 183, 247, 301, 421, 599];
    for secs in times {
        // Two tasks, so each takes half.
        let (latency, _, _) = ours(1, Duration::from_secs(secs) / 2, Health::Healthy).await;
        let (waiter, waiter_worst) = waiter_latency(Duration::from_secs(secs), &mut rng);
        sum_ours += latency.as_secs_f64();
        sum_waiter += waiter.as_secs_f64();
        worst_ours = worst_ours.max(latency);
        worst_waiter = worst_waiter.max(waiter_worst);
        println!(
            "{:>11}s  {:>7.1}s  {:>14.1}s ({:>5.1}s)",
            secs,
            latency.as_secs_f64(),
            waiter.as_secs_f64(),
            waiter_worst.as_secs_f64()
        );
    }
    let n = f64::from(u32::try_from(times.len()).expect("a few rows"));
    println!(
        "mean: ours {:.1}s, SDK waiter {:.1}s (ratio {:.1}x); worst: ours {:.1}s (target <= 5 s, one poll), SDK waiter {:.1}s",
        sum_ours / n,
        sum_waiter / n,
        sum_waiter / sum_ours,
        worst_ours.as_secs_f64(),
        worst_waiter.as_secs_f64()
    );
    let (failed, _, _) = ours(
        1,
        Duration::from_secs(47),
        Health::CrashLoop {
            circuit_breaker: true,
        },
    )
    .await;
    println!(
        "circuit-breaker FAILED at 141s: ours {:.1}s",
        failed.as_secs_f64()
    );
    println!();
    println!("API calls while waiting (DescribeServices; 10 services per call)");
    for n in [1_usize, 10, 50] {
        let (_, describes, took) = ours(n, Duration::from_mins(5), Health::Healthy).await;
        // Each service's prepare makes one describe of its own; the rest are the batched polls.
        let polls = describes - u32::try_from(n).unwrap();
        let per_minute = f64::from(polls) / (took.as_secs_f64() / 60.0);
        println!(
            "{n:>3} service(s): {polls} polls in {:.0}s = {per_minute:.1} calls/min",
            took.as_secs_f64()
        );
    }
    println!();
    let wall = Instant::now();
    let (_, _, took) = ours(1, Duration::from_mins(5), Health::Healthy).await;
    println!(
        "a {:.0}-minute rollout ran in {:.1} ms of wall time",
        took.as_secs_f64() / 60.0,
        wall.elapsed().as_secs_f64() * 1000.0
    );
    println!();
    simulated_canary();
}

/// The example's canary through the rollout engine on virtual time (what `deploy --simulate`
/// plays), in-process and through the release binary.
fn simulated_canary() {
    use movieverse_deploy::rollout::engine::{Analysis, Engine, Input, State};
    use movieverse_deploy::rollout::simulate::{Scenario, World, play};
    let loaded = movieverse_deploy::config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/movieverse/deploy.yml"
    )))
    .expect("the example loads");
    let env = &loaded.config.environments["production-k8s"];
    let movieverse_deploy::config::Strategy::Canary(c) = &env.strategy else {
        unreachable!("the example's production-k8s is a canary")
    };
    let script = movieverse_deploy::rollout::script::canary(c);
    let analysis = Analysis::from_canary(c);
    let engine = Engine {
        script: &script,
        analysis: &analysis,
    };
    let mut samples = Vec::new();
    let mut virtual_ms = 0;
    for _ in 0..1000 {
        let wall = Instant::now();
        let mut state = State::new(&script, "r", 0);
        let mut world = World::new(Scenario::Healthy, 300, 60);
        let t = play(&engine, &mut state, &mut world, Input::Start, 0, 10_000);
        samples.push(wall.elapsed());
        virtual_ms = t.ended_at;
    }
    samples.sort();
    println!(
        "simulated canary (the example's production-k8s, healthy): {} min of virtual time played in median {:.1} us, p99 {:.1} us (1000 runs, in-process)",
        virtual_ms / 60_000,
        samples[500].as_secs_f64() * 1e6,
        samples[990].as_secs_f64() * 1e6
    );
    let binary =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/movieverse-deploy");
    if binary.is_file() {
        let mut runs = Vec::new();
        for _ in 0..20 {
            let wall = Instant::now();
            let out = std::process::Command::new(&binary)
                .args([
                    "--config",
                    concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/examples/movieverse/deploy.yml"
                    ),
                ])
                .args(["deploy", "--env", "production-k8s", "--simulate"])
                .env("GITHUB_SHA", "4f2b9c1e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c")
                .output()
                .expect("the release binary runs");
            assert!(out.status.success());
            runs.push(wall.elapsed());
        }
        runs.sort();
        println!(
            "`deploy --env production-k8s --simulate` with the release binary, whole process: median {:.1} ms, max {:.1} ms (20 runs; aim: under 1 s)",
            runs[10].as_secs_f64() * 1000.0,
            runs[19].as_secs_f64() * 1000.0
        );
    }
}
