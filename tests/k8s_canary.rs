//! The canary on the real control plane (tests/common/k8s.rs, pods made Ready by the fake
//! kubelet), judged by a real Prometheus scraping a test exporter whose canary traffic each
//! test sets. The real binary deploys; a second process promotes or aborts; a killed run is
//! resumed. Each test works in a namespace of its own.

mod common;

use std::path::Path;
use std::time::SystemTime;

use common::Run;
use common::k8s::{self, Cluster, deploy, mvd, rollout};
use common::prometheus::{Prom, Traffic};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{Patch, PatchParams};

const GOOD: &str = "registry.test/movieverse@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const GOOD2: &str = "registry.test/movieverse@sha256:2222222222222222222222222222222222222222222222222222222222222222";
const GOOD3: &str = "registry.test/movieverse@sha256:3333333333333333333333333333333333333333333333333333333333333333";

const HEALTHY: Traffic = Traffic {
    ok_per_sec: 200.0,
    errors_per_sec: 0.0,
    p99_ms: 120.0,
};
const FIVE_PERCENT_ERRORS: Traffic = Traffic {
    ok_per_sec: 190.0,
    errors_per_sec: 10.0,
    p99_ms: 120.0,
};

/// The example's canary environment in `namespace`, judged by `prom` on the test exporter's
/// series, with second-scale timings.
fn config(dir: &Path, namespace: &str, prom: &Prom, extra: &str) {
    config_at(dir, namespace, &prom.url, extra);
}

/// [`config`] with Prometheus at `prometheus` (a proxy in front of it).
fn config_at(dir: &Path, namespace: &str, prometheus: &str, extra: &str) {
    let text = std::fs::read_to_string(common::example()).unwrap();
    let at = text.find("    strategy:\n      canary:").unwrap();
    let end = text[at..].find("    env:\n").unwrap() + at;
    let rate = |codes: &str| {
        format!(
            "100 * sum(rate(http_requests_total{{service=\\\"{{{{ canary_service }}}}\\\"{codes}}}[4s])) / sum(rate(http_requests_total{{service=\\\"{{{{ canary_service }}}}\\\"}}[4s]))"
        )
    };
    let strategy = format!(
        "    strategy:\n      canary:\n        steps: [20, 50]\n        deadline: 10m\n{extra}        analysis:\n          initial_delay: 2s\n          interval: 2s\n          threshold: 2\n          min_requests: 0\n          metrics:\n            - name: success-rate\n              provider: prometheus\n              query: \"{}\"\n              min: 99\n            - name: error-rate\n              provider: prometheus\n              query: \"{}\"\n              max: 1\n",
        rate(",code!~\\\"5..\\\""),
        rate(",code=~\\\"5..\\\""),
    );
    let text = format!("{}{strategy}{}", &text[..at], &text[end..])
        .replace(
            "      namespace: movieverse\n",
            &format!("      namespace: {namespace}\n      create_namespace: true\n"),
        )
        .replace(
            "    address: http://prometheus.monitoring.svc:9090\n",
            &format!("    address: {prometheus}\n"),
        );
    std::fs::write(dir.join("deploy.yml"), text).unwrap();
}

