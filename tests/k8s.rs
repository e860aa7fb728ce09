//! End to end against a real Kubernetes control plane (etcd, kube-apiserver,
//! kube-controller-manager built from the Go module proxy, `scripts/k8s-up`): the real binary
//! applies the example manifests with server-side apply and follows the Deployment's
//! rollout as the controllers run it. Pods are made Ready (or made to crash) by the fake
//! kubelet in `tests/common/k8s.rs`. Each test works in a namespace of its own.

mod common;

use std::path::Path;

use common::k8s::{self, Cluster, deploy, mvd};
use common::{Run, SHA};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;

const GOOD: &str = "registry.test/movieverse@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const GOOD2: &str = "registry.test/movieverse@sha256:2222222222222222222222222222222222222222222222222222222222222222";
const CRASH: &str = "registry.test/movieverse:crashloop";

fn config(dir: &Path, namespace: &str, deadline: &str, extra: &str) {
    k8s::rolling_config(dir, namespace, deadline, extra);
}

fn server_dry_run(cluster: &Cluster, dir: &Path, image: &str) -> Run {
    mvd(
        cluster,
        dir,
        &[
            "plan",
            "--env",
            "production-k8s",
            "--image",
            image,
            "--server-dry-run",
        ],
    )
}

async fn image_of(client: &kube::Client, ns: &str) -> String {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("movieverse")
        .await
        .unwrap();
    d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

/// Every object's resourceVersion, to prove a rerun wrote nothing.
async fn versions(client: &kube::Client, ns: &str) -> Vec<(String, String)> {
    macro_rules! rv {
        ($t:ty, $name:expr) => {{
            let o = Api::<$t>::namespaced(client.clone(), ns)
                .get($name)
                .await
                .unwrap_or_else(|e| panic!("{} {}: {e}", stringify!($t), $name));
            (
                format!("{} {}", stringify!($t), $name),
                o.metadata.resource_version.unwrap(),
            )
        }};
    }
    vec![
        rv!(Deployment, "movieverse"),
        rv!(Service, "movieverse"),
        rv!(Ingress, "movieverse"),
        rv!(HorizontalPodAutoscaler, "movieverse"),
        rv!(PodDisruptionBudget, "movieverse"),
        rv!(ConfigMap, "movieverse-config"),
        rv!(ServiceAccount, "movieverse"),
        rv!(Role, "movieverse-reader"),
        rv!(RoleBinding, "movieverse-reader"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_applies_everything_rolls_out_and_a_rerun_changes_nothing() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-apply";
    config(dir.path(), ns, "60s", "");

    // `plan --server-dry-run` before the namespace exists: everything would be created.
    let r = server_dry_run(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout.contains("namespace mv-apply does not exist yet"),
        "{}",
        r.dump()
    );

    let r = deploy(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stderr.contains("deployed movieverse@"), "{}", r.dump());
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("movieverse")
        .await
        .unwrap();
    let status = d.status.clone().unwrap();
    assert_eq!(
        (status.ready_replicas, status.updated_replicas),
        (Some(5), Some(5)),
        "{}",
        r.dump()
    );
    assert!(
        d.metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|f| f.manager.as_deref() == Some("movieverse-deploy")
                && f.operation.as_deref() == Some("Apply")),
        "server-side apply with our field manager"
    );
    assert_eq!(image_of(&client, ns).await, GOOD);
    let before = versions(&client, ns).await;

    // A rerun with the same input applies nothing.
    let r = deploy(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stderr.contains("no change"), "{}", r.dump());
    assert_eq!(versions(&client, ns).await, before);

    // The server's dry run agrees: nothing would change.
    let r = server_dry_run(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout.contains("Deployment movieverse: unchanged"),
        "{}",
        r.dump()
    );
    assert!(!r.stdout.contains("would change"), "{}", r.dump());
    // ... and shows the change a new image makes, as a diff.
    let r = server_dry_run(cluster, dir.path(), GOOD2);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout.contains("Deployment movieverse: would change"),
        "{}",
        r.dump()
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.trim_start().starts_with('+') && l.contains(&format!("image: {GOOD2}"))),
        "{}",
        r.dump()
    );
    assert_eq!(
        versions(&client, ns).await,
        before,
        "a plan changes nothing"
    );

    // status reads the rollout.
    let r = mvd(cluster, dir.path(), &["status", "--env", "production-k8s"]);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout
            .contains("production-k8s/movieverse: runs movieverse@"),
        "{}",
        r.dump()
    );
    assert!(
        r.stdout.contains("(primary): Completed, 5/5 running"),
        "{}",
        r.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_never_become_ready_fail_the_deploy_with_the_reason_then_rollback() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-crash";
    config(dir.path(), ns, "8s", "");
    let r = deploy(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 0, "{}", r.dump());

    let r = deploy(cluster, dir.path(), CRASH);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr.contains("ProgressDeadlineExceeded"),
        "{}",
        r.dump()
    );
    assert!(r.stderr.contains("CrashLoopBackOff"), "{}", r.dump());
    assert!(r.stderr.contains("exit 1"), "{}", r.dump());
    // Kubernetes does not roll back on its own: the Deployment still asks for the new image,
    // and the old pods still serve (max unavailable 0).
    assert_eq!(image_of(&client, ns).await, CRASH);

    let r = mvd(
        cluster,
        dir.path(),
        &[
            "rollback",
            "--env",
            "production-k8s",
            "--poll-interval",
            "1s",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains("rolling back to movieverse@"),
        "{}",
        r.dump()
    );
    assert_eq!(image_of(&client, ns).await, GOOD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_the_api_server_rejects_exits_2_and_applies_nothing() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-reject";
    // A nodePort on a ClusterIP Service: valid to the typed objects, rejected by the server.
    let service =
        std::fs::read_to_string(common::root().join("templates/kubernetes/service.yaml.j2"))
            .unwrap()
            .replace(
                "      targetPort: http\n",
                "      targetPort: http\n      nodePort: 30080\n",
            );
    std::fs::write(dir.path().join("service.yaml.j2"), service).unwrap();
    config(
        dir.path(),
        ns,
        "60s",
        "templates:\n  kubernetes/service.yaml: service.yaml.j2\n",
    );
    let r = deploy(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stderr
            .contains("apply Service movieverse (server dry run)"),
        "{}",
        r.dump()
    );
    assert!(r.stderr.contains("nodePort"), "{}", r.dump());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    assert!(
        cms.get_opt("movieverse-config").await.unwrap().is_none(),
        "nothing was applied"
    );
    let ds: Api<Deployment> = Api::namespaced(client.clone(), ns);
    assert!(
        ds.get_opt("movieverse").await.unwrap().is_none(),
        "nothing was applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_without_create_namespace_is_an_environment_error() {
    let cluster = k8s::cluster();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "mv-missing", "60s", "");
    let text = std::fs::read_to_string(dir.path().join("deploy.yml"))
        .unwrap()
        .replace("      create_namespace: true\n", "");
    std::fs::write(dir.path().join("deploy.yml"), text).unwrap();
    let r = deploy(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("namespace `mv-missing` does not exist"),
        "{}",
        r.dump()
    );
    assert!(r.stderr.contains("create_namespace: true"), "{}", r.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_a_rollout_puts_the_previous_template_back() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-cancel";
    config(dir.path(), ns, "600s", "");
    let r = deploy(cluster, dir.path(), GOOD);
    assert_eq!(r.code, 0, "{}", r.dump());

    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("movieverse-deploy"));
    cmd.current_dir(dir.path())
        .env("GITHUB_SHA", SHA)
        .env("GITHUB_REF", "refs/heads/main")
        .env("CI", "true")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args(["deploy", "--env", "production-k8s", "--image", CRASH]);
    let running = common::run_until(&mut cmd, "waiting for this deployment to complete");
    assert_eq!(image_of(&client, ns).await, CRASH, "{}", running.seen);
    let (code, seen) = running.interrupt();
    assert_eq!(code, Some(130), "{seen}");
    assert!(
        seen.contains("cancelled; the service was put back on movieverse@"),
        "{seen}"
    );
    assert_eq!(image_of(&client, ns).await, GOOD);
}

/// `kubectl apply` of one object for the test's set-up.
async fn put(client: &kube::Client, ns: Option<&str>, object: serde_json::Value) {
    let api_version = object["apiVersion"].as_str().unwrap().to_owned();
    let kind = object["kind"].as_str().unwrap().to_owned();
    let name = object["metadata"]["name"].as_str().unwrap().to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, &kind);
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    let api: Api<kube::api::DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        &name,
        &kube::api::PatchParams::apply("test").force(),
        &kube::api::Patch::Apply(object),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_namespace_the_ingress_class_the_secrets_and_every_permission() {
    use serde_json::json;
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-verify";
    config(dir.path(), ns, "600s", "");
    let verify = |kubeconfig: &Path| {
        Run::from(
            &assert_cmd::Command::from_std({
                let mut cmd =
                    k8s::mvd_cmd(cluster, dir.path(), &["verify", "--env", "production-k8s"]);
                cmd.env("KUBECONFIG", kubeconfig);
                cmd
            })
            .output()
            .unwrap(),
        )
    };
    let line_of = |text: &str| {
        let config = std::fs::read_to_string(dir.path().join("deploy.yml")).unwrap();
        let lines: Vec<&str> = config.lines().collect();
        let n = lines.iter().rposition(|l| l.contains(text)).unwrap();
        format!("deploy.yml:{}", n + 1)
    };

    // Before anything exists: the namespace is created by the deploy, but the Secrets and
    // the IngressClass are missing.
    let r = verify(&cluster.kubeconfig);
    assert_eq!(r.code, 3, "{}", r.dump());
    for line in [
        "ok       namespace mv-verify: missing; the deploy creates it (kubernetes.create_namespace)",
        "MISSING  IngressClass nginx: does not exist: no ingress controller serves this class",
        "MISSING  Secret movieverse-secrets: cannot exist yet: namespace mv-verify does not",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.dump());
    }
    assert!(
        r.stderr
            .contains(&format!("--> {}", line_of("class: nginx"))),
        "{}",
        r.dump()
    );

    // Without create_namespace, the namespace itself is missing.
    let path = dir.path().join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("create_namespace: true", "create_namespace: false", 1),
    )
    .unwrap();
    let r = verify(&cluster.kubeconfig);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr
            .contains("production-k8s: namespace mv-verify: does not exist")
            && r.stderr
                .contains(&format!("--> {}", line_of("namespace: mv-verify"))),
        "{}",
        r.dump()
    );
    std::fs::write(&path, text).unwrap();

    // Everything present: exit 0 with the checked list.
    put(
        &client,
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await;
    put(
        &client,
        None,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}),
    )
    .await;
    for (secret, data) in [
        (
            "movieverse-secrets",
            json!({"database-url": "cGxhbnRlZA==", "redis-url": "cGxhbnRlZA==", "jwt-secret": "cGxhbnRlZA=="}),
        ),
        ("datadog", json!({"api-key": "cGxhbnRlZA=="})),
        (
            "movieverse-tls",
            json!({"tls.crt": "cGxhbnRlZA==", "tls.key": "cGxhbnRlZA=="}),
        ),
    ] {
        put(
            &client,
            Some(ns),
            json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret}, "data": data}),
        )
        .await;
    }
    let r = verify(&cluster.kubeconfig);
    assert_eq!(r.code, 0, "{}", r.dump());
    insta::with_settings!({filters => vec![(r"in \d+\.\d s", "in [t] s")]}, {
        insta::assert_snapshot!("verify_k8s_report", r.stdout);
    });

    // Each missing piece in turn: exit 3, named with its line.
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
        .delete("datadog", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let r = verify(&cluster.kubeconfig);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr
            .contains("production-k8s: Secret datadog: does not exist in namespace mv-verify")
            && r.stderr.contains(&format!(
                "--> {}",
                line_of("datadog_api_key_secret: datadog/api-key")
            )),
        "{}",
        r.dump()
    );
    put(
        &client,
        Some(ns),
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "datadog"}, "data": {"api-key": "cGxhbnRlZA=="}}),
    )
    .await;

    // A user who may only read (the built-in `view` role in the namespace): every verb it
    // lacks is named.
    put(
        &client,
        Some(ns),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}),
    )
    .await;
    put(
        &client,
        Some(ns),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "reader-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]}),
    )
    .await;
    let token = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(
            "reader",
            &kube::api::PostParams::default(),
            &k8s_openapi::api::authentication::v1::TokenRequest {
                spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
                    audiences: vec![],
                    expiration_seconds: Some(600),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let admin = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    let reader_config = dir.path().join("reader.kubeconfig");
    let reader = admin
        .lines()
        .map(|l| match l.split_once("token: ") {
            Some((indent, _)) => format!("{indent}token: {token}"),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&reader_config, reader).unwrap();
    let r = verify(&reader_config);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stdout
            .contains("MISSING  permissions a deploy uses: the current user may not: ")
            && r.stdout.contains("create/patch/delete deployments.apps;")
            && r.stdout.contains("may not: create namespaces;")
            && r.stdout.contains("patch deployments.apps/scale")
            && r.stdout.contains("create/patch services"),
        "{}",
        r.dump()
    );
    assert!(!r.stdout.contains(&token) && !r.stderr.contains(&token));

    // Through the Gateway API: its CRD, then the Gateway the route attaches to.
    let path = dir.path().join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "      ingress:\n",
        "      router: gateway-api\n      gateway:\n        name: web\n      ingress:\n",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let r = verify(&cluster.kubeconfig);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stdout
            .contains("MISSING  CRD httproutes.gateway.networking.k8s.io: is not installed"),
        "{}",
        r.dump()
    );
    k8s::install_gateway_api(&client).await;
    let r = verify(&cluster.kubeconfig);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stdout
            .contains("ok       CRD httproutes.gateway.networking.k8s.io: installed")
            && r.stdout
                .contains("MISSING  Gateway web: does not exist in namespace mv-verify")
            && r.stderr.contains(&format!("--> {}", line_of("name: web"))),
        "{}",
        r.dump()
    );
    put(&client, Some(ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "web"},
        "spec": {"gatewayClassName": "test", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})).await;
    let r = verify(&cluster.kubeconfig);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout.contains("ok       Gateway web: exists"),
        "{}",
        r.dump()
    );
}

