//! A real Prometheus (Debian's `prometheus`, installed by scripts/install-tools) started on a
//! free loopback port, scraping a test exporter every second; stopped on drop. The exporter
//! serves what the test sets: gauges as they are, and counters that grow at the rates the
//! test sets (requests and errors of a track), as an application's would.

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/prometheus";

/// Per-second request rates of one track: (successes, server errors), and a fixed latency.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    pub ok_per_sec: f64,
    pub errors_per_sec: f64,
    pub p99_ms: f64,
}

#[derive(Default)]
struct Exported {
    /// Counters integrated so far: (track, code) -> value.
    counters: Vec<((String, &'static str), f64)>,
    traffic: Vec<(String, Traffic)>,
    last: Option<Instant>,
    gauges: Vec<(String, f64)>,
}

impl Exported {
    fn advance(&mut self) {
        let now = Instant::now();
        let dt = self.last.map_or(0.0, |l| (now - l).as_secs_f64());
        self.last = Some(now);
        for (track, t) in self.traffic.clone() {
            for (code, rate) in [("200", t.ok_per_sec), ("500", t.errors_per_sec)] {
                let key = (track.clone(), code);
                match self.counters.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => *v += rate * dt,
                    None => self.counters.push((key, 0.0)),
                }
            }
        }
    }

    fn text(&mut self) -> String {
        self.advance();
        let mut out = String::from("# TYPE http_requests_total counter\n");
        for ((track, code), v) in &self.counters {
            let _ = writeln!(
                out,
                "http_requests_total{{service=\"{track}\",code=\"{code}\"}} {v}"
            );
        }
        out.push_str("# TYPE http_request_p99_ms gauge\n");
        for (track, t) in &self.traffic {
            let _ = writeln!(
                out,
                "http_request_p99_ms{{service=\"{track}\"}} {}",
                t.p99_ms
            );
        }
        for (name, v) in &self.gauges {
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}

pub struct Prom {
    child: Child,
    pub url: String,
    /// The exporter's `/metrics` URL.
    pub exporter: String,
    exported: Arc<Mutex<Exported>>,
    _dir: tempfile::TempDir,
}

impl Prom {
    pub fn start() -> Self {
        assert!(
            std::path::Path::new(BINARY).is_file(),
            "{BINARY} is not installed; run scripts/install-tools (a test never skips: the test command installs every component)"
        );
        let exported = Arc::new(Mutex::new(Exported::default()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let exporter_addr = listener.local_addr().unwrap();
        let served = exported.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let body = served.lock().unwrap().text();
                let _ = std::io::Write::write_fmt(
                    &mut s,
                    format_args!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                );
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{exporter_addr}']\n"
            ),
        )
        .unwrap();
        let (child, port) =
            super::ports::spawn_listening("prometheus", Duration::from_mins(1), |port| {
                Command::new(BINARY)
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        dir.path().join("data").display()
                    ))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--log.level=warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("prometheus starts")
            });
        let prom = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            exporter: format!("http://{exporter_addr}/metrics"),
            exported,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let ready = std::process::Command::new("curl")
                .args(["-fs", "-o", "/dev/null", &format!("{}/-/ready", prom.url)])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready in 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prom
    }

    /// Sets a track's traffic from now on.
    pub fn set_traffic(&self, track: &str, traffic: Traffic) {
        let mut e = self.exported.lock().unwrap();
        e.advance();
        match e.traffic.iter_mut().find(|(t, _)| t == track) {
            Some((_, t)) => *t = traffic,
            None => e.traffic.push((track.to_owned(), traffic)),
        }
    }

    pub fn set_gauge(&self, name: &str, value: f64) {
        let mut e = self.exported.lock().unwrap();
        match e.gauges.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => e.gauges.push((name.to_owned(), value)),
        }
    }

    /// The newest sample time of `metric` (seconds since the epoch; 0 when none).
    pub fn newest(&self, metric: &str) -> f64 {
        let out = Command::new("curl")
            .args(["-fsS", "--get", &format!("{}/api/v1/query", self.url)])
            .args(["--data-urlencode", &format!("query=timestamp({metric})")])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .fold(0.0_f64, f64::max)
    }

    /// Waits until Prometheus has scraped `n` samples of `metric` taken after `since` (a rate
    /// needs two). The first scrape after start-up comes up to an interval late.
    pub fn wait_scrapes(&self, metric: &str, since: std::time::SystemTime, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut after = since
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        for _ in 0..n {
            loop {
                let newest = self.newest(metric);
                if newest > after {
                    after = newest;
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no new scrape of {metric} in 30 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
