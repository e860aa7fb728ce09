//! A real Docker daemon for one test (Debian's `docker.io`, installed by scripts/install-tools):
//! `dockerd` with its own data root, exec root, pid file and socket in a temporary directory,
//! no iptables and no bridge (a `FROM scratch` build runs no container and pulls nothing),
//! the `vfs` storage driver; waited for, killed on drop.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DOCKERD: &str = "/usr/sbin/dockerd";

pub struct Docker {
    child: Child,
    dir: tempfile::TempDir,
    /// `unix:///…/docker.sock`, for `DOCKER_HOST`.
    pub host: String,
}

impl Docker {
    pub fn start() -> Self {
        assert!(
            std::path::Path::new(DOCKERD).is_file(),
            "{DOCKERD} is not installed; run scripts/install-tools (a test never skips: the test command installs every component)"
        );
        let dir = tempfile::Builder::new()
            .prefix("mvd-docker-")
            .tempdir()
            .unwrap();
        let p = |name: &str| dir.path().join(name).display().to_string();
        let host = format!("unix://{}", p("docker.sock"));
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new(DOCKERD)
            .args([
                "--data-root",
                &p("data"),
                "--exec-root",
                &p("exec"),
                "--pidfile",
                &p("dockerd.pid"),
                "--host",
                &host,
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        let docker = Self { child, dir, host };
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let ok = Command::new("docker")
                .args(["-H", &docker.host, "info", "--format", "{{.ServerVersion}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s:\n{}",
                std::fs::read_to_string(docker.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        docker
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd; then make sure.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `DOCKER_CONFIG` directory whose `cli-plugins` holds the buildx plugin that
/// scripts/install-tools builds (`.cache/tools/docker/cli-plugins/docker-buildx`).
pub fn buildx_config() -> tempfile::TempDir {
    let plugins = std::env::var_os("MVD_TOOLS_DIR")
        .map_or_else(
            || super::root().join(".cache/tools"),
            std::path::PathBuf::from,
        )
        .join("docker/cli-plugins");
    assert!(
        plugins.join("docker-buildx").is_file(),
        "the buildx plugin is not installed; run scripts/install-tools (a test never skips: the test command installs every component)"
    );
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&plugins, dir.path().join("cli-plugins")).unwrap();
    dir
}
