//! A real Kubernetes control plane for the tests (etcd, kube-apiserver, kube-controller-manager
//! from `scripts/k8s-up`), started once per test binary and stopped by a watchdog when the
//! binary exits, plus a **fake kubelet**: a test component that stands in for the nodes this
//! machine does not have, by writing pod status.
//!
//! The fake kubelet decides a pod's fate from its first container's image:
//! - a tag containing `crashloop`: the container keeps crashing (`CrashLoopBackOff`, last exit
//!   code 1), never Ready;
//! - a tag containing `badpull`: the image cannot be pulled (`ImagePullBackOff`);
//! - anything else: Running and Ready after [`START_DELAY`], or after N seconds for a tag
//!   containing `start<N>s` (a slower start, as real pods have).
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// How long a healthy pod takes to become Ready.
pub const START_DELAY: Duration = Duration::from_millis(300);

pub struct Cluster {
    pub kubeconfig: PathBuf,
    /// The directory (data, logs, kubeconfig). A static is never dropped: the watchdog of
    /// `scripts/k8s-up` removes it once the test binary has exited.
    _dir: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The shared control plane, with the fake kubelet running; a test that cannot start it
/// fails (it never skips).
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

/// The kubeconfig `scripts/k8s-up` names on its last `KUBECONFIG=` line.
pub fn printed_kubeconfig(stdout: &str) -> PathBuf {
    PathBuf::from(
        stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("KUBECONFIG="))
            .expect("k8s-up prints KUBECONFIG="),
    )
}

fn start() -> Cluster {
    let dir = tempfile::Builder::new()
        .prefix("mvd-k8s-")
        .tempdir()
        .expect("a temporary directory")
        .keep();
    let out = Command::new(super::root().join("scripts/k8s-up"))
        .arg(&dir)
        .args(["--watch-pid", &std::process::id().to_string()])
        .output()
        .expect("scripts/k8s-up runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Kubernetes control plane could not be started (scripts/k8s-build builds it; a test never skips):\n{stdout}\n{stderr}"
    );
    eprintln!("{}", stdout.trim_end());
    let kubeconfig = printed_kubeconfig(&stdout);
    let cluster = Cluster {
        kubeconfig,
        _dir: dir,
    };
    let path = cluster.kubeconfig.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(fake_kubelet(path));
    });
    cluster
}

/// The example's Kubernetes environment, deployed with the rolling strategy into `namespace`
/// (created when missing), with a short progress deadline.
pub fn rolling_config(dir: &Path, namespace: &str, deadline: &str, extra: &str) {
    let text = std::fs::read_to_string(super::example()).unwrap();
    let at = text.find("  production-k8s:").unwrap();
    let (head, k8s) = text.split_at(at);
    let strategy = k8s.find("    strategy:").unwrap();
    let env = k8s.find("    env:").unwrap();
    let k8s = format!(
        "{}    strategy:\n      rolling:\n        progress_deadline: {deadline}\n{}",
        &k8s[..strategy],
        &k8s[env..]
    )
    .replace(
        "      namespace: movieverse\n",
        &format!("      namespace: {namespace}\n      create_namespace: true\n"),
    );
    std::fs::write(dir.join("deploy.yml"), format!("{head}{k8s}{extra}")).unwrap();
}

/// A client for the test's own reads and writes.
pub async fn client(kubeconfig: &PathBuf) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// How long a healthy pod of `image` takes to become Ready: N seconds for a tag containing
/// `start<N>s`, otherwise [`START_DELAY`].
fn start_delay(image: &str) -> Duration {
    image
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|w| w.strip_prefix("start")?.strip_suffix('s')?.parse().ok())
        .map_or(START_DELAY, Duration::from_secs)
}

