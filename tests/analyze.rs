//! `analyze` with the real binary, on a recorded window of each provider: a pass and a fail.
//! - Prometheus: the real server scraping the test exporter, a healthy window then a
//!   failing one;
//! - Datadog: the fake with the documented shapes (keys from the environment, a planted key
//!   found in no output, a refused key is exit 3, a missing one names its variable);
//! - `CloudWatch`: moto, with the ALB series put for a past window.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::datadog::{API_KEY, APP_KEY, Answer, Fake};
use common::prometheus::{Prom, Traffic};
use common::{Run, bin, canary_config as config};

fn analyze(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Run {
    let mut cmd = bin();
    cmd.current_dir(dir)
        .env_remove("DD_API_KEY")
        .env_remove("DD_APP_KEY")
        .args(["analyze", "--env", "production-k8s"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(&cmd.output().unwrap())
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

const DD_METRICS: &str = "            - name: success-rate
              provider: datadog
              query: \"100 * sum:app.ok{service:{{ canary_service }}} / sum:app.all{service:{{ canary_service }}}\"
              min: 99
            - name: p99-latency-ms
              provider: datadog
              query: \"p99:app.latency{service:{{ canary_service }}}\"
              stable_query: \"p99:app.latency{service:{{ stable_service }}}\"
              max: 1000
              max_ratio: 1.2
";
const DD_REQUESTS: &str = "          min_requests: 100
          requests:
            provider: datadog
            query: \"sum:app.all{service:{{ canary_service }}}.rollup(sum, {{ window_seconds }})\"
";
const SUCCESS: &str =
    "100 * sum:app.ok{service:movieverse-canary} / sum:app.all{service:movieverse-canary}";
const P99: &str = "p99:app.latency{service:movieverse-canary}";
const P99_STABLE: &str = "p99:app.latency{service:movieverse}";

fn datadog_setup(fake: &Fake) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        "1m",
        2,
        DD_METRICS,
        DD_REQUESTS,
        &format!(
            "  datadog:\n    site: datadoghq.eu\n    address: {}\n",
            fake.url
        ),
    );
    fake.answer(SUCCESS, Answer::Points(vec![Some(99.2), Some(99.8), None]));
    fake.answer(P99_STABLE, Answer::Points(vec![Some(200.0)]));
    // The request count over any window (it grows after a failed check: the window runs
    // from the last weight change).
    fake.answer_all(Answer::Points(vec![Some(1500.0)]));
    dir
}

fn keys() -> Vec<(&'static str, String)> {
    vec![
        ("DD_API_KEY", API_KEY.to_owned()),
        ("DD_APP_KEY", APP_KEY.to_owned()),
    ]
}

const WINDOW: [&str; 4] = [
    "--from",
    "2026-11-30T10:00:00Z",
    "--to",
    "2026-11-30T10:30:00Z",
];

#[test]
fn datadog_a_window_that_passes_and_one_that_fails() {
    let fake = Fake::start();
    let dir = datadog_setup(&fake);
    fake.answer(P99, Answer::Points(vec![Some(230.0)]));
    let pass = analyze(dir.path(), &keys(), &WINDOW);
    assert_eq!(pass.code, 0, "{}", pass.dump());
    insta::assert_snapshot!("datadog_pass", pass.stdout);

    // The canary's p99 goes above 1.2 × stable's: two failed checks reach the threshold.
    fake.answer(P99, Answer::Points(vec![Some(310.0)]));
    let fail = analyze(dir.path(), &keys(), &WINDOW);
    assert_eq!(fail.code, 1, "{}", fail.dump());
    insta::assert_snapshot!("datadog_fail", fail.stdout);
    assert!(
        fail.stderr
            .contains("the canary would have been rolled back"),
        "{}",
        fail.dump()
    );

    let json = analyze(
        dir.path(),
        &keys(),
        &[WINDOW.as_slice(), &["--output", "json"]].concat(),
    );
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["ending"]["result"], "rolled-back", "{}", json.stdout);
    assert_eq!(v["queries_per_check"], 4);
    assert_eq!(v["checks"][0]["metrics"][1]["stable"], 200.0);
    assert_eq!(v["checks"][0]["requests"], 1500.0);

    // Every query went with the window in seconds, and the keys in their headers only.
    for run in [&pass, &fail, &json] {
        for text in [&run.stdout, &run.stderr] {
            assert!(
                !text.contains(API_KEY) && !text.contains(APP_KEY),
                "a Datadog key in the output:\n{}",
                run.dump()
            );
        }
    }
}

#[test]
fn datadog_keys_refused_or_missing_end_before_any_check() {
    let fake = Fake::start();
    let dir = datadog_setup(&fake);
    let wrong = analyze(
        dir.path(),
        &[
            ("DD_API_KEY", "dd-api-planted-wrong-key-0000".to_owned()),
            ("DD_APP_KEY", APP_KEY.to_owned()),
        ],
        &WINDOW,
    );
    assert_eq!(wrong.code, 3, "{}", wrong.dump());
    assert!(
        wrong.stderr.contains("Datadog refused the keys (HTTP 403)"),
        "{}",
        wrong.dump()
    );
    for text in [&wrong.stdout, &wrong.stderr] {
        assert!(
            !text.contains("planted-wrong-key") && !text.contains(APP_KEY),
            "{}",
            wrong.dump()
        );
    }
    let missing = analyze(dir.path(), &[("DD_API_KEY", API_KEY.to_owned())], &WINDOW);
    assert_eq!(missing.code, 3, "{}", missing.dump());
    assert!(
        missing
            .stderr
            .contains("the Datadog key variable `DD_APP_KEY` is not set"),
        "{}",
        missing.dump()
    );
    assert!(!missing.stderr.contains(API_KEY), "{}", missing.dump());
    // No query ran: the keys are checked first.
    assert!(fake.queries().is_empty(), "{:?}", fake.queries());
}

#[test]
fn prometheus_a_recorded_window_that_passes_and_one_that_fails() {
    let prom = Prom::start();
    let healthy = Traffic {
        ok_per_sec: 200.0,
        errors_per_sec: 0.0,
        p99_ms: 120.0,
    };
    let rate = |codes: &str| {
        format!(
            "100 * sum(rate(http_requests_total{{service=\\\"{{{{ canary_service }}}}\\\"{codes}}}[{{{{ window }}}}])) / sum(rate(http_requests_total{{service=\\\"{{{{ canary_service }}}}\\\"}}[{{{{ window }}}}]))"
        )
    };
    let metrics = format!(
        "            - name: success-rate\n              provider: prometheus\n              query: \"{}\"\n              min: 99\n            - name: p99-latency-ms\n              provider: prometheus\n              query: \"max(http_request_p99_ms{{service=\\\"{{{{ canary_service }}}}\\\"}})\"\n              max: 500\n",
        rate(",code!~\\\"5..\\\""),
    );
    let requests = "          min_requests: 10\n          requests:\n            provider: prometheus\n            query: \"sum(increase(http_requests_total{service=\\\"{{ canary_service }}\\\"}[{{ window }}]))\"\n";
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        "3s",
        1,
        &metrics,
        requests,
        &format!("  prometheus:\n    address: {}\n", prom.url),
    );
    // A healthy window of 8 s, then a failing one: 20 % server errors, p99 at 900 ms.
    prom.set_traffic("movieverse-canary", healthy);
    let start = SystemTime::now();
    prom.wait_scrapes("http_requests_total", start, 2);
    let a = SystemTime::now();
    std::thread::sleep(Duration::from_secs(8));
    let b = SystemTime::now();
    prom.set_traffic(
        "movieverse-canary",
        Traffic {
            ok_per_sec: 160.0,
            errors_per_sec: 40.0,
            p99_ms: 900.0,
        },
    );
    prom.wait_scrapes("http_requests_total", SystemTime::now(), 2);
    let c = SystemTime::now();
    std::thread::sleep(Duration::from_secs(7));
    prom.wait_scrapes("http_requests_total", SystemTime::now(), 1);
    let d = SystemTime::now();

    let pass = analyze(
        dir.path(),
        &[],
        &["--from", &rfc3339(a), "--to", &rfc3339(b)],
    );
    assert_eq!(pass.code, 0, "{}", pass.dump());
    assert!(
        pass.stdout
            .contains("result: this canary would have been promoted"),
        "{}",
        pass.dump()
    );
    let fail = analyze(
        dir.path(),
        &[],
        &["--from", &rfc3339(c), "--to", &rfc3339(d)],
    );
    assert_eq!(fail.code, 1, "{}", fail.dump());
    assert!(
        fail.stdout
            .contains("result: this canary would have been rolled back")
            && fail.stdout.contains("success-rate = 80")
            && fail.stdout.contains("p99-latency-ms = 900 (bound <= 500)"),
        "{}",
        fail.dump()
    );
}