async fn image_of(client: &kube::Client, ns: &str, name: &str) -> String {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

async fn replicas_of(client: &kube::Client, ns: &str, name: &str) -> i32 {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    d.spec.unwrap().replicas.unwrap_or(1)
}

/// Whether the Deployment `name` exists in `ns`.
async fn exists(client: &kube::Client, ns: &str, name: &str) -> bool {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

async fn weight(client: &kube::Client, ns: &str) -> Option<String> {
    let i = Api::<Ingress>::namespaced(client.clone(), ns)
        .get("movieverse-canary")
        .await
        .unwrap();
    i.metadata
        .annotations
        .and_then(|a| a.get("nginx.ingress.kubernetes.io/canary-weight").cloned())
}

async fn saved_state(client: &kube::Client, ns: &str) -> serde_json::Value {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("movieverse")
        .await
        .unwrap();
    let text = d.metadata.annotations.unwrap()["movieverse.dev/rollout"].clone();
    serde_json::from_str(&text).unwrap()
}

/// The first deploy makes the stable version; Prometheus has two scrapes of `traffic`.
fn first_deploy(cluster: &Cluster, dir: &Path, prom: &Prom, traffic: Traffic) {
    let r = deploy(cluster, dir, GOOD);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr
            .contains("a first deploy rolls the stable Deployment out directly"),
        "{}",
        r.dump()
    );
    prom.set_traffic("movieverse-canary", traffic);
    prom.wait_scrapes("http_requests_total", SystemTime::now(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_goes_through_every_weight_and_is_promoted_and_a_rerun_changes_nothing() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let prom = Prom::start();
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-canary-ok";
    config(dir.path(), ns, &prom, "");
    first_deploy(cluster, dir.path(), &prom, HEALTHY);

    let r = deploy(cluster, dir.path(), GOOD2);
    assert_eq!(r.code, 0, "{}", r.dump());
    for line in [
        "step 1/8: deploy the canary Deployment",
        "canary weight 20%",
        "check at 20%: success-rate 100 (>= 99) ok, error-rate 0 (<= 1) ok -> pass",
        "canary weight 50%",
        "check at 50%",
        "promote: roll the stable Deployment to the new revision",
        "canary weight 0%",
        "scale the canary Deployment to zero",
        "promoted",
    ] {
        assert!(r.stderr.contains(line), "`{line}` missing:\n{}", r.dump());
    }
    assert_eq!(image_of(&client, ns, "movieverse").await, GOOD2);
    assert_eq!(weight(&client, ns).await.as_deref(), Some("0"));
    assert_eq!(replicas_of(&client, ns, "movieverse-canary").await, 0);
    assert_eq!(
        saved_state(&client, ns).await["status"]["result"],
        "promoted"
    );

    // A rerun of the finished rollout reads the state and changes nothing.
    let before = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("movieverse")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let r = deploy(cluster, dir.path(), GOOD2);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains("no change: the rollout of"),
        "{}",
        r.dump()
    );
    let after = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("movieverse")
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(before, after);
}

/// Faults on the calls that move traffic (#14): the API server fails the canary Ingress'
/// weight writes and the canary's scale-down with a 500, twice each (kube's client retries
/// 429 and 503 by itself; a 500 reaches our code). Each call is retried with back-off, said,
/// and the canary is promoted as without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_traffic_calls_are_retried_and_the_canary_goes_on() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let prom = Prom::start();
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-canary-faults";
    config(dir.path(), ns, &prom, "");
    first_deploy(cluster, dir.path(), &prom, HEALTHY);

    let faults: k8s::Faults = std::sync::Arc::new(std::sync::Mutex::new(vec![
        // The router's own writes of the weight (its field manager), not the manifests'
        // apply.
        k8s::Fault {
            method: "PATCH",
            path: "fieldManager=movieverse-deploy-router".into(),
            status: 500,
            times: 2,
            after: 0,
        },
        k8s::Fault {
            method: "PATCH",
            path: format!("/namespaces/{ns}/deployments/movieverse-canary/scale"),
            status: 500,
            times: 2,
            after: 0,
        },
    ]));
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
    let proxied = k8s::proxy(
        &cluster.kubeconfig,
        dir.path(),
        seen.clone(),
        faults.clone(),
    );
    let mut cmd = k8s::mvd_cmd(cluster, dir.path(), &k8s::deploy_args(GOOD2));
    cmd.env("KUBECONFIG", &proxied)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    // A watchdog: a hung request fails the test with what went through the proxy.
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_mins(3));
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    });
    let r = Run::from(&child.wait_with_output().unwrap());
    drop(watchdog);
    assert_eq!(
        r.code,
        0,
        "{}\nthrough the proxy:\n{}",
        r.dump(),
        seen.lock().unwrap().join("\n")
    );
    assert!(
        faults.lock().unwrap().iter().all(|f| f.times == 0),
        "every fault was met: {:?}\n{}",
        faults.lock().unwrap(),
        r.dump()
    );
    for line in [
        "production-k8s: retrying in 1 s (1/5): set the canary weight on Ingress movieverse-canary",
        "production-k8s: retrying in 2 s (2/5): set the canary weight on Ingress movieverse-canary",
        "production-k8s: retrying in 1 s (1/5): scale Deployment movieverse-canary",
        "promoted",
    ] {
        assert!(r.stderr.contains(line), "`{line}` missing:\n{}", r.dump());
    }
    assert_eq!(image_of(&client, ns, "movieverse").await, GOOD2);
    assert_eq!(weight(&client, ns).await.as_deref(), Some("0"));
    assert_eq!(replicas_of(&client, ns, "movieverse-canary").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_with_five_percent_errors_is_rolled_back_at_the_threshold_with_the_values() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let prom = Prom::start();
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-canary-bad";
    config(dir.path(), ns, &prom, "");
    first_deploy(cluster, dir.path(), &prom, FIVE_PERCENT_ERRORS);

    let r = deploy(cluster, dir.path(), GOOD2);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr
            .contains("2 failed checks reached the threshold of 2 at weight 20%"),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr
            .contains("error-rate = 5 (bound <= 1) at step 1 (weight 20%)"),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr.contains("success-rate = 95 (bound >= 99)"),
        "{}",
        r.dump()
    );
    // Traffic went back first, then the canary was scaled down; stable never changed.
    let back = r.stderr.find("canary weight 0%").expect("weight 0");
    let down = r
        .stderr
        .find("scale the canary Deployment to zero")
        .expect("scale down");
    assert!(back < down, "{}", r.dump());
    assert_eq!(weight(&client, ns).await.as_deref(), Some("0"));
    assert_eq!(replicas_of(&client, ns, "movieverse-canary").await, 0);
    assert_eq!(image_of(&client, ns, "movieverse").await, GOOD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_canary_keeps_its_weight_through_a_re_apply_and_is_promoted_or_aborted_from_a_second_process()
 {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let prom = Prom::start();
    for (ns, action) in [
        ("mv-canary-promote", "promote"),
        ("mv-canary-abort", "abort"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        config(
            dir.path(),
            ns,
            &prom,
            "        pause_before_promotion: manual\n",
        );
        first_deploy(cluster, dir.path(), &prom, HEALTHY);

        let outputs = dir.path().join("github_output");
        let mut cmd = common::bin();
        cmd.current_dir(dir.path())
            .env("CI", "true")
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("GITHUB_OUTPUT", &outputs)
            .args([
                "deploy",
                "--env",
                "production-k8s",
                "--image",
                GOOD2,
                "--poll-interval",
                "1s",
            ])
            .args(["--report", "report.md"]);
        let r = Run::from(&cmd.output().unwrap());
        assert_eq!(r.code, 0, "{}", r.dump());
        assert!(r.stdout.contains("result=paused"), "{}", r.dump());
        let out = std::fs::read_to_string(&outputs).unwrap();
        assert!(
            out.contains("result<<") && out.contains("\npaused\n"),
            "{out}"
        );
        // The pull request report says where it waits and how to continue.
        let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(
            report.contains("paused at weight 50%")
                && report.contains("environment `production-k8s`, action `continue`")
                && report.contains("| 1 | 20 % | 100 ✅ | 0 ✅ |")
                && report.contains("| 2 | 50 % |"),
            "{report}"
        );
        assert!(
            r.stdout.contains("rollout promote --env production-k8s"),
            "{}",
            r.dump()
        );
        assert_eq!(weight(&client, ns).await.as_deref(), Some("50"));

        // The rendered manifests applied again (by our own field manager, forced): the weight
        // belongs to the router and stays.
        let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns);
        let mut live =
            serde_json::to_value(ingresses.get("movieverse-canary").await.unwrap()).unwrap();
        let obj = live.as_object_mut().unwrap();
        obj.shift_remove("status");
        let meta = obj["metadata"].as_object_mut().unwrap();
        for k in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            meta.shift_remove(k);
        }
        meta["annotations"]
            .as_object_mut()
            .unwrap()
            .shift_remove("nginx.ingress.kubernetes.io/canary-weight");
        ingresses
            .patch(
                "movieverse-canary",
                &PatchParams::apply("movieverse-deploy").force(),
                &Patch::Apply(&live),
            )
            .await
            .unwrap();
        assert_eq!(
            weight(&client, ns).await.as_deref(),
            Some("50"),
            "a re-apply reset the weight"
        );

        let s = mvd(
            cluster,
            dir.path(),
            &["rollout", "status", "--env", "production-k8s"],
        );
        assert_eq!(s.code, 0, "{}", s.dump());
        assert!(s.stdout.contains("paused at step 6/9"), "{}", s.dump());

        let r = rollout(cluster, dir.path(), action);
        assert_eq!(
            weight(&client, ns).await.as_deref(),
            Some("0"),
            "{}",
            r.dump()
        );
        assert_eq!(replicas_of(&client, ns, "movieverse-canary").await, 0);
        if action == "promote" {
            assert_eq!(r.code, 0, "{}", r.dump());
            assert_eq!(image_of(&client, ns, "movieverse").await, GOOD2);
        } else {
            assert_eq!(r.code, 1, "{}", r.dump());
            assert!(
                r.stderr.contains("ROLLED BACK: rollout abort"),
                "{}",
                r.dump()
            );
            assert_eq!(image_of(&client, ns, "movieverse").await, GOOD);
            // Again: accepted, and nothing more to do.
            let again = rollout(cluster, dir.path(), "abort");
            assert_eq!(again.code, 0, "{}", again.dump());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_canary_then_deploy_again_resumes_at_the_same_step() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let prom = Prom::start();
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-canary-kill";
    config(dir.path(), ns, &prom, "");
    first_deploy(cluster, dir.path(), &prom, HEALTHY);

    let mut cmd = k8s::mvd_cmd(cluster, dir.path(), &k8s::deploy_args(GOOD2));
    let (code, seen) = common::gate::kill_at(&mut cmd, "canary weight 20%");
    assert_eq!(code, None, "killed: {seen}");
    let state = saved_state(&client, ns).await;
    assert_eq!(state["weight"], 20, "{state}");
    let step = state["index"].as_u64().unwrap();
    assert_eq!(weight(&client, ns).await.as_deref(), Some("20"));

    let r = deploy(cluster, dir.path(), GOOD2);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains(&format!(
            "resuming the rollout of {GOOD2} at step {}/8 (weight 20%)",
            step + 1
        )),
        "{}",
        r.dump()
    );
    assert!(
        !r.stderr.contains("step 1/8: deploy the canary"),
        "not started over:\n{}",
        r.dump()
    );
    assert_eq!(image_of(&client, ns, "movieverse").await, GOOD2);
    assert_eq!(weight(&client, ns).await.as_deref(), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_puts_traffic_back_first_and_a_new_revision_over_a_killed_run_goes_back_first() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let prom = Prom::start();
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-canary-cancel";
    config(dir.path(), ns, &prom, "");
    first_deploy(cluster, dir.path(), &prom, HEALTHY);
    let start = |image: &str| {
        let mut cmd = k8s::mvd_cmd(cluster, dir.path(), &k8s::deploy_args(image));
        common::run_until(&mut cmd, "canary weight 20%")
    };

    // SIGINT mid-canary: traffic back to stable first, then the canary down; exit 130.
    let (code, seen, _) = start(GOOD2).signal("INT");
    assert_eq!(code, Some(130), "{seen}");
    let back = seen.find("canary weight 0%").expect("weight 0");
    let down = seen
        .find("scale the canary Deployment to zero")
        .expect("scale down");
    assert!(back < down, "{seen}");
    assert_eq!(weight(&client, ns).await.as_deref(), Some("0"));
    assert_eq!(replicas_of(&client, ns, "movieverse-canary").await, 0);
    assert_eq!(image_of(&client, ns, "movieverse").await, GOOD);

    // Killed at weight 20, then a new revision: the old canary's traffic goes back first.
    let mut cmd = k8s::mvd_cmd(cluster, dir.path(), &k8s::deploy_args(GOOD2));
    let (code, seen) = common::gate::kill_at(&mut cmd, "canary weight 20%");
    assert_eq!(code, None, "{seen}");
    assert_eq!(weight(&client, ns).await.as_deref(), Some("20"));
    let r = deploy(cluster, dir.path(), GOOD3);
    assert_eq!(r.code, 0, "{}", r.dump());
    let said = format!("a rollout of {GOOD2} stands at step");
    let first_weight = r.stderr.find("canary weight 20%").expect("the new canary");
    assert!(
        r.stderr.find(&said).is_some_and(|i| i < first_weight),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr.contains("taking traffic back to stable first"),
        "{}",
        r.dump()
    );
    assert_eq!(image_of(&client, ns, "movieverse").await, GOOD3);
    assert_eq!(weight(&client, ns).await.as_deref(), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_weights_are_the_routers_and_accepted_by_the_api_server() {
    use kube::api::{DynamicObject, PostParams};
    use kube::core::{ApiResource, GroupVersionKind};
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    k8s::install_gateway_api(&client).await;
    let prom = Prom::start();
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-canary-gateway";
    config(
        dir.path(),
        ns,
        &prom,
        "        pause_before_promotion: manual\n",
    );
    let text = std::fs::read_to_string(dir.path().join("deploy.yml")).unwrap().replacen(
        "      pdb_max_unavailable: 1\n",
        "      pdb_max_unavailable: 1\n      router: gateway-api\n      gateway:\n        name: shop-gateway\n",
        1,
    );
    std::fs::write(dir.path().join("deploy.yml"), text).unwrap();
    let weights = |client: kube::Client| async move {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            "HTTPRoute",
        ));
        let route = Api::<DynamicObject>::namespaced_with(client, ns, &ar)
            .get("movieverse")
            .await
            .unwrap();
        route.data["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["name"].as_str().unwrap().to_owned(),
                    b["weight"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };

    // No Gateway yet: refused before anything is applied.
    let r = deploy(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr
            .contains("the Gateway `shop-gateway` (namespace mv-canary-gateway) does not exist"),
        "{}",
        r.dump()
    );
    assert!(!exists(&client, ns, "movieverse").await);

    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let gw = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "Gateway",
    ));
    let gateway: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "shop-gateway", "namespace": ns},
        "spec": {"gatewayClassName": "test", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &gw)
        .create(&PostParams::default(), &gateway)
        .await
        .unwrap();

    first_deploy(cluster, dir.path(), &prom, HEALTHY);
    assert_eq!(
        weights(client.clone()).await,
        [
            ("movieverse".to_owned(), 100),
            ("movieverse-canary".to_owned(), 0)
        ]
    );

    let r = deploy(cluster, dir.path(), GOOD2);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stdout.contains("result=paused"), "{}", r.dump());
    assert_eq!(
        weights(client.clone()).await,
        [
            ("movieverse".to_owned(), 50),
            ("movieverse-canary".to_owned(), 50)
        ]
    );

    // A re-apply of the rendered HTTPRoute (no rules: they are the router's) keeps them.
    let out = mvd(
        cluster,
        dir.path(),
        &[
            "render",
            "--env",
            "production-k8s",
            "--image",
            GOOD2,
            "--out",
            "out",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.dump());
    let rendered: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join("out/production-k8s/k8s/httproute-movieverse.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(rendered["spec"]["rules"].is_null(), "{rendered}");
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    ));
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
        .patch(
            "movieverse",
            &PatchParams::apply("movieverse-deploy").force(),
            &Patch::Apply(&rendered),
        )
        .await
        .unwrap();
    assert_eq!(
        weights(client.clone()).await,
        [
            ("movieverse".to_owned(), 50),
            ("movieverse-canary".to_owned(), 50)
        ]
    );

    let r = rollout(cluster, dir.path(), "promote");
    assert_eq!(r.code, 0, "{}", r.dump());
    assert_eq!(
        weights(client.clone()).await,
        [
            ("movieverse".to_owned(), 100),
            ("movieverse-canary".to_owned(), 0)
        ]
    );
    assert_eq!(image_of(&client, ns, "movieverse").await, GOOD2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_data_canary_behaves_as_its_policy_says() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let prom = Prom::start();
    // Only the stable track has traffic: the canary's queries find no series.
    let cases = [
        (
            "mv-canary-nodata",
            "",
            "success-rate: no data (bound >= 99) at step 1 (weight 20%)",
        ),
        (
            "mv-canary-wait",
            "              on_no_data: wait\n",
            "not promoted within the deadline (15s); the last check was inconclusive: success-rate: no data yet (on_no_data: wait)",
        ),
    ];
    for (ns, policy, said) in cases {
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), ns, &prom, "");
        // Seconds-scale health checks, so a 15 s deadline fits the schedule.
        let text = std::fs::read_to_string(dir.path().join("deploy.yml"))
            .unwrap()
            .replacen("    interval: 30s\n", "    interval: 2s\n", 1)
            .replacen("    timeout: 5s\n", "    timeout: 1s\n", 1)
            .replacen("        deadline: 10m\n", "        deadline: 15s\n", 1)
            .replace(
                "              min: 99\n",
                &format!("              min: 99\n{policy}"),
            )
            .replace(
                "              max: 1\n",
                &format!("              max: 1\n{policy}"),
            );
        std::fs::write(dir.path().join("deploy.yml"), text).unwrap();
        let r = deploy(cluster, dir.path(), GOOD);
        assert_eq!(r.code, 0, "{}", r.dump());
        prom.set_traffic("movieverse", HEALTHY);
        prom.wait_scrapes("http_requests_total", SystemTime::now(), 2);

        let r = deploy(cluster, dir.path(), GOOD2);
        assert_eq!(r.code, 1, "{ns}: {}", r.dump());
        assert!(r.stderr.contains(said), "{ns}: {}", r.dump());
        assert_eq!(weight(&client, ns).await.as_deref(), Some("0"));
        assert_eq!(replicas_of(&client, ns, "movieverse-canary").await, 0);
        assert_eq!(image_of(&client, ns, "movieverse").await, GOOD);
    }
}

