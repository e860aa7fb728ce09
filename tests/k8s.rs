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
