//! AWS configuration shared by every client, and credentials from GitHub's OIDC token.
//!
//! With `--role-to-assume` (or `MVD_ROLE_TO_ASSUME`, the Action's `role-to-assume` input) the
//! job's ID token is requested from GitHub and exchanged with `AssumeRoleWithWebIdentity`: no
//! separate credentials step. When that fails the error says which side: the job may not
//! request an ID token (`permissions: id-token: write`), or the role's trust policy refuses the
//! token (its `sub` and `aud` claims are printed; the token never is).

use std::sync::OnceLock;

use aws_credential_types::Credentials;
use aws_sdk_sts::error::ProvideErrorMetadata as _;
use base64::Engine as _;
use secrecy::ExposeSecret as _;

static ASSUMED: OnceLock<Credentials> = OnceLock::new();

/// The shared SDK configuration: `region` unless `AWS_REGION` says otherwise, the assumed
/// role's credentials when there are some, and the SDK's retries only if `retries`.
pub async fn sdk_config(region: &str, retries: bool) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if !retries {
        loader = loader.retry_config(aws_config::retry::RetryConfig::disabled());
    }
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(c) = ASSUMED.get() {
        loader = loader.credentials_provider(c.clone());
    }
    loader.load().await
}

/// Whether the standard chain (or an assumed role) gives credentials here: `plan --verify`
/// verifies only where it can.
pub async fn has_credentials(region: &str) -> bool {
    use aws_credential_types::provider::ProvideCredentials as _;
    match sdk_config(region, false).await.credentials_provider() {
        Some(p) => p.provide_credentials().await.is_ok(),
        None => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The job cannot request an ID token.
    #[error(
        "error: role-to-assume is set, but this job cannot request a GitHub OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL is not set)\n  = help: add `permissions: id-token: write` to the job (or the workflow); outside GitHub Actions, use the standard AWS credentials instead"
    )]
    NoPermission,
    #[error("error: requesting the GitHub OIDC token failed: {0}")]
    Token(String),
    /// STS refused the token for the role.
    #[error(
        "error: AWS refused to let this job assume {role}: {message}\n  = help: the role's trust policy must accept this token: sub `{sub}`, aud `{aud}` (issuer token.actions.githubusercontent.com); check its `token.actions.githubusercontent.com:sub` and `:aud` conditions"
    )]
    Trust {
        role: String,
        message: String,
        sub: String,
        aud: String,
    },
    #[error("error: sts:AssumeRoleWithWebIdentity failed: {0}")]
    Sts(String),
}

/// The audience AWS expects in the token.
const AUDIENCE: &str = "sts.amazonaws.com";

/// A JWT's `sub` and `aud` claims, for the error message (the signature is not checked: the
/// claims only explain a refusal).
pub fn claims(token: &str) -> (String, String) {
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    let aud = match &payload["aud"] {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(","),
        v => v.as_str().unwrap_or("?").to_owned(),
    };
    (payload["sub"].as_str().unwrap_or("?").to_owned(), aud)
}

/// Requests the job's ID token and assumes `role` with it; later SDK configurations use the
/// role's credentials.
pub async fn assume_role_from_github(role: &str, region: &str) -> Result<(), OidcError> {
    let url = std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL").map_err(|_| OidcError::NoPermission)?;
    let bearer = secrecy::SecretString::from(
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").map_err(|_| OidcError::NoPermission)?,
    );
    crate::report::mask(bearer.expose_secret());
    let sep = if url.contains('?') { '&' } else { '?' };
    let response = reqwest::Client::new()
        .get(format!("{url}{sep}audience={AUDIENCE}"))
        .bearer_auth(bearer.expose_secret())
        .send()
        .await
        .map_err(|e| OidcError::Token(format!("{e}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(OidcError::Token(format!(
            "HTTP {status}; check that the job has `permissions: id-token: write`"
        )));
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| OidcError::Token(format!("the answer is not JSON: {e}")))?;
    let token = secrecy::SecretString::from(
        body["value"]
            .as_str()
            .ok_or_else(|| OidcError::Token("the answer has no `value`".into()))?
            .to_owned(),
    );
    crate::report::mask(token.expose_secret());
    let session = format!(
        "movieverse-deploy-{}",
        std::env::var("GITHUB_RUN_ID").unwrap_or_else(|_| "local".into())
    );
    let sts = aws_sdk_sts::Client::new(&sdk_config(region, true).await);
    let out = sts
        .assume_role_with_web_identity()
        .role_arn(role)
        .role_session_name(session.chars().take(64).collect::<String>())
        .web_identity_token(token.expose_secret())
        .send()
        .await
        .map_err(|e| {
            let code = e.code().unwrap_or_default().to_owned();
            let message = e.message().map_or_else(
                || aws_sdk_sts::error::DisplayErrorContext(&e).to_string(),
                str::to_owned,
            );
            if matches!(
                code.as_str(),
                "AccessDenied" | "InvalidIdentityToken" | "IDPRejectedClaim"
            ) {
                let (sub, aud) = claims(token.expose_secret());
                OidcError::Trust {
                    role: role.to_owned(),
                    message: format!("{code}: {message}"),
                    sub,
                    aud,
                }
            } else {
                OidcError::Sts(format!("{code}: {message}"))
            }
        })?;
    let c = out
        .credentials()
        .ok_or_else(|| OidcError::Sts("the answer has no credentials".into()))?;
    crate::report::mask(c.secret_access_key());
    crate::report::mask(c.session_token());
    let _ = ASSUMED.set(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "github-oidc",
    ));
    eprintln!(
        "assumed {role} with the job's OIDC token (session {session}, credentials until {})",
        c.expiration()
    );
    Ok(())
}