const HOOK_SECRET: &str = "whsec-planted-5f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The canary's analysis with an HTTP check against the test's server and a signed webhook
/// called before the rollout, with every check and before promotion.
fn with_probes(dir: &Path, server: &common::probe::Server) {
    let path = dir.join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "          min_requests: 0\n",
        &format!(
            "          min_requests: 0\n          http:\n            - name: health\n              url: {}/health\n              count: 2\n              body: ok\n              max_latency: 2s\n          webhooks:\n            - name: smoke-tests\n              url: {}/hook\n              at: [pre-rollout, step, pre-promotion]\n              secret_env: HOOK_SECRET\n",
            server.url, server.url
        ),
    );
    std::fs::write(path, text).unwrap();
}

fn deploy_with_secret(cluster: &Cluster, dir: &Path, image: &str) -> Run {
    let mut cmd = k8s::mvd_cmd(cluster, dir, &k8s::deploy_args(image));
    cmd.env("HOOK_SECRET", HOOK_SECRET);
    Run::from(&cmd.output().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_and_signed_webhooks_judge_the_canary_with_the_metrics() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let prom = Prom::start();
    let server = common::probe::Server::start(HOOK_SECRET);
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-canary-probes";
    config(dir.path(), ns, &prom, "");
    with_probes(dir.path(), &server);
    // The webhook's secret variable unset: exit 3 before anything is created.
    let r = deploy(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr
            .contains("webhook `smoke-tests`: its secret variable `HOOK_SECRET` is not set"),
        "{}",
        r.dump()
    );
    assert!(!exists(&client, ns, "movieverse").await, "{}", r.dump());
    let r = deploy_with_secret(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 0, "{}", r.dump());
    prom.set_traffic("movieverse-canary", HEALTHY);
    prom.wait_scrapes("http_requests_total", SystemTime::now(), 3);

    // A pre-rollout webhook that refuses: nothing changes, and its answer is shown without
    // the secret it echoes.
    server.set_hook(
        409,
        &format!("freeze window: deploys are closed (key {HOOK_SECRET})"),
    );
    let r = deploy_with_secret(cluster, dir.path(), GOOD2);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr
            .contains("a pre-rollout webhook refused the rollout; nothing was changed")
            && r.stderr.contains("webhook `smoke-tests`: HTTP 409")
            && r.stderr
                .contains("freeze window: deploys are closed (key ***)"),
        "{}",
        r.dump()
    );
    assert_eq!(image_of(&client, ns, "movieverse").await, GOOD);
    assert!(
        !exists(&client, ns, "movieverse-canary").await,
        "the refused rollout made the canary Deployment"
    );

    // Both pass: promoted; every webhook call was signed, with the rollout's facts.
    server.set_hook(200, "{\"accepted\":true}");
    let before = server.hooks().len();
    let r = deploy_with_secret(cluster, dir.path(), GOOD2);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains("health ok (2/2 answered 200 within")
            && r.stderr.contains("smoke-tests ok (HTTP 200"),
        "{}",
        r.dump()
    );
    let hooks = server.hooks()[before..].to_vec();
    assert!(hooks.iter().all(|h| h.signed), "{hooks:?}");
    let phases: Vec<&str> = hooks
        .iter()
        .map(|h| h.body["phase"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(phases.first(), Some(&"pre-rollout"), "{phases:?}");
    assert!(phases.contains(&"step"), "{phases:?}");
    assert_eq!(
        phases.last(),
        Some(&"step"),
        "the last check calls it as a step hook too: {phases:?}"
    );
    assert!(
        hooks
            .iter()
            .all(|h| h.body["revision"] == GOOD2 && h.body["environment"] == "production-k8s"),
        "{hooks:?}"
    );

    // The health check fails on the canary: rolled back, with what was received.
    server.set_health(503, "upstream unavailable");
    let r = deploy_with_secret(cluster, dir.path(), GOOD3);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr
            .contains("2 failed checks reached the threshold of 2 at weight 20%")
            && r.stderr
                .contains("health: request 1 of 2: HTTP 503 (expected 200), the body lacks \"ok\"")
            && r.stderr.contains("body: \"upstream unavailable\""),
        "{}",
        r.dump()
    );
    assert_eq!(weight(&client, ns).await.as_deref(), Some("0"));
    assert_eq!(image_of(&client, ns, "movieverse").await, GOOD2);
    for text in [&r.stdout, &r.stderr] {
        assert!(
            !text.contains(HOOK_SECRET),
            "the webhook secret in the output:\n{}",
            r.dump()
        );
    }
}

