//! Lease hand-over (#14): how long after a holder dies the next deploy holds the lease, with
//! the real release binary against moto's `DynamoDB`.
//!
//! 1. A holder on another machine that stopped renewing (a runner that died): the lease's
//!    record is planted as such a runner leaves it, renewed just now with a 5 s duration; a
//!    deploy with `--lock-timeout 60s` starts at once. The figure is the time from the lease's
//!    expiry to the deploy's "took over" line: what waiting adds on top of the duration
//!    itself (the deploy looks again every 2 s, or at the expiry when that is sooner).
//! 2. A holder on this machine killed with SIGKILL mid-deploy: the time from the kill to the
//!    next deploy's "took over" line (its process is gone, so no expiry is waited for).
//!
//! Run: `cargo bench --bench lock` (or scripts/bench).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::BufRead as _;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use common::moto::Moto;

const RUNS: usize = 5;
const TABLE: &str = "deploy-locks";
const KEY: &str = "ecs/us-east-1/movieverse-staging/movieverse-app";

fn deploy(moto: &Moto, dir: &std::path::Path, run: usize, extra: &[&str]) -> std::process::Command {
    let mut cmd = common::bin_std();
    cmd.current_dir(dir)
        .env("CI", "true")
        .env("GITHUB_RUN_ID", format!("{}", 700 + run))
        .env("GITHUB_JOB", "deploy")
        .env("GITHUB_ACTOR", "bench")
        .args(["deploy", "--env", "staging", "--lock-timeout", "60s"])
        .args(extra);
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// Starts `cmd` and returns when a stderr line contains `marker`: when, and the child (which
/// the caller waits for).
#[allow(clippy::zombie_processes)]
fn until(cmd: &mut std::process::Command, marker: &str) -> (Instant, std::process::Child) {
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            let _ = child.wait();
            panic!("ended before `{marker}`:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(marker) {
            let at = Instant::now();
            // Drain the rest so the child never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut rest = String::new();
                let _ = std::io::Read::read_to_string(&mut lines, &mut rest);
            });
            return (at, child);
        }
    }
}

fn image(i: usize) -> String {
    format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:{i:064x}")
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name}: median {:.2} s, min {:.2} s, max {:.2} s ({} runs)",
        v[v.len() / 2].as_secs_f64(),
        v[0].as_secs_f64(),
        v[v.len() - 1].as_secs_f64(),
        v.len()
    );
}

fn main() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    moto.staging_config(dir.path());
    let path = dir.path().join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "  staging:\n    target: ecs\n",
        &format!(
            "  staging:\n    target: ecs\n    lock:\n      table: {TABLE}\n      duration: 5s\n"
        ),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let table = rt.block_on(moto.lease_table(TABLE));

    println!(
        "method: the binary `{}` (release under cargo bench) against moto's DynamoDB on loopback, lock.duration 5 s; {RUNS} runs of each case",
        common::bin_path().display()
    );
    let mut after_expiry = Vec::new();
    for i in 0..RUNS {
        let renewed = common::now_ms();
        rt.block_on(
            table
                .put_item()
                .table_name(TABLE)
                .item("lock", AttributeValue::S(KEY.into()))
                .item(
                    "holder",
                    AttributeValue::S("gha:1:deploy:1:4242@runner-elsewhere".into()),
                )
                .item("run", AttributeValue::S("a runner that died".into()))
                .item("actor", AttributeValue::S("bench".into()))
                .item("since", AttributeValue::N(renewed.to_string()))
                .item("renewed", AttributeValue::N(renewed.to_string()))
                .item("duration", AttributeValue::N("5000".into()))
                .item("version", AttributeValue::N("1".into()))
                .send(),
        )
        .unwrap();
        let expiry = Instant::now() + Duration::from_millis(renewed + 5000 - common::now_ms());
        let img = image(2 * i + 1);
        let (took, mut child) = until(
            &mut deploy(&moto, dir.path(), 2 * i, &["--no-wait", "--image", &img]),
            "took over",
        );
        assert!(child.wait().unwrap().success());
        after_expiry.push(took.saturating_duration_since(expiry));
    }
    summary(
        "1. a holder elsewhere that stopped renewing: lease taken after its expiry in",
        after_expiry,
    );

    let mut after_kill = Vec::new();
    for i in 0..RUNS {
        let img = image(100 + 2 * i);
        let (_, mut holder) = until(
            &mut deploy(
                &moto,
                dir.path(),
                100 + i,
                &["--poll-interval", "60s", "--image", &img],
            ),
            "waiting for this deployment to complete",
        );
        holder.kill().unwrap();
        let killed = Instant::now();
        let _ = holder.wait();
        let img = image(101 + 2 * i);
        let (took, mut child) = until(
            &mut deploy(&moto, dir.path(), 200 + i, &["--no-wait", "--image", &img]),
            "took over",
        );
        assert!(child.wait().unwrap().success());
        after_kill.push(took - killed);
    }
    summary(
        "2. a holder on this host killed with SIGKILL: lease taken after the kill in (includes the next process' start-up)",
        after_kill,
    );
}
