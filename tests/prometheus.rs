//! The Prometheus provider against a real Prometheus scraping a test exporter whose traffic
//! each test sets: values, rates over the check window (a query template), no data, NaN,
//! errors in Prometheus' own words, and the verdict the analysis draws from them.

mod common;

use std::time::{Duration, SystemTime};

use common::prometheus::{Prom, Traffic};
use movieverse_deploy::config::NoDataPolicy;
use movieverse_deploy::metrics::prometheus::Prometheus;
use movieverse_deploy::metrics::{QueryVars, promql_window, render_query};
use movieverse_deploy::rollout::analysis::{MetricSpec, Relative, Sample, Verdict, judge};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn vars(window: u64) -> QueryVars {
    QueryVars {
        app: "movieverse".into(),
        env: "production-k8s".into(),
        namespace: "movieverse".into(),
        canary_service: "movieverse-canary".into(),
        stable_service: "movieverse".into(),
        window: promql_window(window),
        window_seconds: window,
        ..QueryVars::example()
    }
}

const ERROR_RATE: &str = "100 * sum(rate(http_requests_total{service=\"{{ canary_service }}\",code=~\"5..\"}[{{ window }}])) / sum(rate(http_requests_total{service=\"{{ canary_service }}\"}[{{ window }}]))";
const SUCCESS_RATE: &str = "100 * sum(rate(http_requests_total{service=\"{{ canary_service }}\",code!~\"5..\"}[{{ window }}])) / sum(rate(http_requests_total{service=\"{{ canary_service }}\"}[{{ window }}]))";
const P99: &str = "max(http_request_p99_ms{service=\"{{ canary_service }}\"})";
const REQUESTS: &str =
    "sum(increase(http_requests_total{service=\"{{ canary_service }}\"}[{{ window }}]))";

fn specs() -> Vec<MetricSpec> {
    vec![
        MetricSpec {
            name: "success-rate".into(),
            min: Some(99.0),
            max: None,
            relative: Relative::default(),
            on_no_data: NoDataPolicy::Fail,
        },
        MetricSpec {
            name: "p99-latency-ms".into(),
            min: None,
            max: Some(500.0),
            relative: Relative::default(),
            on_no_data: NoDataPolicy::Fail,
        },
        MetricSpec {
            name: "error-rate".into(),
            min: None,
            max: Some(1.0),
            relative: Relative::default(),
            on_no_data: NoDataPolicy::Fail,
        },
    ]
}

async fn check(provider: &Prometheus, window: u64) -> (Verdict, Vec<Sample>) {
    let at = now();
    let mut samples = Vec::new();
    for q in [SUCCESS_RATE, P99, ERROR_RATE] {
        let promql = render_query(q, &vars(window)).unwrap();
        samples.push(provider.query(&promql, at).await);
    }
    let requests = provider
        .query(&render_query(REQUESTS, &vars(window)).unwrap(), at)
        .await;
    let readings: Vec<_> = samples.iter().cloned().map(Into::into).collect();
    let (verdict, _) = judge(&specs(), &readings, Some(&requests), 10);
    (verdict, samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_passes_and_five_percent_errors_fail_with_the_values() {
    let prom = Prom::start();
    let provider = Prometheus::new(&prom.url, Duration::from_secs(5));
    provider.ready().await.expect("ready");

    prom.set_traffic(
        "movieverse-canary",
        Traffic {
            ok_per_sec: 200.0,
            errors_per_sec: 0.0,
            p99_ms: 120.0,
        },
    );
    // Two scrapes at least: a rate needs two samples in the window.
    prom.wait_scrapes("http_requests_total", SystemTime::now(), 2);
    let (verdict, samples) = check(&provider, 5).await;
    assert_eq!(verdict, Verdict::Pass, "{samples:?}");

    prom.set_traffic(
        "movieverse-canary",
        Traffic {
            ok_per_sec: 190.0,
            errors_per_sec: 10.0,
            p99_ms: 120.0,
        },
    );
    // The window (5 s) holds only the new traffic once it has passed.
    prom.wait_scrapes(
        "http_requests_total",
        SystemTime::now() + Duration::from_secs(5),
        1,
    );
    let (verdict, samples) = check(&provider, 5).await;
    let Verdict::Fail(reasons) = &verdict else {
        panic!("{verdict:?} {samples:?}")
    };
    let Sample::Value(errors) = samples[2] else {
        panic!("{samples:?}")
    };
    assert!((errors - 5.0).abs() < 1.0, "about 5 % errors: {errors}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("error-rate = ") && r.ends_with("(bound <= 1)"))
            && reasons
                .iter()
                .any(|r| r.starts_with("success-rate = ") && r.ends_with("(bound >= 99)")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_nan_errors_and_several_series_are_told_apart() {
    let prom = Prom::start();
    let provider = Prometheus::new(&prom.url, Duration::from_secs(5));
    prom.set_gauge("canary_up", 1.0);
    prom.set_traffic(
        "idle",
        Traffic {
            ok_per_sec: 0.0,
            errors_per_sec: 0.0,
            p99_ms: 0.0,
        },
    );
    prom.set_traffic(
        "busy",
        Traffic {
            ok_per_sec: 5.0,
            errors_per_sec: 0.0,
            p99_ms: 0.0,
        },
    );
    prom.wait_scrapes("http_requests_total", SystemTime::now(), 2);
    let at = now();
    assert_eq!(provider.query("canary_up", at).await, Sample::Value(1.0));
    // No such series: no data.
    assert_eq!(
        provider.query("sum(no_such_metric)", at).await,
        Sample::NoData
    );
    assert_eq!(provider.query("no_such_metric", at).await, Sample::NoData);
    // 0 / 0 is NaN: no data (a canary with no traffic).
    let idle = "sum(rate(http_requests_total{service=\"idle\",code=\"500\"}[5s])) / sum(rate(http_requests_total{service=\"idle\"}[5s]))";
    assert_eq!(provider.query(idle, at).await, Sample::NoData);
    // A syntax error, in Prometheus' words.
    let Sample::Error(e) = provider.query("sum(rate(x[5s]", at).await else {
        panic!()
    };
    assert!(e.starts_with("bad_data: "), "{e}");
    // Several series: asked to aggregate.
    let Sample::Error(e) = provider
        .query("http_requests_total{code=\"200\"}", at)
        .await
    else {
        panic!()
    };
    assert!(
        e.contains("returned 2 series") && e.contains("aggregate"),
        "{e}"
    );
    // Nobody there.
    let port = common::ports::free_port();
    let gone = Prometheus::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2));
    let Sample::Error(e) = gone.query("up", at).await else {
        panic!()
    };
    assert!(
        e.starts_with(&format!(
            "cannot reach Prometheus at http://127.0.0.1:{port}"
        )),
        "{e}"
    );
    assert!(gone.ready().await.is_err());
}
