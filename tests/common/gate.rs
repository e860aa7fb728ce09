//! Kills the real binary *as a step begins*, before the step's first platform call leaves.
//!
//! The binary prints a step's line, then makes the step's calls. A test that reads the line
//! and then sends SIGKILL races the binary: on a busy machine the test thread may run again
//! only after the step's calls, and at the last step after the rollout's final record (one
//! CI run saw a canary killed "at step 8/8" already promoted). So here the platform's
//! endpoint (the `KUBECONFIG` server, `AWS_ENDPOINT_URL`) is reached through a gate on
//! loopback: before it forwards any bytes the binary sends, it reads all the binary has
//! written to stderr so far (the line was written before the call) and, once the marker is
//! there, kills the binary instead. A watcher kills it too as soon as the marker appears,
//! for a step whose first calls go elsewhere (a metric provider).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The binary's stderr (a file: what a write put there is there for the next read) as read
/// so far, and whether it was killed.
struct Watch {
    child: Child,
    stderr: std::fs::File,
    seen: Vec<u8>,
    marker: String,
    killed: bool,
    /// It exited (and was waited for): nothing more to kill.
    exited: bool,
}

impl Watch {
    /// Reads what stderr holds now and kills the binary once the marker is in it. Whether
    /// it is killed (or gone).
    fn catch_up(&mut self) -> bool {
        self.stderr.read_to_end(&mut self.seen).unwrap();
        if !self.killed && !self.exited && self.text().contains(&self.marker) {
            self.child.kill().unwrap();
            self.killed = true;
        }
        self.killed || self.exited
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

/// Runs `cmd` (stdout discarded) with its platform calls through a gate, and kills it with
/// SIGKILL as a stderr line with `marker` is written, before any platform call after it
/// leaves. Its exit code (`None`: killed) and all it wrote on stderr. Fails the test if it
/// ends before the marker.
pub fn kill_at(cmd: &mut Command, marker: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut upstreams = Vec::new();
    let envs: Vec<(String, String)> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    for (key, value) in envs {
        match key.as_str() {
            "KUBECONFIG" => {
                let text = std::fs::read_to_string(&value).unwrap();
                let (head, rest) = text
                    .split_once("server: https://")
                    .expect("a kubeconfig with one server");
                let (addr, tail) = rest.split_once('\n').unwrap();
                let gate = listen(&mut upstreams, addr);
                let path = dir.path().join("kubeconfig");
                std::fs::write(&path, format!("{head}server: https://{gate}\n{tail}")).unwrap();
                cmd.env("KUBECONFIG", path);
            }
            "AWS_ENDPOINT_URL" => {
                let addr = value.strip_prefix("http://").expect("an http:// endpoint");
                let gate = listen(&mut upstreams, addr.trim_end_matches('/'));
                cmd.env("AWS_ENDPOINT_URL", format!("http://{gate}"));
            }
            _ => {}
        }
    }
    assert!(
        !upstreams.is_empty(),
        "the command names no platform endpoint (KUBECONFIG, AWS_ENDPOINT_URL) to gate"
    );
    let log = dir.path().join("stderr");
    let child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let watch = Arc::new(Mutex::new(Watch {
        child,
        stderr: std::fs::File::open(&log).unwrap(),
        seen: Vec::new(),
        marker: marker.to_owned(),
        killed: false,
        exited: false,
    }));
    let gates: Vec<SocketAddr> = upstreams
        .into_iter()
        .map(|(listener, upstream)| {
            let gate = listener.local_addr().unwrap();
            let watch = watch.clone();
            std::thread::spawn(move || serve(&listener, &upstream, &watch));
            gate
        })
        .collect();
    // The watcher, for the calls that do not pass a gate (a metric provider's).
    let status = loop {
        {
            let mut w = watch.lock().unwrap();
            if w.catch_up() {
                break w.child.wait().unwrap();
            }
            if let Some(status) = w.child.try_wait().unwrap() {
                w.exited = true;
                break status;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut w = watch.lock().unwrap();
    w.exited = true;
    w.catch_up();
    drop(w);
    // Each gate's accept loop, woken, sees the end and returns.
    for gate in gates {
        let _ = TcpStream::connect(gate);
    }
    let w = watch.lock().unwrap();
    assert!(
        w.killed,
        "it ended ({status}) before `{marker}`:\n{}",
        w.text()
    );
    (status.code(), w.text())
}

/// A gate on loopback in front of `upstream` (host:port): its address.
fn listen(upstreams: &mut Vec<(TcpListener, SocketAddr)>, upstream: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream: SocketAddr = upstream
        .parse()
        .unwrap_or_else(|e| panic!("a loopback address, not `{upstream}`: {e}"));
    assert!(upstream.ip().is_loopback(), "{upstream} is not on loopback");
    upstreams.push((listener, upstream));
    addr
}

/// Forwards each connection to `upstream` while the binary is alive and the marker not yet
/// written; the binary's bytes are held until stderr is caught up.
fn serve(listener: &TcpListener, upstream: &SocketAddr, watch: &Arc<Mutex<Watch>>) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        if watch.lock().unwrap().catch_up() {
            return;
        }
        let Ok(server) = TcpStream::connect(upstream) else {
            continue;
        };
        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        // Answers flow back as they come.
        std::thread::spawn(move || pump(s2, c2, None));
        let watch = watch.clone();
        std::thread::spawn(move || pump(client, server, Some(&watch)));
    }
}

/// Copies `from` to `to`; with a watch, each chunk only while the binary runs on before the
/// marker.
fn pump(mut from: TcpStream, mut to: TcpStream, watch: Option<&Arc<Mutex<Watch>>>) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if watch.is_some_and(|w| w.lock().unwrap().catch_up()) {
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
