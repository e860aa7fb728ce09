//! Image builders, run as child processes: `docker buildx` where a Docker daemon answers (the
//! hosted runners), otherwise `buildah`, otherwise `podman`. Credentials reach them through a
//! temporary auth file (mode 0600, deleted afterwards), never a command line.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::ImageError;
use super::registry::Login;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuilderKind {
    Docker,
    Buildah,
    Podman,
}

impl fmt::Display for BuilderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuilderKind::Docker => "docker buildx",
            BuilderKind::Buildah => "buildah",
            BuilderKind::Podman => "podman",
        })
    }
}

/// What to build, and where to push it.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub context: PathBuf,
    pub containerfile: PathBuf,
    pub target: Option<String>,
    pub build_args: Vec<(String, String)>,
    pub platforms: Vec<String>,
    pub labels: Vec<(String, String)>,
    /// `host/repo:tag` to push to; `None` builds locally only.
    pub push_to: Option<String>,
    /// The registry speaks plain HTTP (a loopback registry in tests).
    pub insecure: bool,
    /// The login for the registry of `push_to`.
    pub login: Option<(String, Login)>,
}

/// What came out.
#[derive(Debug, Clone)]
pub struct Built {
    /// The pushed manifest's digest (of the index, for several platforms).
    pub digest: Option<String>,
    /// The local name of the image (without a push).
    pub local: String,
}

