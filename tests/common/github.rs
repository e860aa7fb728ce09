//! GitHub for the tests, two ways:
//! - [`Fake`]: a stateful fake of the few endpoints the reporter uses (comments on a pull
//!   request, deployments and their statuses), on a loopback port, recording every request;
//!   it proves behaviour Prism cannot (a comment found again and updated in place).
//! - [`Prism`]: Stoplight Prism serving GitHub's own `OpenAPI` description
//!   (`@octokit/openapi`) with request validation on: an invalid request gets a 422.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Value,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    comments: BTreeMap<u64, String>,
    next_id: u64,
    deployments: Vec<Value>,
    statuses: Vec<(u64, Value)>,
    requests: Vec<Request>,
    faults: Vec<Fault>,
}

/// An answer the fake gives instead of its own, to the next `times` requests whose method is
/// `method` and whose path contains `path`. Status 0: the connection is closed unanswered.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    pub path: &'static str,
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    pub times: u32,
}

pub struct Fake {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Fake {
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            ..State::default()
        }));
        // Other people's comments on the pull request, over more than one page.
        {
            let mut s = state.lock().unwrap();
            for i in 0..120 {
                s.next_id += 1;
                let id = s.next_id;
                s.comments
                    .insert(id, format!("comment {i} by someone else"));
            }
        }
        let shared = state.clone();
        let url = super::http::serve_each(move |stream| serve(stream, &shared));
        Self { url, state }
    }

    /// Answers the matching requests with `fault` (see [`Fault`]).
    pub fn fail(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Our comments (those with the marker), by id.
    pub fn ours(&self, marker: &str) -> Vec<(u64, String)> {
        self.state
            .lock()
            .unwrap()
            .comments
            .iter()
            .filter(|(_, b)| b.contains(marker))
            .map(|(i, b)| (*i, b.clone()))
            .collect()
    }

    pub fn deployments(&self) -> Vec<Value> {
        self.state.lock().unwrap().deployments.clone()
    }

    pub fn statuses(&self) -> Vec<(u64, Value)> {
        self.state.lock().unwrap().statuses.clone()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut length = 0;
        let mut authorization = None;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let fault = {
            let mut s = state.lock().unwrap();
            let f = s
                .faults
                .iter_mut()
                .find(|f| f.times > 0 && f.method == method && path.contains(f.path));
            f.map(|f| {
                f.times -= 1;
                f.clone()
            })
        };
        if let Some(f) = fault {
            state.lock().unwrap().requests.push(Request {
                method,
                path: target.clone(),
                body,
                authorization,
            });
            if f.status == 0 {
                let _ = writer.shutdown(std::net::Shutdown::Both);
                return;
            }
            let text = f.body.to_string();
            let headers = f.headers.iter().fold(String::new(), |mut h, (k, v)| {
                let _ = write!(h, "{k}: {v}\r\n");
                h
            });
            let _ = write!(
                writer,
                "HTTP/1.1 {} X\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{text}",
                f.status,
                text.len()
            );
            let _ = writer.flush();
            continue;
        }
        let (status, answer) = route(state, &method, path, query, &body);
        state.lock().unwrap().requests.push(Request {
            method,
            path: target.clone(),
            body,
            authorization,
        });
        let text = answer.to_string();
        let _ = write!(
            writer,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        let _ = writer.flush();
    }
}

fn route(
    state: &Mutex<State>,
    method: &str,
    path: &str,
    query: &str,
    body: &Value,
) -> (u16, Value) {
    let mut s = state.lock().unwrap();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let q = |k: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse::<usize>().ok())
    };
    match (method, segs.as_slice()) {
        ("GET", ["repos", _, _, "issues", _, "comments"]) => {
            let per = q("per_page").unwrap_or(30);
            let page = q("page").unwrap_or(1);
            let all: Vec<Value> = s
                .comments
                .iter()
                .map(|(id, b)| json!({"id": id, "body": b}))
                .collect();
            let chunk: Vec<Value> = all.into_iter().skip((page - 1) * per).take(per).collect();
            (200, Value::Array(chunk))
        }
        ("POST", ["repos", _, _, "issues", _, "comments"]) => {
            s.next_id += 1;
            let id = s.next_id;
            s.comments
                .insert(id, body["body"].as_str().unwrap_or("").to_owned());
            (201, json!({"id": id, "body": body["body"]}))
        }
        ("PATCH", ["repos", _, _, "issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match s.comments.get_mut(&id) {
                Some(c) => {
                    body["body"].as_str().unwrap_or("").clone_into(c);
                    (200, json!({"id": id, "body": body["body"]}))
                }
                None => (404, json!({"message": "Not Found"})),
            }
        }
        ("POST", ["repos", _, _, "deployments"]) => {
            let id = s.deployments.len() as u64 + 1;
            let mut d = body.clone();
            d["id"] = json!(id);
            s.deployments.push(d.clone());
            (201, d)
        }
        ("POST", ["repos", _, _, "deployments", id, "statuses"]) => {
            s.statuses.push((id.parse().unwrap_or(0), body.clone()));
            (201, json!({"id": s.statuses.len(), "state": body["state"]}))
        }
        _ => (404, json!({"message": "Not Found"})),
    }
}

/// Prism mocking GitHub's API from its `OpenAPI` description, request validation on.
pub struct Prism {
    child: Child,
    pub url: String,
}

fn npm_dir() -> PathBuf {
    let dir = std::env::var_os("MVD_TOOLS_DIR")
        .map_or_else(|| super::root().join(".cache/tools"), PathBuf::from)
        .join("npm/node_modules");
    if dir.join(".bin/prism").exists() {
        return dir;
    }
    panic!(
        "Prism is not installed; run scripts/install-tools (a test never skips: the test command installs every component)"
    );
}

impl Prism {
    pub fn start() -> Self {
        let dir = npm_dir();
        let (child, port) =
            super::ports::spawn_listening("Prism", Duration::from_mins(3), |port| {
                Command::new(dir.join(".bin/prism"))
                    .args([
                        "mock",
                        "--errors",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port.to_string(),
                    ])
                    .arg(dir.join("@octokit/openapi/generated/api.github.com.json"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("prism starts")
            });
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
