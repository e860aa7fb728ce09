//! `GetMetricData` with metric math, for the scenario proxy: moto answers a `MetricStat`
//! query but evaluates no expression beyond a lone id, and computes no percentile. The proxy
//! sends moto the same request with every `MetricStat` query returned (a `pN` statistic
//! asked as `Maximum`: the datapoints the tests put are constant within a window, so the
//! maximum is their percentile), evaluates each expression over the answers with the
//! arithmetic and `FILL` of `CloudWatch`'s metric math, and answers in `GetMetricData`'s XML.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A `GetMetricData` as the proxy plays it.
pub struct Rewritten {
    /// The form body for moto: expressions left out, every `MetricStat` returned,
    /// percentiles asked as `Maximum`.
    pub body: String,
    /// The expressions: id and expression text, for those the caller wants returned.
    pub expressions: Vec<(String, String)>,
    /// The `MetricStat` queries the caller wants returned.
    pub returned: Vec<String>,
}

/// Rewrites the parameters of a form-encoded `GetMetricData` for moto.
pub fn for_moto(params: &serde_json::Map<String, serde_json::Value>) -> Rewritten {
    let mut queries: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    let mut rest = Vec::new();
    for (k, v) in params {
        let v = v.as_str().unwrap_or_default().to_owned();
        match k
            .strip_prefix("MetricDataQueries.member.")
            .and_then(|r| r.split_once('.'))
        {
            Some((n, field)) => {
                queries
                    .entry(n.parse().unwrap_or(0))
                    .or_default()
                    .insert(field.to_owned(), v);
            }
            None => rest.push((k.clone(), v)),
        }
    }
    let mut expressions = Vec::new();
    let mut returned = Vec::new();
    let mut n = 0;
    for q in queries.values() {
        let id = q.get("Id").cloned().unwrap_or_default();
        let wanted = q.get("ReturnData").is_none_or(|r| r == "true");
        if let Some(e) = q.get("Expression") {
            if wanted {
                expressions.push((id, e.clone()));
            }
            continue;
        }
        if wanted {
            returned.push(id);
        }
        n += 1;
        for (field, v) in q {
            let v = match field.as_str() {
                "ReturnData" => "true".to_owned(),
                "MetricStat.Stat" if v.starts_with('p') => "Maximum".to_owned(),
                _ => v.clone(),
            };
            rest.push((format!("MetricDataQueries.member.{n}.{field}"), v));
        }
        if !q.contains_key("ReturnData") {
            rest.push((
                format!("MetricDataQueries.member.{n}.ReturnData"),
                "true".into(),
            ));
        }
    }
    let body = reqwest::Url::parse_with_params("http://x/", &rest)
        .map(|u| u.query().unwrap_or_default().to_owned())
        .unwrap_or_default();
    Rewritten {
        body,
        expressions,
        returned,
    }
}

/// Plays one `GetMetricData` (its form parameters) through `moto`: the answer's XML.
pub fn play(
    params: &serde_json::Map<String, serde_json::Value>,
    moto: &dyn Fn(Vec<u8>) -> Vec<u8>,
) -> String {
    let r = for_moto(params);
    let got = results(&String::from_utf8_lossy(&moto(r.body.into_bytes())));
    let at = got.iter().find_map(|(_, _, t)| t.clone());
    let values: BTreeMap<String, Option<f64>> =
        got.iter().map(|(id, v, _)| (id.clone(), *v)).collect();
    let mut out: Vec<(String, Option<f64>, Option<String>)> = got
        .into_iter()
        .filter(|(id, _, _)| r.returned.contains(id))
        .collect();
    for (id, e) in &r.expressions {
        out.push((id.clone(), eval(e, &values), at.clone()));
    }
    answer(&out)
}

/// Each result of moto's XML answer: id, first value, first timestamp.
pub fn results(xml: &str) -> Vec<(String, Option<f64>, Option<String>)> {
    let Some(list) = between(xml, "<MetricDataResults>", "</MetricDataResults>") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Results are `<member>` elements holding `<Values><member>…</member></Values>`.
    let mut rest = list;
    while let Some(at) = rest.find("<Id>") {
        rest = &rest[at..];
        let end = rest[4..].find("<Id>").map_or(rest.len(), |e| e + 4);
        let one = &rest[..end];
        let id = between(one, "<Id>", "</Id>")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let value = between(one, "<Values>", "</Values>")
            .and_then(|v| between(v, "<member>", "</member>"))
            .and_then(|v| v.trim().parse().ok());
        let at = between(one, "<Timestamps>", "</Timestamps>")
            .and_then(|v| between(v, "<member>", "</member>"))
            .map(|t| t.trim().to_owned());
        out.push((id, value, at));
        rest = &rest[end..];
    }
    out
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let (_, rest) = s.split_once(open)?;
    Some(rest.split_once(close)?.0)
}