/// Polls every pod in the cluster and writes the status a kubelet would.
async fn fake_kubelet(kubeconfig: PathBuf) {
    let client = client(&kubeconfig).await;
    let all: Api<Pod> = Api::all(client.clone());
    let mut done: HashSet<String> = HashSet::new();
    let mut first_seen: std::collections::HashMap<String, tokio::time::Instant> =
        std::collections::HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(pods) = all.list(&ListParams::default()).await else {
            continue;
        };
        for pod in pods.items {
            let (Some(ns), Some(name), Some(uid)) = (
                pod.metadata.namespace.clone(),
                pod.metadata.name.clone(),
                pod.metadata.uid.clone(),
            ) else {
                continue;
            };
            if done.contains(&uid) || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let seen = *first_seen
                .entry(uid.clone())
                .or_insert_with(tokio::time::Instant::now);
            let spec = pod.spec.clone().unwrap_or_default();
            let image = spec
                .containers
                .first()
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            let healthy = !image.contains("crashloop") && !image.contains("badpull");
            if healthy && seen.elapsed() < start_delay(&image) {
                continue;
            }
            let status = pod_status(&spec, &image);
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .is_ok()
            {
                done.insert(uid);
            }
        }
    }
}

fn pod_status(spec: &k8s_openapi::api::core::v1::PodSpec, image: &str) -> serde_json::Value {
    let now = "2026-01-01T00:00:00Z";
    let crash = image.contains("crashloop");
    let bad_pull = image.contains("badpull");
    let ready = !crash && !bad_pull;
    let statuses: Vec<serde_json::Value> = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let main = i == 0;
            let state = if main && crash {
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 10s restarting failed container={} pod", c.name)}})
            } else if main && bad_pull {
                json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}})
            } else {
                json!({"running": {"startedAt": now}})
            };
            let last = if main && crash {
                json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}})
            } else {
                json!({})
            };
            json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": "",
                "ready": !main || ready,
                "started": !main || ready,
                "restartCount": if main && crash { 3 } else { 0 },
                "state": state,
                "lastState": last,
            })
        })
        .collect();
    let flag = if ready { "True" } else { "False" };
    json!({
        "status": {
            "phase": if bad_pull { "Pending" } else { "Running" },
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
            ],
            "containerStatuses": statuses,
        }
    })
}

