//! The CLI end to end on the `MovieVerse` example: every rendered artifact and the plan are
//! snapshotted; the Kubernetes manifests are checked by kubernetes-validate, a validator we
//! did not write.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Run, example, files, run};

fn example_arg() -> String {
    example().to_string_lossy().into_owned()
}

fn render_all(out: &Path) -> Run {
    let r = run(
        &[
            "--config",
            &example_arg(),
            "render",
            "--env",
            "all",
            "--out",
            &out.to_string_lossy(),
        ],
        &common::root(),
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    r
}

#[test]
fn render_writes_every_artifact_of_every_environment() {
    let dir = tempfile::tempdir().unwrap();
    let r = render_all(dir.path());
    let written: Vec<String> = files(dir.path())
        .iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    insta::assert_snapshot!("render_file_list", written.join("\n"));
    assert!(
        r.stderr.contains("wrote 19 file(s) for 3 environment(s)"),
        "{}",
        r.dump()
    );
    for file in &written {
        let content = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let name = file.replace('/', "__");
        insta::with_settings!({ snapshot_suffix => name, prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!("render", content);
        });
    }
}

#[test]
fn render_is_byte_stable() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    render_all(a.path());
    render_all(b.path());
    for f in files(a.path()) {
        assert_eq!(
            std::fs::read(a.path().join(&f)).unwrap(),
            std::fs::read(b.path().join(&f)).unwrap(),
            "{}",
            f.display()
        );
    }
}

#[test]
fn render_without_out_prints_every_artifact() {
    let r = run(
        &["--config", &example_arg(), "render", "--env", "staging"],
        &common::root(),
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    for name in [
        "staging/task-definition.json",
        "staging/service.json",
        "staging/scaling.json",
    ] {
        assert!(
            r.stdout.contains(&format!("==> {name} <==")),
            "{name}\n{}",
            r.dump()
        );
    }
    assert!(
        !r.stdout.contains("appspec"),
        "rolling has no AppSpec\n{}",
        r.dump()
    );
}

#[test]
fn rendered_task_definitions_reference_secrets_and_use_the_spec_numbers() {
    let dir = tempfile::tempdir().unwrap();
    render_all(dir.path());
    for env in ["staging", "production"] {
        let td: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join(env).join("task-definition.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (
                td["cpu"].as_str(),
                td["memory"].as_str(),
                td["networkMode"].as_str()
            ),
            (Some("512"), Some("1024"), Some("awsvpc"))
        );
        let app = &td["containerDefinitions"][0];
        assert_eq!(app["portMappings"][0]["containerPort"], 5000);
        assert_eq!(app["essential"], true);
        assert_eq!(td["containerDefinitions"][1]["name"], "datadog-agent");
        assert_eq!(td["containerDefinitions"][1]["essential"], false);
        for s in app["secrets"].as_array().unwrap() {
            assert!(
                s["valueFrom"]
                    .as_str()
                    .unwrap()
                    .starts_with("arn:aws:secretsmanager:"),
                "{s}"
            );
        }
        assert!(
            app["healthCheck"]["command"][1]
                .as_str()
                .unwrap()
                .contains("/health")
        );
    }
    let scaling: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("staging/scaling.json")).unwrap())
            .unwrap();
    assert_eq!(
        (
            scaling["scalableTarget"]["MinCapacity"].as_u64(),
            scaling["scalableTarget"]["MaxCapacity"].as_u64()
        ),
        (Some(2), Some(10))
    );
    let cpu = &scaling["policies"][0]["TargetTrackingScalingPolicyConfiguration"];
    assert_eq!(
        (
            cpu["TargetValue"].as_f64(),
            cpu["ScaleInCooldown"].as_u64(),
            cpu["ScaleOutCooldown"].as_u64()
        ),
        (Some(70.0), Some(300), Some(60))
    );
    let svc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("staging/service.json")).unwrap())
            .unwrap();
    // Max surge 1 of 2 desired tasks = 150 %; max unavailable 0 = 100 % minimum healthy.
    assert_eq!(svc["deploymentConfiguration"]["maximumPercent"], 150);
    assert_eq!(svc["deploymentConfiguration"]["minimumHealthyPercent"], 100);
    assert_eq!(
        svc["deploymentConfiguration"]["deploymentCircuitBreaker"]["rollback"],
        true
    );
}

