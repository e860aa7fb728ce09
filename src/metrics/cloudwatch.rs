//! `CloudWatch` through `GetMetricData`: one call per query, the window as one period.
//!
//! - The series a query names are `MetricStat`s (namespace, metric, stat, dimensions); the
//!   query is a metric math expression over their ids, or one id alone (then that series is
//!   the answer and no expression is sent).
//! - The window `[from, to]` is one period: the start floored to the minute, the period the
//!   window rounded up to whole minutes (`CloudWatch` keeps 60 s resolution for 15 days). The
//!   value is the first datapoint; none is no data (the ALB publishes nothing while no request
//!   flows: use `FILL(m, 0)` in the expression where that means 0).
//! - Access errors are the environment's (exit 3 before a rollout); a refused parameter is
//!   the query's.

use aws_sdk_cloudwatch::error::ProvideErrorMetadata as _;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricStat, ScanBy, StatusCode,
};
use aws_smithy_types::DateTime;

use super::{ProviderError, ProviderErrorKind};
use crate::rollout::analysis::Sample;

/// One series with its dimensions rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub id: String,
    pub namespace: String,
    pub metric: String,
    pub stat: String,
    pub dimensions: Vec<(String, String)>,
}

pub struct CloudWatch {
    client: aws_sdk_cloudwatch::Client,
}

/// The id of the expression's query.
const RESULT_ID: &str = "result";

impl CloudWatch {
    /// A client from the standard AWS configuration, with the SDK's retries (reads only).
    pub async fn from_env(region: &str) -> Self {
        let shared = crate::aws::sdk_config(region, true).await;
        Self::new(aws_sdk_cloudwatch::Client::new(&shared))
    }

    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }

    /// Which of the alarms `names` do not exist (`DescribeAlarms`).
    pub async fn missing_alarms(&self, names: &[String]) -> Result<Vec<String>, String> {
        let out = self
            .client
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_cloudwatch::error::ProvideErrorMetadata as _;
                format!(
                    "DescribeAlarms: {}",
                    e.message().or(e.code()).unwrap_or("the call failed")
                )
            })?;
        let found: Vec<&str> = out
            .metric_alarms()
            .iter()
            .filter_map(|a| a.alarm_name())
            .chain(out.composite_alarms().iter().filter_map(|a| a.alarm_name()))
            .collect();
        Ok(names
            .iter()
            .filter(|n| !found.contains(&n.as_str()))
            .cloned()
            .collect())
    }

    /// The value of `expression` over `[from, to]` (seconds since the epoch).
    pub async fn query(
        &self,
        expression: &str,
        series: &[Series],
        from: u64,
        to: u64,
    ) -> Result<Sample, ProviderError> {
        let (start, period) = period(from, to);
        let expression = expression.trim();
        let alone = series.iter().any(|s| s.id == expression);
        let mut request = self
            .client
            .get_metric_data()
            .start_time(DateTime::from_secs(
                i64::try_from(start).unwrap_or(i64::MAX),
            ))
            .end_time(DateTime::from_secs(
                i64::try_from(start + period).unwrap_or(i64::MAX),
            ))
            .scan_by(ScanBy::TimestampAscending);
        for s in series {
            let mut metric = Metric::builder()
                .namespace(&s.namespace)
                .metric_name(&s.metric);
            for (name, value) in &s.dimensions {
                metric = metric.dimensions(Dimension::builder().name(name).value(value).build());
            }
            request = request.metric_data_queries(
                MetricDataQuery::builder()
                    .id(&s.id)
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric.build())
                            .period(i32::try_from(period).unwrap_or(i32::MAX))
                            .stat(&s.stat)
                            .build(),
                    )
                    .return_data(alone && s.id == expression)
                    .build(),
            );
        }
        if !alone {
            request = request.metric_data_queries(
                MetricDataQuery::builder()
                    .id(RESULT_ID)
                    .expression(expression)
                    .period(i32::try_from(period).unwrap_or(i32::MAX))
                    .return_data(true)
                    .build(),
            );
        }
        let out = request.send().await.map_err(|e| classify(&e))?;
        let want = if alone { expression } else { RESULT_ID };
        let Some(result) = out
            .metric_data_results()
            .iter()
            .find(|r| r.id() == Some(want))
        else {
            return Ok(Sample::NoData);
        };
        if let Some(m) = result
            .messages()
            .iter()
            .find(|m| m.code().is_some_and(|c| c != "PartialData"))
        {
            return Err(ProviderError {
                kind: ProviderErrorKind::Query,
                message: format!(
                    "CloudWatch: {}: {}",
                    m.code().unwrap_or("error"),
                    m.value().unwrap_or("the query failed")
                ),
            });
        }
        if matches!(result.status_code(), Some(StatusCode::InternalError)) {
            return Err(ProviderError {
                kind: ProviderErrorKind::Unreachable,
                message: "CloudWatch answered InternalError for the query".into(),
            });
        }
        Ok(result
            .values()
            .first()
            .map_or(Sample::NoData, |v| Sample::Value(*v).normalised()))
    }
}

