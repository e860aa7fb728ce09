//! Images: tags computed the way docker/metadata-action users expect (pure: the commit comes
//! in as [`GitInfo`]), the builders ([`builder`]), the ECR control plane ([`ecr`]) and the
//! registry data plane ([`registry`]).

pub mod builder;
pub mod ecr;
pub mod registry;

use crate::platform::observation::{ErrorKind, PlatformError};
use registry::{RegistryError, RegistryErrorKind};

/// Why `build` or `promote` failed, and so the exit code.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Bad input, or remote state that conflicts with it (an immutable tag elsewhere): exit 2,
    /// nothing uploaded.
    #[error("error: {message}\n  = help: {help}")]
    Invalid { message: String, help: String },
    /// A service or the machine failed us: exit 3.
    #[error("error: {message}")]
    Environment { message: String },
    /// The build itself failed: exit 1.
    #[error("error: the build failed: {message}")]
    BuildFailed { message: String },
    #[error("error: {0}")]
    Registry(#[from] RegistryError),
}

impl ImageError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ImageError::Invalid { .. } => 2,
            ImageError::Environment { .. } => 3,
            ImageError::BuildFailed { .. } => 1,
            ImageError::Registry(e) => match e.kind {
                RegistryErrorKind::Denied | RegistryErrorKind::Unavailable => 3,
                RegistryErrorKind::NotFound | RegistryErrorKind::Rejected => 2,
            },
        }
    }

    /// An AWS API failure.
    pub fn aws(e: &PlatformError) -> Self {
        match e.kind {
            ErrorKind::Invalid => ImageError::Invalid {
                message: e.to_string(),
                help: "check the values in deploy.yml".into(),
            },
            ErrorKind::Permission => ImageError::Environment {
                message: format!("{e}; check the AWS identity and its ECR permissions"),
            },
            _ => ImageError::Environment {
                message: e.to_string(),
            },
        }
    }
}

use crate::config::{Config, TagRule};
use crate::git::GitInfo;

/// ECR and the OCI distribution spec allow at most 128 characters in a tag.
const MAX_TAG_LEN: usize = 128;

/// The tags for this commit, in rule order, deduplicated; rules that do not apply (no branch,
/// no semver tag, not a pull request) give nothing.
pub fn tags(config: &Config, git: &GitInfo) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for rule in &config.image.tags {
        let produced: Vec<String> = match rule {
            TagRule::Sha => vec![format!("sha-{}", git.sha7)],
            TagRule::Branch => git.branch.iter().cloned().collect(),
            TagRule::Semver => git.tag.as_deref().map(semver_tags).unwrap_or_default(),
            TagRule::Pr => git.pr.iter().map(|n| format!("pr-{n}")).collect(),
            TagRule::Template(t) => render_tag(t, config, git).into_iter().collect(),
        };
        for tag in produced
            .into_iter()
            .map(|t| sanitize(&t))
            .filter(|t| !t.is_empty())
        {
            if !out.contains(&tag) {
                out.push(tag);
            }
        }
    }
    out
}

/// `v1.2.3` gives `1.2.3`, `1.2`, `1`; a pre-release (`v1.2.3-rc.1`) gives only itself.
pub fn semver_tags(tag: &str) -> Vec<String> {
    let v = tag.strip_prefix('v').unwrap_or(tag);
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        vec![
            v.to_owned(),
            format!("{}.{}", parts[0], parts[1]),
            parts[0].to_owned(),
        ]
    } else if parts.len() >= 3 && parts[0].bytes().all(|b| b.is_ascii_digit()) {
        vec![v.to_owned()]
    } else {
        Vec::new()
    }
}

fn render_tag(template: &str, config: &Config, git: &GitInfo) -> Option<String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.render_str(
        template,
        minijinja::context! { app => &config.app, git => minijinja::Value::from(minijinja::value::Serde(git)) },
    )
    .ok()
}

/// Lowercases, replaces characters a tag cannot hold with `-`, trims to 128 characters.
/// A tag may not start with `.` or `-`.
pub fn sanitize(tag: &str) -> String {
    let mut s: String = tag
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.starts_with(['.', '-']) {
        s.remove(0);
    }
    s.truncate(MAX_TAG_LEN);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing() {
        assert_eq!(sanitize("Feature/New_UI"), "feature-new_ui");
        assert_eq!(sanitize("-x"), "x");
        assert_eq!(sanitize(&"a".repeat(200)).len(), 128);
    }

    #[test]
    fn semver() {
        assert_eq!(semver_tags("v1.2.3"), ["1.2.3", "1.2", "1"]);
        assert_eq!(semver_tags("v1.2.3-rc.1"), ["1.2.3-rc.1"]);
        assert!(semver_tags("release").is_empty());
    }
}

/// An image reference as a deploy takes it, checked against the distribution grammar
/// (`[host[:port]/]name[:tag][@sha256:…]`, lowercase name). Returns whether it pins a digest.
pub fn check_reference(text: &str) -> Result<bool, String> {
    if text.trim() != text || text.is_empty() {
        return Err("it is empty or has spaces around it".to_owned());
    }
    match oci_client::Reference::try_from(text) {
        Ok(r) => Ok(r.digest().is_some()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod reference_tests {
    use super::check_reference;

    #[test]
    fn image_references_parse_or_say_why() {
        let d = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let table: &[(&str, Option<bool>)] = &[
            ("movieverse:sha-4f2b9c1", Some(false)),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse:v1",
                Some(false),
            ),
            (
                &format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@{d}"),
                Some(true),
            ),
            ("127.0.0.1:5000/team/app:1", Some(false)),
            ("not a ref", None),
            ("", None),
            (" movieverse:1", None),
            ("Movieverse:1", None),
            ("movieverse@sha256:short", None),
            ("movieverse:", None),
        ];
        for (text, want) in table {
            assert_eq!(check_reference(text).ok(), *want, "{text:?}");
        }
    }
}
