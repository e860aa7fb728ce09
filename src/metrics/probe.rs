//! Checks that are not metrics (an edge: HTTP): HTTP checks against a URL, and webhooks.
//! Both answer a [`ProbeResult`] that the analysis counts as a metric's failed check.
//!
//! - An HTTP check is `GET url`, `count` times in a row; every answer must have the status,
//!   contain the body text and come within the latency bound. Each failure says what was
//!   received (status, latency, the body's start).
//! - A webhook is a JSON `POST` of the rollout's facts, signed with HMAC-SHA256 of the body
//!   (`X-Movieverse-Signature: sha256=<hex>`) when it has a secret; a 2xx answer passes, and
//!   a failing answer's body is shown cut to a safe size, the secret blanked out.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hmac::{KeyInit as _, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};

use crate::config::{HttpCheck, Webhook};
use crate::rollout::analysis::{ProbeKind, ProbeResult};

/// The header that carries a webhook's signature.
pub const SIGNATURE_HEADER: &str = "X-Movieverse-Signature";

/// How much of an answer's body a message shows.
const BODY_SHOWN: usize = 200;

/// `sha256=<hex>`: HMAC-SHA256 of `body` with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut text = String::from("sha256=");
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    text
}

/// The start of a body, on one line, at most [`BODY_SHOWN`] characters, with `secret`
/// blanked out.
fn excerpt(body: &str, secret: Option<&str>) -> String {
    let mut text: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        text = text.replace(s, "***");
    }
    if text.chars().count() > BODY_SHOWN {
        format!("{}…", text.chars().take(BODY_SHOWN).collect::<String>())
    } else {
        text
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Runs one HTTP check against `url` (rendered).
pub async fn http_check(client: &reqwest::Client, check: &HttpCheck, url: &str) -> ProbeResult {
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    let count = check.count.max(1);
    for i in 1..=count {
        let started = Instant::now();
        let answer = client.get(url).timeout(check.timeout.0).send().await;
        let response = match answer {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!(
                    "request {i} of {count}: no answer from {url}: {}",
                    crate::platform::innermost(&e)
                ));
                continue;
            }
        };
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let took = started.elapsed();
        slowest = slowest.max(took);
        let mut wrong = Vec::new();
        if status != check.status {
            wrong.push(format!("HTTP {status} (expected {})", check.status));
        }
        if let Some(want) = &check.body
            && !body.contains(want.as_str())
        {
            wrong.push(format!("the body lacks {want:?}"));
        }
        if let Some(max) = check.max_latency
            && took > max.0
        {
            wrong.push(format!(
                "answered in {} ms (bound {} ms)",
                ms(took),
                ms(max.0)
            ));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "request {i} of {count}: {} in {} ms; body: {:?}",
                wrong.join(", "),
                ms(took),
                excerpt(&body, None)
            ));
        }
    }
    ProbeResult {
        name: check.name.clone(),
        kind: ProbeKind::Http,
        passed: failures.is_empty(),
        detail: if failures.is_empty() {
            format!(
                "{count}/{count} answered {} within {} ms",
                check.status,
                ms(slowest)
            )
        } else {
            failures.join("; ")
        },
    }
}

/// Calls one webhook with `facts` (the JSON body).
pub async fn webhook(
    client: &reqwest::Client,
    hook: &Webhook,
    secret: Option<&SecretString>,
    facts: &serde_json::Value,
) -> ProbeResult {
    let body = serde_json::to_vec(facts).expect("the facts serialize");
    let mut request = client
        .post(&hook.url)
        .timeout(hook.timeout.0)
        .header("Content-Type", "application/json")
        .header(
            "User-Agent",
            concat!("movieverse-deploy/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(s) = secret {
        request = request.header(
            SIGNATURE_HEADER,
            signature(s.expose_secret().as_bytes(), &body),
        );
    }
    let started = Instant::now();
    let result = |passed: bool, detail: String| ProbeResult {
        name: hook.name.clone(),
        kind: ProbeKind::Webhook,
        passed,
        detail,
    };
    match request.body(body).send().await {
        Err(e) => result(
            false,
            format!(
                "no answer from {} within {}: {}",
                hook.url,
                crate::plan::fmt_secs(hook.timeout.as_secs()),
                crate::platform::innermost(&e)
            ),
        ),
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            let took = ms(started.elapsed());
            if status.is_success() {
                result(true, format!("HTTP {} in {took} ms", status.as_u16()))
            } else {
                result(
                    false,
                    format!(
                        "HTTP {} in {took} ms; body: {:?}",
                        status.as_u16(),
                        excerpt(&text, secret.map(secrecy::ExposeSecret::expose_secret))
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2.
    #[test]
    fn hmac_sha256_known_answer() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn bodies_are_cut_and_the_secret_blanked() {
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long, None).chars().count(), BODY_SHOWN + 1);
        assert_eq!(
            excerpt("bad signature for\n  key s3cr3t", Some("s3cr3t")),
            "bad signature for key ***"
        );
    }
}
