//! `init --from`: a live service imported, then round-tripped. A service is made in a moto
//! server the way a user's console would make it (several containers, variables, secrets by
//! reference, a load balancer, auto scaling); `init` reads it; `plan --live` against the same
//! service shows no change; and the first `deploy` of the image it runs registers nothing,
//! updates nothing and leaves its scaling as it was.

mod common;

use std::path::Path;

use common::Run;
use common::codedeploy::{Plan, Proxy};
use common::moto::Moto;

const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:1.4.2";

/// moto, behind the scenario proxy that keeps the service settings moto drops.
struct Aws {
    moto: Moto,
    proxy: Proxy,
}

impl Aws {
    fn start() -> Self {
        let moto = Moto::start();
        let proxy = Proxy::start(&moto.endpoint, Plan::Succeed);
        Self { moto, proxy }
    }

    /// `tests/fixtures/moto_world.py`, through the proxy.
    fn world(&self, args: &[&str]) -> String {
        common::moto::world_at(&self.proxy.url, args)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        self.proxy.env()
    }

    async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.moto.sdk_config().await
    }
}

fn mvd(aws: &Aws, dir: &Path, args: &[&str]) -> Run {
    let mut cmd = common::bin();
    cmd.current_dir(dir).env("CI", "true");
    for (k, v) in aws.env() {
        cmd.env(k, v);
    }
    Run::from(&cmd.args(args).output().unwrap())
}

/// The moto world's random ids, named, for snapshots.
fn filters(ids: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = vec![(
        ids["target_group"].as_str().unwrap().to_owned(),
        "[target group ARN]".to_owned(),
    )];
    out.push((
        ids["security_group"].as_str().unwrap().to_owned(),
        "[sg]".into(),
    ));
    // (The service lists its subnets sorted by id, which moto makes at random.)
    for s in ids["subnets"].as_array().unwrap() {
        out.push((s.as_str().unwrap().to_owned(), "[subnet]".to_owned()));
    }
    out
}

fn scrub(text: &str, filters: &[(String, String)]) -> String {
    filters
        .iter()
        .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
}

