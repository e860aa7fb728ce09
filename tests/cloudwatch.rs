//! The `CloudWatch` provider: `Sum` and `Average` of ALB target-group series against moto
//! (data put with `PutMetricData`, read back by `GetMetricData` over the check's window),
//! and what moto cannot do, scripted at the SDK boundary: a p99 statistic (moto answers
//! 500 for percentiles) and metric math over several series.

mod common;

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types::{
    Dimension, MetricDataResult, MetricDatum, StandardUnit, StatusCode,
};
use aws_smithy_mocks::{mock, mock_client};
use aws_smithy_types::DateTime;
use movieverse_deploy::metrics::ProviderErrorKind;
use movieverse_deploy::metrics::cloudwatch::{CloudWatch, Series};
use movieverse_deploy::rollout::analysis::Sample;

const TG: &str = "targetgroup/movieverse-canary/0123456789abcdef";
const LB: &str = "app/movieverse/0123456789abcdef";

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
        .credentials_provider(Credentials::for_tests())
        .build();
    Client::from_conf(config)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn series(id: &str, metric: &str, stat: &str, tg: &str) -> Series {
    Series {
        id: id.into(),
        namespace: "AWS/ApplicationELB".into(),
        metric: metric.into(),
        stat: stat.into(),
        dimensions: vec![
            ("TargetGroup".into(), tg.into()),
            ("LoadBalancer".into(), LB.into()),
        ],
    }
}

async fn put(client: &Client, metric: &str, tg: &str, at: u64, value: f64, unit: StandardUnit) {
    client
        .put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(
            MetricDatum::builder()
                .metric_name(metric)
                .dimensions(Dimension::builder().name("TargetGroup").value(tg).build())
                .dimensions(Dimension::builder().name("LoadBalancer").value(LB).build())
                .timestamp(DateTime::from_secs(i64::try_from(at).unwrap()))
                .value(value)
                .unit(unit)
                .build(),
        )
        .send()
        .await
        .expect("PutMetricData on moto");
}

#[tokio::test]
async fn sum_and_average_over_the_window_on_moto() {
    let moto = common::moto::Moto::start();
    let cw = client(&moto.endpoint);
    let t = now();
    // Two minutes of canary traffic, and a point before the window that must not count.
    for (at, requests, latency) in [(t - 100, 400.0, 0.120), (t - 40, 600.0, 0.180)] {
        put(&cw, "RequestCount", TG, at, requests, StandardUnit::Count).await;
        put(
            &cw,
            "TargetResponseTime",
            TG,
            at,
            latency,
            StandardUnit::Seconds,
        )
        .await;
    }
    put(
        &cw,
        "RequestCount",
        TG,
        t - 900,
        5000.0,
        StandardUnit::Count,
    )
    .await;
    let provider = CloudWatch::new(cw.clone());
    let from = t - 110;
    let requests = [series("requests", "RequestCount", "Sum", TG)];
    assert_eq!(
        provider.query("requests", &requests, from, t).await,
        Ok(Sample::Value(1000.0))
    );
    let latency = [series("latency", "TargetResponseTime", "Average", TG)];
    match provider.query("latency", &latency, from, t).await {
        Ok(Sample::Value(v)) => assert!((v - 0.150).abs() < 1e-9, "{v}"),
        other => panic!("{other:?}"),
    }
    // Another target group has no data: no data, not 0.
    let other = [series(
        "requests",
        "RequestCount",
        "Sum",
        "targetgroup/movieverse-stable/fedcba9876543210",
    )];
    assert_eq!(
        provider.query("requests", &other, from, t).await,
        Ok(Sample::NoData)
    );
}

#[tokio::test]
async fn p99_and_metric_math_scripted_at_the_sdk_boundary() {
    let ts = DateTime::from_secs(1_800_000_000);
    let p99 = mock!(Client::get_metric_data)
        .match_requests(|r| {
            let q = r.metric_data_queries();
            q.len() == 1
                && q[0].id() == Some("p99")
                && q[0].return_data() == Some(true)
                && q[0].metric_stat().and_then(|s| s.stat()) == Some("p99")
                && q[0]
                    .metric_stat()
                    .and_then(aws_sdk_cloudwatch::types::MetricStat::period)
                    == Some(120)
        })
        .then_output(move || {
            GetMetricDataOutput::builder()
                .metric_data_results(
                    MetricDataResult::builder()
                        .id("p99")
                        .timestamps(ts)
                        .values(0.412)
                        .status_code(StatusCode::Complete)
                        .build(),
                )
                .build()
        });
    let math = mock!(Client::get_metric_data)
        .match_requests(|r| {
            let q = r.metric_data_queries();
            q.len() == 3
                && q[..2].iter().all(|s| s.return_data() == Some(false))
                && q[2].id() == Some("result")
                && q[2].expression() == Some("100 * FILL(errors, 0) / requests")
        })
        .then_output(move || {
            GetMetricDataOutput::builder()
                .metric_data_results(
                    MetricDataResult::builder()
                        .id("result")
                        .timestamps(ts)
                        .values(0.8)
                        .status_code(StatusCode::Complete)
                        .build(),
                )
                .build()
        });
    let refused = mock!(Client::get_metric_data)
        .match_requests(|r| {
            r.metric_data_queries()
                .iter()
                .any(|q| q.expression() == Some("100 * errors /"))
        })
        .then_error(|| {
            aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataError::InvalidNextToken(
                aws_sdk_cloudwatch::types::error::InvalidNextToken::builder()
                    .message("unused")
                    .build(),
            )
        });
    let client = mock_client!(
        aws_sdk_cloudwatch,
        aws_smithy_mocks::RuleMode::MatchAny,
        [&p99, &math, &refused]
    );
    let provider = CloudWatch::new(client);
    let from = 1_800_000_000 - 120;
    let to = 1_800_000_000;
    assert_eq!(
        provider
            .query(
                "p99",
                &[series("p99", "TargetResponseTime", "p99", TG)],
                from,
                to
            )
            .await,
        Ok(Sample::Value(0.412))
    );
    let both = [
        series("errors", "HTTPCode_Target_5XX_Count", "Sum", TG),
        series("requests", "RequestCount", "Sum", TG),
    ];
    assert_eq!(
        provider
            .query("100 * FILL(errors, 0) / requests", &both, from, to)
            .await,
        Ok(Sample::Value(0.8))
    );
    let e = provider
        .query("100 * errors /", &both, from, to)
        .await
        .unwrap_err();
    assert_ne!(e.kind, ProviderErrorKind::Auth, "{e:?}");
    assert_eq!(p99.num_calls() + math.num_calls() + refused.num_calls(), 3);
}
