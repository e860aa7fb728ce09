//! A real OCI registry for one test: Debian's `docker-registry` on a free loopback port,
//! optionally with htpasswd basic auth, waited for and killed on drop. Its access log counts
//! the requests it served, independently of our own counters.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct LocalRegistry {
    child: Child,
    pub host: String,
    dir: tempfile::TempDir,
}

/// `docker-registry` from /usr/bin; a missing one fails the test.
fn binary() -> PathBuf {
    for p in ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"] {
        if std::path::Path::new(p).is_file() {
            return p.into();
        }
    }
    panic!(
        "docker-registry is not installed; run scripts/install-tools (a test never skips: the test command installs every component)"
    );
}

impl LocalRegistry {
    /// `login`: (user, password) that the registry requires, or none.
    pub fn start(login: Option<(&str, &str)>) -> Self {
        let bin = binary();
        let dir = tempfile::tempdir().unwrap();
        // The htpasswd file, written once whatever port the registry ends up on.
        let auth = login.map_or_else(String::new, |(user, password)| {
            let hash = bcrypt::hash(password, 5).unwrap();
            std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            )
        });
        let config_for = |port: u16| {
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.path().join("data").display()
            )
        };
        let (child, port) =
            super::ports::spawn_listening("docker-registry", Duration::from_secs(30), |port| {
                std::fs::write(dir.path().join("config.yml"), config_for(port)).unwrap();
                let log = std::fs::File::create(dir.path().join("log")).unwrap();
                let access = std::fs::File::create(dir.path().join("access")).unwrap();
                Command::new(&bin)
                    .arg("serve")
                    .arg(dir.path().join("config.yml"))
                    .stdout(access)
                    .stderr(log)
                    .spawn()
                    .expect("docker-registry starts")
            });
        let reg = Self {
            child,
            host: format!("127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://{}/v2/", reg.host))
                .output()
                .is_ok_and(|o| {
                    let code = String::from_utf8_lossy(&o.stdout).to_string();
                    code == "200" || code == "401"
                });
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "docker-registry did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// Requests the registry has served so far (its access log, on its stdout), our
    /// readiness probes excluded.
    pub fn requests(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("access"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("\"curl/"))
            .count()
    }

    /// `skopeo inspect` (an independent client) of `repo:tag`, as JSON.
    pub fn inspect(
        &self,
        reference: &str,
        creds: Option<(&str, &str)>,
        raw: bool,
    ) -> Option<serde_json::Value> {
        let mut cmd = Command::new("skopeo");
        cmd.arg("inspect").arg("--tls-verify=false");
        if raw {
            cmd.arg("--raw");
        }
        if let Some((u, p)) = creds {
            cmd.arg("--creds").arg(format!("{u}:{p}"));
        }
        let out = cmd
            .arg(format!("docker://{}/{reference}", self.host))
            .output()
            .expect("skopeo runs");
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("skopeo prints JSON"))
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
