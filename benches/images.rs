//! Image figures, on moto (ECR API) and Debian's docker-registry, with buildah:
//!
//! 1. Rerun of an unchanged commit: bytes uploaded and calls (AWS calls and registry calls by
//!    our counters, and the requests the registry's access log shows).
//! 2. Promote within a repository: layer bytes moved.
//! 3. Copy of a 5-layer image of about 200 MB (random bytes: no compression helps) between
//!    two local registries: `promote --to-repository` against `skopeo copy` of the same image,
//!    alternating, each into a fresh registry, in the same run; the ratio of medians.
//!
//! Run: `cargo bench --bench images` (or scripts/bench).

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::moto::Moto;
use common::registry::LocalRegistry;

const CREDS: Option<(&str, &str)> = Some(("AWS", "123456789012-auth-token"));
const ROUNDS: usize = 3;

fn mvd(dir: &Path, moto: &Moto, registry: &LocalRegistry, args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_movieverse-deploy"));
    cmd.current_dir(dir)
        .env("CI", "true")
        .env("GITHUB_SHA", common::SHA)
        .env("GITHUB_REF", "refs/heads/main")
        .env(
            "MVD_ECR_REGISTRY_ENDPOINT",
            format!("http://{}", registry.host),
        )
        .args(args)
        .args(["--output", "json"]);
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let moto = Moto::start();
    let registry = LocalRegistry::start(CREDS);
    let dir = tempfile::tempdir().unwrap();
    // Five layers of 40 MiB of random bytes.
    let mut containerfile = String::from("FROM scratch\n");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..5 {
        let mut f = std::fs::File::create(dir.path().join(format!("layer{i}.bin"))).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..40 {
            for chunk in buf.chunks_mut(8) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
            }
            f.write_all(&buf).unwrap();
        }
        let _ = writeln!(containerfile, "COPY layer{i}.bin /layer{i}.bin");
    }
    std::fs::write(dir.path().join("Containerfile"), containerfile).unwrap();
    let text = std::fs::read_to_string(common::example()).unwrap();
    std::fs::write(dir.path().join("deploy.yml"), text).unwrap();

    let t = Instant::now();
    let built = mvd(dir.path(), &moto, &registry, &["build"]);
    let digest = built["digest"].as_str().unwrap().to_owned();
    println!(
        "built and pushed a 5 x 40 MiB image in {:.1} s ({digest})",
        t.elapsed().as_secs_f64()
    );

    let before = registry.requests();
    let rerun = mvd(dir.path(), &moto, &registry, &["build"]);
    println!(
        "rerun of the unchanged commit: {} bytes uploaded; {} AWS call(s), {} registry call(s) by our count, {} request(s) in the registry's access log (built: {})",
        rerun["bytes_uploaded"],
        rerun["aws_calls"],
        rerun["registry_calls"],
        registry.requests() - before,
        rerun["built"]
    );

    let promoted = mvd(
        dir.path(),
        &moto,
        &registry,
        &[
            "promote",
            "--image",
            "movieverse:sha-4f2b9c1",
            "--to-tag",
            "production",
        ],
    );
    println!(
        "promote within the repository: {} layer bytes moved, {} registry call(s)",
        promoted["bytes_uploaded"], promoted["registry_calls"]
    );

    println!(
        "method: {ROUNDS} rounds; each copies the image into a fresh empty registry, ours then skopeo's (alternating which goes first), wall time of the whole command"
    );
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..ROUNDS {
        let run_ours = || {
            let target = LocalRegistry::start(None);
            let t = Instant::now();
            let out = mvd(
                dir.path(),
                &moto,
                &registry,
                &[
                    "promote",
                    "--image",
                    &format!("movieverse@{digest}"),
                    "--to-repository",
                    &format!("{}/mirror", target.host),
                    "--to-tag",
                    "v1",
                ],
            );
            let s = t.elapsed().as_secs_f64();
            assert!(out["bytes_uploaded"].as_u64().unwrap() > 200_000_000);
            s
        };
        let run_skopeo = || {
            let target = LocalRegistry::start(None);
            let t = Instant::now();
            let ok = Command::new("skopeo")
                .args([
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                    "--src-creds",
                    "AWS:123456789012-auth-token",
                ])
                .arg(format!("docker://{}/movieverse@{digest}", registry.host))
                .arg(format!("docker://{}/mirror:v1", target.host))
                .status()
                .unwrap()
                .success();
            assert!(ok, "skopeo copy");
            t.elapsed().as_secs_f64()
        };
        let (a, b) = if round % 2 == 0 {
            let a = run_ours();
            (a, run_skopeo())
        } else {
            let b = run_skopeo();
            (run_ours(), b)
        };
        println!("round {round}: movieverse-deploy promote {a:.2} s, skopeo copy {b:.2} s");
        ours.push(a);
        theirs.push(b);
    }
    let (a, b) = (median(ours), median(theirs));
    println!(
        "copy of ~200 MiB in 5 layers between local registries: ours {a:.2} s, skopeo {b:.2} s, ratio {:.2} (target at most 1.0)",
        a / b
    );
}
