//! Kubernetes figures on the real control plane (scripts/k8s-up, with the tests' fake
//! kubelet making pods Ready):
//!
//! 1. Control plane start-up: `scripts/k8s-up` until `/readyz` answers and the controller
//!    manager is healthy (the script measures it; printed here).
//! 2. Detection latency of a finished rollout: the release binary deploys a new image with
//!    the default 5 s poll while this harness watches the Deployment every 20 ms; the latency
//!    is the time from the moment the Deployment is complete (`kubectl rollout status`'s
//!    rule: observed generation current, every replica updated and available, no old ones
//!    left) to the moment the binary exits. Target: at most one poll interval.
//!
//! 3. API requests per deploy: the binary talks to the API server through a counting proxy
//!    in this harness (plain HTTP in, TLS with the admin token out), so every request on the
//!    wire is counted, watches apart.
//!
//! Run: `cargo bench --bench k8s` (or scripts/bench); `MVD_BENCH_REQUESTS=1` lists each
//! deploy's requests. Needs go to build the control plane
//! once (scripts/k8s-build).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

const RUNS: usize = 6;
/// Seconds a new pod takes to become Ready (the fake kubelet's `start<N>s` tag): with 5
/// replicas and a surge of 1, a rollout of about half a minute, several poll intervals long.
const POD_START: u64 = 4;

fn complete(d: &Deployment) -> bool {
    let (Some(spec), Some(st)) = (d.spec.as_ref(), d.status.as_ref()) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    st.observed_generation >= d.metadata.generation
        && st.updated_replicas == Some(want)
        && st.available_replicas == Some(want)
        && st.replicas == Some(want)
}

fn main() {
    let started = Instant::now();
    let cluster = common::k8s::cluster();
    println!(
        "control plane: started (build check + start) in {:.1} s; the script's own start-up figure is in its line above",
        started.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    common::k8s::rolling_config(dir.path(), "bench", "120s", "");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let proxied = common::k8s::proxy(
        &cluster.kubeconfig,
        dir.path(),
        seen.clone(),
        std::sync::Arc::default(),
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(common::k8s::client(&cluster.kubeconfig));
    let api: Api<Deployment> = Api::namespaced(client, "bench");
    let mut latencies: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut calls: [Vec<(usize, usize, usize)>; 2] = [Vec::new(), Vec::new()];
    println!(
        "method: {RUNS} deploys of a new image each way, alternating (5 replicas, max surge 1, pods Ready {POD_START} s after creation), poll 5 s; the Deployment watched by this harness every 20 ms"
    );
    for i in 0..RUNS * 2 {
        let watch = i % 2 == 0;
        let image = format!("registry.test/movieverse:bench-{i}-start{POD_START}s");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_movieverse-deploy"))
            .current_dir(dir.path())
            .env("KUBECONFIG", &proxied)
            .env("CI", "true")
            .env("GITHUB_SHA", common::SHA)
            .env("GITHUB_REF", "refs/heads/main")
            .env("MVD_K8S_WATCH", if watch { "1" } else { "0" })
            .args(["deploy", "--env", "production-k8s", "--image", &image])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seen.lock().unwrap().clear();
        let t0 = Instant::now();
        let mut done_at: Option<Instant> = None;
        let exit = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break (Instant::now(), status);
            }
            if done_at.is_none() {
                let d = rt.block_on(api.get_opt("movieverse")).unwrap();
                let ours = d.as_ref().is_some_and(|d| {
                    d.spec
                        .as_ref()
                        .and_then(|s| s.template.spec.as_ref())
                        .is_some_and(|p| p.containers[0].image.as_deref() == Some(image.as_str()))
                });
                if ours && d.as_ref().is_some_and(complete) {
                    done_at = Some(Instant::now());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(exit.1.success(), "deploy {i} failed");
        let done = done_at.expect("the rollout was seen complete before the deploy exited");
        let latency = exit.0.duration_since(done);
        println!(
            "run {i} ({}): rollout complete after {:5.2} s, deploy exited {:5.2} s later",
            if watch { "watch + poll" } else { "poll only" },
            done.duration_since(t0).as_secs_f64(),
            latency.as_secs_f64()
        );
        latencies[usize::from(!watch)].push(latency);
        let requests = std::mem::take(&mut *seen.lock().unwrap());
        if std::env::var_os("MVD_BENCH_REQUESTS").is_some() {
            println!("  requests:\n    {}", requests.join("\n    "));
        }
        let watches = requests.iter().filter(|r| r.contains("watch=true")).count();
        // The wait: every request after the Deployment's own (not dry-run) apply.
        let applied = requests
            .iter()
            .rposition(|r| {
                r.starts_with("PATCH /apis/apps/v1/namespaces/bench/deployments/movieverse?")
                    && !r.contains("dryRun")
            })
            .expect("the Deployment was applied");
        let waiting = requests.len() - applied - 1;
        calls[usize::from(!watch)].push((requests.len(), watches, waiting));
    }
    for (name, mut l) in ["watch + poll", "poll only"].into_iter().zip(latencies) {
        l.sort();
        println!(
            "detection latency, {name}: median {:.2} s, max {:.2} s",
            l[RUNS / 2].as_secs_f64(),
            l[RUNS - 1].as_secs_f64()
        );
    }
    println!("(poll interval 5 s; target with the watch: under 1 s)");
    for (name, mut c) in ["watch + poll", "poll only"].into_iter().zip(calls) {
        c.sort_unstable();
        println!(
            "API requests per deploy, {name}: median {} (of which {} watches), min {}, max {} (counted at the proxy, from start to exit)",
            c[RUNS / 2].0,
            c[RUNS / 2].1,
            c[0].0,
            c[RUNS - 1].0
        );
        let mut waiting: Vec<usize> = c.iter().map(|c| c.2).collect();
        waiting.sort_unstable();
        println!(
            "API requests while waiting for the rollout, {name}: median {}, min {}, max {} (after the Deployment's apply, the HPA's apply and the clean-up included)",
            waiting[RUNS / 2],
            waiting[0],
            waiting[RUNS - 1]
        );
    }
}