/// `init --from k8s:`: a Deployment set made as a user would (Deployment with two
/// containers, variables and a Secret reference, Service, Ingress, HPA, PDB), imported; the
/// API server's dry run of a deploy of the image it runs changes nothing; and that deploy
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_from_a_deployment_set_round_trips() {
    use serde_json::json;
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-import";
    put(
        &client,
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await;
    let labels = json!({"app": "shop-web"});
    put(&client, Some(ns), json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "shop-web", "labels": labels},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [
                    {"name": "shop-web", "image": GOOD,
                     "ports": [{"name": "http", "containerPort": 3000}],
                     "env": [{"name": "LOG_LEVEL", "value": "info"},
                             {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}],
                     "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
                    {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0", "ports": [{"containerPort": 9901}]}
                ]}
            }
        }
    })).await;
    put(
        &client,
        Some(ns),
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-web"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]}
        }),
    )
    .await;
    put(&client, Some(ns), json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "shop-web"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "shop-web", "port": {"number": 80}}}}]}}]}
    })).await;
    put(&client, Some(ns), json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "shop-web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop-web"},
                 "minReplicas": 2, "maxReplicas": 6,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}
    })).await;
    put(&client, Some(ns), json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "shop-web"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}
    })).await;

    let r = mvd(
        cluster,
        dir.path(),
        &[
            "init",
            "--from",
            &format!("k8s:{ns}/shop-web"),
            "--env",
            "production",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stdout.contains("changes nothing"), "{}", r.dump());
    insta::assert_snapshot!("init_k8s_stdout", r.stdout);
    insta::assert_snapshot!(
        "init_k8s_deploy_yml",
        std::fs::read_to_string(dir.path().join("deploy.yml")).unwrap()
    );
    insta::assert_snapshot!(
        "init_k8s_deployment",
        std::fs::read_to_string(dir.path().join("templates/kubernetes/deployment.yaml.j2"))
            .unwrap()
    );

    // The plan's server dry run: every object unchanged, nothing created.
    let r = mvd(
        cluster,
        dir.path(),
        &[
            "plan",
            "--env",
            "production",
            "--image",
            GOOD,
            "--server-dry-run",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    for line in [
        "Deployment shop-web: unchanged",
        "Service shop-web: unchanged",
        "Ingress shop-web: unchanged",
        "HorizontalPodAutoscaler shop-web: unchanged",
        "PodDisruptionBudget shop-web: unchanged",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.dump());
    }
    assert!(
        !r.stdout.contains("would be created") && !r.stdout.contains("would change"),
        "{}",
        r.dump()
    );

    // The first deploy of that image applies nothing: no new generation, no ReplicaSet.
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let before = deployments.get("shop-web").await.unwrap();
    let r = mvd(
        cluster,
        dir.path(),
        &["deploy", "--env", "production", "--image", GOOD],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    let after = deployments.get("shop-web").await.unwrap();
    assert_eq!(
        after.metadata.generation,
        before.metadata.generation,
        "{}",
        r.dump()
    );
    // (Its resourceVersion moves with the controllers' status writes; its generation only
    // with a change of its spec.)
    assert!(
        r.stderr.contains("nothing applied, no rollout started"),
        "{}",
        r.dump()
    );
    let sets = Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(client.clone(), ns)
        .list(&kube::api::ListParams::default())
        .await
        .unwrap();
    assert_eq!(sets.items.len(), 1, "{}", r.dump());
}

/// The Deployment's image and its generation (which moves only with a change of its spec).
async fn image_and_generation(client: &kube::Client, ns: &str) -> (String, i64) {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("movieverse")
        .await
        .unwrap();
    let generation = d.metadata.generation.unwrap_or_default();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    (image, generation)
}

/// #14's fault matrix for a rolling deploy on Kubernetes, with the real binary on the real
/// control plane: each call × a 500 twice, a reset connection twice, the credentials expired
/// (a 401, the exec plugin's token refused for good: `common::k8s::proxy`) and a 500 for good,
/// injected by the proxy in front of the API server. Each cell must end completed (the
/// Deployment on the new image), or failed safe: the Deployment on the image it ran, its spec
/// untouched ("nothing changed") or put back. Ten cells at a time, each in a namespace of its
/// own. ARCHITECTURE.md carries the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_k8s_rolling() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let columns: [(&str, u16, u32); 4] = [
        ("500 twice", 500, 2),
        ("reset twice", 0, 2),
        ("credentials expired", 401, 1),
        ("500 for good", 500, 99),
    ];
    // (row, method, path on the API server, matching requests let through first)
    let rows: [(&str, &'static str, &'static str, u32); 5] = [
        ("take the lease (`Lease`)", "POST", "/leases", 0),
        (
            "the dry run of the Deployment (`dryRun=All`)",
            "PATCH",
            "/deployments/movieverse?*dryRun=All",
            0,
        ),
        (
            "read the live Deployment",
            "GET",
            "/deployments/movieverse$",
            0,
        ),
        (
            "apply the Deployment",
            "PATCH",
            "/deployments/movieverse?*fieldManager=movieverse-deploy",
            1,
        ),
        (
            "apply the HPA after the rollout",
            "PATCH",
            "/horizontalpodautoscalers/movieverse?*fieldManager=movieverse-deploy",
            1,
        ),
    ];
    let ns = |r: usize, c: usize| format!("mv-rfm-{}", r * columns.len() + c);
    let grid = common::matrix::run(rows.len(), columns.len(), 10, |r, c| {
        let (_, method, path, after) = rows[r];
        let (_, status, times) = columns[c];
        let ns = ns(r, c);
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), &ns, "60s", "");
        let first = deploy(cluster, dir.path(), GOOD);
        assert_eq!(first.code, 0, "{}", first.dump());
        // This thread's own runtime and client (the test's runtime waits for the pool).
        let before = tokio::runtime::Runtime::new().unwrap().block_on(async {
            image_and_generation(&k8s::client(&cluster.kubeconfig).await, &ns).await
        });
        let fault = k8s::Fault {
            method,
            path: path.into(),
            status,
            times,
            after,
        };
        let (run, unmet, _) = k8s::deploy_through_faults(cluster, dir.path(), GOOD2, vec![fault]);
        (ns, before, run, unmet)
    });
    let mut cells = Vec::new();
    for row in &grid {
        let mut judged = Vec::new();
        for (ns, (_, generation_before), run, unmet) in row {
            let (image, generation) = image_and_generation(&client, ns).await;
            let retried = run.stderr.matches("retrying in").count();
            let renewed = k8s::renewed(&run.stderr);
            let words = if run.code == 0 && image == GOOD2 {
                match retried {
                    0 => format!("completed{renewed}"),
                    1 => format!("completed after 1 retry{renewed}"),
                    n => format!("completed after {n} retries{renewed}"),
                }
            } else if run.code != 0 && image == GOOD && generation == *generation_before {
                format!("failed safe: nothing changed, exit {}", run.code)
            } else if run.code != 0 && image == GOOD {
                format!(
                    "failed safe: put back on the previous template, exit {}",
                    run.code
                )
            } else {
                format!(
                    "FAILED: exit {}, the Deployment on {image} (generation {generation_before} -> {generation})",
                    run.code
                )
            };
            let mut cell = common::matrix::Cell::judged(words, || run.dump());
            // A fault that was never met proves nothing, whatever the run's end.
            if !unmet.is_empty() {
                cell.wrong = Some(format!("{}\n{unmet}\n{}", cell.words, run.dump()));
            }
            judged.push(cell);
        }
        cells.push(judged);
    }
    common::matrix::check(
        "fault-matrix k8s-rolling",
        &rows.map(|r| r.0),
        &columns.map(|c| c.0),
        &cells,
        "cargo test --test k8s fault_matrix_k8s_rolling",
    );
}