/// Installs the Gateway API CRDs (v1.6.1, `tests/fixtures/gateway-api/`: Gateway and
/// `HTTPRoute`, as the project publishes them) and waits until they are established.
/// Idempotent (server-side apply).
pub async fn install_gateway_api(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for file in ["gateways.yaml", "httproutes.yaml"] {
        let text =
            std::fs::read_to_string(super::root().join("tests/fixtures/gateway-api").join(file))
                .unwrap();
        let crd: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
        api.patch(
            &name,
            &PatchParams::apply("movieverse-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("install {name}: {e}"));
        let deadline = std::time::Instant::now() + Duration::from_mins(1);
        loop {
            let got = api.get(&name).await.unwrap();
            let established = got
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} not established in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The binary against `cluster`, in `dir`, with plain CI output, as a command to run or
/// signal.
pub fn mvd_cmd(cluster: &Cluster, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = super::bin_std();
    cmd.current_dir(dir)
        .env("CI", "true")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args(args);
    cmd
}

/// [`mvd_cmd`], run to its end.
pub fn mvd(cluster: &Cluster, dir: &Path, args: &[&str]) -> super::Run {
    super::Run::from(
        &assert_cmd::Command::from_std(mvd_cmd(cluster, dir, args))
            .output()
            .unwrap(),
    )
}

/// `rollout ACTION` of the Kubernetes environment, polling every second.
pub fn rollout(cluster: &Cluster, dir: &Path, action: &str) -> super::Run {
    mvd(
        cluster,
        dir,
        &[
            "rollout",
            action,
            "--env",
            "production-k8s",
            "--poll-interval",
            "1s",
        ],
    )
}

/// The arguments of a `deploy` of the Kubernetes environment with `image`, polling every
/// second.
pub fn deploy_args(image: &str) -> [&str; 7] {
    [
        "deploy",
        "--env",
        "production-k8s",
        "--image",
        image,
        "--poll-interval",
        "1s",
    ]
}

/// `deploy` of the Kubernetes environment with `image`, polling every second.
pub fn deploy(cluster: &Cluster, dir: &Path, image: &str) -> super::Run {
    mvd(cluster, dir, &deploy_args(image))
}

/// A fault the proxy answers instead of the API server: after `after` matching requests have
/// gone through, the next `times` requests whose method is `method` and whose path contains
/// `path` (ends with it, when it ends with `$`; `*` stands for anything) get `status` (a Kubernetes `Status` body, as the API server writes it); status 0 closes
/// the connection unanswered (a reset).
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    pub path: String,
    pub status: u16,
    pub times: u32,
    pub after: u32,
}

pub type Faults = std::sync::Arc<std::sync::Mutex<Vec<Fault>>>;

impl Fault {
    /// Whether this request is answered by the fault (counting it when it matches).
    pub fn matches(&mut self, method: &str, path: &str) -> bool {
        let (pattern, anchored) = match self.path.strip_suffix('$') {
            Some(p) => (p, true),
            None => (self.path.as_str(), false),
        };
        let mut rest = path;
        let parts: Vec<&str> = pattern.split('*').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let at = if last && anchored {
                rest.ends_with(part).then(|| rest.len() - part.len())
            } else {
                rest.find(part)
            };
            let Some(at) = at else { return false };
            rest = &rest[at + part.len()..];
        }
        if self.times == 0 || self.method != method {
            return false;
        }
        if self.after > 0 {
            self.after -= 1;
            return false;
        }
        true
    }
}

/// ", credentials renewed" when a run's stderr says it renewed its Kubernetes credentials
/// after the API server refused them (`platform::kubernetes::auth`); nothing otherwise.
#[allow(dead_code)]
pub fn renewed(stderr: &str) -> &'static str {
    if stderr.contains("the API server having said they expired") {
        ", credentials renewed"
    } else {
        ""
    }
}

/// The prefix of the tokens [`proxy`]'s kubeconfig gets from its exec plugin.
const EXEC_TOKEN: &str = "mvd-exec-";

/// A counting, fault-injecting reverse proxy in front of `kubeconfig`'s API server: HTTP/1.1
/// from the binary, HTTPS with the bearer token to the API server; responses are streamed
/// back chunk by chunk (watches stay open). Every request line goes into `seen`; a request a
/// fault matches is answered by the fault. Returns a kubeconfig in `dir` that points at it,
/// whose credentials come from an exec plugin (as `aws eks get-token` gives them on EKS): a
/// script in `dir` that gives a new token each time it runs (`mvd-exec-1`, `-2`, …, counted
/// in `dir/exec-runs`), valid for a day. The proxy lets through only a token of the plugin's
/// (401 otherwise); a fault of status 401 refuses the token the request carried, for good (its
/// credentials expired before the time they stated), so only a renewed one gets through.
pub fn proxy(
    kubeconfig: &std::path::Path,
    dir: &std::path::Path,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    faults: Faults,
) -> PathBuf {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let config: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
    let upstream = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_owned();
    let ca = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        config["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let token = config["users"][0]["user"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A client per connection, on that connection's own runtime: a pooled connection is driven
    // by the runtime that opened it, and a runtime blocked reading its next request would
    // stall every other thread that picked that connection from a shared pool.
    let ca = reqwest::Certificate::from_pem(&ca).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let refused: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut out) = stream else { continue };
            let (client, upstream, token, seen, faults, refused) = (
                reqwest::Client::builder()
                    .add_root_certificate(ca.clone())
                    .build()
                    .unwrap(),
                upstream.clone(),
                token.clone(),
                seen.clone(),
                faults.clone(),
                refused.clone(),
            );
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut reader = std::io::BufReader::new(out.try_clone().unwrap());
                while let Some(request) = super::http::read_request(&mut reader) {
                    let super::http::Request {
                        method,
                        path,
                        headers,
                        body,
                    } = request;
                    let headers: Vec<(String, String)> = headers
                        .into_iter()
                        .filter(|(k, _)| {
                            !["host", "connection", "content-length"]
                                .contains(&k.to_ascii_lowercase().as_str())
                        })
                        .collect();
                    seen.lock().unwrap().push(format!("{method} {path}"));
                    let presented = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                        .and_then(|(_, v)| v.strip_prefix("Bearer "))
                        .unwrap_or_default()
                        .to_owned();
                    let valid = presented.starts_with(EXEC_TOKEN)
                        && !refused.lock().unwrap().contains(&presented);
                    let injected = if valid {
                        let mut faults = faults.lock().unwrap();
                        faults
                            .iter_mut()
                            .position(|f| f.matches(&method, &path))
                            .map(|i| {
                                faults[i].times -= 1;
                                faults[i].status
                            })
                    } else {
                        Some(401)
                    };
                    if injected == Some(401) {
                        refused.lock().unwrap().push(presented);
                    }
                    if injected == Some(0) {
                        let _ = out.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    if let Some(status) = injected {
                        let body = format!(
                            "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"injected by the test proxy\",\"reason\":\"{}\",\"code\":{status}}}",
                            match status {
                                429 => "TooManyRequests",
                                401 => "Unauthorized",
                                _ => "InternalError",
                            }
                        );
                        let head = format!(
                            "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        if out
                            .write_all(head.as_bytes())
                            .and_then(|()| out.write_all(body.as_bytes()))
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    let mut request = client
                        .request(
                            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                            format!("{upstream}{path}"),
                        )
                        .body(body);
                    for (k, v) in &headers {
                        if !k.eq_ignore_ascii_case("authorization") {
                            request = request.header(k.as_str(), v.as_str());
                        }
                    }
                    let request = request.bearer_auth(&token);
                    let Ok(mut response) = rt.block_on(request.send()) else {
                        return;
                    };
                    let mut head = format!("HTTP/1.1 {}\r\n", response.status());
                    if let Some(ct) = response.headers().get("content-type") {
                        let _ = write!(head, "Content-Type: {}\r\n", ct.to_str().unwrap_or(""));
                    }
                    head.push_str("Transfer-Encoding: chunked\r\n\r\n");
                    if out.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    while let Ok(Some(chunk)) = rt.block_on(response.chunk()) {
                        let framed =
                            [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                        if out.write_all(&framed).and_then(|()| out.flush()).is_err() {
                            return;
                        }
                    }
                    if out.write_all(b"0\r\n\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    let plugin = dir.join("exec-plugin");
    let runs = dir.join("exec-runs");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\n# Gives a new token each time it runs, as `aws eks get-token` does.\nn=$(( $(cat '{runs}' 2>/dev/null || echo 0) + 1 ))\necho \"$n\" > '{runs}'\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{EXEC_TOKEN}%s\",\"expirationTimestamp\":\"%s\"}}}}\\n' \"$n\" \"$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)\"\n",
            runs = runs.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let proxied = dir.join("kubeconfig-proxied");
    std::fs::write(
        &proxied,
        format!("apiVersion: v1\nkind: Config\nclusters:\n  - name: proxy\n    cluster:\n      server: {url}\nusers:\n  - name: anyone\n    user:\n      exec:\n        apiVersion: client.authentication.k8s.io/v1\n        command: {}\n        interactiveMode: Never\ncontexts:\n  - name: proxy\n    context:\n      cluster: proxy\n      user: anyone\ncurrent-context: proxy\n", plugin.display()),
    )
    .unwrap();
    proxied
}

/// `deploy` of `image` in `dir` through the fault-injecting [`proxy`] with `faults`, killed
/// after 5 minutes (a hung request fails the caller's test instead of hanging it). Returns
/// the run, what went through the proxy when a fault that should end was never met (empty
/// otherwise; a fault of 50 or more times is "for good" and need not be used up), and when
/// the run started (ms since 1970).
#[allow(dead_code)]
pub fn deploy_through_faults(
    cluster: &Cluster,
    dir: &Path,
    image: &str,
    faults: Vec<Fault>,
) -> (super::Run, String, u64) {
    let faults: Faults = std::sync::Arc::new(std::sync::Mutex::new(faults));
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
    let proxied = proxy(&cluster.kubeconfig, dir, seen.clone(), faults.clone());
    let mut cmd = mvd_cmd(cluster, dir, &deploy_args(image));
    let (retry_base, value) = super::matrix::RETRY_BASE;
    cmd.env("KUBECONFIG", &proxied)
        .env(retry_base, value)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = super::now_ms();
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watched = done.clone();
    std::thread::spawn(move || {
        for _ in 0..300 {
            std::thread::sleep(std::time::Duration::from_secs(1));
            if watched.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
        }
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    });
    let r = super::Run::from(&child.wait_with_output().unwrap());
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let unmet = faults
        .lock()
        .unwrap()
        .iter()
        .any(|f| f.times > 0 && f.times < 50);
    let note = if unmet {
        format!(
            "a fault was never met; through the proxy:\n{}",
            seen.lock().unwrap().join("\n")
        )
    } else {
        String::new()
    };
    (r, note, started)
}
