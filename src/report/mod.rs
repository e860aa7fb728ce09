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

/// The secrets this process holds (tokens, keys, webhook secrets), for [`scrub`].
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Secrets shorter than this are not scrubbed: they would blank ordinary words.
const SCRUB_MIN_LEN: usize = 6;

/// Masks a secret in the GitHub Actions log (`::add-mask::`, line by line for a multi-line
/// value), and remembers it so that [`scrub`] blanks it in anything printed, in Actions or
/// not (an API's error message may echo a value it was sent).
pub fn mask(secret: &str) {
    {
        let mut known = SECRETS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for line in secret.lines().map(str::trim) {
            if line.len() >= SCRUB_MIN_LEN && !known.iter().any(|k| k == line) {
                known.push(line.to_owned());
            }
        }
    }
    if !in_actions() {
        return;
    }
    let mut out = std::io::stdout().lock();
    for line in secret.lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(out, "::add-mask::{line}");
    }
    let _ = out.flush();
}

/// In a list of variables (`{"name", "value"}`: an ECS container's `environment`, a pod
/// container's `env`), the value of each one whose name looks like a secret replaced by a
/// mark and given to [`mask`]: what a diff or a report may show of a live object.
pub fn hide_plain_secrets(vars: Option<&mut Vec<serde_json::Value>>) {
    for e in vars.into_iter().flatten() {
        let secret = e["name"]
            .as_str()
            .is_some_and(crate::config::validate::looks_like_secret);
        if secret && let Some(value) = e["value"].as_str() {
            mask(value);
            e["value"] = "(a plain value that looks like a secret: not shown)".into();
        }
    }
}

/// `text` with every secret [`mask`] was given replaced by `***`.
pub fn scrub(text: &str) -> String {
    let known = SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = text.to_owned();
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_secrets_are_scrubbed_from_what_is_printed() {
        mask("ghs_scrubTEST0123456789");
        mask("line-one-secret\nline-two-secret\n");
        mask("abc");
        assert_eq!(
            scrub("401 Bad credentials: ghs_scrubTEST0123456789 (token ghs_scrubTEST0123456789)"),
            "401 Bad credentials: *** (token ***)"
        );
        assert_eq!(scrub("a line-two-secret b"), "a *** b");
        // Too short to blank without blanking ordinary words.
        assert_eq!(scrub("abc def"), "abc def");
    }
}
