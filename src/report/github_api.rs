//! The GitHub REST calls of the reporter, through octocrab: the sticky comment (found by its
//! marker, updated in place, not rewritten when nothing changed) and deployments with their
//! statuses. Every request body is written out here field by field, so what we send is exactly
//! what the tests validate against GitHub's `OpenAPI` description.

use std::fmt;

use octocrab::Octocrab;
use serde_json::{Value, json};

use super::github::{Report, marker, state_of};

/// Where to report: the repository and the pull request, from the Actions environment.
#[derive(Clone)]
pub struct Target {
    pub api_url: String,
    pub owner: String,
    pub repo: String,
    pub token: secrecy::SecretString,
    /// The pull request, on `pull_request` events.
    pub pr: Option<u64>,
    /// Why the comment will be skipped (a pull request from a fork).
    pub read_only: Option<String>,
    /// `https://github.com/OWNER/REPO/actions/runs/ID`, for statuses' `log_url`.
    pub run_url: Option<String>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("api_url", &self.api_url)
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .field("token", &"<redacted>")
            .field("pr", &self.pr)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// From `GITHUB_TOKEN`, `GITHUB_REPOSITORY`, `GITHUB_API_URL`, `GITHUB_EVENT_PATH`;
    /// `None` outside Actions or without a token.
    pub fn from_env(pr: Option<u64>) -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let token = var("GITHUB_TOKEN")?;
        let (owner, repo) = var("GITHUB_REPOSITORY")?
            .split_once('/')
            .map(|(o, r)| (o.to_owned(), r.to_owned()))?;
        super::mask(&token);
        let event: Option<Value> = var("GITHUB_EVENT_PATH")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| serde_json::from_str(&s).ok());
        let full = format!("{owner}/{repo}");
        let read_only = event.as_ref().and_then(|e| {
            let head = e["pull_request"]["head"]["repo"]["full_name"].as_str()?;
            (head != full).then(|| {
                format!("the pull request comes from the fork {head}, whose workflows get a read-only token")
            })
        });
        let run_url = match (var("GITHUB_SERVER_URL"), var("GITHUB_RUN_ID")) {
            (Some(s), Some(id)) => Some(format!("{s}/{full}/actions/runs/{id}")),
            _ => None,
        };
        Some(Self {
            api_url: var("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            owner,
            repo,
            token: secrecy::SecretString::from(token),
            pr,
            read_only,
            run_url,
        })
    }
}

/// What happened to the comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentAction {
    Created(u64),
    Updated(u64),
    /// Found, and already says this: no request sent.
    Unchanged(u64),
    /// Not written, and why.
    Skipped(String),
}

#[derive(Debug, thiserror::Error)]
#[error("GitHub {operation}: {message}")]
pub struct GitHubError {
    pub operation: String,
    pub message: String,
    pub status: Option<u16>,
}

fn error(operation: &str, e: &octocrab::Error) -> GitHubError {
    let status = match e {
        octocrab::Error::GitHub { source, .. } => Some(source.status_code.as_u16()),
        _ => None,
    };
    let message = match e {
        octocrab::Error::GitHub { source, .. } => {
            format!("{} (HTTP {})", source.message, source.status_code.as_u16())
        }
        other => crate::diag::error_chain(other),
    };
    GitHubError {
        operation: operation.to_owned(),
        message,
        status,
    }
}

/// Retries of one call after a rate limit or a transient failure (so at most four tries).
const RETRIES: u32 = 3;
/// The longest a report waits for one rate limit: longer, and the call is given up (the
/// deploy goes on; reporting never fails it).
pub const MAX_WAIT_SECS: u64 = 300;

/// Why a call is tried again, and after how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Again {
    pub secs: u64,
    pub why: String,
}

