//! One rollout per service at a time (#14): the real binary takes the environment's lease
//! before it changes anything, renews it, gives it up at the end; a second deploy exits 3
//! naming the holder (run URL, actor, since when) or waits `--lock-timeout`; a holder that
//! died is taken over after its expiry (or at once when its process on this host is gone), and
//! that is said; a run that lost its lease stops.
//!
//! ECS: a `DynamoDB` table on moto (conditional writes). Kubernetes: a `coordination.k8s.io`
//! `Lease` on the real control plane.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use common::k8s;
use common::moto::Moto;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const TABLE: &str = "deploy-locks";
const IMAGE: &str = "registry.test/movieverse@sha256:3333333333333333333333333333333333333333333333333333333333333333";
const NEXT: &str = "registry.test/movieverse@sha256:4444444444444444444444444444444444444444444444444444444444444444";
const KEY: &str = "ecs/us-east-1/movieverse-staging/movieverse-app";

/// The staging environment on moto, with a lease table and a short lease.
fn ecs_config(dir: &Path, moto: &Moto, duration: &str) {
    moto.staging_config(dir);
    let path = dir.join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "  staging:\n    target: ecs\n",
        &format!("  staging:\n    target: ecs\n    lock:\n      table: {TABLE}\n      duration: {duration}\n"),
        1,
    );
    std::fs::write(path, text).unwrap();
}

/// A deploy of staging as workflow run `run` started by `actor`.
fn ecs_deploy(
    moto: &Moto,
    dir: &Path,
    run: &str,
    actor: &str,
    extra: &[&str],
) -> std::process::Command {
    let mut cmd = common::bin_std();
    cmd.current_dir(dir)
        .env("CI", "true")
        .env("GITHUB_RUN_ID", run)
        .env("GITHUB_RUN_ATTEMPT", "1")
        .env("GITHUB_JOB", "deploy")
        .env("GITHUB_ACTOR", actor)
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "movieverse/app")
        .args(["deploy", "--env", "staging"])
        .args(extra);
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    cmd
}

fn output(cmd: &mut std::process::Command) -> common::Run {
    common::Run::from(&cmd.output().unwrap())
}