#[test]
fn plan_text_and_json() {
    let r = run(
        &["--config", &example_arg(), "plan", "--env", "all"],
        &common::root(),
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    insta::assert_snapshot!("plan_all_text", r.stdout);
    let r = run(
        &[
            "--config",
            &example_arg(),
            "plan",
            "--env",
            "production-k8s",
            "--output",
            "json",
        ],
        &common::root(),
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    insta::assert_json_snapshot!("plan_production_k8s_json", plan);
    let weights: Vec<u64> = plan["environments"][0]["timeline"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["weight"].as_u64())
        .collect();
    assert_eq!(weights, [10, 25, 50, 75, 100]);
}

#[test]
fn plan_in_a_pull_request_uses_the_head_commit_and_pr_tag() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"pull_request":{"head":{"sha":"abcdef0123456789abcdef0123456789abcdef01"}}}"#,
    )
    .unwrap();
    // The default tag rules (sha, branch, semver, pr) need a MUTABLE repository.
    let config = std::fs::read_to_string(common::example())
        .unwrap()
        .replace("  tags: [sha, semver]\n", "")
        .replace("  tag_mutability: IMMUTABLE\n", "");
    std::fs::write(dir.path().join("deploy.yml"), config).unwrap();
    std::fs::write(dir.path().join("Containerfile"), "FROM scratch\n").unwrap();
    let out = common::bin()
        .current_dir(dir.path())
        .env("GITHUB_REF", "refs/pull/7/merge")
        .env("GITHUB_HEAD_REF", "feature/Search-UI")
        .env("GITHUB_EVENT_PATH", &event)
        .args(["plan", "--env", "staging"])
        .output()
        .unwrap();
    let r = Run::from(&out);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stdout.contains("movieverse:sha-abcdef0 "), "{}", r.dump());
    assert!(
        r.stdout
            .contains("tags   sha-abcdef0, feature-search-ui, pr-7"),
        "{}",
        r.dump()
    );
}

#[test]
fn version_help_and_completions() {
    let r = run(&["--version"], &common::root());
    assert_eq!(r.code, 0, "{}", r.dump());
    let version = r
        .stdout
        .trim()
        .strip_prefix(concat!(
            "movieverse-deploy ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{}", r.dump()));
    assert!(
        version == "unknown"
            || (version.len() == 12 && version.bytes().all(|b| b.is_ascii_hexdigit())),
        "{}",
        r.dump()
    );
    let r = run(&["--help"], &common::root());
    assert_eq!(r.code, 0);
    insta::assert_snapshot!("help", r.stdout);
    for cmd in ["render", "plan", "schema"] {
        let r = run(&[cmd, "--help"], &common::root());
        assert!(
            r.code == 0 && r.stdout.contains("Example"),
            "{cmd}\n{}",
            r.dump()
        );
    }
    let r = run(&["completions", "bash"], &common::root());
    assert!(
        r.code == 0 && r.stdout.contains("movieverse-deploy"),
        "{}",
        r.dump()
    );
    let r = run(&["plan"], &common::root());
    assert_eq!(r.code, 2, "a usage error is invalid input\n{}", r.dump());
}

#[test]
fn committed_schema_is_current() {
    let r = run(&["schema"], &common::root());
    assert_eq!(r.code, 0, "{}", r.dump());
    let committed =
        std::fs::read_to_string(common::root().join("deploy.schema.json")).unwrap_or_default();
    assert!(
        committed == r.stdout,
        "deploy.schema.json is stale: run `cargo run -- schema > deploy.schema.json`"
    );
}

/// The validator's location: `scripts/test` installs it and sets `MVD_TOOLS_DIR`.
fn kubernetes_validate() -> std::path::PathBuf {
    let tools = std::env::var_os("MVD_TOOLS_DIR").map_or_else(
        || common::root().join(".cache/tools"),
        std::path::PathBuf::from,
    );
    let path = tools.join("venv/bin/kubernetes-validate");
    assert!(
        path.is_file(),
        "kubernetes-validate is not installed at {}; run scripts/install-tools (a test never skips: the test command installs every component)",
        path.display()
    );
    path
}

