//! Shared helpers: run the real binary with a controlled environment and show everything on
//! failure.
#![allow(dead_code)]

pub mod codedeploy;
pub mod datadog;
pub mod docker;
pub mod gate;
pub mod github;
pub mod http;
pub mod k8s;
pub mod matrix;
pub mod metric_math;
pub mod moto;
pub mod ports;
pub mod probe;
pub mod prometheus;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::Output;

pub const SHA: &str = "4f2b9c1e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example() -> PathBuf {
    root().join("examples/movieverse/deploy.yml")
}

/// The binary, with the environment a test controls: a fixed commit on `main`, no colours,
/// and none of the runner's GitHub variables leaking in.
///
/// `MVD_TEST_BIN` names another build of the binary to test (the test command runs the CLI and
/// bad-input suites a second time against the release build, so no difference between build
/// profiles can hide).
pub fn bin() -> assert_cmd::Command {
    assert_cmd::Command::from_std(bin_std())
}

/// The path of the binary under test.
pub fn bin_path() -> PathBuf {
    std::env::var_os("MVD_TEST_BIN").map_or_else(
        || PathBuf::from(assert_cmd::cargo::cargo_bin!("movieverse-deploy")),
        PathBuf::from,
    )
}

/// [`bin`] as a `std::process::Command` (for processes a test signals).
pub fn bin_std() -> std::process::Command {
    let mut cmd = std::process::Command::new(bin_path());
    for (k, _) in std::env::vars() {
        if k.starts_with("GITHUB_") || k.starts_with("MVD_") || k == "RUNNER_OS" {
            cmd.env_remove(k);
        }
    }
    cmd.env("GITHUB_SHA", SHA)
        .env("GITHUB_REF", "refs/heads/main")
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE");
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The value of a `key=value` line on stdout (a step output); fails the test without one.
    pub fn output(&self, key: &str) -> String {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in\n{}", self.dump()))
            .to_owned()
    }

    pub fn from(out: &Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn run(args: &[&str], dir: &Path) -> Run {
    let out = bin()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs");
    Run::from(&out)
}

/// Writes `dir/deploy.yml`: the example with `production-k8s`'s canary replaced: steps
/// [10, 50], a check every `interval`, `threshold` failed checks, these metrics (YAML list
/// items at 12 spaces), `requests` (YAML at 10 spaces, or empty), and `providers` (YAML at 2
/// spaces) in place of the example's.
pub fn canary_config(
    dir: &Path,
    interval: &str,
    threshold: u32,
    metrics: &str,
    requests: &str,
    providers: &str,
) {
    let text = std::fs::read_to_string(example()).unwrap();
    let at = text.find("    strategy:\n      canary:").unwrap();
    let end = text[at..].find("    env:\n").unwrap() + at;
    let strategy = format!(
        "    strategy:\n      canary:\n        steps: [10, 50]\n        deadline: 60m\n        analysis:\n          initial_delay: {interval}\n          interval: {interval}\n          threshold: {threshold}\n{requests}          metrics:\n{metrics}"
    );
    let text = format!("{}{strategy}{}", &text[..at], &text[end..]);
    let p = text.find("providers:\n").unwrap();
    let q = text[p..].find("\nenvironments:").unwrap() + p;
    let text = format!("{}providers:\n{providers}{}", &text[..p], &text[q..]);
    std::fs::write(dir.join("deploy.yml"), text).unwrap();
}

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The variables that point the AWS SDK (ours and the binary's) at `endpoint`, with test
/// credentials and no credentials file or instance metadata: nothing leaves loopback.
/// deploy.yml `text` (the example's) with its production environment's strategy replaced by
/// `strategy` (YAML lines, indented as the environment's keys).
pub fn with_production_strategy(text: &str, strategy: &str) -> String {
    let from = text.find("    strategy:\n      blue-green:\n").unwrap();
    let to = text[from..]
        .find("    env:\n      LOG_LEVEL: warn")
        .unwrap()
        + from;
    format!("{}{strategy}{}", &text[..from], &text[to..])
}

/// The wall clock in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
    ]
}

/// A running binary whose stderr is read line by line.
pub struct Running {
    child: std::process::Child,
    stderr: std::io::BufReader<std::process::ChildStderr>,
    /// Everything it wrote to stderr so far.
    pub seen: String,
}

/// Starts `cmd` (stderr piped, stdout discarded) and returns once a stderr line contains
/// `marker`; fails the test if the process ends first.
pub fn run_until(cmd: &mut std::process::Command, marker: &str) -> Running {
    use std::io::BufRead as _;
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running {
        stderr: std::io::BufReader::new(child.stderr.take().unwrap()),
        child,
        seen: String::new(),
    };
    loop {
        let mut line = String::new();
        assert!(
            running.stderr.read_line(&mut line).unwrap() > 0,
            "it ended before `{marker}`:\n{}",
            running.seen
        );
        running.seen.push_str(&line);
        if line.contains(marker) {
            return running;
        }
    }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads one more stderr line (kept in `seen` too); 0 at the end.
    pub fn read_line(&mut self, line: &mut String) -> usize {
        use std::io::BufRead as _;
        let n = self.stderr.read_line(line).unwrap();
        self.seen.push_str(line);
        n
    }

    /// Waits for it to end by itself: the exit code and all of stderr.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        std::io::Read::read_to_string(&mut self.stderr, &mut self.seen).unwrap();
        (status.code(), self.seen)
    }

    /// Sends SIGINT and waits: the exit code and all of stderr.
    pub fn interrupt(self) -> (Option<i32>, String) {
        let (code, seen, _) = self.signal("INT");
        (code, seen)
    }

    /// Sends the signal (`INT`, `TERM`) and waits: the exit code, all of stderr, and how long
    /// the process took to exit after the signal.
    pub fn signal(mut self, name: &str) -> (Option<i32>, String, std::time::Duration) {
        let sent = std::time::Instant::now();
        let killed = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        let took = sent.elapsed();
        std::io::Read::read_to_string(&mut self.stderr, &mut self.seen).unwrap();
        (status.code(), self.seen, took)
    }
}

