//! Blue-green on the real control plane (tests/common/k8s.rs, pods made Ready by the fake
//! kubelet): each colour is a Deployment named by revision, the live Service's selector
//! switches from blue to green, the preview Service selects green for its checks (HTTP checks
//! against tests/common/probe.rs). The real binary deploys; a second process promotes or
//! aborts. Each test works in a namespace of its own.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::k8s::{self, Cluster, deploy, mvd, rollout};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::ListParams;

const GOOD: &str = "registry.test/movieverse@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const GOOD2: &str = "registry.test/movieverse@sha256:2222222222222222222222222222222222222222222222222222222222222222";
const GOOD3: &str = "registry.test/movieverse@sha256:3333333333333333333333333333333333333333333333333333333333333333";
const REVISION: &str = "movieverse.dev/revision";
/// An image whose pods take 3 s to become ready (the fake kubelet's `start<N>s`).
const SLOW: &str = "registry.test/movieverse:v2-start3s";

/// The example's Kubernetes environment as a blue-green in `namespace`: green checked through
/// `probe` (two GETs of /health per check, a check a second, rolled back at 2 failed checks),
/// blue kept `wait` after the switch, and `extra` strategy lines (a gate).
fn config(dir: &Path, namespace: &str, probe: &str, wait: &str, extra: &str) {
    let strategy = format!(
        "    strategy:\n      blue-green:\n        termination_wait: {wait}\n        progress_deadline: 60s\n{extra}        analysis:\n          initial_delay: 1s\n          interval: 1s\n          threshold: 2\n          http:\n            - name: health\n              url: {probe}/health\n              count: 2\n              body: ok\n",
    );
    k8s::rolling_config(dir, namespace, "60s", "");
    let text = std::fs::read_to_string(dir.join("deploy.yml")).unwrap();
    let k8s = text.find("  production-k8s:").unwrap();
    let at = text[k8s..].find("    strategy:\n      rolling:\n").unwrap() + k8s;
    let end = text[at..].find("    env:\n").unwrap() + at;
    let text = format!("{}{strategy}{}", &text[..at], &text[end..]);
    std::fs::write(dir.join("deploy.yml"), text).unwrap();
}

async fn selector(client: &kube::Client, ns: &str, service: &str) -> BTreeMap<String, String> {
    Api::<Service>::namespaced(client.clone(), ns)
        .get(service)
        .await
        .unwrap()
        .spec
        .unwrap()
        .selector
        .unwrap_or_default()
}

/// The revision the Service selects.
async fn selected(client: &kube::Client, ns: &str, service: &str) -> String {
    let s = selector(client, ns, service).await;
    assert_eq!(
        s.get("app.kubernetes.io/name").map(String::as_str),
        Some("movieverse"),
        "{s:?}"
    );
    s.get(REVISION).cloned().unwrap_or_default()
}

/// Each colour's Deployment: (revision label, desired replicas, image).
async fn colours(client: &kube::Client, ns: &str) -> BTreeMap<String, (i32, String)> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(REVISION))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| {
            let label = d.metadata.labels.as_ref().unwrap()[REVISION].clone();
            assert_eq!(
                d.metadata.name.as_deref(),
                Some(&*format!("movieverse-{label}"))
            );
            let spec = d.spec.unwrap();
            let image = spec.template.spec.unwrap().containers[0]
                .image
                .clone()
                .unwrap();
            (label, (spec.replicas.unwrap_or(1), image))
        })
        .collect()
}

async fn saved_state(client: &kube::Client, ns: &str) -> serde_json::Value {
    let s = Api::<Service>::namespaced(client.clone(), ns)
        .get("movieverse")
        .await
        .unwrap();
    serde_json::from_str(&s.metadata.annotations.unwrap()["movieverse.dev/rollout"]).unwrap()
}