async fn item(
    client: &aws_sdk_dynamodb::Client,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(TABLE)
        .key("lock", AttributeValue::S(KEY.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn s(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> String {
    item[k].as_s().or_else(|_| item[k].as_n()).unwrap().clone()
}

/// A holder on another machine, renewed now, as a runner that died would leave it.
async fn plant(client: &aws_sdk_dynamodb::Client, duration_ms: u64, version: u64) {
    let now = common::now_ms().to_string();
    client
        .put_item()
        .table_name(TABLE)
        .item("lock", AttributeValue::S(KEY.into()))
        .item(
            "holder",
            AttributeValue::S("gha:900:deploy:1:4242@runner-elsewhere".into()),
        )
        .item(
            "run",
            AttributeValue::S(
                "https://github.com/movieverse/app/actions/runs/900 (job deploy, attempt 1)".into(),
            ),
        )
        .item("actor", AttributeValue::S("carol".into()))
        .item("since", AttributeValue::N(now.clone()))
        .item("renewed", AttributeValue::N(now))
        .item("duration", AttributeValue::N(duration_ms.to_string()))
        .item("version", AttributeValue::N(version.to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_deploys_take_turns_on_the_dynamodb_lease() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    ecs_config(dir.path(), &moto, "3s");
    let table = moto.lease_table(TABLE).await;

    // A holds the lease while it waits for its deployment (polls once a minute).
    let mut a = ecs_deploy(
        &moto,
        dir.path(),
        "501",
        "alice",
        &["--poll-interval", "60s"],
    );
    let running = common::run_until(&mut a, "waiting for this deployment to complete");
    let held = item(&table)
        .await
        .expect("the lease item exists while A deploys");
    assert!(
        s(&held, "holder").starts_with("gha:501:deploy:1:"),
        "{held:?}"
    );
    assert_eq!(
        s(&held, "run"),
        "https://github.com/movieverse/app/actions/runs/501 (job deploy, attempt 1)"
    );
    assert_eq!(s(&held, "actor"), "alice");
    // Renewed every second (a third of 3 s): the version moves on.
    std::thread::sleep(Duration::from_millis(2500));
    let renewed = item(&table).await.unwrap();
    assert!(
        s(&renewed, "version").parse::<u64>().unwrap()
            > s(&held, "version").parse::<u64>().unwrap(),
        "{held:?} then {renewed:?}"
    );

    // B, without --lock-timeout: exit 3 at once, naming the holder; nothing done.
    let b = output(&mut ecs_deploy(
        &moto,
        dir.path(),
        "502",
        "bob",
        &["--no-wait"],
    ));
    assert_eq!(b.code, 3, "{}", b.dump());
    for part in [
        "error: staging: another rollout holds the DynamoDB item ecs/us-east-1/movieverse-staging/movieverse-app of table deploy-locks",
        "https://github.com/movieverse/app/actions/runs/501 (job deploy, attempt 1) (actor alice), since 20",
        "--lock-timeout",
    ] {
        assert!(b.stderr.contains(part), "{part}:\n{}", b.dump());
    }
    assert!(!b.stderr.contains("task definition"), "{}", b.dump());

    // A ends (SIGINT puts the service back): it gives the lease up.
    let (code, seen) = running.interrupt();
    assert_eq!(code, Some(130), "{seen}");
    assert_eq!(item(&table).await, None, "released at the end:\n{seen}");

    // A holder on another machine that stopped renewing: B waits for its expiry, then takes
    // it over and says so.
    plant(&table, 3000, 7).await;
    let b = output(&mut ecs_deploy(
        &moto,
        dir.path(),
        "503",
        "bob",
        &["--no-wait", "--lock-timeout", "30s"],
    ));
    assert_eq!(b.code, 0, "{}", b.dump());
    for part in [
        "staging: waiting for the DynamoDB item",
        "held by https://github.com/movieverse/app/actions/runs/900 (job deploy, attempt 1) (actor carol)",
        "staging: took over the DynamoDB item ecs/us-east-1/movieverse-staging/movieverse-app of table deploy-locks: its holder, https://github.com/movieverse/app/actions/runs/900",
        "is gone (it was not renewed for its whole duration)",
    ] {
        assert!(b.stderr.contains(part), "{part}:\n{}", b.dump());
    }
    assert_eq!(item(&table).await, None);

    // A run that loses its lease (taken over while it still runs) stops at its next renewal.
    // (Another image: the one B deployed is already there, and an identical rerun ends at
    // once.)
    let mut c = ecs_deploy(
        &moto,
        dir.path(),
        "504",
        "dave",
        &[
            "--poll-interval",
            "60s",
            "--image",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
        ],
    );
    let running = common::run_until(&mut c, "waiting for this deployment to complete");
    let version: u64 = s(&item(&table).await.unwrap(), "version").parse().unwrap();
    plant(&table, 3000, version + 100).await;
    let (code, seen) = running.wait();
    assert_eq!(code, Some(3), "{seen}");
    assert!(
        seen.contains("error: staging: lost the DynamoDB item ecs/us-east-1/movieverse-staging/movieverse-app of table deploy-locks: it was taken over by https://github.com/movieverse/app/actions/runs/900"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_lease_table_is_an_environment_error_before_anything_changes() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    ecs_config(dir.path(), &moto, "60s");
    let r = output(&mut ecs_deploy(
        &moto,
        dir.path(),
        "601",
        "alice",
        &["--no-wait"],
    ));
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("cannot take the lease (the DynamoDB item ecs/us-east-1/movieverse-staging/movieverse-app of table deploy-locks)")
            && r.stderr.contains("create the DynamoDB table deploy-locks with the partition key `lock`"),
        "{}",
        r.dump()
    );
    assert!(!r.stderr.contains("task definition"), "{}", r.dump());
    // `verify` says so too, with the command that creates it; then sees it.
    let verify = |moto: &Moto| {
        let mut cmd = common::bin_std();
        cmd.current_dir(dir.path())
            .env("CI", "true")
            .args(["verify", "--env", "staging"]);
        for (k, v) in moto.env() {
            cmd.env(k, v);
        }
        output(&mut cmd)
    };
    let r = verify(&moto);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("DynamoDB lease table deploy-locks")
            && all.contains("does not exist")
            && all.contains("aws dynamodb create-table --table-name deploy-locks"),
        "{}",
        r.dump()
    );
    moto.lease_table(TABLE).await;
    let r = verify(&moto);
    assert!(
        r.stdout
            .contains("DynamoDB lease table deploy-locks: exists, partition key `lock` (string)"),
        "{}",
        r.dump()
    );
}

/// A Lease held by a runner on another machine, renewed now.
fn planted_lease(duration_s: i32) -> Lease {
    let now = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "movieverse-deploy-movieverse",
            "annotations": {
                "movieverse.dev/run": "https://github.com/movieverse/app/actions/runs/900 (job deploy, attempt 1)",
                "movieverse.dev/actor": "carol",
            },
        },
        "spec": {
            "holderIdentity": "gha:900:deploy:1:4242@runner-elsewhere",
            "leaseDurationSeconds": duration_s,
            "acquireTime": now,
            "renewTime": now,
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_deploys_take_turns_on_the_lease() {
    let cluster = k8s::cluster();
    let client = k8s::client(&cluster.kubeconfig).await;
    let dir = tempfile::tempdir().unwrap();
    let ns = "mv-lock";
    k8s::rolling_config(dir.path(), ns, "60s", "");
    // The first deploy creates the namespace (no Lease can be kept before it exists).
    let first = k8s::deploy(cluster, dir.path(), IMAGE);
    assert_eq!(first.code, 0, "{}", first.dump());
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    assert!(
        leases
            .get_opt("movieverse-deploy-movieverse")
            .await
            .unwrap()
            .is_none(),
        "given up at the end"
    );

    // Held by a live run elsewhere: exit 3, naming it; the Deployment is not touched.
    leases
        .create(&PostParams::default(), &planted_lease(60))
        .await
        .unwrap();
    let r = k8s::deploy(cluster, dir.path(), NEXT);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("error: production-k8s: another rollout holds Lease movieverse-deploy-movieverse: https://github.com/movieverse/app/actions/runs/900 (job deploy, attempt 1) (actor carol), since 20"),
        "{}",
        r.dump()
    );
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), ns);
    let image = |d: k8s_openapi::api::apps::v1::Deployment| {
        d.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    assert_eq!(image(deployments.get("movieverse").await.unwrap()), IMAGE);

    // The holder stops renewing (a 2 s lease): the next deploy waits for the expiry, takes
    // it over, says so, deploys, and gives it up.
    leases
        .replace(
            "movieverse-deploy-movieverse",
            &PostParams::default(),
            &Lease {
                metadata: leases
                    .get("movieverse-deploy-movieverse")
                    .await
                    .unwrap()
                    .metadata,
                ..planted_lease(2)
            },
        )
        .await
        .unwrap();
    let mut args = k8s::deploy_args(NEXT).to_vec();
    args.extend(["--lock-timeout", "30s"]);
    let r = k8s::mvd(cluster, dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains("production-k8s: took over Lease movieverse-deploy-movieverse: its holder, https://github.com/movieverse/app/actions/runs/900")
            && r.stderr.contains("is gone (it was not renewed for its whole duration)"),
        "{}",
        r.dump()
    );
    assert_eq!(image(deployments.get("movieverse").await.unwrap()), NEXT);
    assert!(
        leases
            .get_opt("movieverse-deploy-movieverse")
            .await
            .unwrap()
            .is_none(),
        "given up at the end"
    );
}
