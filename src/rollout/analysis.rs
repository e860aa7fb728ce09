//! Judging one analysis check: the semantics, written once for every platform and provider.
//!
//! - A check evaluates every metric over the window since the last weight change (the
//!   provider is asked for that window; this module sees the values).
//! - A check counts only once the canary served `min_requests` in the window (when a request
//!   count is measured): fewer is inconclusive, neither a pass nor a failure.
//! - A metric query that errors is a failed check, whatever the metric's `on_no_data`.
//! - No data (an empty result, NaN) follows the metric's `on_no_data`: `fail` (the default) is
//!   a failed check, `skip` leaves the metric out, `wait` makes the check inconclusive.
//! - A check where every metric was left out has no evidence: inconclusive, never a pass.
//! - Failed checks are counted per rollout by the engine; this module judges one check.

use serde::{Deserialize, Serialize};

use crate::config::NoDataPolicy;

/// One metric's success condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    pub name: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub on_no_data: NoDataPolicy,
}

impl MetricSpec {
    pub fn from_config(m: &crate::config::Metric) -> Self {
        Self {
            name: m.name.clone(),
            min: m.min,
            max: m.max,
            on_no_data: m.on_no_data,
        }
    }

    /// `>= 99`, `<= 500`, `1..5`.
    pub fn bound(&self) -> String {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => format!("{lo}..{hi}"),
            (Some(lo), None) => format!(">= {lo}"),
            (None, Some(hi)) => format!("<= {hi}"),
            (None, None) => "any".into(),
        }
    }
}

/// What a provider answered for one query over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum Sample {
    Value(f64),
    /// An empty result or NaN.
    NoData,
    /// The query failed (the provider's words).
    Error(String),
}

impl Sample {
    /// NaN is no data, as Prometheus returns for 0/0.
    #[must_use]
    pub fn normalised(self) -> Self {
        match self {
            Sample::Value(v) if v.is_nan() => Sample::NoData,
            other => other,
        }
    }
}

/// One metric in one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    pub name: String,
    pub value: Option<f64>,
    pub bound: String,
    pub outcome: MetricOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricOutcome {
    Pass,
    Fail,
    /// No data, and `on_no_data: fail`.
    NoDataFail,
    /// No data, and `on_no_data: skip`.
    Skipped,
    /// No data, and `on_no_data: wait`.
    Waiting,
    /// The query errored.
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict", content = "reason")]
pub enum Verdict {
    Pass,
    Fail(Vec<String>),
    /// Not judged: too little traffic, or no data with `on_no_data: wait`, or nothing left to
    /// judge. The step checks again after an interval.
    Inconclusive(String),
}

/// Judges one check. `requests` is the canary's request count in the window, when measured.
pub fn judge(
    metrics: &[MetricSpec],
    samples: &[Sample],
    requests: Option<&Sample>,
    min_requests: u64,
) -> (Verdict, Vec<MetricResult>) {
    let results: Vec<MetricResult> = metrics
        .iter()
        .zip(samples.iter().cloned().map(Sample::normalised))
        .map(|(m, s)| {
            let (value, outcome) = match s {
                Sample::Value(v) => {
                    let ok = m.min.is_none_or(|lo| v >= lo) && m.max.is_none_or(|hi| v <= hi);
                    (
                        Some(v),
                        if ok {
                            MetricOutcome::Pass
                        } else {
                            MetricOutcome::Fail
                        },
                    )
                }
                Sample::NoData => (
                    None,
                    match m.on_no_data {
                        NoDataPolicy::Fail => MetricOutcome::NoDataFail,
                        NoDataPolicy::Skip => MetricOutcome::Skipped,
                        NoDataPolicy::Wait => MetricOutcome::Waiting,
                    },
                ),
                Sample::Error(e) => (None, MetricOutcome::Error(e)),
            };
            MetricResult {
                name: m.name.clone(),
                value,
                bound: m.bound(),
                outcome,
            }
        })
        .collect();
    // Errors are failures whatever the traffic: a broken query must not pass quietly.
    let mut failures: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            MetricOutcome::Error(e) => Some(format!("{}: the query failed: {e}", r.name)),
            _ => None,
        })
        .collect();
    if let Some(Sample::Error(e)) = requests {
        failures.push(format!("request count: the query failed: {e}"));
    }
    if !failures.is_empty() {
        return (Verdict::Fail(failures), results);
    }
    if min_requests > 0
        && let Some(r) = requests
    {
        match r.clone().normalised() {
            #[allow(clippy::cast_precision_loss)] // request counts are far below 2^52
            Sample::Value(n) if n < min_requests as f64 => {
                return (
                    Verdict::Inconclusive(format!(
                        "the canary served {n:.0} requests, fewer than min_requests {min_requests}"
                    )),
                    results,
                );
            }
            Sample::NoData => {
                return (
                    Verdict::Inconclusive(format!(
                        "no request count: fewer than min_requests {min_requests}"
                    )),
                    results,
                );
            }
            _ => {}
        }
    }
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| match r.outcome {
            MetricOutcome::Fail => Some(format!(
                "{} = {} (bound {})",
                r.name,
                fmt_value(r.value.unwrap_or(f64::NAN)),
                r.bound
            )),
            MetricOutcome::NoDataFail => Some(format!(
                "{}: no data (on_no_data: fail; bound {})",
                r.name, r.bound
            )),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        return (Verdict::Fail(failures), results);
    }
    if let Some(w) = results.iter().find(|r| r.outcome == MetricOutcome::Waiting) {
        return (
            Verdict::Inconclusive(format!("{}: no data yet (on_no_data: wait)", w.name)),
            results,
        );
    }
    if results.iter().all(|r| r.outcome == MetricOutcome::Skipped) {
        return (
            Verdict::Inconclusive("no metric had data (all skipped)".into()),
            results,
        );
    }
    (Verdict::Pass, results)
}

