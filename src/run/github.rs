//! The GitHub side of a deploy: a deployment per environment with its statuses, the sticky
//! pull-request comment, the job summary, the step outputs, and `--report FILE` for a laptop.
//! Reporting never fails a deploy: a GitHub error is a warning.

use std::path::Path;
use std::time::Instant;

use crate::config::{Loaded, Strategy, Target as Platform};
use crate::report::github::{self, EnvReport, Report, State};
use crate::report::github_api::{CommentAction, GitHub, Target};
use crate::report::terminal::failure_text;
use crate::strategy::rolling::{Failure, Outcome};

pub struct Reporting {
    gh: Option<GitHub>,
    deployment: Option<u64>,
    started: Instant,
    env: String,
    sha: String,
}

fn warn(e: &dyn std::fmt::Display) {
    // GitHub's error messages may echo what they were sent.
    eprintln!(
        "warning: {}; the deploy goes on without it",
        crate::report::scrub(&e.to_string())
    );
}

impl Reporting {
    /// Creates the GitHub deployment (status `in_progress`) when running in Actions with a
    /// token.
    pub async fn begin(loaded: &Loaded, env: &str, sha: &str, pr: Option<u64>) -> Self {
        let mut me = Self {
            gh: None,
            deployment: None,
            started: Instant::now(),
            env: env.to_owned(),
            sha: sha.to_owned(),
        };
        let Some(target) = Target::from_env(pr) else {
            return me;
        };
        let gh = match GitHub::new(target) {
            Ok(g) => g,
            Err(e) => {
                warn(&e);
                return me;
            }
        };
        let e = &loaded.config.environments[env];
        let production = e.production.unwrap_or_else(|| env.starts_with("prod"));
        match gh
            .create_deployment(
                sha,
                env,
                e.preview,
                production,
                &format!("movieverse-deploy: {} to {env}", &sha[..sha.len().min(7)]),
            )
            .await
        {
            Ok(id) => {
                if let Err(err) = gh
                    .deployment_status(id, "in_progress", e.url.as_deref(), "rolling out")
                    .await
                {
                    warn(&err);
                }
                me.deployment = Some(id);
            }
            Err(err) => warn(&err),
        }
        me.gh = Some(gh);
        me
    }

    /// Reports how it ended: deployment status, comment, summary, outputs, report file.
    pub async fn finish(
        self,
        loaded: &Loaded,
        image: &str,
        outcomes: &[(String, Outcome)],
        report_file: Option<&Path>,
    ) {
        let row = env_report(
            loaded,
            &self.env,
            image,
            outcomes,
            self.started.elapsed().as_secs(),
        );
        self.finish_row(loaded, image, row, None, report_file).await;
    }

    /// How long since [`Reporting::begin`].
    pub fn elapsed_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Reports a row built by the caller (a canary's steps); `result` overrides the `result`
    /// output (`paused`).
    pub async fn finish_row(
        self,
        loaded: &Loaded,
        image: &str,
        row: github::EnvReport,
        result: Option<&str>,
        report_file: Option<&Path>,
    ) {
        let config = &loaded.config;
        let e = &config.environments[&self.env];
        let state = row.state;
        let run_url = self.gh.as_ref().and_then(|g| g.target.run_url.clone());
        let report = Report {
            app: config.app.clone(),
            commit: self.sha.clone(),
            run_url,
            environments: vec![row],
        };
        let order: Vec<String> = config.environments.keys().cloned().collect();
        if let (Some(gh), Some(id)) = (&self.gh, self.deployment) {
            let (status, words) = match state {
                State::Succeeded | State::NoChange => ("success", "deployed"),
                State::Cancelled => ("error", "cancelled"),
                // A rollout that waits at its gate goes on later: still in progress.
                State::InProgress => ("in_progress", "waiting at the gate"),
                State::RolledBack | State::Failed => ("failure", "failed"),
            };
            if let Err(err) = gh
                .deployment_status(id, status, e.url.as_deref(), words)
                .await
            {
                warn(&err);
            }
        }
        let mut summary_note = None;
        if let Some(gh) = &self.gh {
            let render = |previous: Option<Report>| {
                github::comment(&github::merge(previous, report.clone(), &order))
            };
            match gh.upsert_comment(&config.app, &render).await {
                Ok(CommentAction::Created(id)) => eprintln!("pull request comment {id} created"),
                Ok(CommentAction::Updated(id)) => eprintln!("pull request comment {id} updated"),
                Ok(CommentAction::Unchanged(id)) => {
                    eprintln!("pull request comment {id} already up to date");
                }
                Ok(CommentAction::Skipped(why)) => {
                    eprintln!("pull request comment skipped: {why}");
                    summary_note = Some(why);
                }
                Err(err) => warn(&err),
            }
        }
        // This run's row alone: the summary and the file show this run.
        let mut summary = github::summary(&report);
        if let Some(why) = summary_note {
            let _ = std::fmt::Write::write_fmt(
                &mut summary,
                format_args!("\n> The pull request comment was skipped: {why}.\n"),
            );
        }
        if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
            use std::io::Write as _;
            let written = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .and_then(|mut f| f.write_all(summary.as_bytes()));
            if let Err(err) = written {
                warn(&format!("cannot write the job summary: {err}"));
            }
        }
        let result = result.unwrap_or_else(|| crate::report::result_word(state));
        for (k, v) in [("result", result), ("image", image)] {
            if let Err(err) = crate::report::set_output(k, v) {
                warn(&format!("cannot write $GITHUB_OUTPUT: {err}"));
            }
        }
        if let Some(path) = report_file {
            let body = github::comment(&report);
            match std::fs::write(path, body) {
                Ok(()) => eprintln!("wrote the pull request report to {}", path.display()),
                Err(err) => warn(&format!("cannot write {}: {err}", path.display())),
            }
        }
    }
}

