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
            let comments: Vec<Value> = self
                .client
                .get(route, None::<&()>)
                .await
                .map_err(|e| error("list the pull request's comments", &e))?;
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
                match self.patch_comment(id, &body).await {
                    Ok(()) => Ok(CommentAction::Updated(id)),
                    Err(e) => Self::skip_if_read_only("update the comment", &e),
                }
            }
        } else {
            {
                let body = render(None);
                let route = self.repo_route(&format!("/issues/{pr}/comments"));
                let r: Result<Value, _> =
                    self.client.post(route, Some(&json!({"body": body}))).await;
                match r {
                    Ok(v) => Ok(CommentAction::Created(v["id"].as_u64().unwrap_or(0))),
                    Err(e) => Self::skip_if_read_only("create the comment", &e),
                }
            }
        }
    }

    async fn patch_comment(&self, id: u64, body: &str) -> Result<(), octocrab::Error> {
        let route = self.repo_route(&format!("/issues/comments/{id}"));
        let _: Value = self
            .client
            .patch(route, Some(&json!({"body": body})))
            .await?;
        Ok(())
    }

    /// Replaces the body of comment `id`.
    pub async fn update_comment(&self, id: u64, body: &str) -> Result<(), GitHubError> {
        self.patch_comment(id, body)
            .await
            .map_err(|e| error("update the comment", &e))
    }

    /// A 403 on writing is a read-only token (a fork, or `permissions:` without
    /// `pull-requests: write`): skip, and say so, rather than fail the deploy.
    fn skip_if_read_only(op: &str, e: &octocrab::Error) -> Result<CommentAction, GitHubError> {
        let err = error(op, e);
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
        let v: Value = self
            .client
            .post(self.repo_route("/deployments"), Some(&body))
            .await
            .map_err(|e| error("create a deployment", &e))?;
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
        let _: Value = self
            .client
            .post(
                self.repo_route(&format!("/deployments/{id}/statuses")),
                Some(&body),
            )
            .await
            .map_err(|e| error("set a deployment status", &e))?;
        Ok(())
    }
}
