//! A moto server for one test: started on a free loopback port and waited for, or taken from
//! the servers earlier tests of this binary handed back; reset and handed back on drop.
//!
//! A fresh moto loads each AWS service's backend on its first call (about 2 s of CPU for the
//! ECS tests' services), and the fault matrices and kill tables start a bed per cell: a server
//! used before and reset (`POST /moto-api/reset`, every backend emptied) answers at once.
//! The servers idle between tests are stopped by a watchdog when the test binary exits.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

pub struct Moto {
    child: Option<Child>,
    pub endpoint: String,
}

/// Servers reset and waiting for the next test, at most [`MAX_IDLE`].
static IDLE: Mutex<Vec<(Child, String)>> = Mutex::new(Vec::new());
const MAX_IDLE: usize = 16;

/// The moto venv that `scripts/install-tools` makes; a missing one fails the test.
fn venv() -> PathBuf {
    let dir = std::env::var_os("MVD_TOOLS_DIR")
        .map_or_else(|| super::root().join(".cache/tools"), PathBuf::from)
        .join("moto");
    if dir.join("bin/moto_server").is_file() {
        return dir;
    }
    panic!(
        "moto is not installed; run scripts/install-tools (a test never skips: the test command installs every component)"
    );
}

impl Moto {
    pub fn start() -> Self {
        if let Some((child, endpoint)) = IDLE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
        {
            return Self {
                child: Some(child),
                endpoint,
            };
        }
        let venv = venv();
        // moto in place of the shell (`exec`, same process), and beside it a watchdog that
        // stops it once this test binary has exited (an idle server outlives its test).
        let (child, port) = super::ports::spawn_listening("moto", Duration::from_mins(1), |port| {
            Command::new("bash")
                .args([
                    "-c",
                    r#"(while kill -0 "$3" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 1; done; kill $$ 2>/dev/null) &
exec "$1" -H 127.0.0.1 -p "$2""#,
                    "moto",
                ])
                .arg(venv.join("bin/moto_server"))
                .arg(port.to_string())
                .arg(std::process::id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("moto_server starts")
        });
        Self {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Runs `tests/fixtures/moto_world.py` against this server.
    pub fn world(&self, args: &[&str]) -> String {
        world_at(&self.endpoint, args)
    }

    /// Writes `dir/deploy.yml`: the example, pointed at this moto world's subnets, security
    /// group and target group (made here), with a revision history of 3.
    pub fn staging_config(&self, dir: &std::path::Path) {
        let ids: serde_json::Value = serde_json::from_str(&self.world(&["setup"])).unwrap();
        let text = std::fs::read_to_string(super::example())
            .unwrap()
            .replace("subnet-0a11c0de00000011", ids["subnets"][0].as_str().unwrap())
            .replace("subnet-0a11c0de00000012", ids["subnets"][1].as_str().unwrap())
            .replace("sg-0ecs5000fromalb0001", ids["security_group"].as_str().unwrap())
            .replace(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-staging/0123456789abcdef",
                ids["target_group"].as_str().unwrap(),
            )
            .replacen("        revision_history: 10\n", "        revision_history: 3\n", 1);
        std::fs::write(dir.join("deploy.yml"), text).unwrap();
    }

    /// The variables that point the AWS SDK (ours and the binary's) at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        super::aws_env(&self.endpoint)
    }

    /// A `DynamoDB` table for deploy leases (partition key `lock`, a string), and a client.
    pub async fn lease_table(&self, name: &str) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let client = aws_sdk_dynamodb::Client::new(&self.sdk_config().await);
        client
            .create_table()
            .table_name(name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("lock")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("lock")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
        client
    }

    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await
    }
}

/// Runs `tests/fixtures/moto_world.py` against the moto server at `endpoint`.
pub fn world_at(endpoint: &str, args: &[&str]) -> String {
    let out = Command::new(venv().join("bin/python"))
        .arg(super::root().join("tests/fixtures/moto_world.py"))
        .arg(endpoint)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "moto_world.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `POST /moto-api/reset`: every backend of the server at `endpoint` emptied; whether it said
/// 200 within 10 s.
fn reset(endpoint: &str) -> bool {
    let Some(addr) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "POST /moto-api/reset HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    s.write_all(request.as_bytes()).is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) && reset(&self.endpoint) {
            let mut idle = IDLE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push((child, self.endpoint.clone()));
                return;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