/// One cell of the fault matrix: a call of the canary and a fault on it.
struct Cell {
    call: &'static str,
    column: &'static str,
    /// On the API server (through the proxy), or on Prometheus.
    k8s: Option<k8s::Fault>,
    prometheus: Option<common::http::Fault>,
}

/// Runs one cell in namespace `ns`: a first deploy, then the canary of GOOD2 with the fault.
fn run_cell(cluster: &Cluster, prom: &str, ns: &str, cell: &Cell) -> (Run, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let prom_faults: common::http::Faults = std::sync::Arc::default();
    let prom_url = common::http::fault_proxy(prom, prom_faults.clone());
    config_at(dir.path(), ns, &prom_url, "");
    let r = deploy(cluster, dir.path(), GOOD);
    assert_eq!(
        r.code,
        0,
        "{} × {}: the first deploy\n{}",
        cell.call,
        cell.column,
        r.dump()
    );
    prom_faults
        .lock()
        .unwrap()
        .extend(cell.prometheus.iter().cloned());
    let (r, unmet, started) = k8s::deploy_through_faults(
        cluster,
        dir.path(),
        GOOD2,
        cell.k8s.iter().cloned().collect(),
    );
    let prom_unmet = prom_faults
        .lock()
        .unwrap()
        .iter()
        .any(|f| f.times > 0 && f.times < 50);
    let note = if prom_unmet {
        "a Prometheus fault was never met".to_owned()
    } else {
        unmet
    };
    (r, note, started)
}

