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

/// One metric's success condition: absolute bounds, and bounds relative to the stable
/// track's value over the same window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    pub name: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Relative::is_none")]
    pub relative: Relative,
    pub on_no_data: NoDataPolicy,
}

/// Bounds relative to the stable track's value `s`: `max_ratio × s`, `s + max_delta`, …
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Relative {
    pub max_ratio: Option<f64>,
    pub min_ratio: Option<f64>,
    pub max_delta: Option<f64>,
    pub min_delta: Option<f64>,
}

impl Relative {
    pub fn is_none(&self) -> bool {
        *self == Relative::default()
    }

    /// The bounds at stable value `s`: (lowest, highest), each the tightest of its side.
    fn at(&self, s: f64) -> (Option<f64>, Option<f64>) {
        let lo = [self.min_ratio.map(|r| r * s), self.min_delta.map(|d| s + d)]
            .into_iter()
            .flatten()
            .reduce(f64::max);
        let hi = [self.max_ratio.map(|r| r * s), self.max_delta.map(|d| s + d)]
            .into_iter()
            .flatten()
            .reduce(f64::min);
        (lo, hi)
    }

    /// `<= 1.2 × stable`, `<= stable + 0.5`, `>= stable - 1`, joined with `, `.
    fn describe(&self) -> Vec<String> {
        let delta = |d: f64| {
            if d < 0.0 {
                format!("stable - {}", fmt_value(-d))
            } else {
                format!("stable + {}", fmt_value(d))
            }
        };
        let mut out = Vec::new();
        if let Some(r) = self.min_ratio {
            out.push(format!(">= {} × stable", fmt_value(r)));
        }
        if let Some(d) = self.min_delta {
            out.push(format!(">= {}", delta(d)));
        }
        if let Some(r) = self.max_ratio {
            out.push(format!("<= {} × stable", fmt_value(r)));
        }
        if let Some(d) = self.max_delta {
            out.push(format!("<= {}", delta(d)));
        }
        out
    }
}

impl MetricSpec {
    pub fn from_config(m: &crate::config::Metric) -> Self {
        Self {
            name: m.name.clone(),
            min: m.min,
            max: m.max,
            relative: Relative {
                max_ratio: m.max_ratio,
                min_ratio: m.min_ratio,
                max_delta: m.max_delta,
                min_delta: m.min_delta,
            },
            on_no_data: m.on_no_data,
        }
    }

    /// `>= 99`, `<= 500`, `1..5`, `<= 1.2 × stable`; with the stable value when one was
    /// measured: `<= 1.2 × stable (= 360)`.
    pub fn bound(&self, stable: Option<f64>) -> String {
        let mut parts = match (self.min, self.max) {
            (Some(lo), Some(hi)) => vec![format!("{lo}..{hi}")],
            (Some(lo), None) => vec![format!(">= {lo}")],
            (None, Some(hi)) => vec![format!("<= {hi}")],
            (None, None) => vec![],
        };
        let relative = self.relative.describe();
        if !relative.is_empty() {
            let mut text = relative.join(", ");
            if let Some(s) = stable {
                let (lo, hi) = self.relative.at(s);
                let value = match (lo, hi) {
                    (Some(lo), Some(hi)) => format!("{}..{}", fmt_value(lo), fmt_value(hi)),
                    (Some(lo), None) => fmt_value(lo),
                    (None, Some(hi)) => fmt_value(hi),
                    (None, None) => String::new(),
                };
                text = format!("{text} (stable {} → {value})", fmt_value(s));
            }
            parts.push(text);
        }
        if parts.is_empty() {
            "any".into()
        } else {
            parts.join(", ")
        }
    }

    /// The tightest upper bound, else the tightest lower one, at stable value `stable`.
    fn limit(&self, stable: Option<f64>) -> Option<f64> {
        let (rlo, rhi) = stable.map_or((None, None), |s| self.relative.at(s));
        let hi = [self.max, rhi].into_iter().flatten().reduce(f64::min);
        let lo = [self.min, rlo].into_iter().flatten().reduce(f64::max);
        hi.or(lo)
    }