/// What an answer that is not a success asks for, after `attempt` retries (pure; GitHub's
/// documented rules): a 403 or 429 with `Retry-After` waits that many seconds; one with
/// `x-ratelimit-remaining: 0` waits until `x-ratelimit-reset`; a secondary rate limit without
/// either waits a minute (doubling); a 500, 502, 503 or 504 is tried again after 1, 2, 4 s.
/// `None`: not worth another try (a 403 without a rate limit is a permission, a 404 or 422 is
/// the request).
pub fn again(
    status: u16,
    retry_after: Option<&str>,
    remaining: Option<&str>,
    reset: Option<&str>,
    message: &str,
    now_epoch: u64,
    attempt: u32,
) -> Option<Again> {
    let limit = if message
        .to_ascii_lowercase()
        .contains("secondary rate limit")
    {
        "secondary rate limit"
    } else {
        "rate limit"
    };
    match status {
        403 | 429 => {
            if let Some(secs) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
                return Some(Again {
                    secs,
                    why: format!("GitHub's {limit}, Retry-After {secs} s"),
                });
            }
            if remaining.map(str::trim) == Some("0")
                && let Some(at) = reset.and_then(|v| v.trim().parse::<u64>().ok())
            {
                return Some(Again {
                    secs: at.saturating_sub(now_epoch) + 1,
                    why: format!("GitHub's {limit}, none left until x-ratelimit-reset {at}"),
                });
            }
            (status == 429 || limit == "secondary rate limit").then(|| Again {
                secs: 60 << attempt.min(3),
                why: format!("GitHub's {limit}, without a time to wait: at least a minute"),
            })
        }
        500 | 502 | 503 | 504 => Some(Again {
            secs: 1 << attempt.min(4),
            why: format!("GitHub answered HTTP {status}"),
        }),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Verb {
    Get,
    Post,
    Patch,
}

pub struct GitHub {
    client: Octocrab,
    pub target: Target,
}

impl GitHub {
    pub fn new(target: Target) -> Result<Self, GitHubError> {
        let client = Octocrab::builder()
            .base_uri(target.api_url.as_str())
            .map_err(|e| error("configure the client", &e))?
            .personal_token(target.token.clone())
            // A GitHub that stops answering must not hold the deploy: the call fails as
            // "no answer" and is tried again like a reset connection.
            .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .set_write_timeout(Some(std::time::Duration::from_secs(30)))
            .build()
            .map_err(|e| error("configure the client", &e))?;
        Ok(Self { client, target })
    }

    fn repo_route(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.target.owner, self.target.repo)
    }

    /// Finds the app's comment on the pull request (every page) and makes it say what
    /// `render` renders from the state it carries.
    pub async fn upsert_comment(
        &self,
        app: &str,
        render: &dyn Fn(Option<Report>) -> String,
    ) -> Result<CommentAction, GitHubError> {
        let Some(pr) = self.target.pr else {
            return Ok(CommentAction::Skipped("not a pull request".into()));
        };
        if let Some(why) = &self.target.read_only {
            return Ok(CommentAction::Skipped(why.clone()));
        }
        let mark = marker(app);
        let mut found: Option<(u64, String)> = None;
        for page in 1..=50u32 {
            let route = self.repo_route(&format!("/issues/{pr}/comments?per_page=100&page={page}"));
            let comments: Vec<Value> = serde_json::from_value(
                self.call("list the pull request's comments", Verb::Get, &route, None)
                    .await?,
            )
            .unwrap_or_default();
            found = comments.iter().find_map(|c| {
                let body = c["body"].as_str()?;
                body.contains(&mark)
                    .then(|| (c["id"].as_u64().unwrap_or(0), body.to_owned()))
            });
            if found.is_some() || comments.len() < 100 {
                break;
            }
        }
        if let Some((id, old)) = found {
            {
                let body = render(state_of(&old));
                if body == old {
                    return Ok(CommentAction::Unchanged(id));
                }
                match self.update_comment(id, &body).await {
                    Ok(()) => Ok(CommentAction::Updated(id)),
                    Err(e) => Self::skip_if_read_only(e),
                }
            }
        } else {
            {
                let body = render(None);
                let route = self.repo_route(&format!("/issues/{pr}/comments"));
                let r = self
                    .call(
                        "create the comment",
                        Verb::Post,
                        &route,
                        Some(&json!({"body": body})),
                    )
                    .await;
                match r {
                    Ok(v) => Ok(CommentAction::Created(v["id"].as_u64().unwrap_or(0))),
                    Err(e) => Self::skip_if_read_only(e),
                }
            }
        }
    }

    /// Replaces the body of comment `id`.
    pub async fn update_comment(&self, id: u64, body: &str) -> Result<(), GitHubError> {
        let route = self.repo_route(&format!("/issues/comments/{id}"));
        self.call(
            "update the comment",
            Verb::Patch,
            &route,
            Some(&json!({"body": body})),
        )
        .await
        .map(drop)
    }

    /// One REST call, its JSON answer. Tried again ([`again`]) after a rate limit (the wait
    /// said on stderr, up to [`MAX_WAIT_SECS`]), a 5xx or a failed connection.
    async fn call(
        &self,
        operation: &str,
        verb: Verb,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Value, GitHubError> {
        let mut attempt = 0;
        loop {
            let sent = match verb {
                Verb::Get => self.client._get(route).await,
                Verb::Post => self.client._post(route, body).await,
                Verb::Patch => self.client._patch(route, body).await,
            };
            let (next, failure) = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let header = |k: &str| {
                        response
                            .headers()
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let (retry_after, remaining, reset) = (
                        header("retry-after"),
                        header("x-ratelimit-remaining"),
                        header("x-ratelimit-reset"),
                    );
                    let text = self
                        .client
                        .body_to_string(response)
                        .await
                        .map_err(|e| error(operation, &e))?;
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if (200..300).contains(&status) {
                        return Ok(v);
                    }
                    let said = v["message"].as_str().unwrap_or(&text).to_owned();
                    let next = again(
                        status,
                        retry_after.as_deref(),
                        remaining.as_deref(),
                        reset.as_deref(),
                        &said,
                        epoch_secs(),
                        attempt,
                    );
                    let failure = GitHubError {
                        operation: operation.to_owned(),
                        message: format!("{said} (HTTP {status})"),
                        status: Some(status),
                    };
                    (next, failure)
                }
                Err(e) => {
                    let next = Again {
                        secs: 1 << attempt.min(4),
                        why: "no answer from GitHub".into(),
                    };
                    (Some(next), error(operation, &e))
                }
            };
            let Some(next) = next.filter(|_| attempt < RETRIES) else {
                return Err(failure);
            };
            if next.secs > MAX_WAIT_SECS {
                return Err(GitHubError {
                    message: format!(
                        "{} ({}: {} s to wait, more than the {MAX_WAIT_SECS} s a report waits)",
                        failure.message, next.why, next.secs
                    ),
                    ..failure
                });
            }
            attempt += 1;
            eprintln!(
                "{}",
                crate::report::scrub(&format!(
                    "GitHub: {operation}: waiting {} s and trying again ({attempt}/{RETRIES}): {}: {}",
                    next.secs, next.why, failure.message
                ))
            );
            tokio::time::sleep(std::time::Duration::from_secs(next.secs)).await;
        }
    }

    /// A 403 on writing is a read-only token (a fork, or `permissions:` without
    /// `pull-requests: write`): skip, and say so, rather than fail the deploy.
    fn skip_if_read_only(err: GitHubError) -> Result<CommentAction, GitHubError> {
        if matches!(err.status, Some(403 | 404)) {
            return Ok(CommentAction::Skipped(format!(
                "the token cannot write to the pull request ({}); give the job `permissions: pull-requests: write`, or expect this on pull requests from forks",
                err.message
            )));
        }
        Err(err)
    }

    /// Creates a deployment of `sha` to `environment`; returns its id.
    pub async fn create_deployment(
        &self,
        sha: &str,
        environment: &str,
        transient: bool,
        production: bool,
        description: &str,
    ) -> Result<u64, GitHubError> {
        let body = json!({
            "ref": sha,
            "environment": environment,
            "required_contexts": [],
            "auto_merge": false,
            "transient_environment": transient,
            "production_environment": production,
            "description": description,
        });
        let v = self
            .call(
                "create a deployment",
                Verb::Post,
                &self.repo_route("/deployments"),
                Some(&body),
            )
            .await?;
        v["id"].as_u64().ok_or_else(|| GitHubError {
            operation: "create a deployment".into(),
            message: format!(
                "no deployment id in the answer ({})",
                v["message"].as_str().unwrap_or("?")
            ),
            status: None,
        })
    }

    /// `state`: `in_progress`, `success`, `failure`, `error` or `inactive`.
    pub async fn deployment_status(
        &self,
        id: u64,
        state: &str,
        environment_url: Option<&str>,
        description: &str,
    ) -> Result<(), GitHubError> {
        let mut body = json!({
            "state": state,
            "description": description.chars().take(140).collect::<String>(),
            "auto_inactive": true,
        });
        if let Some(u) = &self.target.run_url {
            body["log_url"] = json!(u);
        }
        if let Some(u) = environment_url {
            body["environment_url"] = json!(u);
        }
        self.call(
            "set a deployment status",
            Verb::Post,
            &self.repo_route(&format!("/deployments/{id}/statuses")),
            Some(&body),
        )
        .await
        .map(drop)
    }
}

fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::{Again, again};

    /// GitHub's rules for an answer that is not a success, as a table: status, `Retry-After`,
    /// `x-ratelimit-remaining`, `x-ratelimit-reset` (now is 1000), message, attempt → wait.
    #[test]
    fn when_a_call_is_tried_again() {
        let secondary = "You have exceeded a secondary rate limit. Please wait a few minutes.";
        #[allow(clippy::type_complexity)]
        let table: [(
            u16,
            Option<&str>,
            Option<&str>,
            Option<&str>,
            &str,
            u32,
            Option<u64>,
        ); 11] = [
            (403, Some("7"), None, None, secondary, 0, Some(7)),
            (429, Some("30"), None, None, "slow down", 2, Some(30)),
            (
                403,
                None,
                Some("0"),
                Some("1042"),
                "API rate limit exceeded",
                0,
                Some(43),
            ),
            (
                403,
                None,
                Some("0"),
                Some("900"),
                "API rate limit exceeded",
                0,
                Some(1),
            ),
            (403, None, None, None, secondary, 0, Some(60)),
            (403, None, None, None, secondary, 1, Some(120)),
            (429, None, None, None, "too many", 0, Some(60)),
            // A 403 that is no rate limit is a permission: never tried again.
            (
                403,
                None,
                Some("4000"),
                Some("1042"),
                "Resource not accessible by integration",
                0,
                None,
            ),
            (404, Some("1"), None, None, "Not Found", 0, None),
            (502, None, None, None, "Bad Gateway", 2, Some(4)),
            (422, None, None, None, "Validation Failed", 0, None),
        ];
        for (status, after, remaining, reset, message, attempt, want) in table {
            let got = again(status, after, remaining, reset, message, 1000, attempt);
            assert_eq!(
                got.as_ref().map(|a: &Again| a.secs),
                want,
                "{status} {after:?} {remaining:?} {reset:?} {message}: {got:?}"
            );
        }
        let why = again(403, Some("7"), None, None, secondary, 1000, 0)
            .unwrap()
            .why;
        assert_eq!(why, "GitHub's secondary rate limit, Retry-After 7 s");
    }
}