async fn annotation_state(client: &kube::Client, ns: &str) -> Option<serde_json::Value> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("movieverse")
        .await
        .ok()?;
    let text = d
        .metadata
        .annotations?
        .get("movieverse.dev/rollout")?
        .clone();
    serde_json::from_str(&text).ok()
}

/// #14's fault matrix for the canary on Kubernetes, with the real binary on the real control
/// plane and a real Prometheus: each call the canary makes × each fault class, injected by
/// the proxies in front of the API server and of Prometheus. A 429 is retried by kube's
/// client itself; a 500 or a reset connection reaches our code. Each cell must end promoted,
/// or failed safe: traffic on stable (weight 0, the stable Deployment on the old revision)
/// and the rollout's end recorded in its state. ARCHITECTURE.md carries the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_k8s_canary() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let prom = Prom::start();
    prom.set_traffic("movieverse-canary", HEALTHY);
    prom.wait_scrapes("http_requests_total", SystemTime::now(), 3);
    let columns: [(&str, u16, u32); 5] = [
        ("500 twice", 500, 2),
        ("reset twice", 0, 2),
        ("429 twice", 429, 2),
        ("credentials expired", 401, 1),
        ("500 for good", 500, 99),
    ];
    // (row, method, path on the API server, or on Prometheus when it starts with `prom:`,
    // matching requests let through first)
    let calls: [(&str, &'static str, &'static str, u32); 10] = [
        ("take the lease (`Lease`)", "POST", "/leases", 0),
        (
            "apply the canary Deployment",
            "PATCH",
            "/deployments/movieverse-canary?",
            0,
        ),
        (
            "read the canary's rollout",
            "GET",
            "/deployments/movieverse-canary$",
            0,
        ),
        (
            "save the rollout state (the first save)",
            "PATCH",
            "/deployments/movieverse?$",
            0,
        ),
        (
            "save the rollout state (at 20%)",
            "PATCH",
            "/deployments/movieverse?$",
            3,
        ),
        (
            "set the weight (Ingress)",
            "PATCH",
            "fieldManager=movieverse-deploy-router",
            0,
        ),
        (
            "query Prometheus (the pre-flight)",
            "GET",
            "prom:/api/v1/query",
            0,
        ),
        (
            "query Prometheus (the analysis)",
            "GET",
            "prom:/api/v1/query",
            2,
        ),
        (
            "promote: apply the stable Deployment",
            "PATCH",
            "/deployments/movieverse?*fieldManager=movieverse-deploy",
            0,
        ),
        (
            "scale the canary to zero",
            "PATCH",
            "/deployments/movieverse-canary/scale",
            0,
        ),
    ];
    let mut planned = Vec::new();
    for (call, method, path, after) in calls {
        for (column, status, times) in columns {
            let (k8s, prometheus) = match path.strip_prefix("prom:") {
                Some(p) => (
                    None,
                    Some(common::http::Fault {
                        method,
                        path: p,
                        status,
                        body: r#"{"status":"error","errorType":"internal","error":"injected by the test proxy"}"#,
                        times,
                        after,
                    }),
                ),
                None => (
                    Some(k8s::Fault {
                        method,
                        path: path.into(),
                        status,
                        times,
                        after,
                    }),
                    None,
                ),
            };
            planned.push(Cell {
                call,
                column,
                k8s,
                prometheus,
            });
        }
    }
    // Ten cells at a time on the matrix pool (the cells that fail for good, the longest, first),
    // each in a namespace of its own (`mv-fm-<index>`).
    // A Prometheus query carries no Kubernetes credentials: those cells are not run.
    let grid = common::matrix::run(calls.len(), columns.len(), 10, |row, col| {
        let i = row * columns.len() + col;
        let cell = &planned[i];
        (cell.prometheus.as_ref().is_none_or(|f| f.status != 401))
            .then(|| run_cell(cluster, &prom.url, &format!("mv-fm-{i}"), cell))
    });
    let mut table = format!(
        "| call | {} |\n|---|{}\n",
        columns.map(|c| c.0).join(" | "),
        "---|".repeat(columns.len())
    );
    let mut failures = Vec::new();
    for (row, cells) in grid.iter().enumerate() {
        let _ = std::fmt::Write::write_fmt(&mut table, format_args!("| {} |", calls[row].0));
        for (col, ran) in cells.iter().enumerate() {
            let Some((r, note, started)) = ran else {
                let _ = std::fmt::Write::write_fmt(
                    &mut table,
                    format_args!(" — (no Kubernetes credentials in a query) |"),
                );
                continue;
            };
            let ns = format!("mv-fm-{}", row * columns.len() + col);
            let image = image_of(&client, &ns, "movieverse").await;
            let w = weight(&client, &ns).await;
            let state = annotation_state(&client, &ns).await;
            // A state from before this run (the first deploy's): nothing was recorded by it.
            let state = state.filter(|s| s["started_at"].as_u64().unwrap_or(0) >= *started);
            let result = state
                .as_ref()
                .and_then(|s| s["status"]["result"].as_str().map(str::to_owned));
            let retried = r.stderr.matches("retrying in").count()
                + r.stderr.matches("asking again in").count();
            let cell = if r.code == 0
                && image == GOOD2
                && w.as_deref() == Some("0")
                && result.as_deref() == Some("promoted")
            {
                let renewed = k8s::renewed(&r.stderr);
                match retried {
                    0 => format!("promoted{renewed}"),
                    n => format!("promoted after {n} retries{renewed}"),
                }
            } else if r.code != 0 && image == GOOD && matches!(w.as_deref(), None | Some("0")) {
                match &result {
                    Some(res) => {
                        format!("failed safe: on stable, `{res}` recorded, exit {}", r.code)
                    }
                    None if state.is_none() => {
                        format!("failed safe: nothing changed, exit {}", r.code)
                    }
                    None => format!(
                        "failed safe: on stable, the rollout recorded in flight, exit {}",
                        r.code
                    ),
                }
            } else if r.code != 0
                && image == GOOD2
                && w.as_deref() == Some("0")
                && let Some(res) = &result
            {
                format!(
                    "failed safe after the promotion: all traffic on the new stable, `{res}` recorded, exit {}",
                    r.code
                )
            } else {
                format!(
                    "FAILED: exit {}, stable {image}, weight {w:?}, state {result:?}",
                    r.code
                )
            };
            if !(cell.starts_with("promoted") || cell.starts_with("failed safe"))
                || !note.is_empty()
            {
                failures.push(format!(
                    "{} × {}: {cell}\n{note}\n{}",
                    calls[row].0,
                    columns[col].0,
                    r.dump()
                ));
            }
            let _ = std::fmt::Write::write_fmt(&mut table, format_args!(" {cell} |"));
        }
        table.push('\n');
    }
    let n = grid.iter().flatten().filter(|c| c.is_some()).count();
    let _ = std::fmt::Write::write_fmt(
        &mut table,
        format_args!(
            "\n{n} faults injected through the real binary, {} promoted or failed safe (`cargo test --test k8s_canary fault_matrix_k8s_canary`).\n",
            n - failures.len()
        ),
    );
    eprintln!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    common::doc_section(
        "fault-matrix k8s-canary",
        &table,
        "cargo test --test k8s_canary fault_matrix_k8s_canary",
    );
}