#[test]
fn cloudwatch_a_recorded_window_that_passes_and_one_that_fails() {
    let moto = common::moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let series = |metric: &str, stat: &str, tg: &str| {
        format!(
            "{{namespace: AWS/ApplicationELB, metric: {metric}, stat: {stat}, dimensions: {{TargetGroup: \"targetgroup/{tg}/0123456789abcdef\", LoadBalancer: app/movieverse/0123456789abcdef}}}}"
        )
    };
    let metrics = format!(
        "            - name: latency-s\n              provider: cloudwatch\n              query: canary\n              stable_query: stable\n              series:\n                canary: {}\n                stable: {}\n              max_ratio: 1.5\n",
        series("TargetResponseTime", "Average", "{{ app }}-canary"),
        series("TargetResponseTime", "Average", "{{ app }}-stable"),
    );
    let requests = format!(
        "          min_requests: 100\n          requests:\n            provider: cloudwatch\n            query: requests\n            series:\n              requests: {}\n",
        series("RequestCount", "Sum", "{{ app }}-canary")
    );
    config(
        dir.path(),
        "1m",
        2,
        &metrics,
        &requests,
        "  cloudwatch: {}\n",
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Two recorded windows of three minutes, minute-aligned: canary latency 0.2 s against
    // stable's 0.18, then 0.5 s against 0.18.
    let first = (now / 60 - 30) * 60;
    let second = first + 600;
    let mut points = Vec::new();
    for (start, canary) in [(first, 0.2), (second, 0.5)] {
        for m in 0..3 {
            let at = start + 60 * m + 30;
            let tg = |name: &str| format!("targetgroup/movieverse-{name}/0123456789abcdef");
            points.push(serde_json::json!(["RequestCount", tg("canary"), at, 400.0]));
            points.push(serde_json::json!([
                "TargetResponseTime",
                tg("canary"),
                at,
                canary
            ]));
            points.push(serde_json::json!([
                "TargetResponseTime",
                tg("stable"),
                at,
                0.18
            ]));
        }
    }
    let out = moto.world(&["put-metrics", &serde_json::Value::from(points).to_string()]);
    assert_eq!(out.trim(), "ok");
    let at = |t: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(t));
    let env = common::aws_env(&moto.endpoint);
    let env: Vec<(&str, String)> = env.into_iter().collect();
    let pass = analyze(
        dir.path(),
        &env,
        &["--from", &at(first), "--to", &at(first + 180)],
    );
    assert_eq!(pass.code, 0, "{}", pass.dump());
    assert!(
        pass.stdout.contains("would have been promoted") && pass.stdout.contains("400 requests"),
        "{}",
        pass.dump()
    );
    let fail = analyze(
        dir.path(),
        &env,
        &["--from", &at(second), "--to", &at(second + 180)],
    );
    assert_eq!(fail.code, 1, "{}", fail.dump());
    assert!(
        fail.stdout.contains("would have been rolled back")
            && fail
                .stdout
                .contains("latency-s = 0.5 (bound <= 1.5 × stable (stable 0.18 → 0.27))"),
        "{}",
        fail.dump()
    );
}
