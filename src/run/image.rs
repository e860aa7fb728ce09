//! `build` and `promote`: the edge that wires the config, git, the builders, ECR and the
//! registry together. Every check that can fail on input (the Containerfile, the builder, a
//! tag that is immutable elsewhere) runs before anything is uploaded.

use std::path::PathBuf;

use base64::Engine as _;

use super::{Error, print_out, select};
use crate::cli::{BuildArgs, OutputFormat, PromoteArgs};
use crate::config::tree::Seg;
use crate::config::{Loaded, TagMutability};
use crate::diag::Diagnostics;
use crate::git::GitInfo;
use crate::image::builder::{self, BuildRequest};
use crate::image::ecr::{Ecr, EcrLogin};
use crate::image::registry::{self, Login, Registry};
use crate::image::{ImageError, tags};
use crate::report;

impl From<ImageError> for Error {
    fn from(e: ImageError) -> Self {
        Error::Deployment {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            Error::Environment(anyhow::Error::new(e).context("cannot start the async runtime"))
        })
}

/// The result of a build or promote, printed and set as step outputs.
#[derive(Debug, serde::Serialize)]
struct Outputs {
    /// `host/repo@sha256:…`: what deploys reference.
    image: String,
    digest: String,
    /// The tags that point at it.
    tags: Vec<String>,
    /// Whether a build ran (false when the commit's image was already there).
    built: bool,
    /// What the registry work cost (our own calls; the builder's upload is not counted).
    registry_calls: u64,
    bytes_uploaded: u64,
    blobs_uploaded: u64,
    blobs_mounted: u64,
    aws_calls: u64,
}

fn emit(out: &Outputs, format: OutputFormat) -> Result<(), Error> {
    for (k, v) in [
        ("image", out.image.clone()),
        ("digest", out.digest.clone()),
        ("tags", out.tags.join(",")),
    ] {
        report::set_output(k, &v).map_err(|e| {
            Error::Environment(anyhow::Error::new(e).context("cannot write $GITHUB_OUTPUT"))
        })?;
    }
    let text = match format {
        OutputFormat::Text => format!(
            "image={}\ndigest={}\ntags={}\n",
            out.image,
            out.digest,
            out.tags.join(",")
        ),
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(out).expect("outputs serialize")
        ),
    };
    eprintln!(
        "registry: {} call(s), {} byte(s) uploaded in {} blob(s), {} blob(s) mounted; AWS: {} call(s)",
        out.registry_calls,
        out.bytes_uploaded,
        out.blobs_uploaded,
        out.blobs_mounted,
        out.aws_calls
    );
    print_out(&text)
}

fn outputs(
    reg: &Registry,
    repo: &str,
    digest: &str,
    tags: Vec<String>,
    built: bool,
    aws_calls: u64,
) -> Outputs {
    use crate::image::registry::Stats;
    Outputs {
        image: format!("{}/{repo}@{digest}", reg.host),
        digest: digest.to_owned(),
        tags,
        built,
        registry_calls: Stats::get(&reg.stats.calls),
        bytes_uploaded: Stats::get(&reg.stats.bytes_uploaded),
        blobs_uploaded: Stats::get(&reg.stats.blobs_uploaded),
        blobs_mounted: Stats::get(&reg.stats.blobs_mounted),
        aws_calls,
    }
}

/// The OCI labels of the image.
fn labels(git: &GitInfo, tags: &[String]) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "org.opencontainers.image.revision".to_owned(),
            git.sha.clone(),
        ),
        ("org.opencontainers.image.created".to_owned(), now_rfc3339()),
        (
            "org.opencontainers.image.version".to_owned(),
            git.tag
                .as_deref()
                .map(|t| t.trim_start_matches('v').to_owned())
                .or_else(|| tags.first().cloned())
                .unwrap_or_default(),
        ),
    ];
    if let (Ok(server), Ok(repo)) = (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
    ) {
        out.push((
            "org.opencontainers.image.source".to_owned(),
            format!("{server}/{repo}"),
        ));
    }
    out
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn immutable_conflict(repo: &str, tag: &str, existing: &str, wanted: &str) -> ImageError {
    ImageError::Invalid {
        message: format!(
            "tag `{tag}` of `{repo}` already points at {existing}, not {wanted}, and the repository's tags are IMMUTABLE; nothing was uploaded"
        ),
        help: "use tags that name one image only (sha, semver) with IMMUTABLE repositories, or set `image.tag_mutability: MUTABLE`".into(),
    }
}