async fn ecs_client(moto: &Aws) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(&moto.sdk_config().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_from_a_console_made_service_round_trips() {
    let moto = Aws::start();
    let ids: serde_json::Value = serde_json::from_str(&moto.world(&["console"])).unwrap();
    let filters = filters(&ids);
    let dir = tempfile::tempdir().unwrap();
    let ecs = ecs_client(&moto).await;

    let r = mvd(
        &moto,
        dir.path(),
        &["init", "--from", "ecs:shop/shop-web", "--env", "production"],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    let config = std::fs::read_to_string(dir.path().join("deploy.yml")).unwrap();
    let td = std::fs::read_to_string(dir.path().join("templates/ecs/task-definition.json.j2"));
    insta::assert_snapshot!("init_ecs_stdout", scrub(&r.stdout, &filters));
    insta::assert_snapshot!("init_ecs_deploy_yml", scrub(&config, &filters));
    insta::assert_snapshot!("init_ecs_task_definition", td.unwrap());

    // `plan --live` of the image the service runs: nothing changes.
    let r = mvd(
        &moto,
        dir.path(),
        &["plan", "--env", "production", "--live", "--image", IMAGE],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    for line in [
        "service shop-web runs shop-web:1",
        "task definition: unchanged (a deploy of this image registers nothing)",
        "service settings: unchanged",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.dump());
    }
    // Another image: only the image changes.
    let r = mvd(
        &moto,
        dir.path(),
        &[
            "plan",
            "--env",
            "production",
            "--live",
            "--image",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:1.5.0",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout
            .contains("task definition: a deploy registers a new revision:")
            && r.stdout
                .contains("-  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:1.4.2")
            && r.stdout
                .contains("+  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:1.5.0"),
        "{}",
        r.dump()
    );

    // The first deploy of the image it runs: no revision, no service update, scaling as it was.
    let before = ecs
        .describe_services()
        .cluster("shop")
        .services("shop-web")
        .send()
        .await
        .unwrap()
        .services()[0]
        .clone();
    let r = mvd(
        &moto,
        dir.path(),
        &[
            "deploy",
            "--env",
            "production",
            "--image",
            IMAGE,
            "--no-wait",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    let revisions = ecs
        .list_task_definitions()
        .family_prefix("shop-web")
        .send()
        .await
        .unwrap()
        .task_definition_arns()
        .to_vec();
    assert_eq!(revisions.len(), 1, "{revisions:?}\n{}", r.dump());
    let after = ecs
        .describe_services()
        .cluster("shop")
        .services("shop-web")
        .send()
        .await
        .unwrap()
        .services()[0]
        .clone();
    assert_eq!(after.task_definition(), before.task_definition());
    assert_eq!(
        after.deployments().len(),
        before.deployments().len(),
        "{}",
        r.dump()
    );
    let aas = aws_sdk_applicationautoscaling::Client::new(&moto.sdk_config().await);
    let policies = aas
        .describe_scaling_policies()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .resource_id("service/shop/shop-web")
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = policies
        .scaling_policies()
        .iter()
        .map(aws_sdk_applicationautoscaling::types::ScalingPolicy::policy_name)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["shop-web-cpu", "shop-web-memory"], "{}", r.dump());

    // Nothing is written over without --force.
    let r = mvd(
        &moto,
        dir.path(),
        &["init", "--from", "ecs:shop/shop-web", "--env", "production"],
    );
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stderr.contains("exists; `init` does not write over it"),
        "{}",
        r.dump()
    );
}

#[test]
fn init_turns_a_plain_secret_into_a_reference_and_never_writes_its_value() {
    let moto = Aws::start();
    moto.world(&["console", "plain-secret"]);
    let dir = tempfile::tempdir().unwrap();
    let r = mvd(
        &moto,
        dir.path(),
        &["init", "--from", "ecs:shop/shop-web", "--env", "production"],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout.contains("note: `STRIPE_API_KEY` of container `web` is a plain value that looks like a secret: deploy.yml references arn:aws:secretsmanager:us-east-1:123456789012:secret:shop-web/production/stripe-api-key instead"),
        "{}",
        r.dump()
    );
    let config = std::fs::read_to_string(dir.path().join("deploy.yml")).unwrap();
    assert!(
        config.contains("      STRIPE_API_KEY: arn:aws:secretsmanager:us-east-1:123456789012:secret:shop-web/production/stripe-api-key\n"),
        "{config}"
    );
    let mut written = r.stdout.clone() + &r.stderr + &config;
    for entry in walk(dir.path()) {
        written.push_str(&std::fs::read_to_string(entry).unwrap());
    }
    assert!(!written.contains("sk_test_planted_4242"), "{written}");
    // The plan loads it, and says the variable moves to the secret.
    let r = mvd(
        &moto,
        dir.path(),
        &["plan", "--env", "production", "--live", "--image", IMAGE],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stdout
            .contains("task definition: a deploy registers a new revision:"),
        "{}",
        r.dump()
    );
    assert!(!r.stdout.contains("sk_test_planted_4242"), "{}", r.dump());
}

#[test]
fn init_from_a_missing_service_says_what_it_read() {
    let moto = Aws::start();
    moto.world(&["console"]);
    let dir = tempfile::tempdir().unwrap();
    let r = mvd(&moto, dir.path(), &["init", "--from", "ecs:shop/nope"]);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr
            .contains("cannot read service nope in cluster shop (us-east-1)"),
        "{}",
        r.dump()
    );
    assert!(!dir.path().join("deploy.yml").exists());
    let r = mvd(&moto, dir.path(), &["init", "--from", "ecs:shop"]);
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stderr.contains("--from `ecs:shop` names no live service"),
        "{}",
        r.dump()
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
