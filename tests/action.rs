//! The Action's install step (`scripts/action-install`, what action.yml runs) against a local
//! HTTP server serving a fake release: the right checksum installs (and a second run takes the
//! tool cache), a wrong one fails with a clear message and installs nothing, a missing asset
//! or a ref with no release falls back to a source build (cargo stubbed on PATH: the build
//! itself is what `cargo build` does everywhere else in this suite).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    let (child, port) =
        common::ports::spawn_listening("http.server", Duration::from_secs(20), |port| {
            http_server(root, port)
        });
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn http_server(root: &Path, port: u16) -> Child {
    Command::new("python3")
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
        .unwrap()
}

/// The start of every test server run as a process (moto, the registry, Prism, Prometheus,
/// this http.server: `common::ports`): a port another process took between its choice and
/// the server's bind is not mistaken for the server (something answers there, but not it);
/// the server, which exits, is started again on the next port.
#[test]
fn a_test_server_whose_port_was_taken_is_started_again_on_another() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let root = tempfile::tempdir().unwrap();
    let mut tried = Vec::new();
    let (mut child, port) = common::ports::spawn_listening_on(
        [taken_port, common::ports::free_port()],
        "http.server",
        Duration::from_secs(20),
        |port| {
            tried.push(port);
            http_server(root.path(), port)
        },
    );
    assert_ne!(port, taken_port);
    assert_eq!(tried, [taken_port, port]);
    assert!(common::ports::listens(child.id(), port));
    assert!(!common::ports::listens(child.id(), taken_port));
    assert!(common::ports::listens(std::process::id(), taken_port));
    let _ = child.kill();
    let _ = child.wait();
}

