//! Records the commit the binary is built from, for `--version`: `MVD_BUILD_COMMIT` when set
//! (a release build), else the repository's HEAD read from `.git` files (no `git` process),
//! else `unknown` (a source tarball).

use std::path::Path;

fn head_commit(git: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return Some(head.to_owned());
    };
    watch(&git.join(reference));
    if let Ok(sha) = std::fs::read_to_string(git.join(reference)) {
        return Some(sha.trim().to_owned());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (sha, name) = l.split_once(' ')?;
        (name == reference).then(|| sha.to_owned())
    })
}

/// Reruns this script when `path` changes. Only a path that exists: cargo takes a missing one
/// as changed on every build, which rebuilt the crate on every cargo invocation (a clone whose
/// refs are not packed has no `.git/packed-refs`).
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=MVD_BUILD_COMMIT");
    let git = Path::new(".git");
    watch(&git.join("HEAD"));
    watch(&git.join("packed-refs"));
    // A new loose ref (the branch's first commit after a pack) appears in here.
    watch(&git.join("refs/heads"));
    let commit = std::env::var("MVD_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| head_commit(Path::new(".git")))
        .filter(|c| c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(|| "unknown".to_owned(), |c| c[..12.min(c.len())].to_owned());
    println!("cargo:rustc-env=MVD_BUILD_COMMIT={commit}");
}