    /// Whether `v` passes, given the stable value for the relative bounds.
    fn passes(&self, v: f64, stable: Option<f64>) -> bool {
        let (rlo, rhi) = stable.map_or((None, None), |s| self.relative.at(s));
        let lo_ok = |lo: Option<f64>| lo.is_none_or(|lo| v >= lo);
        let hi_ok = |hi: Option<f64>| hi.is_none_or(|hi| v <= hi);
        lo_ok(self.min) && hi_ok(self.max) && lo_ok(rlo) && hi_ok(rhi)
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

/// One metric measured over a window: the canary's value, and the stable track's when the
/// metric has relative bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub canary: Sample,
    pub stable: Option<Sample>,
}

impl From<Sample> for Reading {
    fn from(canary: Sample) -> Self {
        Self {
            canary,
            stable: None,
        }
    }
}

/// One metric in one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    pub name: String,
    pub value: Option<f64>,
    /// The stable track's value, for a relative bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<f64>,
    pub bound: String,
    /// The bound as a number, for charts: the tightest upper bound, else the tightest lower
    /// one (relative bounds at this check's stable value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
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

/// Judges one metric's reading.
fn judge_metric(m: &MetricSpec, reading: Reading) -> MetricResult {
    let relative = !m.relative.is_none();
    let stable = if relative {
        reading.stable.map(Sample::normalised)
    } else {
        None
    };
    let stable_value = match &stable {
        Some(Sample::Value(s)) => Some(*s),
        _ => None,
    };
    let no_data = match m.on_no_data {
        NoDataPolicy::Fail => MetricOutcome::NoDataFail,
        NoDataPolicy::Skip => MetricOutcome::Skipped,
        NoDataPolicy::Wait => MetricOutcome::Waiting,
    };
    let (value, outcome) = match (reading.canary.normalised(), stable) {
        (Sample::Error(e), _) => (None, MetricOutcome::Error(e)),
        (Sample::Value(v), Some(Sample::Error(e))) => {
            (Some(v), MetricOutcome::Error(format!("stable: {e}")))
        }
        (Sample::NoData, Some(Sample::Error(e))) => {
            (None, MetricOutcome::Error(format!("stable: {e}")))
        }
        (Sample::NoData, _) => (None, no_data),
        // A relative bound cannot be judged without the stable value.
        (Sample::Value(v), Some(Sample::NoData) | None) if relative => (Some(v), no_data),
        (Sample::Value(v), _) => (
            Some(v),
            if m.passes(v, stable_value) {
                MetricOutcome::Pass
            } else {
                MetricOutcome::Fail
            },
        ),
    };
    MetricResult {
        name: m.name.clone(),
        value,
        stable: stable_value,
        bound: m.bound(stable_value),
        limit: m.limit(stable_value),
        outcome,
    }
}

/// What an HTTP check or a webhook found in one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub name: String,
    pub kind: ProbeKind,
    pub passed: bool,
    /// What was received: `3/3 answered 200 within 120 ms`, or each failure.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    Http,
    Webhook,
}

/// Judges one check of metrics only. `requests` is the canary's request count in the
/// window, when measured.
pub fn judge(
    metrics: &[MetricSpec],
    readings: &[Reading],
    requests: Option<&Sample>,
    min_requests: u64,
) -> (Verdict, Vec<MetricResult>) {
    judge_check(metrics, readings, &[], requests, min_requests)
}