/// Where each of `tags` points now in `repo` (`None`: not there).
async fn tag_digests(
    reg: &Registry,
    repo: &str,
    tags: &[String],
) -> Result<Vec<(String, Option<String>)>, ImageError> {
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        out.push((tag.clone(), reg.digest(repo, tag).await?));
    }
    Ok(out)
}

/// Under IMMUTABLE, refuses the whole set when one tag points at another image than
/// `digest` (`None`: an image not pushed yet, which no tag can point at). Checked for every
/// tag before any moves.
fn refuse_moving(
    repo: &str,
    now: &[(String, Option<String>)],
    digest: Option<&str>,
    wanted: &str,
) -> Result<(), ImageError> {
    match now.iter().find_map(|(tag, d)| {
        d.as_deref()
            .filter(|d| Some(*d) != digest)
            .map(|d| (tag, d))
    }) {
        Some((tag, other)) => Err(immutable_conflict(repo, tag, other, wanted)),
        None => Ok(()),
    }
}

/// The tags of `now` that do not point at `digest` yet.
fn to_move<'a>(now: &'a [(String, Option<String>)], digest: &str) -> Vec<&'a String> {
    now.iter()
        .filter(|(_, d)| d.as_deref() != Some(digest))
        .map(|(tag, _)| tag)
        .collect()
}

pub fn build(loaded: &Loaded, args: &BuildArgs) -> Result<(), Error> {
    if let Some(env) = &args.env {
        select(loaded, env)?;
    }
    let config = &loaded.config;
    let git = GitInfo::discover(&loaded.source.dir);
    let tags = tags(config, &git);
    if tags.is_empty() {
        return Err(ImageError::Invalid {
            message: "no image tag applies to this commit".into(),
            help: "add `sha` to `image.tags` in deploy.yml: it always applies".into(),
        }
        .into());
    }
    let context = loaded.source.dir.join(&config.image.context);
    let containerfile = context.join(&config.image.containerfile);
    if !containerfile.is_file() {
        let d = loaded
            .source
            .diag(
                &[Seg::from("image"), Seg::from("containerfile")],
                format!(
                    "the Containerfile {} does not exist",
                    crate::diag::display_path(&containerfile).display()
                ),
            )
            .help("`image.containerfile` is relative to `image.context`, which is relative to deploy.yml; fix the path or add the file");
        return Err(Error::Invalid(Diagnostics::single(d)));
    }
    let kind = builder::detect(args.builder)?;
    let mut request = BuildRequest {
        context: context.clone(),
        containerfile,
        target: config.image.target.clone(),
        build_args: config
            .image
            .build_args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        platforms: config.image.platforms.clone(),
        labels: labels(&git, &tags),
        push_to: None,
        insecure: false,
        login: None,
    };
    if args.no_push {
        report::group(&format!("build with {kind}"));
        let built = builder::build(kind, &request);
        report::end_group();
        let built = built?;
        eprintln!("built {} (not pushed: --no-push)", built.local);
        return print_out(&format!("local={}\n", built.local));
    }
    let repo = config.image.repository.clone();
    let rt = runtime()?;
    let out = rt.block_on(async {
        let ecr = Ecr::from_env(&config.region).await;
        let mut aws_calls = 1;
        let EcrLogin {
            host,
            insecure,
            login,
        } = ecr.login(&crate::render::registry(config)).await?;
        let reg = Registry::new(&host, insecure, Some(&login));
        // This commit's image already there: no build, no push; the other tags follow it.
        if let Some(digest) = reg.digest(&repo, &tags[0]).await? {
            eprintln!(
                "{host}/{repo}:{} already exists ({digest}): skipping the build and the push",
                tags[0]
            );
            let now = tag_digests(&reg, &repo, &tags[1..]).await?;
            if refuse_moving(&repo, &now, Some(&digest), &digest).is_err() {
                aws_calls += 1;
                let mutability = ecr
                    .repository(&repo, false, config.image.tag_mutability)
                    .await?;
                if mutability == TagMutability::Immutable {
                    refuse_moving(&repo, &now, Some(&digest), &digest)?;
                }
            }
            for tag in to_move(&now, &digest) {
                reg.retag(&repo, &digest, tag).await?;
                eprintln!("tagged {tag} → {digest}");
            }
            return Ok::<_, ImageError>(outputs(
                &reg,
                &repo,
                &digest,
                tags.clone(),
                false,
                aws_calls,
            ));
        }
        aws_calls += 1;
        let mutability = ecr
            .repository(
                &repo,
                config.image.create_repository,
                config.image.tag_mutability,
            )
            .await?;
        let now = tag_digests(&reg, &repo, &tags[1..]).await?;
        if mutability == TagMutability::Immutable {
            refuse_moving(
                &repo,
                &now,
                None,
                &format!("this commit's new image ({})", tags[0]),
            )?;
        }
        request.push_to = Some(format!("{host}/{repo}:{}", tags[0]));
        request.insecure = insecure;
        request.login = Some((host.clone(), login.clone()));
        report::group(&format!(
            "build with {kind} and push {host}/{repo}:{}",
            tags[0]
        ));
        let built = tokio::task::block_in_place(|| builder::build(kind, &request));
        report::end_group();
        let digest = built?.digest.expect("a pushed build has a digest");
        eprintln!("pushed {host}/{repo}:{} ({digest})", tags[0]);
        for tag in to_move(&now, &digest) {
            reg.retag(&repo, &digest, tag).await?;
            eprintln!("tagged {tag} → {digest}");
        }
        Ok(outputs(&reg, &repo, &digest, tags.clone(), true, aws_calls))
    })?;
    emit(&out, args.output)
}

