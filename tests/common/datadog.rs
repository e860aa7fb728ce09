//! A Datadog fake that follows the documented shapes of `GET /api/v1/query` and
//! `GET /api/v1/validate`: the keys in `DD-API-KEY` / `DD-APPLICATION-KEY` (a wrong one is
//! 403 `{"errors": ["Forbidden"]}`), `from`/`to` in seconds (missing or reversed is 400),
//! and the answer the test scripted for each query: series with points (`null` for a
//! missing point), no series, several series, `429` with the `X-RateLimit-*` headers, `403`,
//! a `5xx`, a query Datadog cannot parse. Faults can be armed on either path ([`Fake::inject`]):
//! those answers, a connection closed unanswered, no answer for a while. Every request is
//! recorded with its time.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

pub const API_KEY: &str = "dd-api-0123456789abcdef0123456789abcdef";
pub const APP_KEY: &str = "dd-app-fedcba9876543210fedcba9876543210fedcba98";

/// What the fake answers to a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// One series with these points (`None` is a `null` point), spaced a minute apart and
    /// ending at `to`.
    Points(Vec<Option<f64>>),
    /// `series: []`.
    Empty,
    /// Two series (the query was not aggregated).
    Many,
    /// `429` with `X-RateLimit-Reset: reset` for the next `times` calls, then `then`.
    RateLimited {
        reset: u64,
        times: u32,
        then: Box<Answer>,
    },
    Forbidden,
    /// `503`.
    Unavailable,
    /// `400` with Datadog's parse error.
    BadQuery,
    /// The connection closed unanswered (a reset).
    Reset,
    /// No answer for this many seconds, then the connection closed (past the caller's
    /// timeout: a call that times out).
    Hang(u64),
}

/// Faults armed on a path: the requests to it let through first, then one fault per request.
#[derive(Debug, Clone)]
struct Armed {
    path: String,
    after: u32,
    faults: std::collections::VecDeque<Answer>,
}

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct State {
    answers: HashMap<String, Answer>,
    fallback: Option<Answer>,
    armed: Vec<Armed>,
    seen: Vec<Seen>,
}

pub struct Fake {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Fake {
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let url = super::http::serve_each(move |stream| serve(stream, &shared));
        Self { url, state }
    }

    /// The answer to `query` (exactly as sent, after the template is rendered).
    pub fn answer(&self, query: &str, answer: Answer) {
        self.state
            .lock()
            .unwrap()
            .answers
            .insert(query.to_owned(), answer);
    }

    /// The answer to any query without its own.
    pub fn answer_all(&self, answer: Answer) {
        self.state.lock().unwrap().fallback = Some(answer);
    }

    /// Requests to `path` (`/api/v1/query`, `/api/v1/validate`) with the right keys: `after`
    /// of them answered as usual, then each of the next ones by the next of `faults`
    /// (answers of the path, `Unavailable`, `RateLimited` (once), `Reset`, `Hang`), in turn.
    pub fn inject(&self, path: &str, after: u32, faults: Vec<Answer>) {
        self.state.lock().unwrap().armed.push(Armed {
            path: path.to_owned(),
            after,
            faults: faults.into(),
        });
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The `/api/v1/query` requests seen.
    pub fn queries(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path == "/api/v1/query")
            .collect()
    }
}

