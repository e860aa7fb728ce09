//! The analysis' providers side by side, one check at a time through the same `Measurer` a
//! rollout uses: queries per check, and the time a check adds (median and worst), on
//! - Prometheus: the real server (Debian's) scraping the test exporter;
//! - Datadog: the fake with the documented shapes (tests/common/datadog.rs), on loopback;
//! - `CloudWatch`: moto, with the ALB series put for the window.
//!
//! Each analysis has the same shape: a success rate, a p99 with a bound relative to stable
//! (so a stable query too) and the request count for `min_requests`. Then a Datadog 429
//! storm: the calls made, and the shortest gap between a 429 and the next call against the
//! reset it announced.
//!
//! Run: `cargo bench --bench providers` (or scripts/bench).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime};

use common::datadog::{API_KEY, APP_KEY, Answer, Fake};
use common::prometheus::{Prom, Traffic};
use movieverse_deploy::config::HookPoint;
use movieverse_deploy::metrics::{Facts, Measurer, QueryVars};

const ROUNDS: usize = 30;

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn facts() -> Facts {
    Facts {
        app: "movieverse".into(),
        environment: "production-k8s".into(),
        revision: "bench".into(),
        phase: HookPoint::Step,
        weight: 10,
        window: None,
    }
}

async fn measurer(dir: &std::path::Path) -> (Measurer, QueryVars) {
    let loaded =
        movieverse_deploy::config::load(&dir.join("deploy.yml")).expect("the config loads");
    let movieverse_deploy::config::Strategy::Canary(c) =
        &loaded.config.environments["production-k8s"].strategy
    else {
        panic!("a canary")
    };
    let m = Measurer::connect(&loaded.config, &c.analysis)
        .await
        .expect("the providers connect");
    let vars = QueryVars::for_environment(&loaded.config, "production-k8s", 60);
    (m, vars)
}

