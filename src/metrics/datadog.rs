//! Datadog through the metrics query API (`GET /api/v1/query`, `from`/`to` in seconds).
//!
//! - The keys come from the environment (`DD_API_KEY` / `DD_APP_KEY` by default), are held
//!   as secrets, masked in the Actions log, and never appear in a message.
//! - One series is a value: its last non-null point in the window. No series, or only null
//!   points, is no data. Several series is a query error (aggregate them).
//! - `429` waits until `X-RateLimit-Reset` (seconds) and asks again, but never past the
//!   caller's limit; `403`/`401` is an authentication error (the environment's, exit 3).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{ProviderError, ProviderErrorKind};
use crate::rollout::analysis::Sample;

pub struct Datadog {
    client: reqwest::Client,
    base: String,
    api_key: SecretString,
    app_key: SecretString,
}

/// How long to wait after a `429` without a readable `X-RateLimit-Reset`.
const DEFAULT_RESET: Duration = Duration::from_secs(10);

impl Datadog {
    /// Reads the keys from the environment variables named in deploy.yml and masks them.
    #[allow(clippy::similar_names)] // the API key and the application key
    pub fn from_env(
        base: &str,
        api_key_env: &str,
        app_key_env: &str,
        timeout: Duration,
    ) -> Result<Self, ProviderError> {
        let read = |name: &str| match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => {
                crate::report::mask(&v);
                Ok(SecretString::from(v))
            }
            _ => Err(ProviderError {
                kind: ProviderErrorKind::Auth,
                message: format!(
                    "the Datadog key variable `{name}` is not set; set it from a repository secret in the workflow (env: {name}: ${{{{ secrets.{name} }}}}), or name another variable in `providers.datadog`"
                ),
            }),
        };
        Ok(Self::new(
            base,
            read(api_key_env)?,
            read(app_key_env)?,
            timeout,
        ))
    }

    /// A client with these keys.
    #[allow(clippy::similar_names)]
    pub fn new(
        base: &str,
        api_key: SecretString,
        app_key: SecretString,
        timeout: Duration,
    ) -> Self {
        Self {
            client: super::http_client(timeout),
            base: base.trim_end_matches('/').to_owned(),
            api_key,
            app_key,
        }
    }

    fn request(&self, url: reqwest::Url) -> reqwest::RequestBuilder {
        self.client
            .get(url)
            .header("DD-API-KEY", self.api_key.expose_secret())
            .header("DD-APPLICATION-KEY", self.app_key.expose_secret())
            .header("Accept", "application/json")
    }

    /// The query's value over `[from, to]` (seconds since the epoch). A `429` is waited out
    /// until its reset, as long as the reset comes before `not_after`.
    pub async fn query(
        &self,
        query: &str,
        from: u64,
        to: u64,
        not_after: tokio::time::Instant,
    ) -> Result<Sample, ProviderError> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.base),
            &[
                ("from", from.to_string().as_str()),
                ("to", to.max(from + 1).to_string().as_str()),
                ("query", query),
            ],
        )
        .map_err(|e| ProviderError {
            kind: ProviderErrorKind::Unreachable,
            message: format!("the Datadog address {} is not a URL: {e}", self.base),
        })?;
        loop {
            let response = self
                .request(url.clone())
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = response.status().as_u16();
            if status == 429 {
                let wait = response
                    .headers()
                    .get("X-RateLimit-Reset")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(DEFAULT_RESET, Duration::from_secs)
                    // The reset is a whole second; the window turns just after it.
                    + Duration::from_millis(100);
                let at = tokio::time::Instant::now() + wait;
                if at > not_after {
                    return Err(ProviderError {
                        kind: ProviderErrorKind::RateLimited,
                        message: format!(
                            "Datadog's rate limit resets in {} s, after the check's deadline",
                            wait.as_secs()
                        ),
                    });
                }
                eprintln!(
                    "  Datadog rate limit reached (HTTP 429): asking again in {:.1} s, when it resets",
                    wait.as_secs_f64()
                );
                tokio::time::sleep_until(at).await;
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            return parse(status, &body);
        }
    }

    /// Whether the API answers and accepts the API key (`GET /api/v1/validate`). A server
    /// error, a rate limit or a connection dropped mid-answer is
    /// [`ProviderErrorKind::Transient`] (the pre-flight asks again).
    pub async fn ready(&self) -> Result<(), ProviderError> {
        let url = reqwest::Url::parse(&format!("{}/api/v1/validate", self.base)).map_err(|e| {
            ProviderError {
                kind: ProviderErrorKind::Unreachable,
                message: format!("the Datadog address {} is not a URL: {e}", self.base),
            }
        })?;
        let response = self
            .request(url)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            401 | 403 => Err(auth(status)),
            _ => Err(ProviderError {
                kind: if status == 429 || status >= 500 {
                    ProviderErrorKind::Transient
                } else {
                    ProviderErrorKind::Unreachable
                },
                message: format!("Datadog at {} answered HTTP {status}", self.base),
            }),
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> ProviderError {
        ProviderError {
            // Connected, and dropped or timed out mid-answer: worth asking again.
            kind: if e.is_connect() || e.is_builder() {
                ProviderErrorKind::Unreachable
            } else {
                ProviderErrorKind::Transient
            },
            message: format!(
                "cannot reach Datadog at {}: {}",
                self.base,
                crate::platform::innermost(e)
            ),
        }
    }
}

