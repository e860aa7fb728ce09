//! The ECR control plane: the registry login (`GetAuthorizationToken`) and the repository
//! (found, or created with scan-on-push and the configured tag mutability).
//!
//! The registry endpoint can be pointed elsewhere with `MVD_ECR_REGISTRY_ENDPOINT`
//! (`http://127.0.0.1:5000`): the tests use moto for the ECR API and a real OCI registry for
//! the data, as ECR itself splits them.

use aws_sdk_ecr::error::ProvideErrorMetadata as _;
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use base64::Engine as _;

use super::ImageError;
use super::registry::Login;
use crate::config::TagMutability;
use crate::platform::ecs::classify;

/// Where the registry answers and how to log in.
#[derive(Debug, Clone)]
pub struct EcrLogin {
    /// `host[:port]` of the registry.
    pub host: String,
    /// Plain HTTP (only with `MVD_ECR_REGISTRY_ENDPOINT=http://…`).
    pub insecure: bool,
    pub login: Login,
}

pub struct Ecr {
    client: aws_sdk_ecr::Client,
}

impl Ecr {
    /// A client from the standard AWS configuration, in `region` unless `AWS_REGION` says
    /// otherwise; the SDK's standard retries (3 attempts) are on.
    pub async fn from_env(region: &str) -> Self {
        Self {
            client: aws_sdk_ecr::Client::new(&crate::aws::sdk_config(region, true).await),
        }
    }

    /// The registry login. The password is a 12-hour token: it never reaches a command line
    /// or the output (`::add-mask::` in GitHub Actions).
    pub async fn login(&self, default_host: &str) -> Result<EcrLogin, ImageError> {
        let out = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| ImageError::aws(&classify("ecr:GetAuthorizationToken", &e)))?;
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| ImageError::Environment {
                message: "ecr:GetAuthorizationToken returned no authorization data".into(),
            })?;
        let token = data.authorization_token().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ImageError::Environment {
                message:
                    "ecr:GetAuthorizationToken returned a token that is not base64 `user:password`"
                        .into(),
            })?;
        let (username, password) =
            decoded
                .split_once(':')
                .ok_or_else(|| ImageError::Environment {
                    message: "ecr:GetAuthorizationToken returned a token without `user:password`"
                        .into(),
                })?;
        crate::report::mask(password);
        let (host, insecure) = match std::env::var("MVD_ECR_REGISTRY_ENDPOINT") {
            Ok(e) if !e.is_empty() => endpoint_host(&e),
            _ => data
                .proxy_endpoint()
                .map_or_else(|| (default_host.to_owned(), false), endpoint_host),
        };
        Ok(EcrLogin {
            host,
            insecure,
            login: Login {
                username: username.to_owned(),
                password: password.to_owned(),
            },
        })
    }

    /// The repository, described; `None` when it does not exist.
    async fn describe(
        &self,
        name: &str,
    ) -> Result<
        Option<aws_sdk_ecr::types::Repository>,
        aws_sdk_ecr::error::SdkError<
            aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesError,
        >,
    > {
        match self
            .client
            .describe_repositories()
            .repository_names(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.repositories().first().cloned()),
            Err(e) if e.code() == Some("RepositoryNotFoundException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the repository exists (read only).
    pub async fn exists(&self, name: &str) -> Result<bool, String> {
        self.describe(name).await.map(|r| r.is_some()).map_err(|e| {
            format!(
                "DescribeRepositories: {}",
                e.message().or(e.code()).unwrap_or("the call failed")
            )
        })
    }

    /// The repository's tag mutability; a missing repository is created when `create`.
    pub async fn repository(
        &self,
        name: &str,
        create: bool,
        mutability: TagMutability,
    ) -> Result<TagMutability, ImageError> {
        match self.describe(name).await {
            Ok(Some(r)) => {
                Ok(r.image_tag_mutability()
                    .map_or(TagMutability::Mutable, |m| match m {
                        ImageTagMutability::Mutable => TagMutability::Mutable,
                        _ => TagMutability::Immutable,
                    }))
            }
            Ok(None) => {
                if !create {
                    return Err(ImageError::Invalid {
                        message: format!("the ECR repository `{name}` does not exist"),
                        help: "create it, or set `image.create_repository: true` in deploy.yml"
                            .into(),
                    });
                }
                self.client
                    .create_repository()
                    .repository_name(name)
                    .image_tag_mutability(match mutability {
                        TagMutability::Immutable => ImageTagMutability::Immutable,
                        TagMutability::Mutable => ImageTagMutability::Mutable,
                    })
                    .image_scanning_configuration(
                        ImageScanningConfiguration::builder()
                            .scan_on_push(true)
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| ImageError::aws(&classify("ecr:CreateRepository", &e)))?;
                eprintln!("created the ECR repository {name} (scan on push, tags {mutability:?})");
                Ok(mutability)
            }
            Err(e) => Err(ImageError::aws(&classify("ecr:DescribeRepositories", &e))),
        }
    }
}

/// `https://host` → (`host`, false); `http://127.0.0.1:5000` → (`127.0.0.1:5000`, true).
fn endpoint_host(endpoint: &str) -> (String, bool) {
    let insecure = endpoint.starts_with("http://");
    let host = endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    (host.to_owned(), insecure)
}