/// Times `ROUNDS` checks over the last minute: (queries per check, median ms, worst ms).
async fn checks(m: &Measurer, vars: &QueryVars) -> (usize, f64, f64) {
    let mut took = Vec::new();
    for _ in 0..ROUNDS {
        let to = now_ms();
        let start = Instant::now();
        let out = m
            .measure(
                vars,
                to - 60_000,
                to,
                tokio::time::Instant::now() + Duration::from_secs(30),
                &facts(),
                false,
            )
            .await;
        took.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(
            out.readings.iter().all(|r| !matches!(
                r.canary,
                movieverse_deploy::rollout::analysis::Sample::Error(_)
            )),
            "{out:?}"
        );
    }
    took.sort_by(f64::total_cmp);
    (m.queries_per_check(), took[ROUNDS / 2], took[ROUNDS - 1])
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The keys and the AWS endpoint come from the environment, as in a workflow: the bench
    // runs itself again with them set.
    if std::env::var_os("DD_API_KEY").is_none() {
        let moto = common::moto::Moto::start();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(std::env::args().skip(1))
            .env("DD_API_KEY", API_KEY)
            .env("DD_APP_KEY", APP_KEY)
            .env("MVD_BENCH_MOTO", &moto.endpoint)
            .envs(common::aws_env(&moto.endpoint))
            .status()
            .unwrap();
        std::process::exit(status.code().unwrap_or(1));
    }
    let moto = std::env::var("MVD_BENCH_MOTO").unwrap();
    println!(
        "method: {ROUNDS} checks per provider through the rollout's Measurer (queries run at once), each over the last minute; wall time per check; all servers on loopback"
    );
    println!("analysis: success rate, p99 (max 1.2 × stable: a stable query too), request count");

    // Prometheus.
    let prom = Prom::start();
    prom.set_traffic(
        "movieverse-canary",
        Traffic {
            ok_per_sec: 995.0,
            errors_per_sec: 5.0,
            p99_ms: 180.0,
        },
    );
    prom.set_traffic(
        "movieverse",
        Traffic {
            ok_per_sec: 995.0,
            errors_per_sec: 5.0,
            p99_ms: 170.0,
        },
    );
    prom.wait_scrapes("http_requests_total", SystemTime::now(), 2);
    let dir = tempfile::tempdir().unwrap();
    common::canary_config(
        dir.path(),
        "1m",
        2,
        "            - name: success-rate\n              provider: prometheus\n              query: \"100 * sum(rate(http_requests_total{service=\\\"{{ canary_service }}\\\",code!~\\\"5..\\\"}[{{ window }}])) / sum(rate(http_requests_total{service=\\\"{{ canary_service }}\\\"}[{{ window }}]))\"\n              min: 99\n            - name: p99\n              provider: prometheus\n              query: \"max(http_request_p99_ms{service=\\\"{{ canary_service }}\\\"})\"\n              stable_query: \"max(http_request_p99_ms{service=\\\"{{ stable_service }}\\\"})\"\n              max_ratio: 1.2\n",
        "          requests:\n            provider: prometheus\n            query: \"sum(increase(http_requests_total{service=\\\"{{ canary_service }}\\\"}[{{ window }}]))\"\n",
        &format!("  prometheus:\n    address: {}\n", prom.url),
    );
    let (m, vars) = measurer(dir.path()).await;
    let (q, median, worst) = checks(&m, &vars).await;
    println!(
        "prometheus: {q} queries per check; time per check: median {median:.1} ms, worst {worst:.1} ms"
    );

    // Datadog.
    let fake = Fake::start();
    fake.answer_all(Answer::Points(vec![Some(99.9), Some(180.0)]));
    let dir = tempfile::tempdir().unwrap();
    common::canary_config(
        dir.path(),
        "1m",
        2,
        "            - name: success-rate\n              provider: datadog\n              query: \"100 - 100 * sum:app.errors{service:{{ canary_service }}}.as_count() / sum:app.hits{service:{{ canary_service }}}.as_count()\"\n              min: 99\n            - name: p99\n              provider: datadog\n              query: \"p99:app.latency{service:{{ canary_service }}}\"\n              stable_query: \"p99:app.latency{service:{{ stable_service }}}\"\n              max_ratio: 1.2\n",
        "          requests:\n            provider: datadog\n            query: \"sum:app.hits{service:{{ canary_service }}}.as_count().rollup(sum, {{ window_seconds }})\"\n",
        &format!("  datadog:\n    address: {}\n", fake.url),
    );
    let (m, vars) = measurer(dir.path()).await;
    let before = fake.queries().len();
    let (q, median, worst) = checks(&m, &vars).await;
    let calls = fake.queries().len() - before;
    println!(
        "datadog: {q} queries per check ({calls} /api/v1/query calls seen by the fake in {ROUNDS} checks); time per check: median {median:.1} ms, worst {worst:.1} ms"
    );

    // CloudWatch.
    let now = now_ms() / 1000;
    let mut points = Vec::new();
    for back in [90, 30] {
        let tg = |name: &str| format!("targetgroup/movieverse-{name}/0123456789abcdef");
        points.push(serde_json::json!([
            "RequestCount",
            tg("canary"),
            now - back,
            500.0
        ]));
        points.push(serde_json::json!([
            "HTTPCode_Target_2XX_Count",
            tg("canary"),
            now - back,
            499.0
        ]));
        points.push(serde_json::json!([
            "TargetResponseTime",
            tg("canary"),
            now - back,
            0.18
        ]));
        points.push(serde_json::json!([
            "TargetResponseTime",
            tg("stable"),
            now - back,
            0.17
        ]));
    }
    common::moto::world_at(
        &moto,
        &["put-metrics", &serde_json::Value::from(points).to_string()],
    );
    let series = |metric: &str, stat: &str, tg: &str| {
        format!(
            "{{namespace: AWS/ApplicationELB, metric: {metric}, stat: {stat}, dimensions: {{TargetGroup: \"targetgroup/{tg}/0123456789abcdef\", LoadBalancer: app/movieverse/0123456789abcdef}}}}"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    common::canary_config(
        dir.path(),
        "1m",
        2,
        &format!(
            "            - name: ok-count\n              provider: cloudwatch\n              query: ok\n              series:\n                ok: {}\n              min: 1\n            - name: latency-s\n              provider: cloudwatch\n              query: canary\n              stable_query: stable\n              series:\n                canary: {}\n                stable: {}\n              max_ratio: 1.2\n",
            series("HTTPCode_Target_2XX_Count", "Sum", "{{ app }}-canary"),
            series("TargetResponseTime", "Average", "{{ app }}-canary"),
            series("TargetResponseTime", "Average", "{{ app }}-stable"),
        ),
        &format!(
            "          requests:\n            provider: cloudwatch\n            query: requests\n            series:\n              requests: {}\n",
            series("RequestCount", "Sum", "{{ app }}-canary")
        ),
        "  cloudwatch: {}\n",
    );
    let (m, vars) = measurer(dir.path()).await;
    let (q, median, worst) = checks(&m, &vars).await;
    println!(
        "cloudwatch (moto): {q} GetMetricData calls per check; time per check: median {median:.1} ms, worst {worst:.1} ms"
    );

    // A Datadog 429 storm: five 429s announcing a reset in 1 s, then the answer.
    let storm = Fake::start();
    storm.answer_all(Answer::RateLimited {
        reset: 1,
        times: 5,
        then: Box::new(Answer::Points(vec![Some(99.9)])),
    });
    let dd = movieverse_deploy::metrics::datadog::Datadog::new(
        &storm.url,
        secrecy::SecretString::from(API_KEY),
        secrecy::SecretString::from(APP_KEY),
        Duration::from_secs(5),
    );
    let start = Instant::now();
    let got = dd
        .query(
            "p99:app.latency{*}",
            1_764_500_000,
            1_764_500_060,
            tokio::time::Instant::now() + Duration::from_secs(30),
        )
        .await;
    let took = start.elapsed();
    let seen = storm.queries();
    let gaps: Vec<f64> = seen
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    let early = gaps.iter().filter(|g| **g < 1.0).count();
    println!(
        "datadog 429 storm (5 × 429 with X-RateLimit-Reset: 1, then 200): {} calls, {early} before the announced reset; shortest gap after a 429 {:.2} s; answer {:?} after {:.1} s",
        seen.len(),
        gaps.iter().copied().fold(f64::INFINITY, f64::min),
        got.map_err(|e| e.message),
        took.as_secs_f64()
    );
}