#[test]
fn rendered_manifests_pass_kubernetes_validate() {
    let validator = kubernetes_validate();
    let dir = tempfile::tempdir().unwrap();
    render_all(dir.path());
    let manifests: Vec<_> = files(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("production-k8s/k8s"))
        .map(|f| dir.path().join(f))
        .collect();
    assert_eq!(manifests.len(), 12);
    let out = Command::new(&validator)
        .args(["--kubernetes-version", "1.35.0", "--strict"])
        .args(&manifests)
        .output()
        .unwrap();
    let r = Run::from(&out);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert_eq!(
        r.stdout.matches(" passed for resource ").count(),
        12,
        "{}",
        r.dump()
    );

    // The check can fail: a manifest with a field Kubernetes does not know is rejected.
    let broken = &manifests[0];
    let text = std::fs::read_to_string(broken).unwrap().replacen(
        "metadata:",
        "metadata:\n  nmae: typo",
        1,
    );
    std::fs::write(broken, text).unwrap();
    let out = Command::new(&validator)
        .args(["--kubernetes-version", "1.35.0", "--strict"])
        .arg(broken)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "kubernetes-validate accepted an unknown field"
    );
}

#[test]
fn extra_services_render_under_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example()).unwrap().replacen(
        "      service: movieverse-app\n      cpu: 512\n      memory: 1024\n      desired_count: 2\n",
        "      service: movieverse-app\n      services:\n        - name: movieverse-worker\n          command: [python, -m, movieverse.worker]\n          desired_count: 1\n      cpu: 512\n      memory: 1024\n      desired_count: 2\n",
        1,
    );
    std::fs::write(dir.path().join("deploy.yml"), text).unwrap();
    let out = dir.path().join("out");
    let r = run(
        &[
            "render",
            "--env",
            "staging",
            "--out",
            &out.to_string_lossy(),
        ],
        dir.path(),
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    let written: Vec<String> = files(&out)
        .iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    assert_eq!(
        written,
        [
            "staging/movieverse-worker/service.json",
            "staging/movieverse-worker/task-definition.json",
            "staging/scaling.json",
            "staging/service.json",
            "staging/task-definition.json",
        ]
    );
    let td: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("staging/movieverse-worker/task-definition.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(td["family"], "movieverse-staging-movieverse-worker");
    assert_eq!(
        td["containerDefinitions"][0]["command"],
        serde_json::json!(["python", "-m", "movieverse.worker"])
    );
    let svc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("staging/movieverse-worker/service.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (svc["serviceName"].as_str(), svc["desiredCount"].as_u64()),
        (Some("movieverse-worker"), Some(1))
    );
    assert!(
        svc.get("loadBalancers").is_none(),
        "a worker without a load balancer registers with none: {svc}"
    );
    // With surge 1 of 1 desired task the worker may double: 200 %.
    assert_eq!(svc["deploymentConfiguration"]["maximumPercent"], 200);
}

/// The example's Kubernetes environment as a blue-green with a manual gate and checks of
/// green through the preview Service.
fn k8s_blue_green(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(example()).unwrap();
    let old = "      canary:\n        steps: [10, 25, 50, 75, 100]\n        deadline: 60m\n";
    assert_eq!(text.matches(old).count(), 1);
    let text = text.replace(
        old,
        "      blue-green:\n        termination_wait: 10m\n        gate: manual\n",
    );
    let path = dir.join("deploy.yml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(dir.join("Containerfile"), "FROM scratch\n").unwrap();
    path
}

/// `plan --env ENV` of `config`, its output snapshotted as `snapshot`, then `render` into
/// `out`; both succeed.
fn plan_and_render(config: &str, env: &str, snapshot: &str, out: &Path) {
    let r = run(&["--config", config, "plan", "--env", env], &common::root());
    assert_eq!(r.code, 0, "{}", r.dump());
    insta::assert_snapshot!(snapshot.to_owned(), r.stdout);
    let out = out.to_str().unwrap();
    let r = run(
        &["--config", config, "render", "--env", env, "--out", out],
        &common::root(),
    );
    assert_eq!(r.code, 0, "{}", r.dump());
}

/// The example's production environment as a canary on ECS: two services, weighed on an ALB
/// listener rule, judged by the default ALB analysis (deploy.yml names no metric).
fn ecs_canary(dir: &Path) -> std::path::PathBuf {
    let text = common::with_production_strategy(
        &std::fs::read_to_string(example()).unwrap(),
        "    strategy:\n      canary:\n        steps: [10, 25, 50, 75, 100]\n        canary_target_group: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-canary/fedcba9876543210\n        listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/1111111111111111/aaaaaaaaaaaaaaaa\n        analysis:\n          interval: 1m\n          threshold: 3\n",
    );
    let path = dir.join("deploy.yml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(dir.join("Containerfile"), "FROM scratch\n").unwrap();
    path
}

#[test]
fn an_ecs_canary_plans_its_router_and_analysis_and_renders_the_canary_service() {
    let dir = tempfile::tempdir().unwrap();
    let config = ecs_canary(dir.path());
    let config = config.to_str().unwrap();
    let out = dir.path().join("out");
    plan_and_render(config, "production", "plan_ecs_canary", &out);
    let service: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("production/canary/service.json")).unwrap(),
    )
    .unwrap();
    insta::assert_json_snapshot!("ecs_canary_service", service);
    assert!(out.join("production/canary/scaling.json").exists());
}

#[test]
fn a_healthy_simulated_canary_on_ecs_takes_the_plans_best_time() {
    // ECS rolls the stable service's 5 tasks at once (maximumPercent 200): the promotion is
    // one health time in the plan and in the simulator alike.
    let dir = tempfile::tempdir().unwrap();
    let config = ecs_canary(dir.path());
    let config = config.to_str().unwrap();
    let root = common::root();
    let sim = run(
        &[
            "--config",
            config,
            "deploy",
            "--env",
            "production",
            "--simulate",
        ],
        &root,
    );
    assert_eq!(sim.code, 0, "{}", sim.dump());
    let plan = run(&["--config", config, "plan", "--env", "production"], &root);
    let played = sim
        .stdout
        .lines()
        .chain(sim.stderr.lines())
        .find_map(|l| {
            l.strip_prefix("Played ")?
                .split_once(" of virtual time")
                .map(|(t, _)| t.to_owned())
        })
        .unwrap();
    assert!(
        plan.stdout.contains(&format!("total: best {played},")),
        "simulated {played}\n{}",
        plan.stdout
    );
}

#[test]
fn an_ecs_native_canary_plans_and_renders_the_strategy_and_its_pause_hook() {
    let dir = tempfile::tempdir().unwrap();
    let config = ecs_canary(dir.path());
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "        steps: [10, 25, 50, 75, 100]\n",
        "        step_weight: 25\n        max_weight: 75\n        router: ecs\n        infrastructure_role: arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers\n",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();
    let out = dir.path().join("out");
    plan_and_render(config, "production", "plan_ecs_native_canary", &out);
    let service: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("production/service.json")).unwrap(),
    )
    .unwrap();
    insta::assert_json_snapshot!(
        "ecs_native_canary_service",
        serde_json::json!({
            "deploymentConfiguration": service["deploymentConfiguration"],
            "loadBalancers": service["loadBalancers"],
        })
    );
    // One service: no canary service is rendered.
    assert!(!out.join("production/canary").exists());
}