/// A login for a registry that is not this config's ECR: from the containers auth file
/// (`REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`) or docker's
/// `config.json` (`DOCKER_CONFIG`, `~/.docker`), else anonymous.
fn stored_login(host: &str) -> Option<Login> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(f.into());
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(d).join("containers/auth.json"));
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        files.push(PathBuf::from(d).join("config.json"));
    } else if let Some(h) = std::env::var_os("HOME") {
        files.push(PathBuf::from(h).join(".docker/config.json"));
    }
    files.iter().find_map(|f| {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).ok()?).ok()?;
        let auth = v["auths"][host]["auth"].as_str()?;
        let decoded = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(auth)
                .ok()?,
        )
        .ok()?;
        let (u, p) = decoded.split_once(':')?;
        report::mask(p);
        Some(Login {
            username: u.to_owned(),
            password: p.to_owned(),
        })
    })
}

pub fn promote(loaded: &Loaded, args: &PromoteArgs) -> Result<(), Error> {
    let config = &loaded.config;
    let ecr_host = crate::render::registry(config);
    let bad_ref = |what: &str, text: &str| -> Error {
        ImageError::Invalid {
            message: format!("{what} `{text}` is not an image reference"),
            help: "write `repo:tag`, `repo@sha256:…`, or with the registry `host/repo:tag`".into(),
        }
        .into()
    };
    let (src_host, src_repo, src_ref) = registry::parse_reference(&args.image, &ecr_host)
        .ok_or_else(|| bad_ref("--image", &args.image))?;
    let (dst_host, dst_repo) = match &args.to_repository {
        None => (src_host.clone(), src_repo.clone()),
        Some(r) => {
            let (h, repo, _) = registry::parse_reference(&format!("{r}:x"), &ecr_host)
                .ok_or_else(|| bad_ref("--to-repository", r))?;
            (h, repo)
        }
    };
    for t in &args.to_tags {
        if crate::image::sanitize(t) != *t {
            return Err(ImageError::Invalid {
                message: format!("`{t}` is not a valid tag"),
                help: "tags are up to 128 of [a-z0-9_.-], starting with a letter, digit or `_`"
                    .into(),
            }
            .into());
        }
    }
    let rt = runtime()?;
    let out = rt.block_on(async {
        let uses_ecr = src_host == ecr_host || dst_host == ecr_host;
        let mut aws_calls = 0;
        let (ecr, ecr_login) = if uses_ecr {
            let ecr = Ecr::from_env(&config.region).await;
            aws_calls += 1;
            let login = ecr.login(&ecr_host).await?;
            (Some(ecr), Some(login))
        } else {
            (None, None)
        };
        // The config's ECR registry may answer elsewhere (MVD_ECR_REGISTRY_ENDPOINT).
        let open = |host: &str| -> Registry {
            match &ecr_login {
                Some(l) if host == ecr_host || host == l.host => {
                    Registry::new(&l.host, l.insecure, Some(&l.login))
                }
                _ => {
                    let insecure = host.starts_with("127.") || host.starts_with("localhost");
                    Registry::new(host, insecure, stored_login(host).as_ref())
                }
            }
        };
        let src = open(&src_host);
        let dst = open(&dst_host);
        let is_ecr = |r: &Registry| ecr_login.as_ref().is_some_and(|l| l.host == r.host);
        let Some(digest) = src.digest(&src_repo, &src_ref).await? else {
            return Err(ImageError::Invalid {
                message: format!(
                    "there is no image {}/{src_repo}{}{src_ref}",
                    src.host,
                    if src_ref.starts_with("sha256:") {
                        "@"
                    } else {
                        ":"
                    }
                ),
                help: "check the reference; `build` prints the image it pushed as `image=`".into(),
            });
        };
        let same_repo = src.host == dst.host && src_repo == dst_repo;
        // Mutability of the target, and the conflicts it makes, before anything moves.
        let mutability = match (&ecr, is_ecr(&dst)) {
            (Some(ecr), true) => {
                aws_calls += 1;
                ecr.repository(
                    &dst_repo,
                    !same_repo && config.image.create_repository,
                    config.image.tag_mutability,
                )
                .await?
            }
            _ => TagMutability::Mutable,
        };
        let now = tag_digests(&dst, &dst_repo, &args.to_tags).await?;
        if mutability == TagMutability::Immutable {
            refuse_moving(&dst_repo, &now, Some(&digest), &digest)?;
        }
        for (tag, _) in now
            .iter()
            .filter(|(_, d)| d.as_deref() == Some(digest.as_str()))
        {
            eprintln!("{}/{dst_repo}:{tag} already points at {digest}", dst.host);
        }
        let todo: Vec<String> = to_move(&now, &digest).into_iter().cloned().collect();
        if same_repo {
            for tag in &todo {
                dst.retag(&dst_repo, &digest, tag).await?;
                eprintln!("tagged {}/{dst_repo}:{tag} → {digest}", dst.host);
            }
        } else {
            report::group(&format!(
                "copy {}/{src_repo}@{digest} to {}/{dst_repo}",
                src.host, dst.host
            ));
            // A live line on a terminal; one plain line per blob in CI and in logs.
            let live = (std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("CI").is_none())
            .then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                bar
            });
            let progress = |line: &str| match &live {
                Some(bar) => bar.set_message(line.to_owned()),
                None => eprintln!("  {line}"),
            };
            let copied =
                registry::copy(&src, &src_repo, &digest, &dst, &dst_repo, &todo, &progress).await;
            if let Some(bar) = &live {
                bar.finish_and_clear();
            }
            report::end_group();
            copied?;
            eprintln!("copied {digest} to {}/{dst_repo} ({})", dst.host, dst.stats);
        }
        let mut out = outputs(
            &dst,
            &dst_repo,
            &digest,
            args.to_tags.clone(),
            false,
            aws_calls,
        );
        out.registry_calls += registry::Stats::get(&src.stats.calls);
        Ok(out)
    })?;
    emit(&out, args.output)
}
