//! The Action's install step (`scripts/action-install`, what action.yml runs) against a local
//! HTTP server serving a fake release: the right checksum installs (and a second run takes the
//! tool cache), a wrong one fails with a clear message and installs nothing, a missing asset
//! or a ref with no release falls back to a source build (cargo stubbed on PATH: the build
//! itself is what `cargo build` does everywhere else in this suite).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

const ASSET: &str = "movieverse-deploy-x86_64-unknown-linux-musl";
const FAKE_BINARY: &str = "#!/bin/sh\necho 'movieverse-deploy 9.9.9 (fake release)'\n";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python3 -m http.server` on a free loopback port, serving `root`.
fn serve(root: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

struct Setup {
    work: tempfile::TempDir,
    server: Server,
    checksums: std::path::PathBuf,
}

fn setup(listed_sum: Option<String>) -> Setup {
    let work = tempfile::tempdir().unwrap();
    let releases = work.path().join("releases/v9.9.9");
    std::fs::create_dir_all(&releases).unwrap();
    std::fs::write(releases.join(ASSET), FAKE_BINARY).unwrap();
    let real = Sha256::digest(FAKE_BINARY.as_bytes())
        .iter()
        .fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
    let checksums = work.path().join("release-checksums.txt");
    std::fs::write(
        &checksums,
        format!(
            "# comment\n{}  v9.9.9/{ASSET}\n{}  v9.9.8/{ASSET}\n",
            listed_sum.unwrap_or(real),
            "0".repeat(64)
        ),
    )
    .unwrap();
    let server = serve(&work.path().join("releases"));
    Setup {
        work,
        server,
        checksums,
    }
}

fn install(s: &Setup, version: &str, path_prefix: Option<&Path>) -> (i32, String, String) {
    let cache = s.work.path().join("toolcache");
    let github_path = s.work.path().join("github_path");
    let mut path = std::env::var("PATH").unwrap();
    if let Some(p) = path_prefix {
        path = format!("{}:{path}", p.display());
    }
    let out = Command::new(common::root().join("scripts/action-install"))
        .env("MVD_VERSION", version)
        .env("MVD_RELEASE_BASE_URL", &s.server.url)
        .env("MVD_CHECKSUMS_FILE", &s.checksums)
        .env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", "X64")
        .env("RUNNER_TOOL_CACHE", &cache)
        .env("GITHUB_PATH", &github_path)
        .env("GITHUB_ACTION_PATH", s.work.path())
        .env("PATH", path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        std::fs::read_to_string(&github_path).unwrap_or_default(),
    )
}

#[test]
fn the_right_checksum_installs_and_a_second_run_uses_the_tool_cache() {
    let s = setup(None);
    let (code, out, github_path) = install(&s, "v9.9.9", None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("v9.9.9 downloaded and verified"), "{out}");
    let dir = github_path.lines().next().unwrap();
    let ran = Command::new(Path::new(dir).join("movieverse-deploy"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "movieverse-deploy 9.9.9 (fake release)\n"
    );

    let (code, out, _) = install(&s, "v9.9.9", None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("v9.9.9 from the tool cache"), "{out}");
}

#[test]
fn a_wrong_checksum_fails_clearly_and_installs_nothing() {
    let s = setup(Some("1".repeat(64)));
    let (code, out, github_path) = install(&s, "v9.9.9", None);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("::error title=movieverse-deploy::checksum mismatch")
            && out.contains(&"1".repeat(64))
            && out.contains("it was not installed"),
        "{out}"
    );
    assert!(github_path.is_empty());
    assert!(
        !s.work
            .path()
            .join("toolcache/movieverse-deploy/9.9.9")
            .join("x86_64-unknown-linux-musl/movieverse-deploy")
            .exists()
    );
}

/// A `cargo` that "builds" by writing a binary where cargo would.
fn stub_cargo(dir: &Path) {
    let script = "#!/bin/sh\n# args: build --release --locked --manifest-path PATH/Cargo.toml\nroot=$(dirname \"$5\")\nmkdir -p \"$root/target/release\"\nprintf '#!/bin/sh\\necho built from source\\n' > \"$root/target/release/movieverse-deploy\"\nchmod +x \"$root/target/release/movieverse-deploy\"\necho \"stub cargo $*\"\n";
    std::fs::write(dir.join("cargo"), script).unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(dir.join("cargo"))
        .status()
        .unwrap();
}

#[test]
fn a_missing_asset_or_a_ref_with_no_release_builds_from_source() {
    let s = setup(None);
    let bin = tempfile::tempdir().unwrap();
    stub_cargo(bin.path());
    // Listed, but the release has no such asset (404).
    let (code, out, github_path) = install(&s, "v9.9.8", Some(bin.path()));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("has no asset") && out.contains("building from source"),
        "{out}"
    );
    assert!(out.contains("stub cargo build --release --locked"), "{out}");
    assert!(
        github_path.trim_end().ends_with("/target/release"),
        "{github_path}"
    );
    // Not listed at all: no release for this version.
    let (code, out, _) = install(&s, "v9.9.7", Some(bin.path()));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no checksum for v9.9.7"), "{out}");
}
