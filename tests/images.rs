//! `build` and `promote` end to end: the real binary, buildah building a `FROM scratch` image
//! from a Containerfile, moto as the ECR control plane (login, repository), Debian's
//! `docker-registry` as the registry the pushes and copies really go to (with htpasswd auth
//! matching moto's ECR token), and `skopeo inspect` checking independently what landed.

mod common;

use common::moto::Moto;
use common::registry::LocalRegistry;
use common::{Run, SHA};

/// moto's ECR token for the default account is `AWS:<account>-auth-token`.
const USER: &str = "AWS";
const PASSWORD: &str = "123456789012-auth-token";
const CREDS: Option<(&str, &str)> = Some((USER, PASSWORD));

struct Bed {
    moto: Moto,
    registry: LocalRegistry,
    dir: tempfile::TempDir,
    storage: Store,
}

/// A test's own containers/storage (buildah's images and layers). Tests run in parallel: in
/// a shared store, buildah reuses a layer another test's image holds, and that test's `rmi`
/// can delete it between the reuse and the commit ("layer not known").
struct Store(tempfile::TempDir);

impl Store {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        Self(dir)
    }

    /// The environment variable that points buildah at this store.
    fn env(&self) -> (&'static str, std::path::PathBuf) {
        (
            "CONTAINERS_STORAGE_CONF",
            self.0.path().join("storage.conf"),
        )
    }
}

