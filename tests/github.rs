//! Reporting to GitHub: snapshots of the comment and summary; the real binary against a
//! stateful fake of GitHub's API (the sticky comment found again and updated, never
//! duplicated, not rewritten when nothing changed; deployments and statuses; a fork's
//! read-only token); and every request the client sends validated by Prism against GitHub's
//! own `OpenAPI` description. Planted secrets never appear in any output.

mod common;

use std::path::Path;

use common::github::{Fake, Prism};
use common::moto::Moto;
use common::{Run, SHA};
use movieverse_deploy::report::github::{self, CanaryStep, EnvReport, Report, State};
use movieverse_deploy::report::github_api::{CommentAction, GitHub, Target};

const TOKEN: &str = "ghs_PLANTEDsecretTOKEN0123456789abcdef";
const MARKER: &str = "<!-- movieverse-deploy:movieverse -->";

fn env_row(name: &str, state: State) -> EnvReport {
    EnvReport {
        name: name.into(),
        target: "ecs".into(),
        strategy: "rolling".into(),
        image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        revision: Some("arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-staging:12".into()),
        state,
        phase: "rolled out".into(),
        duration_secs: 184,
        links: vec![(
            "ECS service".into(),
            "https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/movieverse-staging/services/movieverse-app/deployments?region=us-east-1".into(),
        )],
        failure: None,
        details: vec![],
        canary: vec![],
        threshold: 0,
        metric_links: vec![],
        decided_by: None,
    }
}

fn report(envs: Vec<EnvReport>) -> Report {
    Report {
        app: "movieverse".into(),
        commit: SHA.into(),
        run_url: Some("https://github.com/movieverse/app/actions/runs/77".into()),
        environments: envs,
    }
}

fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(
        r"<!-- movieverse-deploy-state:[A-Za-z0-9+/=]+ -->",
        "<!-- movieverse-deploy-state:[state] -->",
    );
    s
}

#[test]
fn comment_snapshots_success_failure_and_canary() {
    let settings = snapshot_settings();
    let _guard = settings.bind_to_scope();
    insta::assert_snapshot!(
        "comment_success",
        github::comment(&report(vec![env_row("staging", State::Succeeded)]))
    );

    let mut failed = env_row("staging", State::RolledBack);
    failed.phase = "failed".into();
    failed.revision = None;
    failed.failure = Some("the platform rolled the deployment back: ECS deployment circuit breaker: tasks failed to start.".into());
    failed.details = vec![
        "service event: (service movieverse-app) has started 1 tasks: (task 7f3a).".into(),
        "stopped task 7f3a: Essential container in task exited [EssentialContainerExited]; movieverse-app exit 137 (OutOfMemoryError)".into(),
    ];
    insta::assert_snapshot!("comment_failure", github::comment(&report(vec![failed])));

    let mut canary = env_row("production-k8s", State::InProgress);
    canary.target = "kubernetes".into();
    canary.strategy = "canary".into();
    canary.revision = Some("movieverse@c06db058bd8d".into());
    canary.phase = "weight 50 %".into();
    canary.links = vec![];
    canary.threshold = 2;
    let step = |weight, success: Option<f64>, p99: f64, stable: f64, hook: bool, failed| {
        let limit = (stable * 1.2 * 100.0).round() / 100.0;
        CanaryStep {
            weight,
            metrics: vec![
                ("success-rate".into(), success, success.is_some()),
                ("p99-latency-ms".into(), Some(p99), p99 <= limit),
            ],
            bounds: vec![
                ">= 99".into(),
                format!("<= 1.2 × stable (stable {stable} → {limit})"),
            ],
            limits: vec![Some(99.0), Some(limit)],
            failed_checks: failed,
            probes: vec![("smoke-tests".into(), hook)],
        }
    };
    canary.canary = vec![
        step(10, Some(99.8), 212.0, 200.0, true, 0),
        step(25, Some(99.6), 240.0, 210.0, true, 0),
        // No data at step 3: a gap in the chart, never a 0.
        step(50, None, 251.0, 215.0, false, 1),
        step(75, Some(99.7), 320.0, 220.0, false, 2),
    ];
    canary.metric_links = vec![(
        "success-rate".into(),
        "http://prometheus.monitoring.svc:9090/graph?g0.expr=sum%28rate%28x%5B1m%5D%29%29&g0.tab=0"
            .into(),
    )];
    canary.state = State::RolledBack;
    canary.phase = "rolled back".into();
    canary.failure = Some("2 failed checks reached the threshold of 2 at weight 75%".into());
    canary.decided_by = Some("the check at 2026-11-30T10:06:00Z (weight 75%): smoke-tests: HTTP 500 in 12 ms; body: \"suite failed: 3 of 40\"; p99-latency-ms = 320 (bound <= 1.2 × stable (stable 220 → 264)); p99-latency-ms query (prometheus): `max(p99{service=\"movieverse-canary\"})`".into());
    let body = github::comment(&report(vec![canary]));
    assert!(body.contains("```mermaid\nxychart-beta"));
    insta::assert_snapshot!("comment_canary", body.clone());
    let result = mermaid_parse(&body);
    assert!(result.0, "{}", result.1);
    assert!(
        !body.contains("line [99.8, 99.6, 0"),
        "no data is drawn as 0:\n{body}"
    );
    let broken = body.replace("bar [10, 25, 50, 75]", "bar [10, 25,");
    assert!(!mermaid_parse(&broken).0, "a broken chart is rejected");
}