/// #14's kill table for the canary on Kubernetes: the real binary killed with SIGKILL as each
/// of the canary's eight steps begins (each in a namespace of its own, together), then
/// `deploy` run again. After the kill, a weight between 0 and 100 is always covered by a
/// rollout recorded in flight; the rerun resumes it (never starts over) and ends promoted,
/// all traffic on the new stable and the canary at zero. ARCHITECTURE.md carries the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_every_step_a_canary_run_again_resumes_and_is_promoted() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let prom = Prom::start();
    prom.set_traffic("movieverse-canary", HEALTHY);
    prom.wait_scrapes("http_requests_total", SystemTime::now(), 3);
    let steps: Vec<u32> = (1..=8).collect();
    let dirs: Vec<tempfile::TempDir> = steps.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let ns = |step: u32| format!("mv-kill-{step}");
    // Killed as each step begins.
    let killed: Vec<(String, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = steps
            .iter()
            .zip(&dirs)
            .map(|(step, dir)| {
                let (prom, ns) = (prom.url.clone(), ns(*step));
                s.spawn(move || {
                    config_at(dir.path(), &ns, &prom, "");
                    let r = deploy(cluster, dir.path(), GOOD);
                    assert_eq!(r.code, 0, "{}", r.dump());
                    let started = common::now_ms();
                    let mut cmd = k8s::mvd_cmd(cluster, dir.path(), &k8s::deploy_args(GOOD2));
                    let (code, seen) = common::gate::kill_at(&mut cmd, &format!("step {step}/8:"));
                    assert_eq!(code, None, "killed at step {step}: {seen}");
                    (seen, started)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut after_kill = Vec::new();
    for (step, (seen, started)) in steps.iter().zip(&killed) {
        let ns = ns(*step);
        let w: u32 = weight(&client, &ns)
            .await
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        let state = annotation_state(&client, &ns)
            .await
            .filter(|s| s["started_at"].as_u64().unwrap_or(0) >= *started);
        let in_flight = state
            .as_ref()
            .is_some_and(|s| s["status"]["result"].is_null());
        assert!(
            w == 0 || w == 100 || in_flight,
            "killed at step {step}: weight {w}% without a rollout recorded in flight ({state:?})\n{seen}"
        );
        after_kill.push((w, in_flight));
    }
    let reruns: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs
            .iter()
            .map(|dir| s.spawn(move || deploy(cluster, dir.path(), GOOD2)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The weight as each step begins: a step sets the weight the next begins with.
    let at = [0, 0, 20, 20, 50, 50, 50, 0];
    let mut table = "| killed as it began | weight after the kill | recorded | run again |\n|---|---|---|---|\n".to_owned();
    for (((step, r), (w, in_flight)), (seen, _)) in
        steps.iter().zip(&reruns).zip(&after_kill).zip(&killed)
    {
        let ns = ns(*step);
        let text = k8s_step_text(seen, *step);
        assert_eq!(r.code, 0, "killed at step {step}, run again:\n{}", r.dump());
        assert!(
            r.stderr.contains("resuming the rollout of"),
            "killed at step {step}: the rerun resumes:\n{}",
            r.dump()
        );
        assert!(
            *step == 1 || !r.stderr.contains("step 1/8: deploy the canary"),
            "killed at step {step}: not started over:\n{}",
            r.dump()
        );
        assert_eq!(image_of(&client, &ns, "movieverse").await, GOOD2);
        assert_eq!(weight(&client, &ns).await.as_deref(), Some("0"));
        assert_eq!(replicas_of(&client, &ns, "movieverse-canary").await, 0);
        assert_eq!(
            saved_state(&client, &ns).await["status"]["result"],
            "promoted"
        );
        let _ = std::fmt::Write::write_fmt(
            &mut table,
            format_args!(
                "| {step}/8 {text} | {} | {} | resumed, promoted |\n",
                common::matrix::as_before(*step, w, &at[*step as usize - 1], |w| format!("{w}%")),
                if *in_flight {
                    "in flight"
                } else {
                    "nothing yet"
                }
            ),
        );
    }
    let _ = std::fmt::Write::write_fmt(
        &mut table,
        format_args!(
            "\n{} kill points (`cargo test --test k8s_canary killed_at_every_step`).\n",
            steps.len()
        ),
    );
    common::doc_section(
        "kill-table k8s-canary",
        &table,
        "cargo test --test k8s_canary killed_at_every_step",
    );
}

/// The words of step `step` as the run printed them (`step 3/8: analyse the canary`).
fn k8s_step_text(stderr: &str, step: u32) -> String {
    let mark = format!("step {step}/8: ");
    stderr
        .lines()
        .find_map(|l| l.split_once(&mark).map(|(_, t)| t.to_owned()))
        .map_or_else(String::new, |t| format!("({t})"))
}