/// The first deploy: green is the first colour and takes the traffic directly. Returns its
/// revision label.
async fn first_colour(cluster: &Cluster, dir: &Path, client: &kube::Client, ns: &str) -> String {
    let r = deploy(cluster, dir, GOOD);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains("a first deploy rolls green"),
        "{}",
        r.dump()
    );
    let blue = selected(client, ns, "movieverse").await;
    assert_eq!(blue.len(), 12, "the live Service selects a colour");
    assert_eq!(selected(client, ns, "movieverse-preview").await, blue);
    assert_eq!(colours(client, ns).await[&blue].1, GOOD);
    blue
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_blue_green_waits_with_green_on_the_preview_service_then_promote_switches_the_selector()
 {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let probe = common::probe::Server::start("unused");
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-bg-gate";
    config(dir.path(), ns, &probe.url, "1s", "        gate: manual\n");
    let blue = first_colour(cluster, dir.path(), &client, ns).await;

    // Green comes up beside blue, passes its checks, and waits at the gate.
    let report = dir.path().join("report.json");
    let mut args = k8s::deploy_args(GOOD2).to_vec();
    args.extend(["--report", report.to_str().unwrap()]);
    let r = mvd(cluster, dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert_eq!(r.output("result"), "paused", "{}", r.dump());
    assert!(
        r.stderr.contains(&format!(
            "blue is movieverse-{blue} (the live Service selects it)"
        )),
        "{}",
        r.dump()
    );
    assert!(r.stderr.contains("check of green: "), "{}", r.dump());
    assert!(probe.health_calls() >= 2, "green was checked");
    let report = std::fs::read_to_string(&report).unwrap();
    assert!(
        report.contains("waiting for promotion: green is up behind the preview Service movieverse-preview (http://movieverse-preview.mv-bg-gate.svc)"),
        "{report}"
    );
    let all = colours(&client, ns).await;
    let green = all
        .iter()
        .find(|(_, (_, image))| image == GOOD2)
        .map(|(l, _)| l.clone())
        .expect("green's Deployment");
    assert_eq!(
        selected(&client, ns, "movieverse").await,
        blue,
        "production stays on blue"
    );
    assert_eq!(selected(&client, ns, "movieverse-preview").await, green);
    assert_eq!(all[&blue].0, all[&green].0, "green runs at blue's size");
    let state = saved_state(&client, ns).await;
    assert_eq!(state["status"]["status"], "paused", "{state}");
    assert_eq!(state["colours"]["blue"], blue.as_str());
    assert_eq!(state["colours"]["green"], green.as_str());

    // A second blue-green does not start over the one in progress, and names it.
    let second = deploy(cluster, dir.path(), GOOD3);
    assert_eq!(second.code, 1, "{}", second.dump());
    assert!(
        second
            .stderr
            .contains(&format!("the blue-green of {GOOD2} is in progress"))
            && second.stderr.contains("nothing was changed"),
        "{}",
        second.dump()
    );
    assert_eq!(colours(&client, ns).await.len(), 2, "nothing was created");

    let status = mvd(
        cluster,
        dir.path(),
        &["rollout", "status", "--env", "production-k8s"],
    );
    assert_eq!(status.code, 0, "{}", status.dump());
    assert!(
        status.stdout.contains("paused at step"),
        "{}",
        status.dump()
    );

    // Promote from a second process: the selector switches, blue is kept 1s, then goes to 0.
    let r = rollout(cluster, dir.path(), "promote");
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains("the live Service selects green"),
        "{}",
        r.dump()
    );
    assert_eq!(selected(&client, ns, "movieverse").await, green);
    let all = colours(&client, ns).await;
    assert_eq!(all[&blue].0, 0, "blue is scaled to 0: {all:?}");
    assert!(all[&green].0 > 0);
    assert_eq!(
        saved_state(&client, ns).await["status"]["result"],
        "promoted"
    );

    // The same revision again: nothing changes.
    let again = deploy(cluster, dir.path(), GOOD2);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert!(again.stderr.contains("no change"), "{}", again.dump());
    assert_eq!(selected(&client, ns, "movieverse").await, green);

    // `status` reads the colour that serves; `rollback` names the image to deploy again.
    let status = mvd(cluster, dir.path(), &["status", "--env", "production-k8s"]);
    assert_eq!(status.code, 0, "{}", status.dump());
    assert!(
        status.stdout.contains(&format!("movieverse-{green}")),
        "{}",
        status.dump()
    );
    let back = mvd(
        cluster,
        dir.path(),
        &["rollback", "--env", "production-k8s"],
    );
    assert_eq!(back.code, 2, "{}", back.dump());
    assert!(
        back.stderr
            .contains(&format!("deploy --env production-k8s --image {GOOD}")),
        "{}",
        back.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_that_fails_its_checks_never_takes_traffic_and_is_scaled_to_zero() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let probe = common::probe::Server::start("unused");
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-bg-fail";
    config(dir.path(), ns, &probe.url, "1s", "");
    let blue = first_colour(cluster, dir.path(), &client, ns).await;

    probe.set_health(503, "unavailable");
    let r = deploy(cluster, dir.path(), GOOD2);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr.contains("503"),
        "the failed check says what came back: {}",
        r.dump()
    );
    assert!(
        !r.stderr.contains("the live Service selects green"),
        "the switch never happened: {}",
        r.dump()
    );
    assert_eq!(selected(&client, ns, "movieverse").await, blue);
    let all = colours(&client, ns).await;
    let (green, (replicas, _)) = all
        .iter()
        .find(|(_, (_, image))| image == GOOD2)
        .expect("green's Deployment");
    let green = green.clone();
    assert_eq!(*replicas, 0, "green is scaled to 0");
    assert!(all[&blue].0 > 0, "blue still serves");
    assert_ne!(green, blue);
    assert_eq!(
        saved_state(&client, ns).await["status"]["result"],
        "rolled-back"
    );

    // The next revision starts from blue again; the failed green is removed.
    probe.set_health(200, "ok");
    let r = deploy(cluster, dir.path(), GOOD3);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains(&format!("blue is movieverse-{blue}")),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr.contains(&format!(
            "removed the idle colours (at 0 replicas): movieverse-{green}"
        )),
        "{}",
        r.dump()
    );
    let all = colours(&client, ns).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[&blue].0, 0, "the old blue is scaled to 0");
}

