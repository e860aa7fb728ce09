//! The registry data plane, by the OCI distribution protocol (oci-client): manifest digests,
//! retagging by manifest (no layer moves), and copies between repositories and registries
//! that skip blobs the target has, mount across repositories of one registry, and upload the
//! rest in parallel; image indexes are copied with every platform's manifest.
//!
//! Every call is counted, and every uploaded byte, so the figures the issue asks for (calls on
//! a rerun, bytes moved by a promote) are measured, not assumed.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{StreamExt as _, TryStreamExt as _};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use serde_json::Value;

/// Manifest media types we read and write.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Blobs uploaded at once in a copy.
const PARALLEL_BLOBS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryErrorKind {
    /// 401/403: the credentials were refused.
    Denied,
    /// The repository, tag or digest does not exist.
    NotFound,
    /// 5xx, a connection problem, a timeout.
    Unavailable,
    /// Anything else the registry said no to.
    Rejected,
}

#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct RegistryError {
    pub kind: RegistryErrorKind,
    pub operation: String,
    pub message: String,
}

impl RegistryError {
    fn new(kind: RegistryErrorKind, operation: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            operation: operation.to_owned(),
            message: message.into(),
        }
    }
}

fn classify(operation: &str, e: &OciDistributionError) -> RegistryError {
    use RegistryErrorKind as K;
    let kind = match e {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => K::Denied,
        OciDistributionError::ImageManifestNotFoundError(_) => K::NotFound,
        OciDistributionError::ServerError { code, .. } => match code {
            401 | 403 => K::Denied,
            404 => K::NotFound,
            c if *c >= 500 => K::Unavailable,
            _ => K::Rejected,
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                K::Denied
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                K::NotFound
            } else {
                K::Rejected
            }
        }
        OciDistributionError::RequestError(r)
            if r.status()
                .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
        {
            K::Denied
        }
        OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => K::Unavailable,
        _ => K::Rejected,
    };
    let message = match kind {
        K::Denied => format!(
            "the registry refused the credentials ({e}); check the AWS identity's ECR permissions (ecr:GetAuthorizationToken, ecr:BatchGetImage, ecr:PutImage, ecr:InitiateLayerUpload, …) or the registry login"
        ),
        K::Unavailable => format!("the registry did not answer well ({e}); retry later"),
        _ => e.to_string(),
    };
    RegistryError::new(kind, operation, message)
}

/// Counters of what a run cost.
#[derive(Debug, Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    pub blobs_uploaded: AtomicU64,
    pub blobs_mounted: AtomicU64,
    pub blobs_skipped: AtomicU64,
}

impl Stats {
    fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} registry call(s), {} byte(s) uploaded in {} blob(s), {} blob(s) mounted, {} already there",
            Self::get(&self.calls),
            Self::get(&self.bytes_uploaded),
            Self::get(&self.blobs_uploaded),
            Self::get(&self.blobs_mounted),
            Self::get(&self.blobs_skipped),
        )
    }
}

/// One registry, with its credentials.
pub struct Registry {
    /// `host[:port]`, as image references name it.
    pub host: String,
    client: oci_client::Client,
    auth: RegistryAuth,
    pub stats: Stats,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// A registry's credentials. `Debug` does not show the password.
#[derive(Clone)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Login({}, <redacted>)", self.username)
    }
}

impl Registry {
    /// `insecure`: plain HTTP (a registry on loopback in tests).
    pub fn new(host: &str, insecure: bool, login: Option<&Login>) -> Self {
        let config = ClientConfig {
            protocol: if insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            max_concurrent_upload: PARALLEL_BLOBS,
            // POST then one streaming PUT per blob. ECR acknowledges a second PATCH of a
            // chunked upload but drops its body (aws/containers-roadmap#2831), and one PUT is
            // also what skopeo does: fewer round trips.
            use_monolithic_push: true,
            ..ClientConfig::default()
        };
        Self {
            host: host.to_owned(),
            client: oci_client::Client::new(config),
            auth: login.map_or(RegistryAuth::Anonymous, |l| {
                RegistryAuth::Basic(l.username.clone(), l.password.clone())
            }),
            stats: Stats::default(),
        }
    }

    pub fn reference(&self, repository: &str, tag_or_digest: &str) -> Reference {
        if tag_or_digest.starts_with("sha256:") {
            Reference::with_digest(
                self.host.clone(),
                repository.to_owned(),
                tag_or_digest.to_owned(),
            )
        } else {
            Reference::with_tag(
                self.host.clone(),
                repository.to_owned(),
                tag_or_digest.to_owned(),
            )
        }
    }