/// The environment's row: the first failure (or the main service's outcome) decides it.
pub fn env_report(
    loaded: &Loaded,
    env: &str,
    image: &str,
    outcomes: &[(String, Outcome)],
    secs: u64,
) -> EnvReport {
    let config = &loaded.config;
    let e = &config.environments[env];
    let worst = outcomes
        .iter()
        .find(|(_, o)| matches!(o, Outcome::Cancelled { .. }))
        .or_else(|| {
            outcomes
                .iter()
                .find(|(_, o)| matches!(o, Outcome::Failed { .. }))
        })
        .or_else(|| {
            outcomes
                .iter()
                .find(|(_, o)| !matches!(o, Outcome::NoChange { .. }))
        })
        .or_else(|| outcomes.first());
    let (state, phase, revision, failure, details) = match worst.map(|(_, o)| o) {
        Some(Outcome::NoChange { revision }) => (
            State::NoChange,
            "no change".to_owned(),
            Some(revision.clone()),
            None,
            vec![],
        ),
        Some(Outcome::Succeeded { revision, waited }) => (
            State::Succeeded,
            if *waited {
                "rolled out".to_owned()
            } else {
                "started (not waited for)".to_owned()
            },
            Some(revision.clone()),
            None,
            vec![],
        ),
        Some(Outcome::Failed { failure, details }) => (
            if matches!(failure, Failure::RolledBack { .. }) {
                State::RolledBack
            } else {
                State::Failed
            },
            "failed".to_owned(),
            None,
            Some(failure_text(failure)),
            details.clone(),
        ),
        Some(Outcome::Cancelled { reverted_to }) => (
            State::Cancelled,
            reverted_to.as_ref().map_or_else(
                || "cancelled".to_owned(),
                |r| format!("cancelled, back on {r}"),
            ),
            reverted_to.clone(),
            None,
            vec![],
        ),
        None => (State::InProgress, "starting".to_owned(), None, None, vec![]),
    };
    let mut links = Vec::new();
    if let Some(ecs) = &e.ecs {
        let region = &config.region;
        links.push((
            "ECS service".to_owned(),
            format!("https://{region}.console.aws.amazon.com/ecs/v2/clusters/{}/services/{}/deployments?region={region}", ecs.cluster, ecs.service),
        ));
        if matches!(&e.strategy, Strategy::BlueGreen(b) if !b.native()) {
            links.push((
                "CodeDeploy".to_owned(),
                format!("https://{region}.console.aws.amazon.com/codesuite/codedeploy/deployments?region={region}"),
            ));
        }
    }
    if let Some(u) = &e.url {
        links.push(("environment".to_owned(), u.clone()));
    }
    EnvReport {
        name: env.to_owned(),
        target: match e.target {
            Platform::Ecs => "ecs".into(),
            Platform::Kubernetes => "kubernetes".into(),
        },
        strategy: e.strategy.name().to_owned(),
        image: image.to_owned(),
        revision,
        state,
        phase,
        duration_secs: secs,
        links,
        failure,
        details,
        canary: vec![],
        threshold: 0,
        metric_links: vec![],
        decided_by: None,
    }
}
