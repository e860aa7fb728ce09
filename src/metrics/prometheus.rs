//! Prometheus through its HTTP API: an instant query (`/api/v1/query`) at the evaluation
//! time. One series (or a scalar) is a value; an empty vector or NaN is no data; several
//! series, an error status or a failed request is a query error, in Prometheus' words.

use std::time::Duration;

use super::{ProviderError, ProviderErrorKind};
use crate::rollout::analysis::Sample;

pub struct Prometheus {
    client: reqwest::Client,
    address: String,
}

impl Prometheus {
    /// `address` is the server's base URL (`http://prometheus.monitoring.svc:9090`).
    pub fn new(address: &str, timeout: Duration) -> Self {
        Self {
            client: super::http_client(timeout),
            address: address.trim_end_matches('/').to_owned(),
        }
    }

    /// The query's value at `at` (seconds since the Unix epoch, fractional), a failure as
    /// the sample of a failed query.
    pub async fn query(&self, promql: &str, at: f64) -> Sample {
        self.query_result(promql, at)
            .await
            .unwrap_or_else(|e| Sample::Error(e.message))
    }

    /// The query's value at `at`, a failure classified (the server's or the query's).
    pub async fn query_result(&self, promql: &str, at: f64) -> Result<Sample, ProviderError> {
        let unreachable = |message: String| ProviderError {
            kind: ProviderErrorKind::Unreachable,
            message,
        };
        let url = match reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.address),
            &[("query", promql), ("time", &format!("{at:.3}"))],
        ) {
            Ok(u) => u,
            Err(e) => {
                return Err(unreachable(format!(
                    "the Prometheus address {} is not a URL: {e}",
                    self.address
                )));
            }
        };
        let response = self.client.get(url).send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let mut err = unreachable(format!(
                    "cannot reach Prometheus at {}: {}",
                    self.address,
                    crate::platform::innermost(&e)
                ));
                // Connected, and dropped or timed out mid-answer: worth asking again.
                if !e.is_connect() && !e.is_builder() {
                    err.kind = ProviderErrorKind::Transient;
                }
                return Err(err);
            }
        };
        let status = response.status();
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) => {
                return Err(ProviderError {
                    kind: ProviderErrorKind::Transient,
                    message: format!("reading Prometheus' answer failed: {e}"),
                });
            }
        };
        match parse(status.as_u16(), &body) {
            // A server error (503: overloaded, or a query that timed out) or a 429: ask
            // again; a refused query is the query's.
            Sample::Error(message) if status.is_server_error() || status.as_u16() == 429 => {
                Err(ProviderError {
                    kind: ProviderErrorKind::Transient,
                    message: format!("{message} (HTTP {})", status.as_u16()),
                })
            }
            Sample::Error(message) => Err(ProviderError {
                kind: ProviderErrorKind::Query,
                message,
            }),
            sample => Ok(sample),
        }
    }

    /// Whether the server answers (`/-/ready`), for the pre-flight before a rollout.
    pub async fn ready(&self) -> Result<(), String> {
        let url = format!("{}/-/ready", self.address);
        match self.client.get(&url).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!(
                "Prometheus at {} answered {}",
                self.address,
                r.status()
            )),
            Err(e) => Err(format!(
                "cannot reach Prometheus at {}: {}",
                self.address,
                crate::platform::innermost(&e)
            )),
        }
    }
}

/// Reads an answer of `/api/v1/query`. Pure, for tests.
pub fn parse(status: u16, body: &str) -> Sample {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Sample::Error(format!(
            "Prometheus answered HTTP {status} with no JSON: {}",
            body.lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>()
        ));
    };
    if v["status"] != "success" {
        return Sample::Error(format!(
            "{}: {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or("no message")
        ));
    }
    let data = &v["data"];
    let value = match data["resultType"].as_str() {
        Some("vector") => {
            let result = data["result"].as_array().map_or(&[][..], Vec::as_slice);
            match result {
                [] => return Sample::NoData,
                [one] => &one["value"],
                many => {
                    let labels: Vec<String> = many
                        .iter()
                        .take(3)
                        .map(|s| s["metric"].to_string())
                        .collect();
                    return Sample::Error(format!(
                        "the query returned {} series ({}…); aggregate it to one, for example with sum(…)",
                        many.len(),
                        labels.join(", ")
                    ));
                }
            }
        }
        Some("scalar") => &data["result"],
        other => {
            return Sample::Error(format!(
                "the query returned a {}, not one value; write an instant vector or scalar expression",
                other.unwrap_or("nothing")
            ));
        }
    };
    match value[1].as_str().map(str::parse::<f64>) {
        Some(Ok(x)) => Sample::Value(x).normalised(),
        _ => Sample::Error(format!("unreadable value {value}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let table: &[(&str, Sample)] = &[
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"99.25"]}]}}"#,
                Sample::Value(99.25),
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
                Sample::NoData,
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"NaN"]}]}}"#,
                Sample::NoData,
            ),
            (
                r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"3"]}}"#,
                Sample::Value(3.0),
            ),
            (
                r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#,
                Sample::Error("bad_data: parse error at char 5".into()),
            ),
        ];
        for (body, want) in table {
            assert_eq!(&parse(200, body), want, "{body}");
        }
        let many = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#,
        );
        assert!(matches!(many, Sample::Error(e) if e.starts_with("the query returned 2 series")));
        assert!(matches!(parse(502, "Bad Gateway"), Sample::Error(e) if e.contains("HTTP 502")));
    }
}