/// A metric value as people read it: up to two decimals, no trailing zeros.
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        return "no data".into();
    }
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, min: Option<f64>, max: Option<f64>, on_no_data: NoDataPolicy) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            min,
            max,
            on_no_data,
        }
    }

    fn short(v: &Verdict) -> String {
        match v {
            Verdict::Pass => "pass".into(),
            Verdict::Fail(r) => format!("fail: {}", r.join("; ")),
            Verdict::Inconclusive(r) => format!("inconclusive: {r}"),
        }
    }

    /// One row per semantic rule: metrics, samples, request count, `min_requests` -> verdict.
    #[test]
    #[allow(clippy::type_complexity)]
    fn semantics_table() {
        use NoDataPolicy::{Fail, Skip, Wait};
        use Sample::{Error, NoData, Value};
        let rate = |p| m("success-rate", Some(99.0), None, p);
        let p99 = |p| m("p99", None, Some(500.0), p);
        let rows: Vec<(
            &str,
            Vec<MetricSpec>,
            Vec<Sample>,
            Option<Sample>,
            u64,
            &str,
        )> = vec![
            (
                "within bounds",
                vec![rate(Fail), p99(Fail)],
                vec![Value(99.5), Value(120.0)],
                None,
                0,
                "pass",
            ),
            (
                "at the bound passes",
                vec![rate(Fail)],
                vec![Value(99.0)],
                None,
                0,
                "pass",
            ),
            (
                "below min",
                vec![rate(Fail), p99(Fail)],
                vec![Value(95.0), Value(120.0)],
                None,
                0,
                "fail: success-rate = 95 (bound >= 99)",
            ),
            (
                "above max",
                vec![p99(Fail)],
                vec![Value(612.5)],
                None,
                0,
                "fail: p99 = 612.5 (bound <= 500)",
            ),
            (
                "both out",
                vec![rate(Fail), p99(Fail)],
                vec![Value(90.0), Value(900.0)],
                None,
                0,
                "fail: success-rate = 90 (bound >= 99); p99 = 900 (bound <= 500)",
            ),
            (
                "no data fails by default",
                vec![rate(Fail)],
                vec![NoData],
                None,
                0,
                "fail: success-rate: no data (on_no_data: fail; bound >= 99)",
            ),
            (
                "NaN is no data",
                vec![rate(Fail)],
                vec![Value(f64::NAN)],
                None,
                0,
                "fail: success-rate: no data (on_no_data: fail; bound >= 99)",
            ),
            (
                "no data skipped, the rest decides",
                vec![rate(Skip), p99(Fail)],
                vec![NoData, Value(100.0)],
                None,
                0,
                "pass",
            ),
            (
                "no data skipped everywhere is no evidence",
                vec![rate(Skip), p99(Skip)],
                vec![NoData, NoData],
                None,
                0,
                "inconclusive: no metric had data (all skipped)",
            ),
            (
                "no data waits",
                vec![rate(Wait), p99(Fail)],
                vec![NoData, Value(100.0)],
                None,
                0,
                "inconclusive: success-rate: no data yet (on_no_data: wait)",
            ),
            (
                "a failure wins over waiting",
                vec![rate(Wait), p99(Fail)],
                vec![NoData, Value(900.0)],
                None,
                0,
                "fail: p99 = 900 (bound <= 500)",
            ),
            (
                "a query error fails even with skip",
                vec![rate(Skip)],
                vec![Error("timeout".into())],
                None,
                0,
                "fail: success-rate: the query failed: timeout",
            ),
            (
                "every query errored is a failure, never a pass",
                vec![rate(Skip), p99(Wait)],
                vec![Error("503".into()), Error("503".into())],
                None,
                0,
                "fail: success-rate: the query failed: 503; p99: the query failed: 503",
            ),
            (
                "too little traffic is not judged",
                vec![rate(Fail)],
                vec![Value(50.0)],
                Some(Value(12.0)),
                100,
                "inconclusive: the canary served 12 requests, fewer than min_requests 100",
            ),
            (
                "no request count is too little traffic",
                vec![rate(Fail)],
                vec![Value(99.9)],
                Some(NoData),
                100,
                "inconclusive: no request count: fewer than min_requests 100",
            ),
            (
                "enough traffic is judged",
                vec![rate(Fail)],
                vec![Value(50.0)],
                Some(Value(400.0)),
                100,
                "fail: success-rate = 50 (bound >= 99)",
            ),
            (
                "a request count that errors fails",
                vec![rate(Fail)],
                vec![Value(99.9)],
                Some(Error("bad query".into())),
                100,
                "fail: request count: the query failed: bad query",
            ),
            (
                "min_requests without a count measured is not a gate",
                vec![rate(Fail)],
                vec![Value(99.9)],
                None,
                100,
                "pass",
            ),
        ];
        for (name, metrics, samples, requests, min, want) in rows {
            let (verdict, results) = judge(&metrics, &samples, requests.as_ref(), min);
            assert_eq!(short(&verdict), want, "{name}");
            assert_eq!(results.len(), metrics.len(), "{name}");
        }
    }
}