/// The window as one period: (start floored to the minute, period in whole minutes).
pub fn period(from: u64, to: u64) -> (u64, u64) {
    let start = from - from % 60;
    let span = to.saturating_sub(start).max(1);
    (start, span.div_ceil(60) * 60)
}

fn classify<E>(
    e: &aws_sdk_cloudwatch::error::SdkError<E, aws_sdk_cloudwatch::config::http::HttpResponse>,
) -> ProviderError
where
    E: aws_sdk_cloudwatch::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_cloudwatch::error::SdkError;
    let code = e.code().unwrap_or_default();
    let message = e
        .message()
        .map_or_else(|| crate::platform::innermost(e), str::to_owned);
    // No answer from the service: a refused connection or missing credentials are not asked
    // again; a timeout, a connection dropped or an answer cut short (after the SDK's own
    // retries) are (`Providers::run`), as a throttled or 5xx answer is.
    if !matches!(e, SdkError::ServiceError(_)) {
        let (kind, message) = match crate::platform::connection_failure(e) {
            Some((crate::platform::observation::ErrorKind::Permission, m)) => {
                (ProviderErrorKind::Auth, m)
            }
            Some((_, m)) => (ProviderErrorKind::Unreachable, m),
            None => match e {
                SdkError::TimeoutError(_) => (ProviderErrorKind::Transient, "timed out".into()),
                SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                    (ProviderErrorKind::Transient, message)
                }
                _ => (ProviderErrorKind::Unreachable, message),
            },
        };
        return ProviderError {
            kind,
            message: format!("CloudWatch GetMetricData failed: {message}"),
        };
    }
    let status = match e {
        SdkError::ServiceError(s) => s.raw().status().as_u16(),
        _ => 0,
    };
    let kind = match code {
        // An assumed role's credentials are renewed before the query is asked again.
        c if crate::aws::is_expiry(c) && crate::aws::expired() => ProviderErrorKind::Transient,
        "AccessDenied"
        | "AccessDeniedException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch" => ProviderErrorKind::Auth,
        c if c.starts_with("InvalidParameter")
            || c.starts_with("MissingParameter")
            || c == "ValidationError" =>
        {
            ProviderErrorKind::Query
        }
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" => {
            ProviderErrorKind::Transient
        }
        _ if status >= 500 => ProviderErrorKind::Transient,
        _ => ProviderErrorKind::Unreachable,
    };
    let what = if code.is_empty() {
        "GetMetricData failed".to_owned()
    } else {
        format!("GetMetricData: {code}")
    };
    ProviderError {
        kind,
        message: format!("CloudWatch {what}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_one_period() {
        assert_eq!(period(120, 180), (120, 60));
        assert_eq!(period(130, 190), (120, 120));
        assert_eq!(period(120, 120), (120, 60));
        assert_eq!(period(100, 400), (60, 360));
    }
}
