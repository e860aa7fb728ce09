//! The Datadog provider against a fake that follows the documented request and response
//! shapes (`tests/common/datadog.rs`): values, empty series, null points, several series,
//! a query Datadog cannot parse, 429 with its reset (no call before it), 403 and 5xx.

mod common;

use std::time::Duration;

use common::datadog::{API_KEY, APP_KEY, Answer, Fake};
use movieverse_deploy::metrics::ProviderErrorKind;
use movieverse_deploy::metrics::datadog::Datadog;
use movieverse_deploy::rollout::analysis::Sample;
use secrecy::SecretString;

fn client(fake: &Fake) -> Datadog {
    Datadog::new(
        &fake.url,
        SecretString::from(API_KEY),
        SecretString::from(APP_KEY),
        Duration::from_secs(5),
    )
}

fn later(secs: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(secs)
}

const FROM: u64 = 1_764_500_000;
const TO: u64 = FROM + 120;

#[tokio::test]
async fn values_no_data_and_query_errors() {
    let fake = Fake::start();
    let dd = client(&fake);
    let table: Vec<(&str, Answer, Result<Sample, ProviderErrorKind>)> = vec![
        (
            "a",
            Answer::Points(vec![Some(99.1), Some(99.7)]),
            Ok(Sample::Value(99.7)),
        ),
        // A partial last bucket is null: the last point with a value counts.
        (
            "b",
            Answer::Points(vec![Some(98.5), None]),
            Ok(Sample::Value(98.5)),
        ),
        ("c", Answer::Points(vec![None, None]), Ok(Sample::NoData)),
        ("d", Answer::Empty, Ok(Sample::NoData)),
        ("e", Answer::Many, Err(ProviderErrorKind::Query)),
        ("f", Answer::BadQuery, Err(ProviderErrorKind::Query)),
        ("g", Answer::Forbidden, Err(ProviderErrorKind::Auth)),
        (
            "h",
            Answer::Unavailable,
            // A 503 is asked again by `Providers::run`.
            Err(ProviderErrorKind::Transient),
        ),
    ];
    for (q, answer, want) in table {
        fake.answer(q, answer.clone());
        let got = dd.query(q, FROM, TO, later(5)).await.map_err(|e| e.kind);
        assert_eq!(got, want, "{answer:?}");
    }
    // The window went as seconds.
    let seen = fake.queries();
    assert!(
        seen.iter()
            .all(|s| s.status != 400 || s.query.as_deref() == Some("f"))
    );
}

#[tokio::test]
async fn the_keys_are_checked_and_never_in_a_message() {
    let fake = Fake::start();
    assert!(client(&fake).ready().await.is_ok());
    let wrong = Datadog::new(
        &fake.url,
        SecretString::from("not-the-key"),
        SecretString::from(APP_KEY),
        Duration::from_secs(5),
    );
    let e = wrong.ready().await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Auth);
    assert!(
        e.message.contains("Datadog refused the keys (HTTP 403)"),
        "{}",
        e.message
    );
    let e = wrong.query("a", FROM, TO, later(5)).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Auth);
    for text in [&e.message, &format!("{e:?}")] {
        assert!(
            !text.contains("not-the-key") && !text.contains(APP_KEY),
            "{text}"
        );
    }
}

/// A 429 storm: each answer says when the limit resets; the provider asks again no sooner,
/// and gets the value once the storm ends.
#[tokio::test]
async fn a_rate_limit_is_waited_out_until_its_reset() {
    let fake = Fake::start();
    fake.answer(
        "q",
        Answer::RateLimited {
            reset: 1,
            times: 3,
            then: Box::new(Answer::Points(vec![Some(42.0)])),
        },
    );
    let got = client(&fake).query("q", FROM, TO, later(30)).await;
    assert_eq!(got, Ok(Sample::Value(42.0)));
    let seen = fake.queries();
    assert_eq!(seen.len(), 4, "three 429s, then the answer");
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_secs(1),
            "a call came {gap:?} after a 429 that said 1 s"
        );
    }
}

#[tokio::test]
async fn a_reset_after_the_deadline_is_a_failure_without_a_second_call() {
    let fake = Fake::start();
    fake.answer(
        "q",
        Answer::RateLimited {
            reset: 60,
            times: 1,
            then: Box::new(Answer::Points(vec![Some(1.0)])),
        },
    );
    let e = client(&fake)
        .query("q", FROM, TO, later(5))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::RateLimited);
    assert!(e.message.contains("resets in 60 s"), "{}", e.message);
    assert_eq!(fake.queries().len(), 1);
}