/// The example's production environment as ECS native blue/green (`controller: ecs`).
fn native_blue_green(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(example()).unwrap();
    let from = text.find("        application: movieverse\n").unwrap();
    let to = text.find("        test_port: 8080\n").unwrap();
    let text = format!(
        "{}        controller: ecs\n        green_target_group: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-green/fedcba9876543210\n        prod_listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/1111111111111111/aaaaaaaaaaaaaaaa\n        test_listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/8080808080808080/bbbbbbbbbbbbbbbb\n        infrastructure_role: arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers\n        gate: manual\n{}",
        &text[..from],
        &text[to..]
    );
    let path = dir.join("deploy.yml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(dir.join("Containerfile"), "FROM scratch\n").unwrap();
    path
}

#[test]
fn an_ecs_native_blue_green_plans_and_renders_the_strategy_hook_and_listener_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = native_blue_green(dir.path());
    let config = config.to_str().unwrap();
    let out = dir.path().join("out");
    plan_and_render(config, "production", "plan_native_blue_green", &out);
    // No AppSpec: ECS itself switches the listener rules.
    assert!(
        !files(&out)
            .iter()
            .any(|f| f.to_string_lossy().contains("appspec")),
        "{:?}",
        files(&out)
    );
    let service: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("production/service.json")).unwrap())
            .unwrap();
    insta::assert_json_snapshot!("native_blue_green_service", service);
}

