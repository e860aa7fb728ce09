//! A test server for the analysis' checks that are not metrics: `GET /health` answers what
//! the test sets (status and body), and `POST /hook` verifies the webhook's HMAC-SHA256
//! signature (`X-Movieverse-Signature`) with its own copy of the secret, records each call
//! (its JSON body and whether the signature held), and answers what the test sets.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use hmac::{KeyInit as _, Mac as _};

/// One webhook call as the server saw it.
#[derive(Debug, Clone)]
pub struct Hook {
    pub body: serde_json::Value,
    pub signed: bool,
}

struct State {
    health: (u16, String),
    hook: (u16, String),
    hooks: Vec<Hook>,
    health_calls: usize,
}

pub struct Server {
    pub url: String,
    state: Arc<Mutex<State>>,
}

fn verify(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(bytes) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

impl Server {
    pub fn start(secret: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            health: (200, "ok".into()),
            hook: (200, "{\"accepted\":true}".into()),
            hooks: Vec::new(),
            health_calls: 0,
        }));
        let shared = state.clone();
        let secret = secret.to_owned();
        let url = super::http::serve_each(move |stream| {
            let mut out = stream.try_clone().unwrap();
            let mut reader = std::io::BufReader::new(stream);
            while let Some(r) = super::http::read_request(&mut reader) {
                let (status, body) = if r.path == "/hook" && r.method == "POST" {
                    let header = r
                        .headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("X-Movieverse-Signature"))
                        .map(|(_, v)| v.as_str());
                    let signed = verify(&secret, &r.body, header);
                    let mut s = shared.lock().unwrap();
                    s.hooks.push(Hook {
                        body: serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null),
                        signed,
                    });
                    if signed {
                        s.hook.clone()
                    } else {
                        (401, "bad signature".into())
                    }
                } else if r.path == "/health" {
                    let mut s = shared.lock().unwrap();
                    s.health_calls += 1;
                    s.health.clone()
                } else {
                    (404, "not found".into())
                };
                let mut text = String::new();
                let _ = write!(
                    text,
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if out.write_all(text.as_bytes()).is_err() {
                    return;
                }
            }
        });
        Self { url, state }
    }

    pub fn set_health(&self, status: u16, body: &str) {
        self.state.lock().unwrap().health = (status, body.into());
    }

    pub fn set_hook(&self, status: u16, body: &str) {
        self.state.lock().unwrap().hook = (status, body.into());
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.state.lock().unwrap().hooks.clone()
    }

    pub fn health_calls(&self) -> usize {
        self.state.lock().unwrap().health_calls
    }
}