/// Faults on the way back (#14): the API server fails the selector switch of an abort with a
/// 500, twice; the switch is retried with back-off, said, and traffic goes back to blue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_selector_switch_is_retried_and_the_abort_goes_back_to_blue() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let probe = common::probe::Server::start("unused");
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-bg-faults";
    config(dir.path(), ns, &probe.url, "10m", "");
    let blue = first_colour(cluster, dir.path(), &client, ns).await;
    let mut cmd = k8s::mvd_cmd(cluster, dir.path(), &k8s::deploy_args(GOOD2));
    let running = common::run_until(&mut cmd, "keep blue");
    let (_, seen, _) = running.signal("KILL");

    let faults: k8s::Faults = std::sync::Arc::new(std::sync::Mutex::new(vec![k8s::Fault {
        method: "PATCH",
        path: "fieldManager=movieverse-deploy-router".into(),
        status: 500,
        times: 2,
        after: 0,
    }]));
    let proxied = k8s::proxy(
        &cluster.kubeconfig,
        dir.path(),
        std::sync::Arc::default(),
        faults.clone(),
    );
    let mut abort = k8s::mvd_cmd(
        cluster,
        dir.path(),
        &[
            "rollout",
            "abort",
            "--env",
            "production-k8s",
            "--poll-interval",
            "1s",
        ],
    );
    abort.env("KUBECONFIG", &proxied);
    let r = common::Run::from(&abort.output().unwrap());
    assert_eq!(r.code, 1, "{}\n{seen}", r.dump());
    assert!(faults.lock().unwrap()[0].times == 0, "{}", r.dump());
    for line in [
        "production-k8s: retrying in 1 s (1/5):",
        "production-k8s: retrying in 2 s (2/5):",
        "ROLLED BACK: rollout abort",
    ] {
        assert!(r.stderr.contains(line), "`{line}` missing:\n{}", r.dump());
    }
    assert_eq!(
        selected(&client, ns, "movieverse").await,
        blue,
        "traffic is back on blue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_during_the_termination_wait_switches_the_selector_back_to_blue() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let probe = common::probe::Server::start("unused");
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-bg-abort";
    config(dir.path(), ns, &probe.url, "10m", "");
    let blue = first_colour(cluster, dir.path(), &client, ns).await;

    // The deploy switches, then keeps blue for 10 minutes: the runner is killed there.
    let mut cmd = k8s::mvd_cmd(cluster, dir.path(), &k8s::deploy_args(GOOD2));
    let running = common::run_until(&mut cmd, "keep blue");
    let green = selected(&client, ns, "movieverse").await;
    assert_ne!(green, blue, "production is on green:\n{}", running.seen);
    assert!(colours(&client, ns).await[&blue].0 > 0, "blue is still up");
    let (_, seen, _) = running.signal("KILL");

    let r = rollout(cluster, dir.path(), "abort");
    assert_eq!(r.code, 1, "{}\n{seen}", r.dump());
    assert!(
        r.stderr.contains("ROLLED BACK: rollout abort"),
        "{}",
        r.dump()
    );
    assert_eq!(
        selected(&client, ns, "movieverse").await,
        blue,
        "traffic is back on blue"
    );
    let all = colours(&client, ns).await;
    assert_eq!(all[&green].0, 0, "green is scaled to 0");
    assert!(all[&blue].0 > 0, "blue serves");

    // Again: accepted, and nothing more to do.
    let again = rollout(cluster, dir.path(), "abort");
    assert_eq!(again.code, 0, "{}", again.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_while_green_starts_is_resumed_by_the_same_deploy() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let probe = common::probe::Server::start("unused");
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-bg-resume";
    config(dir.path(), ns, &probe.url, "1s", "");
    let blue = first_colour(cluster, dir.path(), &client, ns).await;

    // Green's pods take 3 s to become ready: the runner is killed (SIGKILL, no clean-up)
    // while it waits for them.
    let mut cmd = k8s::mvd_cmd(cluster, dir.path(), &k8s::deploy_args(SLOW));
    let running = common::run_until(&mut cmd, "step 1/");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (_, seen, _) = running.signal("KILL");
    assert_eq!(
        selected(&client, ns, "movieverse").await,
        blue,
        "production never left blue:\n{seen}"
    );
    assert!(
        colours(&client, ns)
            .await
            .values()
            .any(|(_, image)| image == SLOW),
        "green was started before the kill:\n{seen}"
    );

    // From a checkout whose deploy.yml renders green differently (another commit), going on
    // would start a third colour: refused, nothing changed.
    let path = dir.path().join("deploy.yml");
    let original = std::fs::read_to_string(&path).unwrap();
    let k8s_env = original.find("  production-k8s:").unwrap();
    let log = original[k8s_env..].find("      LOG_LEVEL: ").unwrap() + k8s_env;
    let changed = format!(
        "{}      LOG_LEVEL: debug\n{}",
        &original[..log],
        &original[original[log..].find('\n').unwrap() + log + 1..]
    );
    std::fs::write(&path, &changed).unwrap();
    let elsewhere = rollout(cluster, dir.path(), "resume");
    assert_eq!(elsewhere.code, 1, "{}", elsewhere.dump());
    assert!(
        elsewhere.stderr.contains("this checkout renders it as")
            && elsewhere.stderr.contains("nothing was changed"),
        "{}",
        elsewhere.dump()
    );
    assert_eq!(colours(&client, ns).await.len(), 2, "no third colour");
    std::fs::write(&path, original).unwrap();

    // The same deploy again picks the saved rollout up where it stood and finishes it.
    let r = deploy(cluster, dir.path(), SLOW);
    assert_eq!(r.code, 0, "{}\n{seen}", r.dump());
    assert!(
        r.stderr.contains("resuming the blue-green of"),
        "{}",
        r.dump()
    );
    let green = selected(&client, ns, "movieverse").await;
    assert_ne!(green, blue, "{}", r.dump());
    let all = colours(&client, ns).await;
    assert_eq!(all[&green].1, SLOW);
    assert_eq!(all[&blue].0, 0, "blue is scaled to 0 after the wait");
    assert_eq!(all.len(), 2, "{all:?}");
}

/// #14's fault matrix for blue-green on Kubernetes, with the real binary on the real control
/// plane: each call × a 500 twice, a reset connection twice and a 500 for good, injected by
/// the proxy in front of the API server (and one in front of the HTTP check's server: there a
/// 500 is the app failing its check, judged, not retried). Each cell must end with the live
/// Service on green (promoted), or failed safe: the live Service on blue, or all traffic on
/// green once the switch was done. Ten cells at a time, each in a namespace of its own.
/// ARCHITECTURE.md carries the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_k8s_blue_green() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let probe = common::probe::Server::start("unused");
    let columns: [(&str, u16, u32); 4] = [
        ("500 twice", 500, 2),
        ("reset twice", 0, 2),
        ("credentials expired", 401, 1),
        ("500 for good", 500, 99),
    ];
    // (row, method, path on the API server, or on the HTTP check's server with `http:`)
    let rows: [(&str, &'static str, &'static str); 7] = [
        ("take the lease (`Lease`)", "POST", "/leases"),
        (
            "apply green's Deployment",
            "PATCH",
            "/deployments/movieverse-*fieldManager=movieverse-deploy",
        ),
        ("read green's rollout", "GET", "/deployments/movieverse-"),
        (
            "save the rollout state (live Service)",
            "PATCH",
            "/services/movieverse?$",
        ),
        ("the HTTP check of green (the app)", "GET", "http:/health"),
        (
            "switch the live Service's selector",
            "PATCH",
            "/services/movieverse?*fieldManager=movieverse-deploy-router",
        ),
        ("scale blue down", "PATCH", "/scale?"),
    ];
    let ns = |r: usize, c: usize| format!("mv-bgfm-{}", r * columns.len() + c);
    // Ten cells at a time on the matrix pool (the faults for good, the longest, first).
    // The app's HTTP check carries no Kubernetes credentials: those cells are not run.
    let grid = common::matrix::run(rows.len(), columns.len(), 10, |r, c| {
        let (_, method, path) = rows[r];
        let (_, status, times) = columns[c];
        if status == 401 && path.starts_with("http:") {
            return None;
        }
        let ns = ns(r, c);
        let dir = tempfile::tempdir().unwrap();
        let http: common::http::Faults = std::sync::Arc::default();
        let probe_url = common::http::fault_proxy(&probe.url, http.clone());
        config(dir.path(), &ns, &probe_url, "1s", "");
        let first = deploy(cluster, dir.path(), GOOD);
        assert_eq!(first.code, 0, "{}", first.dump());
        let mut faults = Vec::new();
        match path.strip_prefix("http:") {
            Some(p) => http.lock().unwrap().push(common::http::Fault {
                method,
                path: p,
                status,
                body: "unhealthy",
                times,
                after: 0,
            }),
            None => faults.push(k8s::Fault {
                method,
                path: path.into(),
                status,
                times,
                after: 0,
            }),
        }
        let (run, unmet, _) = k8s::deploy_through_faults(cluster, dir.path(), GOOD2, faults);
        Some((ns, run, unmet))
    });
    let mut table = format!(
        "| call | {} |\n|---|{}\n",
        columns.map(|c| c.0).join(" | "),
        "---|".repeat(columns.len())
    );
    let mut failures = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let _ = std::fmt::Write::write_fmt(&mut table, format_args!("| {} |", row.0));
        for (c, column) in columns.iter().enumerate() {
            let Some((ns, run, unmet)) = &grid[r][c] else {
                let _ = std::fmt::Write::write_fmt(
                    &mut table,
                    format_args!(" — (no Kubernetes credentials in the check) |"),
                );
                continue;
            };
            let live = selected(&client, ns, "movieverse").await;
            let image = colours(&client, ns).await.get(&live).map(|c| c.1.clone());
            let retried = run.stderr.matches("retrying in").count();
            let cell = if run.code == 0 && image.as_deref() == Some(GOOD2) {
                let renewed = k8s::renewed(&run.stderr);
                match retried {
                    0 => format!("promoted{renewed}"),
                    n => format!("promoted after {n} retries{renewed}"),
                }
            } else if run.code != 0 && image.as_deref() == Some(GOOD) {
                if run.stderr.contains("step 1/") {
                    format!("failed safe: traffic on blue, exit {}", run.code)
                } else {
                    format!("failed safe: nothing changed, exit {}", run.code)
                }
            } else if run.code != 0 && image.as_deref() == Some(GOOD2) {
                format!(
                    "failed safe after the switch: all traffic on green, exit {}",
                    run.code
                )
            } else {
                format!("FAILED: exit {}, live on {image:?}", run.code)
            };
            if !(cell.starts_with("promoted") || cell.starts_with("failed safe"))
                || !unmet.is_empty()
            {
                failures.push(format!(
                    "{} × {}: {cell}\n{unmet}\n{}",
                    row.0,
                    column.0,
                    run.dump()
                ));
            }
            let _ = std::fmt::Write::write_fmt(&mut table, format_args!(" {cell} |"));
        }
        table.push('\n');
    }
    let _ = std::fmt::Write::write_fmt(
        &mut table,
        format_args!(
            "\n{} faults injected through the real binary, {} promoted or failed safe (`cargo test --test k8s_bluegreen fault_matrix_k8s_blue_green`).\n",
            grid.iter().flatten().flatten().count(),
            grid.iter().flatten().flatten().count() - failures.len()
        ),
    );
    eprintln!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    common::doc_section(
        "fault-matrix k8s-blue-green",
        &table,
        "cargo test --test k8s_bluegreen fault_matrix_k8s_blue_green",
    );
}

