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

static ASSUMED: OnceLock<aws_credential_types::provider::SharedCredentialsProvider> =
    OnceLock::new();

/// Set when an AWS answer said the credentials expired (`ExpiredToken`): the next call
/// exchanges the OIDC token again, whatever their expiry says.
static RENEW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether an AWS error code says the credentials expired.
pub fn is_expiry(code: &str) -> bool {
    matches!(code, "ExpiredToken" | "ExpiredTokenException")
}

/// An AWS answer said the credentials expired (a clock ahead of the job's, a session cut
/// short). With an assumed role they are exchanged again before the next call, and the call is
/// worth trying again (true); other credentials cannot be renewed here (false).
pub fn expired() -> bool {
    if ASSUMED.get().is_none() {
        return false;
    }
    RENEW.store(true, std::sync::atomic::Ordering::SeqCst);
    true
}

/// How long before they expire the role's credentials are exchanged again.
const REFRESH_BEFORE: std::time::Duration = std::time::Duration::from_mins(5);

/// The role's credentials from the job's OIDC token, exchanged again (a new token, a new
/// `AssumeRoleWithWebIdentity`) when they are within [`REFRESH_BEFORE`] of their expiry: a
/// rollout longer than the role's session (an hour by default: gates, bakes, a long canary)
/// goes on with fresh credentials instead of failing with `ExpiredToken`.
#[derive(Debug)]
struct GithubOidc {
    role: String,
    region: String,
    current: tokio::sync::Mutex<Credentials>,
}

/// Whether credentials expiring at `expiry` must be exchanged again at `now`.
fn needs_refresh(expiry: Option<std::time::SystemTime>, now: std::time::SystemTime) -> bool {
    expiry.is_some_and(|e| {
        e.duration_since(now)
            .map_or(true, |left| left < REFRESH_BEFORE)
    })
}

impl aws_credential_types::provider::ProvideCredentials for GithubOidc {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let mut current = self.current.lock().await;
            let expired = RENEW.swap(false, std::sync::atomic::Ordering::SeqCst);
            if expired || needs_refresh(current.expiry(), std::time::SystemTime::now()) {
                match exchange(&self.role, &self.region).await {
                    Ok(c) => {
                        eprintln!(
                            "renewed the credentials of {} with a new OIDC token{} (until {})",
                            self.role,
                            if expired {
                                ", AWS having said they expired"
                            } else {
                                ""
                            },
                            c.expiry().map_or_else(
                                || "no expiry".to_owned(),
                                |e| humantime::format_rfc3339_seconds(e).to_string()
                            )
                        );
                        *current = c;
                    }
                    Err(e) => {
                        return Err(
                            aws_credential_types::provider::error::CredentialsError::provider_error(
                                e,
                            ),
                        );
                    }
                }
            }
            Ok(current.clone())
        })
    }
}

/// How long one attempt of an AWS call may take before it is given up (and, being transient,
/// tried again by the caller's retries) unless `MVD_AWS_CALL_TIMEOUT` says otherwise. The
/// SDK sets no such limit by itself: a call whose answer never comes (a connection black-holed
/// on the way) would hold a rollout, with a canary's share of traffic, for ever.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The environment variable that sets [`CALL_TIMEOUT`], in seconds.
pub const CALL_TIMEOUT_VAR: &str = "MVD_AWS_CALL_TIMEOUT";

/// The time one attempt of an AWS call may take: [`CALL_TIMEOUT`], or `MVD_AWS_CALL_TIMEOUT`
/// (whole seconds, 1 to 3600); what is wrong with the variable otherwise.
pub fn call_timeout() -> Result<std::time::Duration, String> {
    let Some(v) = std::env::var_os(CALL_TIMEOUT_VAR) else {
        return Ok(CALL_TIMEOUT);
    };
    let v = v.to_string_lossy();
    match v.trim().parse::<u64>() {
        Ok(s @ 1..=3600) => Ok(std::time::Duration::from_secs(s)),
        _ => Err(format!(
            "{CALL_TIMEOUT_VAR}={v:?} is not a number of seconds from 1 to 3600"
        )),
    }
}

/// The SDK's timeouts: [`call_timeout`] for each attempt of a call.
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(call_timeout().unwrap_or(CALL_TIMEOUT))
        .build()
}

/// The shared SDK configuration: `region` unless `AWS_REGION` says otherwise, the assumed
/// role's credentials when there are some, the SDK's retries only if `retries`, and each
/// attempt of a call limited to [`call_timeout`].
pub async fn sdk_config(region: &str, retries: bool) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts());
    if !retries {
        loader = loader.retry_config(aws_config::retry::RetryConfig::disabled());
    }
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(p) = ASSUMED.get() {
        // The provider keeps the credentials and exchanges them only when needed; the SDK's
        // own cache would hold on to credentials AWS said expired until their stated expiry.
        loader = loader
            .credentials_provider(p.clone())
            .identity_cache(aws_config::identity::IdentityCache::no_cache());
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
/// role's credentials, renewed before they expire.
pub async fn assume_role_from_github(role: &str, region: &str) -> Result<(), OidcError> {
    let c = exchange(role, region).await?;
    eprintln!(
        "assumed {role} with the job's OIDC token (session {}, credentials until {})",
        session_name(),
        c.expiry().map_or_else(
            || "no expiry".to_owned(),
            |e| humantime::format_rfc3339_seconds(e).to_string()
        )
    );
    let _ = ASSUMED.set(
        aws_credential_types::provider::SharedCredentialsProvider::new(GithubOidc {
            role: role.to_owned(),
            region: region.to_owned(),
            current: tokio::sync::Mutex::new(c),
        }),
    );
    Ok(())
}

fn session_name() -> String {
    format!(
        "movieverse-deploy-{}",
        std::env::var("GITHUB_RUN_ID").unwrap_or_else(|_| "local".into())
    )
    .chars()
    .take(64)
    .collect()
}

/// One exchange: a new ID token from GitHub, then `AssumeRoleWithWebIdentity`.
async fn exchange(role: &str, region: &str) -> Result<Credentials, OidcError> {
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
    // The exchange needs no credentials (and must not ask the provider it feeds).
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .no_credentials()
        .timeout_config(timeouts());
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    let sts = aws_sdk_sts::Client::new(&loader.load().await);
    let out = sts
        .assume_role_with_web_identity()
        .role_arn(role)
        .role_session_name(session_name())
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
    let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        expiry,
        "github-oidc",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_renewed_five_minutes_before_they_expire() {
        let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let at = |secs: u64| Some(now + std::time::Duration::from_secs(secs));
        assert!(!needs_refresh(None, now));
        assert!(!needs_refresh(at(3600), now));
        assert!(!needs_refresh(at(300), now));
        assert!(needs_refresh(at(299), now));
        assert!(needs_refresh(
            Some(now - std::time::Duration::from_secs(1)),
            now
        ));
    }
}