/// Runs `program args` with a time limit; `Ok(stdout)` when it exits 0.
fn probe(program: &str, args: &[&str]) -> Result<String, String> {
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("`{program}` is not on PATH"));
        }
        Err(e) => return Err(format!("`{program}` cannot be started: {e}")),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{program} {}` did not answer within 15 s",
                    args.join(" ")
                ));
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        Err(format!("`{program} {}` failed: {first}", args.join(" ")))
    }
}

/// Why a builder cannot be used here, or `Ok` when it can.
fn usable(kind: BuilderKind) -> Result<(), String> {
    match kind {
        // Without buildx, `docker build` does (one platform).
        BuilderKind::Docker => probe("docker", &["info", "--format", "{{.ServerVersion}}"])
            .map(|_| ())
            .map_err(|e| format!("the Docker daemon does not answer ({e})")),
        BuilderKind::Buildah => probe("buildah", &["--version"]).map(|_| ()),
        BuilderKind::Podman => probe("podman", &["--version"]).map(|_| ()),
    }
}

/// The builder to use: `forced`, or the first that works of docker buildx, buildah, podman.
/// When none works, the error says which were tried and why each failed.
pub fn detect(forced: Option<BuilderKind>) -> Result<BuilderKind, ImageError> {
    let candidates = forced.map_or_else(
        || {
            vec![
                BuilderKind::Docker,
                BuilderKind::Buildah,
                BuilderKind::Podman,
            ]
        },
        |k| vec![k],
    );
    let mut tried = Vec::new();
    for kind in candidates {
        match usable(kind) {
            Ok(()) => return Ok(kind),
            Err(why) => tried.push(format!("{kind}: {why}")),
        }
    }
    Err(ImageError::Environment {
        message: format!(
            "no image builder works here; tried:\n  - {}\n  = help: install docker (with buildx and a running daemon), buildah or podman, or pick one with --builder",
            tried.join("\n  - ")
        ),
    })
}

/// A containers-auth / docker `config.json` with one registry's login, readable only by us.
fn auth_file(dir: &Path, host: &str, login: &Login) -> Result<PathBuf, ImageError> {
    let path = dir.join("config.json");
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", login.username, login.password));
    let body = serde_json::json!({"auths": {host: {"auth": auth}}});
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&path).map_err(|e| ImageError::Environment {
        message: format!(
            "cannot write the temporary registry auth file {}: {e}",
            path.display()
        ),
    })?;
    f.write_all(body.to_string().as_bytes())
        .map_err(|e| ImageError::Environment {
            message: format!("cannot write {}: {e}", path.display()),
        })?;
    Ok(path)
}

/// Runs a builder command. On a terminal: a spinner showing the builder's latest line, and
/// its whole output only if it fails. Elsewhere (CI, logs): its output as it comes, on our
/// stderr (stdout is for results).
fn run(mut cmd: Command, what: &str) -> Result<(), ImageError> {
    use std::io::{BufRead as _, IsTerminal as _};
    cmd.stdin(Stdio::null());
    let live = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    if !live {
        let stderr = std::io::stderr();
        let out = std::os::fd::AsFd::as_fd(&stderr)
            .try_clone_to_owned()
            .map_or_else(|_| Stdio::null(), Stdio::from);
        let status = cmd
            .stdout(out)
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| ImageError::Environment {
                message: format!("cannot run {what}: {e}"),
            })?;
        return if status.success() {
            Ok(())
        } else {
            Err(ImageError::BuildFailed {
                message: format!("{what} exited with {status} (its output is above)"),
            })
        };
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ImageError::Environment {
            message: format!("cannot run {what}: {e}"),
        })?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix}: {wide_msg} [{elapsed}]")
            .expect("a valid template"),
    );
    bar.set_prefix(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let (bar, lines) = (bar.clone(), lines.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                bar.set_message(line.clone());
                lines.lock().expect("not poisoned").push(line);
            }
        })
    })
    .collect();
    let status = child.wait().map_err(|e| ImageError::Environment {
        message: format!("cannot run {what}: {e}"),
    })?;
    for r in readers {
        let _ = r.join();
    }
    bar.finish_and_clear();
    if status.success() {
        eprintln!("{what}: done");
        Ok(())
    } else {
        for line in lines.lock().expect("not poisoned").iter() {
            eprintln!("  {line}");
        }
        Err(ImageError::BuildFailed {
            message: format!("{what} exited with {status} (its output is above)"),
        })
    }
}

fn common_build_args(req: &BuildRequest, args: &mut Vec<String>) {
    args.push("-f".into());
    args.push(req.containerfile.display().to_string());
    if let Some(t) = &req.target {
        args.push("--target".into());
        args.push(t.clone());
    }
    for (k, v) in &req.build_args {
        args.push("--build-arg".into());
        args.push(format!("{k}={v}"));
    }
    for (k, v) in &req.labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    if !req.platforms.is_empty() {
        args.push("--platform".into());
        args.push(req.platforms.join(","));
    }
}

/// Our `DOCKER_CONFIG` (the login) hides the user's: the CLI plugins they installed there
/// (`~/.docker/cli-plugins/docker-buildx`) are linked in, so buildx is still found.
fn keep_cli_plugins(ours: &std::path::Path) {
    let theirs = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))
        .map(|d| d.join("cli-plugins"))
        .filter(|d| d.is_dir());
    if let Some(dir) = theirs {
        let _ = std::os::unix::fs::symlink(dir, ours.join("cli-plugins"));
    }
}

/// `docker build` where buildx is missing: the daemon's classic builder, one platform (the
/// daemon's), then `docker tag` and `docker push`, whose last line names the digest pushed.
fn classic_docker(
    req: &BuildRequest,
    local: &str,
    docker_config: Option<&std::path::Path>,
) -> Result<Built, ImageError> {
    if req.platforms.len() > 1 {
        return Err(ImageError::BuildFailed {
            message: format!(
                "docker buildx is not installed, and `docker build` builds one platform, not {}\n  = help: install the buildx plugin, or build with buildah (`--builder buildah`)",
                req.platforms.join(", ")
            ),
        });
    }
    eprintln!(
        "docker buildx is not installed: building with `docker build` (the daemon's platform)"
    );
    let mut args: Vec<String> = vec!["build".into()];
    let single = BuildRequest {
        platforms: Vec::new(),
        ..req.clone()
    };
    common_build_args(&single, &mut args);
    args.extend([
        "--tag".into(),
        local.to_owned(),
        req.context.display().to_string(),
    ]);
    let mut cmd = Command::new("docker");
    cmd.args(&args);
    run(cmd, "docker build")?;
    let Some(to) = &req.push_to else {
        return Ok(Built {
            digest: None,
            local: local.to_owned(),
        });
    };
    let docker = |args: &[&str]| {
        let mut cmd = Command::new("docker");
        cmd.args(args);
        if let Some(dir) = docker_config {
            cmd.env("DOCKER_CONFIG", dir);
        }
        cmd
    };
    let tagged = docker(&["tag", local, to])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| ImageError::Environment {
            message: format!("cannot run docker tag: {e}"),
        })?;
    if !tagged.success() {
        return Err(ImageError::BuildFailed {
            message: format!("docker tag {local} {to} exited with {tagged}"),
        });
    }
    let pushed = docker(&["push", to])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ImageError::Environment {
            message: format!("cannot run docker push: {e}"),
        });
    // Ours, pushed or not.
    let _ = docker(&["rmi", local, to])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let pushed = pushed?;
    let out = String::from_utf8_lossy(&pushed.stdout);
    eprint!("{out}{}", String::from_utf8_lossy(&pushed.stderr));
    if !pushed.status.success() {
        return Err(ImageError::BuildFailed {
            message: format!(
                "docker push {to} exited with {} (its output is above)",
                pushed.status
            ),
        });
    }
    // `TAG: digest: sha256:… size: N`
    let digest = out
        .lines()
        .filter_map(|l| l.split_once("digest: ").map(|(_, d)| d))
        .filter_map(|d| d.split_whitespace().next())
        .find(|d| d.starts_with("sha256:"))
        .map(str::to_owned);
    if digest.is_none() {
        return Err(ImageError::BuildFailed {
            message: "docker push did not report the digest it pushed".into(),
        });
    }
    Ok(Built {
        digest,
        local: local.to_owned(),
    })
}

/// Builds (and pushes, when asked) with `kind`.
pub fn build(kind: BuilderKind, req: &BuildRequest) -> Result<Built, ImageError> {
    let scratch = tempfile::Builder::new()
        .prefix("mvd-build-")
        .tempdir()
        .map_err(|e| ImageError::Environment {
            message: format!("cannot create a temporary directory: {e}"),
        })?;
    let auth = match &req.login {
        Some((host, login)) => Some(auth_file(scratch.path(), host, login)?),
        None => None,
    };
    let local = format!(
        "localhost/movieverse-deploy-build:{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let digest_file = scratch.path().join("digest");
    match kind {
        BuilderKind::Docker if probe("docker", &["buildx", "version"]).is_err() => {
            classic_docker(req, &local, auth.is_some().then(|| scratch.path()))
        }
        BuilderKind::Docker => {
            let mut args: Vec<String> = vec!["buildx".into(), "build".into()];
            common_build_args(req, &mut args);
            let metadata = scratch.path().join("metadata.json");
            match &req.push_to {
                Some(to) => {
                    args.extend(["--tag".into(), to.clone(), "--push".into()]);
                }
                None => args.extend(["--tag".into(), local.clone(), "--load".into()]),
            }
            args.extend([
                "--metadata-file".into(),
                metadata.display().to_string(),
                req.context.display().to_string(),
            ]);
            let mut cmd = Command::new("docker");
            cmd.args(&args);
            if auth.is_some() {
                keep_cli_plugins(scratch.path());
                cmd.env("DOCKER_CONFIG", scratch.path());
            }
            run(cmd, "docker buildx build")?;
            let digest = std::fs::read_to_string(&metadata)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["containerimage.digest"].as_str().map(str::to_owned));
            Ok(Built {
                digest: req.push_to.as_ref().and(digest),
                local,
            })
        }
        BuilderKind::Buildah | BuilderKind::Podman => {
            let program = if kind == BuilderKind::Buildah {
                "buildah"
            } else {
                "podman"
            };
            let several = req.platforms.len() > 1;
            let mut args: Vec<String> = vec!["build".into()];
            common_build_args(req, &mut args);
            args.push(if several {
                "--manifest".into()
            } else {
                "--tag".into()
            });
            args.push(local.clone());
            args.push(req.context.display().to_string());
            let mut cmd = Command::new(program);
            cmd.args(&args);
            // Rootless-friendly defaults that work on a runner and in a container; the
            // user's own settings win.
            if kind == BuilderKind::Buildah {
                if std::env::var_os("STORAGE_DRIVER").is_none() {
                    cmd.env("STORAGE_DRIVER", "vfs");
                }
                if std::env::var_os("BUILDAH_ISOLATION").is_none() {
                    cmd.env("BUILDAH_ISOLATION", "chroot");
                }
            }
            run(cmd, &format!("{program} build"))?;
            let Some(to) = &req.push_to else {
                return Ok(Built {
                    digest: None,
                    local,
                });
            };
            let mut push: Vec<String> = if several {
                vec!["manifest".into(), "push".into(), "--all".into()]
            } else {
                vec!["push".into()]
            };
            if let Some(a) = &auth {
                push.extend(["--authfile".into(), a.display().to_string()]);
            }
            if req.insecure {
                push.push("--tls-verify=false".into());
            }
            push.extend([
                "--digestfile".into(),
                digest_file.display().to_string(),
                local.clone(),
                format!("docker://{to}"),
            ]);
            let mut cmd = Command::new(program);
            cmd.args(&push);
            if kind == BuilderKind::Buildah && std::env::var_os("STORAGE_DRIVER").is_none() {
                cmd.env("STORAGE_DRIVER", "vfs");
            }
            let pushed = run(cmd, &format!("{program} push"));
            // The local copy (or manifest list) is ours: remove it, pushed or not, so the next
            // build does not add to an old list.
            let mut rm = Command::new(program);
            rm.args(if several {
                vec!["manifest", "rm", &local]
            } else {
                vec!["rmi", &local]
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            if kind == BuilderKind::Buildah && std::env::var_os("STORAGE_DRIVER").is_none() {
                rm.env("STORAGE_DRIVER", "vfs");
            }
            let _ = rm.status();
            pushed?;
            let digest = std::fs::read_to_string(&digest_file)
                .ok()
                .map(|d| d.trim().to_owned())
                .filter(|d| d.starts_with("sha256:"));
            if digest.is_none() {
                return Err(ImageError::BuildFailed {
                    message: format!("{program} push did not report the digest it pushed"),
                });
            }
            Ok(Built { digest, local })
        }
    }
}