/// #14's kill table for blue-green on Kubernetes, on the real control plane: the real binary
/// killed with SIGKILL as each step of a blue-green (green checked, blue kept 1 s) begins, a
/// namespace each, together, then `deploy` run again. After the kill the live Service selects
/// blue or green, never a third colour, and a green that serves is covered by the rollout
/// recorded in flight on the live Service; the rerun resumes it (starts no other green) and
/// ends promoted, blue at 0. ARCHITECTURE.md carries the table.
#[test]
fn killed_at_every_step_a_blue_green_run_again_resumes_and_is_promoted() {
    // Start green, check it, switch the live Service, keep blue 1 s, scale blue to 0.
    const STEPS: u32 = 5;
    const SWITCH: u32 = 3;
    let cluster = k8s::cluster();
    let probe = common::probe::Server::start("unused");
    common::matrix::kill_table(
        "kill-table k8s-blue-green",
        [
            "killed as it began",
            "the live Service selects, after the kill",
            "recorded",
            "run again",
        ],
        STEPS,
        "cargo test --test k8s_bluegreen killed_at_every_step",
        |step| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let ns = format!("mv-bgkill-{step}");
            let dir = tempfile::tempdir().unwrap();
            config(dir.path(), &ns, &probe.url, "1s", "");
            let client = rt.block_on(k8s::client(&cluster.kubeconfig));
            let blue = rt.block_on(first_colour(cluster, dir.path(), &client, &ns));
            let mut cmd = k8s::mvd_cmd(cluster, dir.path(), &k8s::deploy_args(GOOD2));
            let (killed_at, seen) = common::matrix::kill_at_step(&mut cmd, step, STEPS);
            let live = rt.block_on(selected(&client, &ns, "movieverse"));
            let all = rt.block_on(colours(&client, &ns));
            assert!(all.len() <= 2, "killed at step {step}: {all:?}\n{seen}");
            let state = rt.block_on(saved_state(&client, &ns));
            let in_flight = state["status"]["result"].is_null();
            let serves = if live == blue { "blue" } else { "green" };
            assert!(
                live == blue || in_flight,
                "killed at step {step}: green serves without a rollout recorded in flight ({state})\n{seen}"
            );
            let live_words = common::matrix::as_before(
                step,
                &serves,
                &if step <= SWITCH { "blue" } else { "green" },
                |s| (*s).to_owned(),
            );
            let again = deploy(cluster, dir.path(), GOOD2);
            assert_eq!(
                again.code,
                0,
                "killed at step {step}, run again:\n{}\n{seen}",
                again.dump()
            );
            let resumed = again.stderr.contains("resuming the blue-green of");
            assert!(
                resumed || !in_flight,
                "killed at step {step}: a rollout in flight is resumed:\n{}",
                again.dump()
            );
            let green = rt.block_on(selected(&client, &ns, "movieverse"));
            let all = rt.block_on(colours(&client, &ns));
            assert_ne!(green, blue, "{}", again.dump());
            assert_eq!(all[&green].1, GOOD2, "{all:?}");
            assert_eq!(all[&blue].0, 0, "blue is scaled to 0: {all:?}");
            assert_eq!(all.len(), 2, "no third colour: {all:?}");
            assert_eq!(
                rt.block_on(saved_state(&client, &ns))["status"]["result"],
                "promoted"
            );
            [
                killed_at,
                live_words,
                if in_flight {
                    "in flight"
                } else {
                    "nothing yet"
                }
                .to_owned(),
                if resumed {
                    "resumed, promoted"
                } else {
                    "deployed, promoted"
                }
                .to_owned(),
            ]
        },
    );
}