/// A JWT with GitHub's claims, as the job's OIDC token endpoint gives it (unsigned: nothing
/// here checks signatures).
pub fn jwt() -> String {
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.PLANTEDsignature",
        b64(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        b64(serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:movieverse/app:ref:refs/heads/main",
            "aud": "sts.amazonaws.com",
        }))
    )
}

/// An HTTP server on loopback answering every request with `status` and `body`; returns its
/// URL and the request lines, authorization and `X-Amz-Target` (the AWS operation) headers
/// it saw.
pub fn answer_all(
    status: &'static str,
    content_type: &'static str,
    body: String,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead as _, Read as _, Write as _};
        for stream in listener.incoming().take(200) {
            let Ok(mut s) = stream else { continue };
            let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            log.lock().unwrap().push(line.trim_end().to_owned());
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim_end().is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") || lower.starts_with("x-amz-target:") {
                    log.lock().unwrap().push(h.trim_end().to_owned());
                }
            }
            let mut b = vec![0; length];
            let _ = reader.read_exact(&mut b);
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

/// Checks that ARCHITECTURE.md carries `table` between `<!-- NAME -->` and `<!-- /NAME -->`,
/// or writes it there with `MVD_UPDATE_DOCS=1` (`how`: the command that regenerates it).
#[allow(dead_code)]
pub fn doc_section(name: &str, table: &str, how: &str) {
    let path = root().join("ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = (format!("<!-- {name} -->\n"), format!("<!-- /{name} -->"));
    let at = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no {begin}"))
        + begin.len();
    let to = doc[at..].find(&end).expect("the end marker") + at;
    if std::env::var_os("MVD_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &doc[..at], &doc[to..])).unwrap();
    } else {
        assert_eq!(
            doc[at..to],
            *table,
            "ARCHITECTURE.md's {name} is stale: MVD_UPDATE_DOCS=1 {how}"
        );
    }
}