#[test]
fn a_kubernetes_blue_green_plans_renders_and_simulates_with_the_selector_left_to_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let config = k8s_blue_green(dir.path());
    let config = config.to_str().unwrap();
    // The live and preview Services carry no selector: the rollout's router owns it.
    let out = dir.path().join("out");
    plan_and_render(config, "production-k8s", "plan_k8s_blue_green", &out);
    let services: Vec<_> = files(&out)
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("service"))
        .collect();
    let text: String = services
        .iter()
        .map(|f| std::fs::read_to_string(out.join(f)).unwrap())
        .collect();
    assert!(text.contains("name: movieverse-preview"), "{text}");
    assert!(!text.contains("selector"), "{text}");
    let validator = kubernetes_validate();
    let out = Command::new(&validator)
        .args(["--kubernetes-version", "1.35.0", "--strict"])
        .args(services.iter().map(|f| dir.path().join("out").join(f)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", Run::from(&out).dump());

    // The engine plays the same script on the simulator: it stops at the gate.
    let r = run(
        &[
            "--config",
            config,
            "deploy",
            "--env",
            "production-k8s",
            "--simulate",
        ],
        &common::root(),
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    let played = r
        .stdout
        .lines()
        .take_while(|l| !l.starts_with("Played "))
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("simulate_k8s_blue_green", played);
}

#[test]
fn init_writes_a_commented_deploy_yml_that_plans_as_written_and_never_over_a_file() {
    for (target, env) in [("ecs", "staging"), ("kubernetes", "production")] {
        let dir = tempfile::tempdir().unwrap();
        let app_dir = dir.path().join("Movie_Verse");
        std::fs::create_dir(&app_dir).unwrap();
        let r = run(&["init", "--target", target, "--env", env], &app_dir);
        assert_eq!(r.code, 0, "{}", r.dump());
        assert!(r.stdout.contains("app movie-verse"), "{}", r.dump());
        let text = std::fs::read_to_string(app_dir.join("deploy.yml")).unwrap();
        insta::assert_snapshot!(format!("init_{target}"), text);
        // As written, it plans (a Containerfile is the user's: its absence is a warning).
        let plan = run(&["plan", "--env", env], &app_dir);
        assert_eq!(plan.code, 0, "{}", plan.dump());
        // Nothing is written over it without --force.
        std::fs::write(app_dir.join("deploy.yml"), "app: mine\n").unwrap();
        let again = run(&["init", "--target", target, "--env", env], &app_dir);
        assert_eq!(again.code, 2, "{}", again.dump());
        assert!(
            again
                .stderr
                .contains("exists; `init` does not write over it")
                && again.stderr.contains("--force"),
            "{}",
            again.dump()
        );
        assert_eq!(
            std::fs::read_to_string(app_dir.join("deploy.yml")).unwrap(),
            "app: mine\n"
        );
        let forced = run(
            &["init", "--target", target, "--env", env, "--force"],
            &app_dir,
        );
        assert_eq!(forced.code, 0, "{}", forced.dump());
        assert_eq!(
            std::fs::read_to_string(app_dir.join("deploy.yml")).unwrap(),
            text
        );
    }
    // A flag that would not load is said, and nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let r = run(&["init", "--app", "Movie Verse"], dir.path());
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(r.stderr.contains("deploy.yml:5"), "{}", r.dump());
    assert!(!dir.path().join("deploy.yml").exists());
}

/// `plan --verify` (the Action's dry run) on a machine with no credentials: each environment
/// is said as not verified, and the plan still succeeds.
#[test]
fn plan_verify_without_credentials_says_what_was_not_verified() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = common::bin();
    cmd.current_dir(common::root())
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("KUBECONFIG", home.path().join("none"));
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "KUBERNETES_SERVICE_HOST",
    ] {
        cmd.env_remove(k);
    }
    let r = Run::from(
        &cmd.args([
            "--config",
            &example_arg(),
            "plan",
            "--env",
            "all",
            "--verify",
        ])
        .output()
        .unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    for line in [
        "Verify (read-only checks of what a deploy depends on)",
        "staging: not verified: no AWS credentials here",
        "production-k8s: not verified: no Kubernetes configuration (KUBECONFIG) here",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.dump());
    }
}
