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
    println!("cargo:rerun-if-changed=.git/{reference}");
    if let Ok(sha) = std::fs::read_to_string(git.join(reference)) {
        return Some(sha.trim().to_owned());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (sha, name) = l.split_once(' ')?;
        (name == reference).then(|| sha.to_owned())
    })
}

fn main() {
    println!("cargo:rerun-if-env-changed=MVD_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/packed-refs");
    let commit = std::env::var("MVD_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| head_commit(Path::new(".git")))
        .filter(|c| c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(|| "unknown".to_owned(), |c| c[..12.min(c.len())].to_owned());
    println!("cargo:rustc-env=MVD_BUILD_COMMIT={commit}");
}
