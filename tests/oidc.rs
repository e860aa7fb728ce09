//! AWS credentials from GitHub's OIDC token: the real binary asks a fake of GitHub's token
//! endpoint for the job's ID token and exchanges it with `AssumeRoleWithWebIdentity` on moto;
//! the two failures are told apart (no `id-token: write`; a trust policy that refuses the
//! token, from a fake STS answering `AccessDenied`) and the token is never printed.

mod common;

use common::moto::Moto;
use common::{Run, SHA, jwt};

const ROLE: &str = "arn:aws:iam::123456789012:role/movieverse-deploy";
const REQUEST_TOKEN: &str = "PLANTEDrequestTOKEN42";

fn status_with_role(moto: &Moto, dir: &std::path::Path, extra: &[(&str, &str)]) -> Run {
    let mut cmd = common::bin();
    cmd.current_dir(dir)
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_SHA", SHA)
        .env("MVD_ROLE_TO_ASSUME", ROLE)
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
    // No static keys: the only credentials the binary can have are the role's. A deploy
    // that did not use them would find none (no config or credentials file, no metadata).
    for (k, v) in moto.env() {
        if !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET_ACCESS_KEY") {
            cmd.env(k, v);
        }
    }
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Run::from(&cmd.args(["status", "--env", "staging"]).output().unwrap())
}

/// The token and the request token appear only in the `::add-mask::` lines that hide them.
fn assert_never_printed(r: &Run) {
    for secret in [jwt(), REQUEST_TOKEN.to_owned()] {
        for line in r.stdout.lines().chain(r.stderr.lines()) {
            assert!(
                !line.contains(&secret) || line == format!("::add-mask::{secret}"),
                "a token was printed: {line}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oidc_token_is_exchanged_for_the_role() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    moto.staging_config(dir.path());
    let (token_url, seen) = common::answer_all(
        "200 OK",
        "application/json",
        serde_json::json!({"value": jwt()}).to_string(),
    );
    let r = status_with_role(
        &moto,
        dir.path(),
        &[
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                &format!("{token_url}/token?api-version=2.0"),
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr
            .contains(&format!("assumed {ROLE} with the job's OIDC token")),
        "{}",
        r.dump()
    );
    assert!(
        r.stdout.contains(&format!("::add-mask::{}", jwt())),
        "the token is masked\n{}",
        r.dump()
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET /token?api-version=2.0&audience=sts.amazonaws.com ")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {REQUEST_TOKEN}"))),
        "{seen:?}"
    );
    assert_never_printed(&r);

    // The same run without the role has no credentials at all: the role's were used.
    let without = status_with_role(&moto, dir.path(), &[("MVD_ROLE_TO_ASSUME", "")]);
    assert_eq!(without.code, 3, "{}", without.dump());
    assert!(
        without.stderr.to_lowercase().contains("credentials"),
        "{}",
        without.dump()
    );
}

/// Credentials that expire soon are exchanged again (a new token, a new
/// `AssumeRoleWithWebIdentity`) and the command goes on with them: a fake STS hands out
/// credentials that expire in a minute, inside the five minutes before expiry in which they are
/// renewed, so every new client of the run renews them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_near_their_expiry_are_renewed_and_the_command_goes_on() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    moto.staging_config(dir.path());
    let (token_url, token_seen) = common::answer_all(
        "200 OK",
        "application/json",
        serde_json::json!({"value": jwt()}).to_string(),
    );
    let expiry = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_mins(1),
    );
    let (sts_url, sts_seen) = common::answer_all(
        "200 OK",
        "text/xml",
        format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAFAKEFAKEFAKE</AccessKeyId><SecretAccessKey>PLANTEDsecretACCESSkey</SecretAccessKey><SessionToken>PLANTEDsessionTOKEN</SessionToken><Expiration>{expiry}</Expiration></Credentials><SubjectFromWebIdentityToken>repo:movieverse/app:ref:refs/heads/main</SubjectFromWebIdentityToken><AssumedRoleUser><AssumedRoleId>AROAFAKE:movieverse-deploy</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/movieverse-deploy/x</Arn></AssumedRoleUser></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
        ),
    );
    let r = status_with_role(
        &moto,
        dir.path(),
        &[
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                &format!("{token_url}/token"),
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
            ("AWS_ENDPOINT_URL_STS", &sts_url),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains(&format!(
            "renewed the credentials of {ROLE} with a new OIDC token"
        )),
        "{}",
        r.dump()
    );
    let tokens = token_seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("GET /token"))
        .count();
    let exchanges = sts_seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("POST "))
        .count();
    assert!(
        tokens >= 2 && exchanges >= 2,
        "{tokens} tokens, {exchanges} exchanges"
    );
    assert_never_printed(&r);
    for planted in ["PLANTEDsecretACCESSkey", "PLANTEDsessionTOKEN"] {
        for line in r.stdout.lines().chain(r.stderr.lines()) {
            assert!(
                !line.contains(planted) || line.starts_with("::add-mask::"),
                "{planted} printed: {line}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_without_id_token_permission_is_told_so() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    moto.staging_config(dir.path());
    let r = status_with_role(&moto, dir.path(), &[]);
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr.contains("permissions: id-token: write"),
        "{}",
        r.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trust_policy_mismatch_shows_the_claims_not_the_token() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    moto.staging_config(dir.path());
    let (token_url, _) = common::answer_all(
        "200 OK",
        "application/json",
        serde_json::json!({"value": jwt()}).to_string(),
    );
    let (sts_url, _) = common::answer_all(
        "403 Forbidden",
        "text/xml",
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>r1</RequestId></ErrorResponse>".to_owned(),
    );
    let r = status_with_role(
        &moto,
        dir.path(),
        &[
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                &format!("{token_url}/token"),
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
            ("AWS_ENDPOINT_URL_STS", &sts_url),
        ],
    );
    assert_eq!(r.code, 3, "{}", r.dump());
    assert!(
        r.stderr
            .contains(&format!("AWS refused to let this job assume {ROLE}")),
        "{}",
        r.dump()
    );
    assert!(r.stderr.contains("AccessDenied"), "{}", r.dump());
    assert!(
        r.stderr
            .contains("sub `repo:movieverse/app:ref:refs/heads/main`")
            && r.stderr.contains("aud `sts.amazonaws.com`"),
        "{}",
        r.dump()
    );
    assert_never_printed(&r);
}