/// The kill of the kill tables (`common::gate`): a process that writes a step's line and at
/// once calls its platform is killed before the call reaches the platform, every time; the
/// calls before the line get through.
#[test]
fn a_binary_killed_as_a_step_begins_makes_no_platform_call_after_it() {
    use std::io::{BufRead as _, Write as _};
    let platform = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = platform.local_addr().unwrap().port();
    let reached = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = reached.clone();
    std::thread::spawn(move || {
        for c in platform.incoming() {
            let mut c = c.unwrap();
            let mut line = String::new();
            let _ = std::io::BufReader::new(&c).read_line(&mut line);
            got.lock().unwrap().push(line);
            let _ = c.write_all(b"ok\n");
        }
    });
    // Each step: its line, then its call (a request, and the answer waited for), as fast as
    // bash goes.
    let script = r#"hostport="${AWS_ENDPOINT_URL#http://}"
for step in 1 2; do
  echo "step $step/2: go" >&2
  exec 3<>"/dev/tcp/${hostport%:*}/${hostport#*:}"
  echo "PUT /step-$step" >&3
  read -r answer <&3
  exec 3>&-
done
sleep 30"#;
    let mut runs = 0;
    for _ in 0..20 {
        let mut cmd = std::process::Command::new("bash");
        cmd.args(["-c", script])
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
        let (code, seen) = common::gate::kill_at(&mut cmd, "step 2/2:");
        assert_eq!(code, None, "{seen}");
        assert_eq!(seen, "step 1/2: go\nstep 2/2: go\n");
        runs += 1;
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(*reached.lock().unwrap(), vec!["PUT /step-1\n"; runs]);
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

/// The action's run step (`id: run`), as the runner executes it.
fn run_script() -> String {
    let text = std::fs::read_to_string(common::root().join("action.yml")).unwrap();
    let action: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    action["runs"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "run")
        .and_then(|s| s["run"].as_str())
        .expect("the run step")
        .to_owned()
}

/// Runs the action's script with these inputs and a stub `movieverse-deploy` on PATH that
/// records its arguments: (exit code, stdout, the arguments the binary got).
fn run_action(inputs: &[(&str, &str)]) -> (i32, String, Option<Vec<String>>) {
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("args");
    let stub = dir.path().join("movieverse-deploy");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{}'\n",
            recorded.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-e", "-c", &run_script()])
        .env(
            "PATH",
            format!(
                "{}:{}",
                dir.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("MVD_CONFIG", "deploy.yml");
    for k in [
        "MVD_COMMAND",
        "MVD_ENVIRONMENT",
        "MVD_DRY_RUN",
        "MVD_AWS_REGION",
        "MVD_IMAGE",
        "MVD_TO_TAGS",
        "MVD_TO_REPOSITORY",
        "MVD_ROLLOUT",
        "MVD_RETURN_AT",
        "MVD_LOCK_TIMEOUT",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in inputs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let args = std::fs::read_to_string(&recorded)
        .ok()
        .map(|t| t.lines().map(str::to_owned).collect());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        args,
    )
}

/// Every command with and without each input: the script passes the binary only arguments
/// its parser accepts (checked with the binary's own parser), or refuses the inputs itself.
#[test]
fn the_actions_script_passes_only_arguments_the_binary_accepts() {
    use clap::Parser as _;
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let mut runs = 0;
    for command in [
        "build", "render", "plan", "deploy", "promote", "rollback", "status", "rollout",
    ] {
        for env in ["", "staging"] {
            for with_image in [false, true] {
                for dry_run in ["", "false", "true"] {
                    for rollout in ["status", "promote", "promote-full", "abort", "resume"] {
                        if command != "rollout" && rollout != "status" {
                            continue;
                        }
                        let mut inputs = vec![
                            ("MVD_COMMAND", command),
                            ("MVD_ENVIRONMENT", env),
                            ("MVD_DRY_RUN", dry_run),
                            ("MVD_ROLLOUT", rollout),
                            ("MVD_TO_TAGS", "v1.2.3 stable"),
                            ("MVD_RETURN_AT", "bake"),
                            ("MVD_LOCK_TIMEOUT", "10m"),
                        ];
                        if with_image {
                            inputs.push(("MVD_IMAGE", image));
                        }
                        let (code, stdout, args) = run_action(&inputs);
                        runs += 1;
                        let what = format!("{inputs:?}");
                        assert_eq!(code, 0, "{what}\n{stdout}");
                        let args = args.unwrap_or_else(|| panic!("the binary ran: {what}"));
                        let waits = matches!(command, "deploy" | "rollback")
                            || command == "rollout" && rollout != "status";
                        assert_eq!(
                            args.contains(&"--lock-timeout".to_owned()),
                            waits && dry_run != "true",
                            "{what}: {args:?}"
                        );
                        if dry_run == "true" {
                            assert_eq!(args[2], "plan", "{what}");
                            assert!(args.contains(&"--verify".to_owned()), "{what}");
                        }
                        let parsed = movieverse_deploy::cli::Cli::try_parse_from(
                            std::iter::once("movieverse-deploy".to_owned()).chain(args.clone()),
                        );
                        // Without an environment, the binary itself says which is missing.
                        if let Err(e) = parsed {
                            let missing_env = env.is_empty()
                                && e.kind() == clap::error::ErrorKind::MissingRequiredArgument;
                            let promote_needs_image =
                                command == "promote" && dry_run != "true" && !with_image;
                            assert!(
                                missing_env || promote_needs_image,
                                "{what}: {args:?} refused: {e}"
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(runs > 50, "{runs} combinations");
    // Inputs the script refuses itself, before the binary runs.
    for (inputs, says) in [
        (
            vec![("MVD_COMMAND", "destroy")],
            "input 'command' must be one of",
        ),
        (
            vec![("MVD_COMMAND", "deploy"), ("MVD_DRY_RUN", "yes")],
            "input 'dry-run' must be 'true' or 'false'",
        ),
        (
            vec![("MVD_COMMAND", "rollout"), ("MVD_ROLLOUT", "skip")],
            "input 'rollout' must be one of",
        ),
        (
            vec![("MVD_COMMAND", "promote"), ("MVD_TO_TAGS", "")],
            "command 'promote' needs the input 'to-tags'",
        ),
    ] {
        let (code, stdout, args) = run_action(&inputs);
        assert_eq!(code, 2, "{inputs:?}\n{stdout}");
        assert!(stdout.contains(says), "{inputs:?}\n{stdout}");
        assert!(args.is_none(), "the binary ran for {inputs:?}");
    }
}

/// Every third-party action in the workflows and the Action is pinned by its full commit
/// SHA (a tag can be moved to other code; a commit cannot).
#[test]
fn third_party_actions_are_pinned_by_commit() {
    let mut files = vec![common::root().join("action.yml")];
    for entry in std::fs::read_dir(common::root().join(".github/workflows")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut seen = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let Some(used) = line
                .trim_start()
                .trim_start_matches("- ")
                .strip_prefix("uses:")
            else {
                continue;
            };
            let used = used.split('#').next().unwrap().trim();
            if used.starts_with("./") || used.starts_with("docker://") {
                continue;
            }
            seen += 1;
            let pinned = used.rsplit_once('@').is_some_and(|(_, rev)| {
                rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit())
            });
            assert!(
                pinned,
                "{}:{}: `{used}` is not pinned by a commit SHA",
                file.display(),
                n + 1
            );
        }
    }
    assert!(seen >= 5, "{seen} third-party actions found");
}
