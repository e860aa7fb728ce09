//! Reporters: what people see of a deployment. Today the terminal (live progress on a TTY,
//! plain lines in CI); the GitHub reporter (PR comment, deployments, summary) consumes the same
//! events. The GitHub Actions workflow commands used everywhere are here.

pub mod github;
pub mod github_api;
pub mod terminal;

use std::io::Write as _;

/// Whether we run inside GitHub Actions.
pub fn in_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Masks a secret in the GitHub Actions log (`::add-mask::`, line by line for a multi-line
/// value). Outside Actions it does nothing: the secret is simply never printed.
pub fn mask(secret: &str) {
    if !in_actions() {
        return;
    }
    let mut out = std::io::stdout().lock();
    for line in secret.lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(out, "::add-mask::{line}");
    }
    let _ = out.flush();
}

/// Starts a collapsible group in the Actions log; a plain header elsewhere.
pub fn group(title: &str) {
    if in_actions() {
        eprintln!("::group::{title}");
    } else {
        eprintln!("==> {title}");
    }
}

pub fn end_group() {
    if in_actions() {
        eprintln!("::endgroup::");
    }
}

/// Appends `name=value` to `$GITHUB_OUTPUT` (with a random heredoc delimiter, so a value
/// with newlines cannot forge another output). Does nothing outside Actions.
pub fn set_output(name: &str, value: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT") else {
        return Ok(());
    };
    let delimiter = loop {
        let d = format!("ghadelimiter_{}", random_hex());
        if !value.contains(&d) {
            break d;
        }
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    f.write_all(output_block(name, value, &delimiter).as_bytes())
}

/// One `$GITHUB_OUTPUT` entry in the heredoc form.
pub fn output_block(name: &str, value: &str, delimiter: &str) -> String {
    format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
}

/// The `result` output for a report state.
pub fn result_word(state: github::State) -> &'static str {
    match state {
        github::State::Succeeded => "succeeded",
        github::State::NoChange => "no-change",
        github::State::Failed => "failed",
        github::State::RolledBack => "rolled-back",
        github::State::Cancelled => "cancelled",
        github::State::InProgress => "in-progress",
    }
}

fn random_hex() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    // RandomState is seeded from the OS per process; two of them give 128 unpredictable bits.
    let mut s = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{:016x}", h.finish()));
    }
    s
}