/// The example's deploy.yml in a directory with a Containerfile, with `image:` lines changed
/// by `edit`.
fn bed(edit: &dyn Fn(String) -> String) -> Bed {
    let moto = Moto::start();
    let registry = LocalRegistry::start(CREDS);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello from movieverse\n").unwrap();
    std::fs::write(
        dir.path().join("Containerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(common::example()).unwrap();
    std::fs::write(dir.path().join("deploy.yml"), edit(text)).unwrap();
    let storage = Store::new();
    Bed {
        moto,
        registry,
        dir,
        storage,
    }
}

fn mvd(bed: &Bed, sha: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
    let mut cmd = common::bin();
    cmd.current_dir(bed.dir.path())
        .env("CI", "true")
        .env("GITHUB_SHA", sha)
        .env(
            "MVD_ECR_REGISTRY_ENDPOINT",
            format!("http://{}", bed.registry.host),
        )
        .envs([bed.storage.env()]);
    for (k, v) in bed.moto.env() {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    Run::from(&cmd.args(args).output().unwrap())
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()))
}

/// The build's `digest` output is what the commit's tag points at in the registry (seen by
/// skopeo), with the commit as its revision label; the digest.
fn assert_landed(bed: &Bed, r: &Run) -> String {
    let digest = r.output("digest");
    let seen = bed
        .registry
        .inspect("movieverse:sha-4f2b9c1", CREDS, false)
        .expect("the commit tag exists");
    assert_eq!(seen["Digest"], digest.as_str());
    assert_eq!(seen["Labels"]["org.opencontainers.image.revision"], SHA);
    digest
}

fn digest_of(reg: &LocalRegistry, reference: &str) -> Option<String> {
    reg.inspect(reference, CREDS, false)
        .map(|v| v["Digest"].as_str().unwrap().to_owned())
}

const OTHER_SHA: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b";
const THIRD_SHA: &str = "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_pushes_a_rerun_skips_and_an_immutable_tag_conflict_uploads_nothing() {
    let bed = bed(&|t| t);

    let r = mvd(&bed, SHA, &["build"], &[]);
    assert_eq!(r.code, 0, "{}", r.dump());
    // What landed, seen by skopeo.
    let digest = assert_landed(&bed, &r);
    assert_eq!(
        r.output("image"),
        format!("{}/movieverse@{digest}", bed.registry.host)
    );
    assert_eq!(r.output("tags"), "sha-4f2b9c1");
    // The repository was created as deploy.yml asks.
    let ecr = aws_sdk_ecr::Client::new(&bed.moto.sdk_config().await);
    let repo = ecr
        .describe_repositories()
        .repository_names("movieverse")
        .send()
        .await
        .unwrap()
        .repositories()[0]
        .clone();
    assert_eq!(
        repo.image_tag_mutability(),
        Some(&aws_sdk_ecr::types::ImageTagMutability::Immutable)
    );
    assert_eq!(
        repo.image_scanning_configuration()
            .map(aws_sdk_ecr::types::ImageScanningConfiguration::scan_on_push),
        Some(true)
    );

    // A rerun of the same commit: nothing built, nothing uploaded, the same digest.
    let before = bed.registry.requests();
    let r = mvd(&bed, SHA, &["build", "--output", "json"], &[]);
    assert_eq!(r.code, 0, "{}", r.dump());
    let out = json(&r);
    assert_eq!(out["digest"], digest.as_str());
    assert_eq!(out["built"], false);
    assert_eq!(out["bytes_uploaded"], 0);
    assert_eq!(out["aws_calls"], 1, "GetAuthorizationToken only");
    assert!(
        r.stderr.contains("skipping the build and the push"),
        "{}",
        r.dump()
    );
    // The auth handshake (GET /v2/) and one HEAD for the one tag.
    let served = bed.registry.requests() - before;
    assert!(
        served <= 2,
        "the registry served {served} requests on a rerun"
    );

    // A release: v1.2.3 on another commit gives the semver tags.
    let release = [("GITHUB_REF", "refs/tags/v1.2.3")];
    std::fs::write(bed.dir.path().join("hello.txt"), "release 1.2.3\n").unwrap();
    let r = mvd(&bed, OTHER_SHA, &["build"], &release);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert_eq!(r.output("tags"), "sha-9a8b7c6,1.2.3,1.2,1");
    let released = r.output("digest");
    // Moving v1.2.3 to a third commit: `1.2.3` is taken and tags are IMMUTABLE.
    std::fs::write(bed.dir.path().join("hello.txt"), "something else\n").unwrap();
    let r = mvd(&bed, THIRD_SHA, &["build"], &release);
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stderr
            .contains("tag `1.2.3` of `movieverse` already points at")
            && r.stderr.contains("IMMUTABLE")
            && r.stderr.contains("nothing was uploaded"),
        "{}",
        r.dump()
    );
    assert_eq!(digest_of(&bed.registry, "movieverse:sha-1c2d3e4"), None);
    assert_eq!(digest_of(&bed.registry, "movieverse:1.2.3"), Some(released));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_retags_in_place_mounts_within_a_registry_and_copies_across() {
    let bed = bed(&|t| t);
    let r = mvd(&bed, SHA, &["build"], &[]);
    assert_eq!(r.code, 0, "{}", r.dump());
    let digest = r.output("digest");

    // Same repository: no layer moves.
    let r = mvd(
        &bed,
        SHA,
        &[
            "promote",
            "--image",
            "movieverse:sha-4f2b9c1",
            "--to-tag",
            "production",
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert_eq!(json(&r)["bytes_uploaded"], 0);
    assert_eq!(
        digest_of(&bed.registry, "movieverse:production"),
        Some(digest.clone())
    );
    // Again: the tag already points there.
    let r = mvd(
        &bed,
        SHA,
        &[
            "promote",
            "--image",
            &format!("movieverse@{digest}"),
            "--to-tag",
            "production",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stderr.contains("already points at"), "{}", r.dump());

    // Another repository of the same registry: blobs are mounted, not uploaded.
    let r = mvd(
        &bed,
        SHA,
        &[
            "promote",
            "--image",
            "movieverse:production",
            "--to-repository",
            "movieverse-prod",
            "--to-tag",
            "v1",
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    let out = json(&r);
    assert_eq!(out["bytes_uploaded"], 0, "{}", r.dump());
    assert!(out["blobs_mounted"].as_u64().unwrap() >= 2, "{}", r.dump());
    assert_eq!(
        digest_of(&bed.registry, "movieverse-prod:v1"),
        Some(digest.clone())
    );

    // Another registry: uploaded, the same digest.
    let mirror = LocalRegistry::start(None);
    let r = mvd(
        &bed,
        SHA,
        &[
            "promote",
            "--image",
            "movieverse:production",
            "--to-repository",
            &format!("{}/mirror", mirror.host),
            "--to-tag",
            "v1",
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        json(&r)["bytes_uploaded"].as_u64().unwrap() > 0,
        "{}",
        r.dump()
    );
    assert_eq!(
        mirror
            .inspect("mirror:v1", None, false)
            .map(|v| v["Digest"].as_str().unwrap().to_owned()),
        Some(digest.clone())
    );

    // Under immutability, a tag at another digest is refused before anything moves.
    let text = std::fs::read_to_string(bed.dir.path().join("deploy.yml"))
        .unwrap()
        .replace("  tags: [sha, semver]\n", "  tags: [sha]\n");
    std::fs::write(bed.dir.path().join("deploy.yml"), text).unwrap();
    std::fs::write(bed.dir.path().join("hello.txt"), "a second image\n").unwrap();
    let r = mvd(&bed, OTHER_SHA, &["build"], &[]);
    assert_eq!(r.code, 0, "{}", r.dump());
    let r = mvd(
        &bed,
        SHA,
        &[
            "promote",
            "--image",
            "movieverse:sha-9a8b7c6",
            "--to-tag",
            "production",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stderr
            .contains("tag `production` of `movieverse` already points at"),
        "{}",
        r.dump()
    );
    assert_eq!(
        digest_of(&bed.registry, "movieverse:production"),
        Some(digest)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_platform_index_is_built_and_copied_with_every_platform() {
    let bed = bed(&|t| {
        t.replace(
            "  platforms: [linux/amd64]\n",
            "  platforms: [linux/amd64, linux/arm64]\n",
        )
    });
    let r = mvd(&bed, SHA, &["build"], &[]);
    assert_eq!(r.code, 0, "{}", r.dump());
    let digest = r.output("digest");
    let raw = bed
        .registry
        .inspect(&format!("movieverse@{digest}"), CREDS, true)
        .unwrap();
    let mut platforms: Vec<String> = raw["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_owned())
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["amd64", "arm64"], "{raw}");

    let mirror = LocalRegistry::start(None);
    let r = mvd(
        &bed,
        SHA,
        &[
            "promote",
            "--image",
            &format!("movieverse@{digest}"),
            "--to-repository",
            &format!("{}/mirror", mirror.host),
            "--to-tag",
            "v1",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    let copied = mirror.inspect("mirror:v1", None, true).unwrap();
    assert_eq!(copied, raw, "the index is copied byte for byte");
    for m in raw["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        assert!(
            mirror
                .inspect(&format!("mirror@{d}"), None, false)
                .is_some(),
            "platform manifest {d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_refusals_missing_images_and_outages_are_reported() {
    let bed = bed(&|t| t);
    // 401: a registry whose password is not the ECR token.
    let strict = LocalRegistry::start(Some((USER, "another-password")));
    let r = mvd(
        &bed,
        SHA,
        &["build"],
        &[(
            "MVD_ECR_REGISTRY_ENDPOINT",
            &format!("http://{}", strict.host),
        )],
    );
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("the registry refused the credentials"),
        "{}",
        r.dump()
    );
    assert!(
        !r.stderr.contains(PASSWORD) && !r.stdout.contains(PASSWORD),
        "the token is never printed"
    );

    // 404: promoting an image that is not there.
    let r = mvd(
        &bed,
        SHA,
        &["promote", "--image", "movieverse:nope", "--to-tag", "x"],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(r.stderr.contains("there is no image"), "{}", r.dump());

    // 5xx: the registry is down.
    let (down, _) = common::answer_all("503 Service Unavailable", "text/plain", String::new());
    let r = mvd(
        &bed,
        SHA,
        &["build"],
        &[("MVD_ECR_REGISTRY_ENDPOINT", &down)],
    );
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("503") || r.stderr.contains("did not answer"),
        "{}",
        r.dump()
    );
}

#[test]
fn a_missing_containerfile_is_an_input_error_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::example(), dir.path().join("deploy.yml")).unwrap();
    let r = common::run(&["build", "--no-push"], dir.path());
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(r.stderr.contains("deploy.yml:"), "{}", r.dump());
    assert!(
        r.stderr.contains("Containerfile") && r.stderr.contains("does not exist"),
        "{}",
        r.dump()
    );
}

#[test]
fn no_builder_says_which_were_tried_and_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::example(), dir.path().join("deploy.yml")).unwrap();
    std::fs::write(dir.path().join("Containerfile"), "FROM scratch\n").unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = common::bin()
        .current_dir(dir.path())
        .env("PATH", empty.path())
        .args(["build", "--no-push"])
        .output()
        .unwrap();
    let r = Run::from(&out);
    assert_eq!(r.code, 3, "{}", r.dump());
    for tried in [
        "docker buildx: ",
        "buildah: `buildah` is not on PATH",
        "podman: `podman` is not on PATH",
    ] {
        assert!(r.stderr.contains(tried), "{tried}\n{}", r.dump());
    }
    let r = common::run(&["build", "--no-push", "--builder", "podman"], dir.path());
    if r.code == 3 {
        assert!(r.stderr.contains("podman:"), "{}", r.dump());
        assert!(
            !r.stderr.contains("buildah:"),
            "only the forced one is tried\n{}",
            r.dump()
        );
    }
}

#[test]
fn build_without_push_needs_no_cloud() {
    let store = Store::new();
    let build_locally = |dir: &std::path::Path| {
        Run::from(
            &common::bin()
                .current_dir(dir)
                .envs([store.env()])
                .args(["build", "--no-push", "--builder", "buildah"])
                .output()
                .unwrap(),
        )
    };
    {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(common::example(), dir.path().join("deploy.yml")).unwrap();
        std::fs::write(dir.path().join("hello.txt"), "hi\n").unwrap();
        std::fs::write(
            dir.path().join("Containerfile"),
            "FROM scratch\nCOPY hello.txt /\n",
        )
        .unwrap();
        let r = build_locally(dir.path());
        assert_eq!(r.code, 0, "{}", r.dump());
        assert!(
            r.stdout
                .starts_with("local=localhost/movieverse-deploy-build:"),
            "{}",
            r.dump()
        );
        assert!(
            store.0.path().join("graph/vfs-images").is_dir(),
            "the image went to the test's own store"
        );
        // A Containerfile that does not build: exit 1, with the builder's own words.
        std::fs::write(
            dir.path().join("Containerfile"),
            "FROM scratch\nCOPY missing.txt /\n",
        )
        .unwrap();
        let r = build_locally(dir.path());
        assert_eq!(r.code, 1, "{}", r.dump());
        assert!(
            r.stderr.contains("the build failed: buildah build exited")
                && r.stderr.contains("missing.txt"),
            "{}",
            r.dump()
        );
    }
}

/// The Docker builder with a real daemon (its own data root and socket): without the buildx
/// plugin, `docker build` builds the one platform, `docker push` pushes, and its digest is
/// what landed (skopeo); several platforms without buildx are refused, naming the fix.
#[test]
fn docker_without_buildx_builds_with_docker_build_and_pushes() {
    let docker = common::docker::Docker::start();
    let one = bed(&|t| t);
    let host = [("DOCKER_HOST", docker.host.as_str())];
    let r = mvd(&one, SHA, &["build", "--builder", "docker"], &host);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr
            .contains("docker buildx is not installed: building with `docker build`"),
        "{}",
        r.dump()
    );
    assert_landed(&one, &r);

    let two = bed(&|t: String| {
        t.replace(
            "platforms: [linux/amd64]",
            "platforms: [linux/amd64, linux/arm64]",
        )
    });
    let r = mvd(&two, SHA, &["build", "--builder", "docker"], &host);
    assert_eq!(r.code, 1, "{}", r.dump());
    assert!(
        r.stderr
            .contains("`docker build` builds one platform, not linux/amd64, linux/arm64")
            && r.stderr.contains("--builder buildah"),
        "{}",
        r.dump()
    );
}

/// The Docker builder as GitHub's hosted runners have it: a daemon and the buildx plugin
/// (the one the test set-up builds, found through `DOCKER_CONFIG`, also behind the login's
/// own `DOCKER_CONFIG`): `docker buildx build --push`, and its digest is what landed.
#[test]
fn docker_buildx_builds_and_pushes_with_a_real_daemon() {
    let docker = common::docker::Docker::start();
    let config = common::docker::buildx_config();
    let one = bed(&|t| t);
    let env = [
        ("DOCKER_HOST", docker.host.as_str()),
        ("DOCKER_CONFIG", config.path().to_str().unwrap()),
    ];
    let r = mvd(&one, SHA, &["build", "--builder", "docker"], &env);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        !r.stderr.contains("docker buildx is not installed"),
        "{}",
        r.dump()
    );
    assert_landed(&one, &r);
    // Detected without --builder too: a daemon that answers comes first.
    let r = mvd(&one, OTHER_SHA, &["build", "--no-push"], &env);
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(r.stderr.contains("docker buildx"), "{}", r.dump());
}