fn auth(status: u16) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Auth,
        message: format!(
            "Datadog refused the keys (HTTP {status}): check that the API key and the application key are valid for this site, and that the application key may read time series (timeseries_query)"
        ),
    }
}

/// Reads an answer of `/api/v1/query`. Pure, for tests.
pub fn parse(status: u16, body: &str) -> Result<Sample, ProviderError> {
    let query_error = |message: String| ProviderError {
        kind: ProviderErrorKind::Query,
        message,
    };
    match status {
        200..=299 => {}
        401 | 403 => return Err(auth(status)),
        400 => {
            let reason = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| {
                    v["errors"]
                        .as_array()
                        .map(|e| {
                            e.iter()
                                .filter_map(|x| x.as_str())
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                        .or_else(|| v["error"].as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| first_line(body));
            return Err(query_error(format!(
                "Datadog refused the query (HTTP 400): {reason}"
            )));
        }
        _ => {
            return Err(ProviderError {
                kind: if status >= 500 {
                    ProviderErrorKind::Transient
                } else {
                    ProviderErrorKind::Unreachable
                },
                message: format!("Datadog answered HTTP {status}: {}", first_line(body)),
            });
        }
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Err(query_error(format!(
            "Datadog answered HTTP {status} with no JSON: {}",
            first_line(body)
        )));
    };
    if v["status"].as_str().is_some_and(|s| s != "ok") {
        return Err(query_error(format!(
            "Datadog: {}",
            v["error"].as_str().unwrap_or("the query failed")
        )));
    }
    let series = v["series"].as_array().map_or(&[][..], Vec::as_slice);
    let one = match series {
        [] => return Ok(Sample::NoData),
        [one] => one,
        many => {
            let scopes: Vec<&str> = many
                .iter()
                .take(3)
                .filter_map(|s| s["scope"].as_str())
                .collect();
            return Err(query_error(format!(
                "the query returned {} series ({}…); aggregate it to one, for example sum:…{{…}} without `by`",
                many.len(),
                scopes.join(", ")
            )));
        }
    };
    let points = one["pointlist"].as_array().map_or(&[][..], Vec::as_slice);
    Ok(points
        .iter()
        .rev()
        .find_map(|p| p[1].as_f64())
        .map_or(Sample::NoData, |x| Sample::Value(x).normalised()))
}

fn first_line(body: &str) -> String {
    body.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let ok = |b: &str| parse(200, b).map_err(|e| e.message);
        assert_eq!(
            ok(
                r#"{"status":"ok","series":[{"scope":"service:a","pointlist":[[1000,1.5],[2000,99.5]]}]}"#
            ),
            Ok(Sample::Value(99.5))
        );
        // The last point is often a partial bucket with no value.
        assert_eq!(
            ok(r#"{"status":"ok","series":[{"pointlist":[[1000,98.0],[2000,null]]}]}"#),
            Ok(Sample::Value(98.0))
        );
        assert_eq!(
            ok(r#"{"status":"ok","series":[{"pointlist":[[1000,null]]}]}"#),
            Ok(Sample::NoData)
        );
        assert_eq!(ok(r#"{"status":"ok","series":[]}"#), Ok(Sample::NoData));
        assert_eq!(
            ok(r#"{"status":"ok","series":[{"pointlist":[]}]}"#),
            Ok(Sample::NoData)
        );
        let many = ok(
            r#"{"status":"ok","series":[{"scope":"a","pointlist":[[1,1]]},{"scope":"b","pointlist":[[1,2]]}]}"#,
        )
        .unwrap_err();
        assert!(
            many.starts_with("the query returned 2 series (a, b…)"),
            "{many}"
        );
        let e = parse(403, r#"{"errors":["Forbidden"]}"#).unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Auth);
        let e = parse(
            400,
            r#"{"errors":["Error parsing query: unable to parse avg:"]}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Query);
        assert!(e.message.contains("unable to parse"), "{}", e.message);
        let e = parse(503, "Service Unavailable").unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Transient);
        let e = parse(404, "Not Found").unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Unreachable);
    }
}