    /// The digest a tag (or digest) resolves to; `None` when it does not exist.
    pub async fn digest(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<String>, RegistryError> {
        let r = self.reference(repository, tag);
        self.stats.call();
        match self.client.fetch_manifest_digest(&r, &self.auth).await {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                let err = classify(&format!("read {}/{repository}:{tag}", self.host), &e);
                if err.kind == RegistryErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The raw manifest of `reference`, its media type and digest.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String, String), RegistryError> {
        let r = self.reference(repository, reference);
        self.stats.call();
        let op = format!(
            "read the manifest of {}/{repository}{}{reference}",
            self.host,
            if reference.starts_with("sha256:") {
                "@"
            } else {
                ":"
            }
        );
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(&r, &self.auth, MANIFEST_TYPES)
            .await
            .map_err(|e| classify(&op, &e))?;
        let media_type = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_owned());
        Ok((bytes.to_vec(), media_type, digest))
    }

    async fn login_for_push(&self, r: &Reference) -> Result<(), RegistryError> {
        self.client
            .auth(r, &self.auth, RegistryOperation::Push)
            .await
            .map(|_| ())
            .map_err(|e| classify(&format!("log in to {}", self.host), &e))
    }

    /// Puts a manifest under `tag_or_digest`, byte for byte (so its digest is kept).
    pub async fn put_manifest(
        &self,
        repository: &str,
        tag_or_digest: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let r = self.reference(repository, tag_or_digest);
        self.login_for_push(&r).await?;
        self.stats.call();
        let content_type = media_type.parse().map_err(|_| {
            RegistryError::new(
                RegistryErrorKind::Rejected,
                "put manifest",
                format!("bad media type {media_type}"),
            )
        })?;
        self.client
            .push_manifest_raw(&r, bytes.to_vec(), content_type)
            .await
            .map(|_| ())
            .map_err(|e| {
                classify(
                    &format!(
                        "write the manifest {}/{repository}:{tag_or_digest}",
                        self.host
                    ),
                    &e,
                )
            })
    }

    /// Points `tag` at the manifest `digest` of the same repository: one manifest read and one
    /// manifest write, no layer moves.
    pub async fn retag(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
    ) -> Result<(), RegistryError> {
        let (bytes, media_type, _) = self.manifest(repository, digest).await?;
        self.put_manifest(repository, tag, &bytes, &media_type)
            .await
    }

    async fn blob_exists(&self, repository: &str, digest: &str) -> Result<bool, RegistryError> {
        let r = self.reference(repository, digest);
        self.login_for_push(&r).await?;
        self.stats.call();
        self.client
            .blob_exists(&r, digest)
            .await
            .map_err(|e| classify(&format!("check blob {digest}"), &e))
    }
}

/// Copies `source_repo@digest` (an image or an index, with every platform) from `from` to
/// `to_repo` in `to`, then tags it. Blobs the target has are skipped; on the same registry the
/// rest are mounted from the source repository; the rest are streamed, several at once.
pub async fn copy(
    from: &Registry,
    source_repo: &str,
    digest: &str,
    to: &Registry,
    to_repo: &str,
    tags: &[String],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), RegistryError> {
    let (bytes, media_type, _) = from.manifest(source_repo, digest).await?;
    copy_manifest(from, source_repo, to, to_repo, &bytes, progress).await?;
    to.put_manifest(to_repo, digest, &bytes, &media_type)
        .await?;
    for tag in tags {
        to.put_manifest(to_repo, tag, &bytes, &media_type).await?;
    }
    Ok(())
}

/// Everything a manifest refers to: for an index, each platform's manifest (copied by
/// digest) and its blobs; for an image, its config and layers.
async fn copy_manifest(
    from: &Registry,
    source_repo: &str,
    to: &Registry,
    to_repo: &str,
    bytes: &[u8],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), RegistryError> {
    let manifest: Value = serde_json::from_slice(bytes).map_err(|e| {
        RegistryError::new(
            RegistryErrorKind::Rejected,
            "read manifest",
            format!("not JSON: {e}"),
        )
    })?;
    if let Some(children) = manifest["manifests"].as_array() {
        for child in children {
            let Some(d) = child["digest"].as_str() else {
                continue;
            };
            let (cb, ct, _) = from.manifest(source_repo, d).await?;
            Box::pin(copy_manifest(from, source_repo, to, to_repo, &cb, progress)).await?;
            to.put_manifest(to_repo, d, &cb, &ct).await?;
            progress(&format!("platform manifest {d} copied"));
        }
        return Ok(());
    }
    let mut blobs: Vec<(String, u64)> = Vec::new();
    for b in std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().into_iter().flatten())
    {
        if let Some(d) = b["digest"].as_str() {
            blobs.push((d.to_owned(), b["size"].as_u64().unwrap_or(0)));
        }
    }
    futures_util::stream::iter(blobs.into_iter().map(|(d, size)| async move {
        copy_blob(from, source_repo, to, to_repo, &d, size, progress).await
    }))
    .buffer_unordered(PARALLEL_BLOBS)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

async fn copy_blob(
    from: &Registry,
    source_repo: &str,
    to: &Registry,
    to_repo: &str,
    digest: &str,
    size: u64,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), RegistryError> {
    if to.blob_exists(to_repo, digest).await? {
        to.stats.blobs_skipped.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let target = to.reference(to_repo, digest);
    if from.host == to.host && source_repo != to_repo {
        let source = from.reference(source_repo, digest);
        to.stats.call();
        if to.client.mount_blob(&target, &source, digest).await.is_ok()
            && to.blob_exists(to_repo, digest).await?
        {
            to.stats.blobs_mounted.fetch_add(1, Ordering::Relaxed);
            progress(&format!("{digest}: mounted from {source_repo}"));
            return Ok(());
        }
    }
    let descriptor = OciDescriptor {
        digest: digest.to_owned(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        ..OciDescriptor::default()
    };
    from.stats.call();
    let source = from.reference(source_repo, digest);
    // A pull needs the pull login first.
    from.client
        .auth(&source, &from.auth, RegistryOperation::Pull)
        .await
        .map_err(|e| classify(&format!("log in to {}", from.host), &e))?;
    let stream = from
        .client
        .pull_blob_stream(&source, &descriptor)
        .await
        .map_err(|e| classify(&format!("read blob {digest}"), &e))?;
    to.stats.call();
    to.client
        .push_blob_stream(
            &target,
            stream.stream.map_err(Into::into),
            digest,
            Some(size),
        )
        .await
        .map_err(|e| classify(&format!("upload blob {digest}"), &e))?;
    to.stats.bytes_uploaded.fetch_add(size, Ordering::Relaxed);
    to.stats.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
    progress(&format!("{digest}: uploaded {size} bytes"));
    Ok(())
}

/// Splits `host/repo[:tag|@digest]`; a reference with no registry host (`repo:tag`) gets
/// `default_host`.
pub fn parse_reference(text: &str, default_host: &str) -> Option<(String, String, String)> {
    let (name, reference) = if let Some((n, d)) = text.split_once('@') {
        (n, d.to_owned())
    } else {
        let slash = text.rfind('/').map_or(0, |i| i + 1);
        match text[slash..].rfind(':') {
            Some(i) => (&text[..slash + i], text[slash + i + 1..].to_owned()),
            None => (text, "latest".to_owned()),
        }
    };
    let (host, repo) = match name.split_once('/') {
        Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => {
            (h.to_owned(), r.to_owned())
        }
        _ => (default_host.to_owned(), name.to_owned()),
    };
    (!repo.is_empty() && !reference.is_empty()).then_some((host, repo, reference))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::type_complexity)]
    use super::*;

    #[test]
    fn references_split_into_host_repository_and_reference() {
        let d = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let table: &[(&str, Option<(&str, &str, &str)>)] = &[
            (
                "127.0.0.1:5000/movieverse:sha-abc",
                Some(("127.0.0.1:5000", "movieverse", "sha-abc")),
            ),
            ("movieverse:main", Some(("ecr.test", "movieverse", "main"))),
            (
                "team/movieverse",
                Some(("ecr.test", "team/movieverse", "latest")),
            ),
            (
                "1.dkr.ecr.us-east-1.amazonaws.com/a/b@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                Some(("1.dkr.ecr.us-east-1.amazonaws.com", "a/b", d)),
            ),
            ("localhost/x:1", Some(("localhost", "x", "1"))),
            ("", None),
        ];
        for (text, want) in table {
            let got = parse_reference(text, "ecr.test");
            assert_eq!(
                got.as_ref()
                    .map(|(h, r, t)| (h.as_str(), r.as_str(), t.as_str())),
                *want,
                "{text}"
            );
        }
    }

    #[test]
    fn a_login_never_shows_its_password() {
        let l = Login {
            username: "AWS".into(),
            password: "s3cr3t-token".into(),
        };
        assert!(!format!("{l:?}").contains("s3cr3t"));
    }
}