/// `GetMetricData`'s XML answer with one result per `(id, value, timestamp)`.
pub fn answer(results: &[(String, Option<f64>, Option<String>)]) -> String {
    let mut members = String::new();
    for (id, v, at) in results {
        let (values, stamps) = match (v, at) {
            (Some(v), Some(at)) => (
                format!("<member>{v}</member>"),
                format!("<member>{at}</member>"),
            ),
            _ => (String::new(), String::new()),
        };
        let _ = write!(
            members,
            "<member><Id>{id}</Id><Label>{id}</Label><Timestamps>{stamps}</Timestamps><Values>{values}</Values><StatusCode>Complete</StatusCode></member>"
        );
    }
    format!(
        "<GetMetricDataResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><GetMetricDataResult><MetricDataResults>{members}</MetricDataResults><Messages/></GetMetricDataResult><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></GetMetricDataResponse>"
    )
}

/// Evaluates a metric math expression over the series' values (`None`: no datapoint):
/// numbers, ids, `+ - * /`, parentheses and `FILL(expr, number)`.
pub fn eval(expression: &str, values: &BTreeMap<String, Option<f64>>) -> Option<f64> {
    let tokens = tokens(expression);
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        values,
    };
    let v = p.sum();
    assert_eq!(
        p.at,
        tokens.len(),
        "metric math not understood: {expression}"
    );
    v
}

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            let mut t = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    t.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(t);
        } else {
            out.push(c.to_string());
            chars.next();
        }
    }
    out
}

struct Parser<'a> {
    tokens: &'a [String],
    at: usize,
    values: &'a BTreeMap<String, Option<f64>>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<&str> {
        self.at += 1;
        self.tokens.get(self.at - 1).map(String::as_str)
    }

    fn sum(&mut self) -> Option<f64> {
        let mut v = self.product();
        while let Some(op @ ("+" | "-")) = self.peek() {
            let op = op.to_owned();
            self.next();
            let r = self.product();
            v = v.zip(r).map(|(a, b)| if op == "+" { a + b } else { a - b });
        }
        v
    }

    fn product(&mut self) -> Option<f64> {
        let mut v = self.atom();
        while let Some(op @ ("*" | "/")) = self.peek() {
            let op = op.to_owned();
            self.next();
            let r = self.atom();
            v = v.zip(r).and_then(|(a, b)| match op.as_str() {
                "*" => Some(a * b),
                _ if b == 0.0 => None,
                _ => Some(a / b),
            });
        }
        v
    }

    fn atom(&mut self) -> Option<f64> {
        let t = self.next().unwrap_or_default().to_owned();
        if t == "(" {
            let v = self.sum();
            assert_eq!(self.next(), Some(")"));
            return v;
        }
        if t == "FILL" {
            assert_eq!(self.next(), Some("("));
            let v = self.sum();
            assert_eq!(self.next(), Some(","));
            let fill: f64 = self.next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
            assert_eq!(self.next(), Some(")"));
            return Some(v.unwrap_or(fill));
        }
        if let Ok(n) = t.parse::<f64>() {
            return Some(n);
        }
        self.values.get(&t).copied().flatten()
    }
}

/// The evaluator on the expressions the ALB analysis sends (called by one test).
pub fn self_check() {
    let values: BTreeMap<String, Option<f64>> = [
        ("errors".to_owned(), None),
        ("requests".to_owned(), Some(200.0)),
        ("latency".to_owned(), Some(0.25)),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        eval("100 - 100 * FILL(errors, 0) / requests", &values),
        Some(100.0)
    );
    assert_eq!(eval("100 * errors / requests", &values), None);
    assert_eq!(eval("1000 * latency", &values), Some(250.0));
    assert_eq!(eval("(requests + 2) / 2", &values), Some(101.0));
}