fn param(query: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn serve(stream: std::net::TcpStream, state: &Mutex<State>) {
    let mut out = stream.try_clone().unwrap();
    let mut reader = std::io::BufReader::new(stream);
    while let Some(request) = super::http::read_request(&mut reader) {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let (path, params) = request
            .path
            .split_once('?')
            .unwrap_or((request.path.as_str(), ""));
        let query = param(params, "query");
        let keys_ok = header("DD-API-KEY") == Some(API_KEY)
            && (path == "/api/v1/validate" || header("DD-APPLICATION-KEY") == Some(APP_KEY));
        let fault = if keys_ok { armed(state, path) } else { None };
        let record = |status: u16| {
            state.lock().unwrap().seen.push(Seen {
                at: Instant::now(),
                path: path.to_owned(),
                query: query.clone(),
                status,
            });
        };
        match fault {
            Some(Answer::Reset) => {
                record(0);
                let _ = out.shutdown(std::net::Shutdown::Both);
                return;
            }
            Some(Answer::Hang(secs)) => {
                record(0);
                std::thread::sleep(std::time::Duration::from_secs(secs));
                let _ = out.shutdown(std::net::Shutdown::Both);
                return;
            }
            _ => {}
        }
        let (status, headers, body): (u16, Vec<(&str, String)>, Value) = if let Some(f) = fault {
            respond(&f, query.as_deref().unwrap_or(""), 0, 1)
        } else if !keys_ok {
            (403, vec![], json!({"errors": ["Forbidden"]}))
        } else if path == "/api/v1/validate" {
            (200, vec![], json!({"valid": true}))
        } else if path == "/api/v1/query" {
            let from = param(params, "from").and_then(|v| v.parse::<i64>().ok());
            let to = param(params, "to").and_then(|v| v.parse::<i64>().ok());
            match (from, to, &query) {
                (Some(from), Some(to), Some(q)) if from < to => {
                    let answer = {
                        let mut s = state.lock().unwrap();
                        let a = s
                            .answers
                            .get(q)
                            .cloned()
                            .or_else(|| s.fallback.clone())
                            .unwrap_or(Answer::Empty);
                        // A rate limit counts down; its last call hands over to `then`.
                        if let Answer::RateLimited { times, then, reset } = &a {
                            let next = if *times <= 1 {
                                (**then).clone()
                            } else {
                                Answer::RateLimited {
                                    reset: *reset,
                                    times: times - 1,
                                    then: then.clone(),
                                }
                            };
                            if s.answers.contains_key(q) {
                                s.answers.insert(q.clone(), next);
                            } else {
                                s.fallback = Some(next);
                            }
                        }
                        a
                    };
                    respond(&answer, q, from, to)
                }
                _ => (
                    400,
                    vec![],
                    json!({"errors": ["The value provided for parameter 'from' or 'to' is invalid"]}),
                ),
            }
        } else {
            (404, vec![], json!({"errors": ["Not found"]}))
        };
        record(status);
        let body = body.to_string();
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            429 => "Too Many Requests",
            _ => "Service Unavailable",
        };
        let mut text = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            let _ = write!(text, "{k}: {v}\r\n");
        }
        text.push_str("\r\n");
        text.push_str(&body);
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// The next armed fault for a request to `path`, if one is due.
fn armed(state: &Mutex<State>, path: &str) -> Option<Answer> {
    let mut s = state.lock().unwrap();
    let a = s
        .armed
        .iter_mut()
        .find(|a| a.path == path && !a.faults.is_empty())?;
    if a.after > 0 {
        a.after -= 1;
        return None;
    }
    a.faults.pop_front()
}

fn series(q: &str, scope: &str, points: &[Option<f64>], to: i64) -> Value {
    let n = i64::try_from(points.len()).unwrap();
    let start = (to - 60 * n) * 1000;
    let pointlist: Vec<Value> = points
        .iter()
        .enumerate()
        .map(|(i, p)| json!([start + 60_000 * (i64::try_from(i).unwrap() + 1), p]))
        .collect();
    json!({
        "aggr": "sum",
        "display_name": q,
        "expression": q,
        "interval": 60,
        "length": points.len(),
        "metric": q.split(['{', ':']).nth(1).unwrap_or(q),
        "pointlist": pointlist,
        "scope": scope,
        "start": start,
        "end": to * 1000,
        "tag_set": [],
        "unit": null,
    })
}

fn respond(
    answer: &Answer,
    q: &str,
    from: i64,
    to: i64,
) -> (u16, Vec<(&'static str, String)>, Value) {
    let ok = |series: Vec<Value>| {
        json!({
            "status": "ok",
            "res_type": "time_series",
            "resp_version": 1,
            "query": q,
            "from_date": from * 1000,
            "to_date": to * 1000,
            "group_by": [],
            "message": "",
            "series": series,
        })
    };
    match answer {
        Answer::Points(p) => (200, vec![], ok(vec![series(q, "*", p, to)])),
        Answer::Empty => (200, vec![], ok(vec![])),
        Answer::Many => (
            200,
            vec![],
            ok(vec![
                series(q, "version:canary", &[Some(1.0)], to),
                series(q, "version:stable", &[Some(2.0)], to),
            ]),
        ),
        Answer::RateLimited { reset, .. } => (
            429,
            vec![
                ("X-RateLimit-Limit", "60".into()),
                ("X-RateLimit-Period", "60".into()),
                ("X-RateLimit-Remaining", "0".into()),
                ("X-RateLimit-Reset", reset.to_string()),
                ("X-RateLimit-Name", "metrics_query".into()),
            ],
            json!({"errors": ["Rate limit of 60 requests in 60 seconds reached. Please try again later."]}),
        ),
        Answer::Forbidden => (403, vec![], json!({"errors": ["Forbidden"]})),
        Answer::Unavailable => (503, vec![], json!({"errors": ["Service Unavailable"]})),
        Answer::Reset | Answer::Hang(_) => unreachable!("answered by closing the connection"),
        Answer::BadQuery => (
            400,
            vec![],
            json!({"errors": [format!("Error parsing query: \n unable to parse {q}: Rule 'scope_expr' didn't match")]}),
        ),
    }
}