/// Judges one check: the metrics, and the HTTP checks and webhooks (`probes`). A failed
/// probe fails the check whatever the traffic, as a query error does.
pub fn judge_check(
    metrics: &[MetricSpec],
    readings: &[Reading],
    probes: &[ProbeResult],
    requests: Option<&Sample>,
    min_requests: u64,
) -> (Verdict, Vec<MetricResult>) {
    let results: Vec<MetricResult> = metrics
        .iter()
        .zip(readings.iter().cloned())
        .map(|(m, r)| judge_metric(m, r))
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
    failures.extend(
        probes
            .iter()
            .filter(|p| !p.passed)
            .map(|p| format!("{}: {}", p.name, p.detail)),
    );
    let out_of_bounds = metric_failures(&results);
    if !failures.is_empty() {
        // The metrics out of bounds are told too: every reason of this failure at once.
        failures.extend(out_of_bounds);
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
    if !out_of_bounds.is_empty() {
        return (Verdict::Fail(out_of_bounds), results);
    }
    if let Some(w) = results.iter().find(|r| r.outcome == MetricOutcome::Waiting) {
        let what = if w.value.is_some() {
            "no stable data yet"
        } else {
            "no data yet"
        };
        return (
            Verdict::Inconclusive(format!("{}: {what} (on_no_data: wait)", w.name)),
            results,
        );
    }
    if results.iter().all(|r| r.outcome == MetricOutcome::Skipped) && probes.is_empty() {
        return (
            Verdict::Inconclusive("no metric had data (all skipped)".into()),
            results,
        );
    }
    (Verdict::Pass, results)
}

/// Each metric out of its bounds, or without data under `on_no_data: fail`, in words.
fn metric_failures(results: &[MetricResult]) -> Vec<String> {
    results
        .iter()
        .filter_map(|r| match (&r.outcome, r.value) {
            (MetricOutcome::Fail, v) => Some(format!(
                "{} = {} (bound {})",
                r.name,
                fmt_value(v.unwrap_or(f64::NAN)),
                r.bound
            )),
            (MetricOutcome::NoDataFail, Some(v)) => Some(format!(
                "{} = {}, and the stable track has no data to compare with (on_no_data: fail; bound {})",
                r.name,
                fmt_value(v),
                r.bound
            )),
            (MetricOutcome::NoDataFail, None) => Some(format!(
                "{}: no data (on_no_data: fail; bound {})",
                r.name, r.bound
            )),
            _ => None,
        })
        .collect()
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
            relative: Relative::default(),
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
            let readings: Vec<Reading> = samples.into_iter().map(Reading::from).collect();
            let (verdict, results) = judge(&metrics, &readings, requests.as_ref(), min);
            assert_eq!(short(&verdict), want, "{name}");
            assert_eq!(results.len(), metrics.len(), "{name}");
        }
    }

    /// Relative bounds: one row per rule, a metric with its stable reading -> verdict and
    /// the bound as shown.
    #[test]
    #[allow(clippy::type_complexity)]
    fn relative_bounds_table() {
        use Sample::{Error, NoData, Value};
        let p99 = |max_ratio, on_no_data| MetricSpec {
            relative: Relative {
                max_ratio: Some(max_ratio),
                ..Relative::default()
            },
            ..m("p99", None, Some(2000.0), on_no_data)
        };
        let errors = MetricSpec {
            relative: Relative {
                max_delta: Some(0.5),
                ..Relative::default()
            },
            ..m("error-rate", None, None, NoDataPolicy::Fail)
        };
        let success = MetricSpec {
            relative: Relative {
                min_delta: Some(-1.0),
                min_ratio: Some(0.9),
                ..Relative::default()
            },
            ..m("success-rate", None, None, NoDataPolicy::Fail)
        };
        let rows: Vec<(&str, MetricSpec, Sample, Option<Sample>, &str, &str)> = vec![
            (
                "within 1.2 × stable",
                p99(1.2, NoDataPolicy::Fail),
                Value(350.0),
                Some(Value(300.0)),
                "pass",
                "<= 2000, <= 1.2 × stable (stable 300 → 360)",
            ),
            (
                "above 1.2 × stable",
                p99(1.2, NoDataPolicy::Fail),
                Value(400.0),
                Some(Value(300.0)),
                "fail: p99 = 400 (bound <= 2000, <= 1.2 × stable (stable 300 → 360))",
                "<= 2000, <= 1.2 × stable (stable 300 → 360)",
            ),
            (
                "the absolute bound still holds",
                p99(1.2, NoDataPolicy::Fail),
                Value(2400.0),
                Some(Value(2100.0)),
                "fail: p99 = 2400 (bound <= 2000, <= 1.2 × stable (stable 2100 → 2520))",
                "<= 2000, <= 1.2 × stable (stable 2100 → 2520)",
            ),
            (
                "at stable + 0.5 points passes",
                errors.clone(),
                Value(1.0),
                Some(Value(0.5)),
                "pass",
                "<= stable + 0.5 (stable 0.5 → 1)",
            ),
            (
                "above stable + 0.5 points",
                errors.clone(),
                Value(1.2),
                Some(Value(0.5)),
                "fail: error-rate = 1.2 (bound <= stable + 0.5 (stable 0.5 → 1))",
                "<= stable + 0.5 (stable 0.5 → 1)",
            ),
            (
                "the tighter lower bound wins",
                success.clone(),
                Value(98.5),
                Some(Value(99.9)),
                "fail: success-rate = 98.5 (bound >= 0.9 × stable, >= stable - 1 (stable 99.9 → 98.9))",
                ">= 0.9 × stable, >= stable - 1 (stable 99.9 → 98.9)",
            ),
            (
                "no stable data is no data",
                errors.clone(),
                Value(0.2),
                Some(NoData),
                "fail: error-rate = 0.2, and the stable track has no data to compare with (on_no_data: fail; bound <= stable + 0.5)",
                "<= stable + 0.5",
            ),
            (
                "no stable data waits when asked to",
                p99(1.2, NoDataPolicy::Wait),
                Value(300.0),
                Some(NoData),
                "inconclusive: p99: no stable data yet (on_no_data: wait)",
                "<= 2000, <= 1.2 × stable",
            ),
            (
                "a stable query that errors fails",
                errors.clone(),
                Value(0.2),
                Some(Error("503".into())),
                "fail: error-rate: the query failed: stable: 503",
                "<= stable + 0.5",
            ),
            (
                "NaN on stable is no data",
                errors,
                Value(0.2),
                Some(Value(f64::NAN)),
                "fail: error-rate = 0.2, and the stable track has no data to compare with (on_no_data: fail; bound <= stable + 0.5)",
                "<= stable + 0.5",
            ),
        ];
        for (name, metric, canary, stable, want, bound) in rows {
            let (verdict, results) = judge(
                std::slice::from_ref(&metric),
                &[Reading { canary, stable }],
                None,
                0,
            );
            assert_eq!(short(&verdict), want, "{name}");
            assert_eq!(results[0].bound, bound, "{name}");
        }
    }

    /// HTTP checks and webhooks in a check: a failure fails it whatever the metrics and the
    /// traffic; passing ones alone are evidence.
    #[test]
    #[allow(clippy::type_complexity)]
    fn probes_table() {
        use Sample::{NoData, Value};
        let probe = |name: &str, passed: bool| ProbeResult {
            name: name.into(),
            kind: ProbeKind::Http,
            passed,
            detail: if passed {
                "3/3 answered 200 within 12 ms".into()
            } else {
                "request 2 of 3: HTTP 503 (expected 200) in 4 ms; body: \"upstream down\"".into()
            },
        };
        let rate = m("success-rate", Some(99.0), None, NoDataPolicy::Fail);
        let rows: Vec<(
            &str,
            Vec<MetricSpec>,
            Vec<Sample>,
            Vec<ProbeResult>,
            Option<Sample>,
            &str,
        )> = vec![
            (
                "metrics and probes pass",
                vec![rate.clone()],
                vec![Value(99.5)],
                vec![probe("health", true)],
                None,
                "pass",
            ),
            (
                "a failed probe fails a passing check",
                vec![rate.clone()],
                vec![Value(99.5)],
                vec![probe("health", false)],
                None,
                "fail: health: request 2 of 3: HTTP 503 (expected 200) in 4 ms; body: \"upstream down\"",
            ),
            (
                "a failed probe fails even with too little traffic",
                vec![rate.clone()],
                vec![Value(99.5)],
                vec![probe("health", false)],
                Some(Value(3.0)),
                "fail: health: request 2 of 3: HTTP 503 (expected 200) in 4 ms; body: \"upstream down\"",
            ),
            (
                "probes alone are evidence",
                vec![],
                vec![],
                vec![probe("health", true)],
                None,
                "pass",
            ),
            (
                "a metric failure and a probe failure are both told",
                vec![rate],
                vec![Value(90.0)],
                vec![probe("smoke", false)],
                None,
                "fail: smoke: request 2 of 3: HTTP 503 (expected 200) in 4 ms; body: \"upstream down\"; success-rate = 90 (bound >= 99)",
            ),
            (
                "no metrics and no probes is no evidence",
                vec![],
                vec![],
                vec![],
                None,
                "inconclusive: no metric had data (all skipped)",
            ),
            (
                "no data skipped, the probe passes",
                vec![m("p99", None, Some(500.0), NoDataPolicy::Skip)],
                vec![NoData],
                vec![probe("health", true)],
                None,
                "pass",
            ),
        ];
        for (name, metrics, samples, probes, requests, want) in rows {
            let readings: Vec<Reading> = samples.into_iter().map(Reading::from).collect();
            let (verdict, _) = judge_check(&metrics, &readings, &probes, requests.as_ref(), 100);
            assert_eq!(short(&verdict), want, "{name}");
        }
    }
}