/// Runs mermaid's own parser (`tests/fixtures/mermaid_parse.mjs`) on the Markdown: (parsed,
/// output).
fn mermaid_parse(markdown: &str) -> (bool, String) {
    use std::io::Write as _;
    let npm = std::env::var_os("MVD_TOOLS_DIR")
        .map_or_else(
            || common::root().join(".cache/tools"),
            std::path::PathBuf::from,
        )
        .join("npm");
    assert!(
        npm.join("node_modules/mermaid").is_dir(),
        "mermaid is not installed; run scripts/install-tools (a test never skips: the test command installs every component)"
    );
    let script =
        std::fs::read_to_string(common::root().join("tests/fixtures/mermaid_parse.mjs")).unwrap();
    let mut child = std::process::Command::new("node")
        .current_dir(&npm)
        .args(["--input-type=module", "-e", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(markdown.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn summary_and_outputs_snapshots_success_failure_and_canary() {
    let settings = snapshot_settings();
    let _guard = settings.bind_to_scope();
    let mut failed = env_row("staging", State::Failed);
    failed.phase = "failed".into();
    failed.failure = Some("no progress within the deadline (600s)".into());
    failed.details = vec!["last seen: 0 running, 1 pending of 2 desired, 0 failed task(s)".into()];
    let mut canary = env_row("production-k8s", State::InProgress);
    canary.strategy = "canary".into();
    canary.phase = "weight 25 %".into();
    canary.canary = vec![CanaryStep {
        weight: 10,
        metrics: vec![("success-rate".into(), Some(99.9), true)],
        bounds: vec![">= 99".into()],
        limits: vec![Some(99.0)],
        failed_checks: 0,
        probes: vec![],
    }];
    for (name, row) in [
        ("success", env_row("staging", State::Succeeded)),
        ("failure", failed),
        ("canary", canary),
    ] {
        let state = row.state;
        let image = row.image.clone();
        let r = report(vec![row]);
        let summary = github::summary(&r);
        assert!(
            !summary.contains("movieverse-deploy-state"),
            "no state in the summary"
        );
        insta::assert_snapshot!(format!("summary_{name}"), summary);
        let outputs = format!(
            "{}{}",
            movieverse_deploy::report::output_block(
                "result",
                movieverse_deploy::report::result_word(state),
                "ghadelimiter_X"
            ),
            movieverse_deploy::report::output_block("image", &image, "ghadelimiter_X"),
        );
        insta::assert_snapshot!(format!("outputs_{name}"), outputs);
    }
}

struct Env {
    _dir: tempfile::TempDir,
    summary: std::path::PathBuf,
    outputs: std::path::PathBuf,
    event: std::path::PathBuf,
}

fn gh_env(head_repo: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    let outputs = dir.path().join("outputs");
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        serde_json::json!({"pull_request": {"number": 42, "head": {"sha": SHA, "repo": {"full_name": head_repo}}}}).to_string(),
    )
    .unwrap();
    Env {
        _dir: dir,
        summary,
        outputs,
        event,
    }
}

fn deploy(moto: &Moto, work: &Path, api: &str, env: &Env, image: &str, extra: &[&str]) -> Run {
    let mut cmd = common::bin();
    cmd.current_dir(work)
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "movieverse/app")
        .env("GITHUB_API_URL", api)
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_RUN_ID", "77")
        .env("GITHUB_RUN_ATTEMPT", "1")
        .env("GITHUB_REF", "refs/pull/42/merge")
        .env("GITHUB_HEAD_REF", "feature/x")
        .env("GITHUB_EVENT_PATH", &env.event)
        .env("GITHUB_STEP_SUMMARY", &env.summary)
        .env("GITHUB_OUTPUT", &env.outputs);
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    cmd.args(["deploy", "--env", "staging", "--no-wait", "--image", image])
        .args(extra);
    Run::from(&cmd.output().unwrap())
}

/// The token may appear only in the `::add-mask::` command that hides it.
fn assert_no_secret(texts: &[&str]) {
    for t in texts {
        for line in t.lines() {
            assert!(
                !line.contains(TOKEN) || line == format!("::add-mask::{TOKEN}"),
                "the token leaked: {line}"
            );
        }
    }
}

const IMAGE_A: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const IMAGE_B: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_comment_is_created_then_updated_in_place_then_left_alone() {
    let moto = Moto::start();
    let fake = Fake::start();
    let work = tempfile::tempdir().unwrap();
    moto.staging_config(work.path());
    let env = gh_env("movieverse/app");

    let r = deploy(
        &moto,
        work.path(),
        &fake.url,
        &env,
        IMAGE_A,
        &["--report", "report.md"],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    // In Actions, each phase's lines fold under a group.
    assert!(
        r.stderr
            .contains("::group::staging/movieverse-app: updating the service")
            && r.stderr.contains("::endgroup::"),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr.contains("pull request comment") && r.stderr.contains("created"),
        "{}",
        r.dump()
    );
    let ours = fake.ours(MARKER);
    assert_eq!(ours.len(), 1, "one comment");
    let (id, body) = ours[0].clone();
    assert!(
        body.contains("**staging** (ecs)") && body.contains("✅ deployed"),
        "{body}"
    );
    // The same report on a laptop.
    let file = std::fs::read_to_string(work.path().join("report.md")).unwrap();
    assert!(file.contains("**staging** (ecs)"), "{file}");
    // A deployment for the PR head commit, in progress then success, with the run's log.
    let deployments = fake.deployments();
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0]["ref"], SHA);
    assert_eq!(deployments[0]["environment"], "staging");
    assert_eq!(deployments[0]["required_contexts"], serde_json::json!([]));
    let states: Vec<String> = fake
        .statuses()
        .iter()
        .map(|(_, s)| s["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["in_progress", "success"]);
    assert_eq!(
        fake.statuses()[1].1["log_url"],
        "https://github.com/movieverse/app/actions/runs/77"
    );
    // Every request carried the token, and the outputs and summary were written.
    assert!(
        fake.requests()
            .iter()
            .all(|q| q.authorization.as_deref() == Some(&format!("Bearer {TOKEN}")))
    );
    let outputs = std::fs::read_to_string(&env.outputs).unwrap();
    assert!(
        outputs.contains("result<<ghadelimiter_") && outputs.contains("\nsucceeded\n"),
        "{outputs}"
    );
    let summary = std::fs::read_to_string(&env.summary).unwrap();
    assert!(summary.contains("**staging** (ecs)"), "{summary}");
    {
        let mut settings = snapshot_settings();
        settings.add_filter(r"ghadelimiter_[0-9a-f]{32}", "ghadelimiter_[random]");
        settings.add_filter(r"\| \d+s \|", "| [duration] |");
        let _guard = settings.bind_to_scope();
        insta::assert_snapshot!("outputs_run", outputs);
        insta::assert_snapshot!("summary_run", summary);
    }
    assert_eq!(deployments[0]["transient_environment"], false);
    assert_eq!(deployments[0]["production_environment"], false);

    // A new image: the same comment, updated.
    let r = deploy(&moto, work.path(), &fake.url, &env, IMAGE_B, &[]);
    assert_eq!(r.code, 0, "{}", r.dump());
    let ours = fake.ours(MARKER);
    assert_eq!(ours.len(), 1, "never duplicated");
    assert_eq!(ours[0].0, id);
    assert!(ours[0].1.contains("bbbbbbbbbbbb"), "{}", ours[0].1);
    assert!(
        r.stderr
            .contains(&format!("pull request comment {id} updated")),
        "{}",
        r.dump()
    );

    // Nothing changed: no update is sent.
    let patches = |f: &Fake| f.requests().iter().filter(|q| q.method == "PATCH").count();
    let before = patches(&fake);
    let r = deploy(&moto, work.path(), &fake.url, &env, IMAGE_B, &[]);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stderr.contains("no change"), "{}", r.dump());
    assert!(
        r.stderr
            .contains(&format!("pull request comment {id} already up to date")),
        "{}",
        r.dump()
    );
    assert_eq!(patches(&fake), before, "no PATCH when nothing changed");

    let summary = std::fs::read_to_string(&env.summary).unwrap();
    let outputs = std::fs::read_to_string(&env.outputs).unwrap();
    let comments: Vec<String> = fake.ours(MARKER).into_iter().map(|(_, b)| b).collect();
    let bodies: Vec<String> = fake.requests().iter().map(|q| q.body.to_string()).collect();
    let mut all: Vec<&str> = vec![&r.stdout, &r.stderr, &summary, &outputs, &file];
    all.extend(comments.iter().map(String::as_str));
    all.extend(bodies.iter().map(String::as_str));
    assert_no_secret(&all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_from_a_fork_reports_to_the_summary_and_says_why() {
    let moto = Moto::start();
    let fake = Fake::start();
    let work = tempfile::tempdir().unwrap();
    moto.staging_config(work.path());
    let env = gh_env("someone/fork");
    let r = deploy(&moto, work.path(), &fake.url, &env, IMAGE_A, &[]);
    assert_eq!(r.code, 0, "the deploy does not fail\n{}", r.dump());
    assert!(fake.ours(MARKER).is_empty());
    assert!(
        !fake
            .requests()
            .iter()
            .any(|q| q.path.contains("/comments") && q.method != "GET")
    );
    let summary = std::fs::read_to_string(&env.summary).unwrap();
    assert!(
        summary.contains("The pull request comment was skipped")
            && summary.contains("someone/fork"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_valid_for_githubs_openapi_description() {
    let prism = Prism::start();
    let target = Target {
        api_url: prism.url.clone(),
        owner: "movieverse".into(),
        repo: "app".into(),
        token: TOKEN.into(),
        pr: Some(42),
        read_only: None,
        run_url: Some("https://github.com/movieverse/app/actions/runs/77".into()),
    };
    let gh = GitHub::new(target).unwrap();
    // Prism answers the comment list with its example (not ours): a comment is created.
    let r = report(vec![env_row("staging", State::Succeeded)]);
    let render = |prev: Option<Report>| {
        github::comment(&github::merge(prev, r.clone(), &["staging".to_owned()]))
    };
    let action = gh.upsert_comment("movieverse", &render).await.unwrap();
    assert!(matches!(action, CommentAction::Created(_)), "{action:?}");
    gh.update_comment(1, &github::comment(&r)).await.unwrap();
    let id = gh
        .create_deployment(
            SHA,
            "staging",
            false,
            false,
            "movieverse-deploy: 4f2b9c1 to staging",
        )
        .await
        .unwrap();
    for state in ["in_progress", "success", "failure", "error", "inactive"] {
        gh.deployment_status(
            id,
            state,
            Some("https://staging.movie-verse.com"),
            "rolled out",
        )
        .await
        .unwrap_or_else(|e| panic!("{state}: {e}"));
    }
    // And Prism does refuse what GitHub would: an unknown state.
    assert!(
        gh.deployment_status(id, "finished", None, "x")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_error_that_echoes_the_token_is_printed_without_it() {
    let moto = Moto::start();
    let work = tempfile::tempdir().unwrap();
    moto.staging_config(work.path());
    let env = gh_env("movieverse/app");
    // A GitHub that refuses every call with a message repeating the token it was sent.
    let (api, _) = common::answer_all(
        "401 Unauthorized",
        "application/json",
        serde_json::json!({"message": format!("Bad credentials: {TOKEN}")}).to_string(),
    );
    let r = deploy(&moto, work.path(), &api, &env, IMAGE_A, &[]);
    assert_eq!(r.code, 0, "reporting never fails a deploy\n{}", r.dump());
    assert!(
        r.stderr.contains("Bad credentials: ***"),
        "GitHub's message is shown, scrubbed:\n{}",
        r.dump()
    );
    let summary = std::fs::read_to_string(&env.summary).unwrap_or_default();
    let outputs = std::fs::read_to_string(&env.outputs).unwrap_or_default();
    assert_no_secret(&[&r.stdout, &r.stderr, &summary, &outputs]);
}

/// #14's fault matrix for the GitHub calls, with the real binary against the stateful fake:
/// each call of a deploy's report × each fault class. A rate limit is waited out as GitHub
/// says (`Retry-After`, or `x-ratelimit-reset` when none are left); a 5xx or a dropped
/// connection is tried again after 1, 2, 4 s. A call that still fails is a warning: reporting
/// never fails a deploy, so every cell's deploy exits 0 with ECS on the new revision, and the
/// report says what it could not write. ARCHITECTURE.md carries the table this test produces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_github() {
    // (column, status, headers, body, times)
    type Class = (
        &'static str,
        u16,
        fn(&dyn Fn() -> String) -> Vec<(&'static str, String)>,
        serde_json::Value,
        u32,
    );
    use common::github::Fault;
    use serde_json::json;
    let secondary = json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."});
    let primary = json!({"message": "API rate limit exceeded for installation ID 1."});
    let boom = json!({"message": "Server Error"});
    let reset_at = || (common::now_ms() / 1000 + 1).to_string();
    let classes: [Class; 6] = [
        (
            "secondary rate limit, `Retry-After: 1`",
            403,
            |_| vec![("retry-after", "1".into())],
            secondary.clone(),
            1,
        ),
        (
            "rate limit, none left until reset",
            403,
            |at| {
                vec![
                    ("x-ratelimit-remaining", "0".into()),
                    ("x-ratelimit-reset", at()),
                ]
            },
            primary.clone(),
            1,
        ),
        (
            "secondary rate limit, no header",
            403,
            |_| Vec::new(),
            secondary.clone(),
            0,
        ),
        ("5xx twice", 502, |_| Vec::new(), boom.clone(), 2),
        ("connection reset twice", 0, |_| Vec::new(), json!(null), 2),
        ("5xx for good", 500, |_| Vec::new(), boom.clone(), 99),
    ];
    // (row, method, path, whether a first deploy must create the comment first)
    let calls: [(&str, &'static str, &'static str, bool); 5] = [
        ("create a deployment", "POST", "/deployments", false),
        ("set a deployment status", "POST", "/statuses", false),
        (
            "list the pull request's comments",
            "GET",
            "/issues/42/comments",
            false,
        ),
        ("create the comment", "POST", "/issues/42/comments", false),
        ("update the comment", "PATCH", "/issues/comments/", true),
    ];
    // Each cell on its own moto and GitHub fake, five at a time (the cells wait mostly: on
    // GitHub's back-off of 1, 2, 4 s and on `Retry-After`).
    let outcomes = common::matrix::run(calls.len(), classes.len(), 5, |row, col| {
        let (call, method, path, second) = calls[row];
        let (column, status, headers, body, times) = &classes[col];
        // The secondary limit without a header waits a minute by GitHub's rules: that
        // cell is the unit table's (`github_api::again`), not a minute of this test.
        if *times == 0 {
            return None;
        }
        let moto = Moto::start();
        let work = tempfile::tempdir().unwrap();
        moto.staging_config(work.path());
        let fake = Fake::start();
        let env = gh_env("movieverse/app");
        if second {
            let r = deploy(&moto, work.path(), &fake.url, &env, IMAGE_A, &[]);
            assert_eq!(r.code, 0, "{}", r.dump());
        }
        fake.fail(Fault {
            method,
            path,
            status: *status,
            headers: headers(&reset_at),
            body: body.clone(),
            times: *times,
        });
        // A different image from the first deploy's, so it is a change.
        let image = if second { IMAGE_B } else { IMAGE_A };
        let r = deploy(&moto, work.path(), &fake.url, &env, image, &[]);
        assert_eq!(
            r.code,
            0,
            "{call} × {column}: reporting never fails a deploy\n{}",
            r.dump()
        );
        assert_no_secret(&[&r.stdout, &r.stderr]);
        let waited = r
            .stderr
            .matches(&format!("GitHub: {call}: waiting"))
            .count();
        let written = match call {
            "create a deployment" => fake.deployments().len() == 1 + usize::from(second),
            "set a deployment status" => {
                fake.statuses().iter().any(|(_, s)| s["state"] == "success")
            }
            _ => fake
                .ours(MARKER)
                .iter()
                .any(|(_, b)| b.contains(&image[image.len() - 12..])),
        };
        let said = if written && r.stderr.contains("warning") {
            format!("UNEXPECTED warning\n{}", r.dump())
        } else if written {
            format!(
                "completed after {waited} {}",
                if waited == 1 { "retry" } else { "retries" }
            )
        } else if r.stderr.contains(&format!("warning: GitHub {call}")) {
            format!("failed safe after {waited} retries: deploy done, a warning")
        } else {
            format!("FAILED: neither written nor said\n{}", r.dump())
        };
        assert!(
            said.starts_with("completed") || said.starts_with("failed safe"),
            "{call} × {column}: {said}"
        );
        Some(said)
    });
    let mut table = format!(
        "| call | {} |\n|---|{}\n",
        classes.iter().map(|c| c.0).collect::<Vec<_>>().join(" | "),
        "---|".repeat(classes.len())
    );
    let mut injected = 0;
    for ((call, ..), row) in calls.iter().zip(&outcomes) {
        let _ = std::fmt::Write::write_fmt(&mut table, format_args!("| {call} |"));
        for cell in row {
            injected += usize::from(cell.is_some());
            let words = cell
                .as_deref()
                .unwrap_or("waits 60 s, then 120 s (unit table)");
            let _ = std::fmt::Write::write_fmt(&mut table, format_args!(" {words} |"));
        }
        table.push('\n');
    }
    let _ = std::fmt::Write::write_fmt(
        &mut table,
        format_args!(
            "\n{injected} faults injected through the real binary, {injected} completed or failed safe (`cargo test --test github fault_matrix_github`).\n"
        ),
    );
    common::doc_section(
        "fault-matrix github",
        &table,
        "cargo test --test github fault_matrix_github",
    );
}
