//! What commit is being released: from the GitHub Actions environment, or from the local
//! repository on a laptop. Reads files (and runs `git status` only to count uncommitted
//! changes, [`uncommitted`]); makes no network call.

use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GitInfo {
    /// The full commit id, or `unknown`.
    pub sha: String,
    /// The first 7 characters of `sha`.
    pub sha7: String,
    pub branch: Option<String>,
    /// A tag of the form `vX.Y.Z` (or any tag) the ref points at.
    pub tag: Option<String>,
    /// The pull request number on `pull_request` events.
    pub pr: Option<u64>,
    /// Where the commit came from: `github-actions`, `git`, or `unknown`.
    pub origin: &'static str,
}

impl GitInfo {
    pub fn unknown() -> Self {
        Self {
            sha: "unknown".into(),
            sha7: "unknown".into(),
            origin: "unknown",
            ..Self::default()
        }
    }

    fn with_sha(sha: &str, origin: &'static str) -> Self {
        let sha = sha.trim().to_lowercase();
        Self {
            sha7: sha.chars().take(7).collect(),
            sha,
            origin,
            ..Self::default()
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("GitInfo serializes")
    }

    /// Reads the commit from the environment (`GITHUB_SHA`, `GITHUB_REF`, `GITHUB_EVENT_PATH`)
    /// when running in GitHub Actions, otherwise from the git repository holding `dir`.
    pub fn discover(dir: &Path) -> Self {
        Self::from_env(&|k| std::env::var(k).ok())
            .or_else(|| Self::from_repository(dir))
            .unwrap_or_else(Self::unknown)
    }

    /// The GitHub Actions view. On `pull_request` events the PR head commit is used, not the
    /// temporary merge commit GitHub checks out.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let sha = var("GITHUB_SHA").filter(|s| !s.is_empty())?;
        let mut info = Self::with_sha(&sha, "github-actions");
        let git_ref = var("GITHUB_REF").unwrap_or_default();
        if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
            info.branch = Some(branch.to_owned());
        } else if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
            info.tag = Some(tag.to_owned());
        } else if let Some(rest) = git_ref.strip_prefix("refs/pull/") {
            info.pr = rest.split('/').next().and_then(|n| n.parse().ok());
            info.branch = var("GITHUB_HEAD_REF").filter(|s| !s.is_empty());
            let head = var("GITHUB_EVENT_PATH")
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| v["pull_request"]["head"]["sha"].as_str().map(str::to_owned));
            if let Some(head) = head {
                let (branch, pr) = (info.branch.take(), info.pr);
                info = Self::with_sha(&head, "github-actions");
                info.branch = branch;
                info.pr = pr;
            }
        }
        Some(info)
    }

    /// Reads `.git/HEAD` and the ref it names (loose or packed).
    pub fn from_repository(dir: &Path) -> Option<Self> {
        let git_dir = find_git_dir(dir)?;
        let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
        let head = head.trim();
        let (sha, branch) = if let Some(r) = head.strip_prefix("ref: ") {
            (
                resolve_ref(&git_dir, r)?,
                r.strip_prefix("refs/heads/").map(str::to_owned),
            )
        } else {
            (head.to_owned(), None)
        };
        let mut info = Self::with_sha(&sha, "git");
        info.branch = branch;
        info.tag = tag_pointing_at(&git_dir, &info.sha);
        Some(info)
    }
}

fn find_git_dir(start: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(start).ok()?;
    for dir in start.ancestors() {
        let candidate = dir.join(".git");
        if candidate.is_dir() {
            return Some(candidate);
        }
        // A worktree or submodule: `.git` is a file saying `gitdir: PATH`.
        if let Ok(text) = std::fs::read_to_string(&candidate)
            && let Some(path) = text.trim().strip_prefix("gitdir: ")
        {
            return Some(dir.join(path));
        }
    }
    None
}

fn resolve_ref(git_dir: &Path, name: &str) -> Option<String> {
    if let Ok(s) = std::fs::read_to_string(git_dir.join(name)) {
        return Some(s.trim().to_owned());
    }
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .ok()
        .map_or_else(|| git_dir.to_path_buf(), |c| git_dir.join(c.trim()));
    if let Ok(s) = std::fs::read_to_string(common.join(name)) {
        return Some(s.trim().to_owned());
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        let (sha, r) = line.split_once(' ')?;
        (r == name).then(|| sha.to_owned())
    })
}

fn tag_pointing_at(git_dir: &Path, sha: &str) -> Option<String> {
    let dir = git_dir.join("refs/tags");
    let mut tags: Vec<String> = std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|s| s.trim() == sha))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    if let Ok(packed) = std::fs::read_to_string(git_dir.join("packed-refs")) {
        tags.extend(packed.lines().filter_map(|l| {
            let (s, r) = l.split_once(' ')?;
            (s == sha).then(|| r.strip_prefix("refs/tags/").map(str::to_owned))?
        }));
    }
    tags.sort();
    tags.into_iter().next()
}

/// How many files differ from the commit in the repository holding `dir` (tracked changes
/// and untracked files, as `git status --porcelain` lists them); `None` when git is not
/// installed or `dir` is not in a work tree. The one place that runs a `git` process: a
/// working tree's state cannot be read from `.git` files alone without reimplementing the
/// index.
pub fn uncommitted(dir: &Path) -> Option<usize> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).lines().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn push_to_a_branch() {
        let info = GitInfo::from_env(&env(&[
            ("GITHUB_SHA", "ABCDEF1234567890"),
            ("GITHUB_REF", "refs/heads/main"),
        ]))
        .unwrap();
        assert_eq!(info.sha7, "abcdef1");
        assert_eq!(info.branch.as_deref(), Some("main"));
    }

    #[test]
    fn pull_request_uses_the_head_commit_not_the_merge_commit() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(&event, r#"{"pull_request":{"head":{"sha":"1111111222"}}}"#).unwrap();
        let event = event.to_string_lossy().into_owned();
        let info = GitInfo::from_env(&env(&[
            ("GITHUB_SHA", "9999999888"),
            ("GITHUB_REF", "refs/pull/42/merge"),
            ("GITHUB_HEAD_REF", "feature/x"),
            ("GITHUB_EVENT_PATH", &event),
        ]))
        .unwrap();
        assert_eq!(info.sha7, "1111111");
        assert_eq!(info.pr, Some(42));
        assert_eq!(info.branch.as_deref(), Some("feature/x"));
    }

    #[test]
    fn reads_a_loose_and_a_packed_ref() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(
            git.join("packed-refs"),
            "# pack-refs\n0123456789abcdef refs/heads/main\n0123456789abcdef refs/tags/v1.2.3\n",
        )
        .unwrap();
        let info = GitInfo::from_repository(dir.path()).unwrap();
        assert_eq!(info.sha7, "0123456");
        assert_eq!(info.branch.as_deref(), Some("main"));
        assert_eq!(info.tag.as_deref(), Some("v1.2.3"));
    }
}