/// #14's kill table for a rolling deploy on Kubernetes, on the real control plane: the real
/// binary killed with SIGKILL as each phase begins (a namespace each, together), then `deploy`
/// run again. After the kill the Deployment asks for the old image or the new one, never
/// anything else; the rerun ends on the new image, and no rollout starts twice (the
/// generation moves once, by the one apply of the new template). ARCHITECTURE.md carries the
/// table.
#[test]
fn killed_at_every_phase_a_rolling_deploy_run_again_ends_on_the_new_image() {
    const PHASES: [&str; 4] = [
        "dry-running every manifest on the API server",
        "naming the new pod template revision",
        "applying the manifests (server-side apply)",
        "waiting for this deployment to complete",
    ];
    let cluster = k8s::cluster();
    common::matrix::kill_table(
        "kill-table k8s-rolling",
        [
            "killed as it began",
            "the Deployment after the kill",
            "`deploy` again",
        ],
        4,
        "cargo test --test k8s killed_at_every_phase",
        |step| {
            let phase = PHASES[step as usize - 1];
            let rt = tokio::runtime::Runtime::new().unwrap();
            let client = rt.block_on(k8s::client(&cluster.kubeconfig));
            let ns = format!("mv-rkill-{step}");
            let dir = tempfile::tempdir().unwrap();
            config(dir.path(), &ns, "60s", "");
            let first = deploy(cluster, dir.path(), GOOD);
            assert_eq!(first.code, 0, "{}", first.dump());
            let (_, before) = rt.block_on(image_and_generation(&client, &ns));
            let mut cmd = k8s::mvd_cmd(cluster, dir.path(), &k8s::deploy_args(GOOD2));
            let (code, seen) = common::gate::kill_at(&mut cmd, phase);
            assert_eq!(code, None, "killed at {phase}: {seen}");
            let (image, generation) = rt.block_on(image_and_generation(&client, &ns));
            // Only the apply (phase 3) changes the Deployment: a kill as it begins lands before
            // it (`common::gate`).
            let (old, new) = ((GOOD.to_owned(), 0), (GOOD2.to_owned(), 1));
            let was = if step <= 3 { &old } else { &new };
            let after =
                common::matrix::as_before(step, &(image, generation - before), was, |(i, _)| {
                    if i == GOOD {
                        "the old image".to_owned()
                    } else {
                        "the new image, rolling out".to_owned()
                    }
                });
            let again = deploy(cluster, dir.path(), GOOD2);
            assert_eq!(
                again.code,
                0,
                "killed at {phase}, run again:\n{}",
                again.dump()
            );
            let (image, generation) = rt.block_on(image_and_generation(&client, &ns));
            assert_eq!(image, GOOD2, "{}", again.dump());
            assert_eq!(
                generation - before,
                1,
                "one apply of the new template in all:\n{}",
                again.dump()
            );
            [
                format!("{step}/4 ({phase})"),
                after,
                "ends on the new image".to_owned(),
            ]
        },
    );
}

/// `scripts/k8s-up` when a component's port is taken between its choice and its bind (the
/// tests start servers on free ports all the time): the component exits, and the whole start
/// runs again on other ports. Here etcd's first port is one this test holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_whose_port_was_taken_starts_again_on_others() {
    struct Down(std::path::PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = std::process::Command::new(common::root().join("scripts/k8s-down"))
                .arg(&self.0)
                .arg("--remove")
                .status();
        }
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = Down(tempfile::tempdir().unwrap().keep());
    let out = std::process::Command::new(common::root().join("scripts/k8s-up"))
        .arg(&dir.0)
        .env("MVD_K8S_UP_ETCD_PORT", port.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "k8s-up: etcd exited before it listened on 127.0.0.1:{port} (try 1 of 3)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("address already in use"), "{stderr}");
    assert!(!stderr.contains("try 2 of 3"), "{stderr}");
    // Up on the second try: the API server answers with the kubeconfig it printed.
    let client = k8s::client(&k8s::printed_kubeconfig(&stdout)).await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1", "{version:?}");
    drop(taken);
}
