//! Canary analysis against a real Prometheus (Debian's, scraping a test exporter every
//! second): the time from the end of an analysis interval to the engine's decision.
//!
//! The engine wakes at the interval's end (`wake_at`), so that time is what the check itself
//! costs: the request-count query and one query per metric (the example's three: success
//! rate, p99 latency, error rate, as rates over the window), then the judgement. Each round
//! waits for a fresh scrape, then times the check; the data's age at the decision is at most
//! one scrape interval plus that time. Target: the decision well under 1 s after the scrape.
//!
//! Run: `cargo bench --bench analysis` (or scripts/bench).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime};

use common::prometheus::{Prom, Traffic};
use movieverse_deploy::config::NoDataPolicy;
use movieverse_deploy::metrics::prometheus::Prometheus;
use movieverse_deploy::metrics::{QueryVars, promql_window, render_query};
use movieverse_deploy::rollout::analysis::{MetricSpec, Relative, judge};

const QUERIES: [&str; 3] = [
    "100 * sum(rate(http_requests_total{service=\"{{ canary_service }}\",code!~\"5..\"}[{{ window }}])) / sum(rate(http_requests_total{service=\"{{ canary_service }}\"}[{{ window }}]))",
    "max(http_request_p99_ms{service=\"{{ canary_service }}\"})",
    "100 * sum(rate(http_requests_total{service=\"{{ canary_service }}\",code=~\"5..\"}[{{ window }}])) / sum(rate(http_requests_total{service=\"{{ canary_service }}\"}[{{ window }}]))",
];
const REQUESTS: &str =
    "sum(increase(http_requests_total{service=\"{{ canary_service }}\"}[{{ window }}]))";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let prom = Prom::start();
    prom.set_traffic(
        "movieverse-canary",
        Traffic {
            ok_per_sec: 995.0,
            errors_per_sec: 5.0,
            p99_ms: 180.0,
        },
    );
    prom.wait_scrapes("http_requests_total", SystemTime::now(), 2);
    let provider = Prometheus::new(&prom.url, Duration::from_secs(5));
    let vars = QueryVars {
        app: "movieverse".into(),
        env: "production-k8s".into(),
        namespace: "movieverse".into(),
        canary_service: "movieverse-canary".into(),
        stable_service: "movieverse".into(),
        window: promql_window(10),
        window_seconds: 10,
        ..QueryVars::example()
    };
    let specs: Vec<MetricSpec> = [
        ("success-rate", Some(99.0), None),
        ("p99-latency-ms", None, Some(500.0)),
        ("error-rate", None, Some(1.0)),
    ]
    .into_iter()
    .map(|(n, min, max)| MetricSpec {
        name: n.into(),
        min,
        max,
        relative: Relative::default(),
        on_no_data: NoDataPolicy::Fail,
    })
    .collect();
    let rounds = 30;
    let mut check = Vec::new();
    let mut age = Vec::new();
    let mut last = prom.newest("http_requests_total");
    for _ in 0..rounds {
        // The next scrape lands: the interval "ends" now.
        while prom.newest("http_requests_total") <= last {
            std::thread::sleep(Duration::from_millis(20));
        }
        last = prom.newest("http_requests_total");
        let start = Instant::now();
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let requests = provider
            .query(&render_query(REQUESTS, &vars).unwrap(), at)
            .await;
        let mut samples = Vec::new();
        for q in QUERIES {
            samples.push(provider.query(&render_query(q, &vars).unwrap(), at).await);
        }
        let readings: Vec<_> = samples.iter().cloned().map(Into::into).collect();
        let (verdict, _) = judge(&specs, &readings, Some(&requests), 100);
        let took = start.elapsed();
        assert!(
            matches!(verdict, movieverse_deploy::rollout::analysis::Verdict::Pass),
            "{verdict:?} {samples:?}"
        );
        check.push(took);
        age.push(Duration::from_secs_f64((at - last).max(0.0)) + took);
    }
    check.sort();
    age.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "method: real Prometheus 2.42 (Debian), 1 s scrape interval, test exporter; {rounds} rounds, each timed from a fresh scrape being queryable"
    );
    println!(
        "interval end -> decision (4 instant queries + judgement): median {:.1} ms, p90 {:.1} ms, max {:.1} ms (target: under 1 s)",
        ms(check[rounds / 2]),
        ms(check[rounds * 9 / 10]),
        ms(check[rounds - 1])
    );
    println!(
        "newest scrape -> decision: median {:.1} ms, max {:.1} ms (includes Prometheus making the scrape queryable, polled every 20 ms)",
        ms(age[rounds / 2]),
        ms(age[rounds - 1])
    );
}
