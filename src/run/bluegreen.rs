//! Blue-green through `CodeDeploy`, at the edge: `rollback` of a blue-green environment.
//!
//! - A deployment in flight is stopped with `CodeDeploy`'s rollback (blue takes the traffic
//!   back), and the rollback it starts is followed to its end.
//! - Otherwise the task definition that ran before the current one is deployed through the
//!   environment's deployment group, with the rendered `appspec.yaml` pointing at it. A Ready
//!   wait on the way (a group that gates on test traffic) is continued: a rollback does not
//!   wait for a promotion.
//!
//! Each wait shows the status as it changes, is bounded by `--timeout` (else the strategy's
//! `progress_deadline`), and ends at SIGINT/SIGTERM: a rollback cancelled in flight is stopped
//! with `CodeDeploy`'s own rollback, which leaves the service as it was before it.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Error;
use super::deploy::{platform_error, runtime, specs, watch_signals};
use crate::cli::{Selection, WaitArgs};
use crate::config::{BlueGreen, Loaded};
use crate::platform::Platform as _;
use crate::platform::ecs::Ecs;
use crate::platform::ecs::codedeploy::{CodeDeploy, Verdict, appspec, judge};
use crate::platform::observation::PlatformError;
use crate::render::templates::ECS_APPSPEC;

/// `rollback --env E` for a blue-green (`CodeDeploy`) environment.
pub(super) fn rollback(
    loaded: &Loaded,
    name: &str,
    b: &BlueGreen,
    args: &WaitArgs,
) -> Result<(), Error> {
    // Everything that can be wrong locally is found before the first call.
    let spec = specs(loaded, name, None)?
        .into_iter()
        .next()
        .expect("an ECS environment renders its service");
    let rendered_appspec = rendered_appspec(loaded, name)?;
    let limit = args.timeout.unwrap_or(b.progress_deadline.0);
    let rt = runtime()?;
    rt.block_on(async {
        let cancel = CancellationToken::new();
        watch_signals(cancel.clone());
        let region = &loaded.config.region;
        let codedeploy = CodeDeploy::from_env(region).await;
        let fail = |e: &PlatformError, what: &str| platform_error(loaded, name, e, what);
        let group = format!("{}/{}", b.application, b.deployment_group);
        let in_flight = codedeploy
            .in_flight(&b.application, &b.deployment_group)
            .await
            .map_err(|e| fail(&e, &format!("{name}: list the deployments of {group}")))?;
        let waiter = Waiter {
            codedeploy: &codedeploy,
            cancel: &cancel,
            deadline: Instant::now() + limit,
            poll: args.poll_interval,
            env: name,
        };
        if let Some(id) = in_flight.first() {
            eprintln!(
                "{name}: CodeDeploy deployment {id} of {group} is in flight: stopping it with rollback (blue takes the traffic back)"
            );
            codedeploy
                .stop(id, true)
                .await
                .map_err(|e| fail(&e, &format!("{name}: stop deployment {id}")))?;
            println!("deployment={id}");
            if args.no_wait {
                eprintln!("{name}: stop requested; not waiting (--no-wait)");
                return Ok(());
            }
            return match waiter.follow(id, false).await.map_err(|e| fail(&e, name))? {
                End::Ended {
                    rolled_back_by: Some(by),
                    ..
                } => {
                    eprintln!("{name}: CodeDeploy rolls {id} back with deployment {by}");
                    println!("rollback_deployment={by}");
                    finish(name, &by, waiter.follow(&by, true).await.map_err(|e| fail(&e, name))?)
                }
                End::Ended { reason, .. } => {
                    eprintln!("{name}: {id} stopped: {reason}");
                    Ok(())
                }
                other => finish(name, id, other),
            };
        }
        let ecs = Ecs::from_env(region).await;
        let previous = match ecs.previous_revision(&spec).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(Error::Deployment {
                    code: 1,
                    message: format!(
                        "error: {name}/{}: there is no earlier task definition revision to roll back to",
                        spec.name
                    ),
                });
            }
            Err(e) => return Err(fail(&e, &format!("{name}/{}: rollback", spec.name))),
        };
        let content = appspec(&rendered_appspec, &previous).map_err(|why| Error::Usage {
            message: format!("{name}: {why}"),
            help: "the appspec template must keep the AppSpec's shape (Resources: - TargetService: Properties: …)".into(),
        })?;
        eprintln!(
            "{name}/{}: rolling back to {previous} through CodeDeploy ({group}, {})",
            spec.name, b.deployment_config
        );
        let id = codedeploy
            .create(
                &b.application,
                &b.deployment_group,
                &b.deployment_config,
                (&content.0, &content.1),
                &format!("movieverse-deploy rollback of {name} to {previous}"),
            )
            .await
            .map_err(|e| fail(&e, &format!("{name}: create the rollback deployment")))?;
        println!("deployment={id}");
        if args.no_wait {
            eprintln!(
                "{name}: CodeDeploy deployment {id} created; not waiting (--no-wait). `movieverse-deploy status --env {name}` shows where it stands"
            );
            return Ok(());
        }
        finish(name, &id, waiter.follow(&id, true).await.map_err(|e| fail(&e, name))?)
    })
}

/// The environment's rendered `appspec.yaml`.
fn rendered_appspec(loaded: &Loaded, name: &str) -> Result<serde_json::Value, Error> {
    let (_, rendered) = super::render_selection(
        loaded,
        &Selection {
            env: name.to_owned(),
            image: None,
        },
    )?;
    rendered
        .into_iter()
        .flat_map(|r| r.artifacts)
        .find(|a| a.template == ECS_APPSPEC)
        .map(|a| a.value)
        .ok_or_else(|| Error::Usage {
            message: format!("environment `{name}` renders no appspec.yaml"),
            help: "a blue-green environment needs the appspec template (templates/ecs/appspec.yaml.j2)".into(),
        })
}

/// How a followed deployment ended for us.
#[derive(Debug)]
enum End {
    Succeeded,
    Ended {
        reason: String,
        rolled_back_by: Option<String>,
    },
    TimedOut(Duration),
    /// Cancelled: the deployment was stopped with rollback.
    Cancelled,
}

struct Waiter<'a> {
    codedeploy: &'a CodeDeploy,
    cancel: &'a CancellationToken,
    deadline: Instant,
    poll: Duration,
    env: &'a str,
}

impl Waiter<'_> {
    /// Polls `id` until it ends, the deadline passes or the run is cancelled; continues a
    /// Ready wait when `continue_ready`.
    async fn follow(&self, id: &str, continue_ready: bool) -> Result<End, PlatformError> {
        let env = self.env;
        let started = Instant::now();
        let mut last = None;
        loop {
            let observed = tokio::select! {
                o = self.codedeploy.get(id) => o?,
                () = self.cancel.cancelled() => return self.cancelled(id).await,
            };
            let verdict = judge(&observed);
            if last.as_ref() != Some(&verdict) {
                let elapsed = started.elapsed().as_secs();
                match &verdict {
                    Verdict::Waiting(s) => eprintln!("[{elapsed:>5}s] {env}: {id} {}", s.name()),
                    Verdict::Ready => {
                        eprintln!("[{elapsed:>5}s] {env}: {id} Ready (green takes test traffic)");
                    }
                    Verdict::Succeeded => eprintln!("[{elapsed:>5}s] {env}: {id} Succeeded"),
                    Verdict::Ended { status, .. } => {
                        eprintln!("[{elapsed:>5}s] {env}: {id} {}", status.name());
                    }
                }
                last = Some(verdict.clone());
            }
            match verdict {
                Verdict::Succeeded => return Ok(End::Succeeded),
                Verdict::Ended {
                    reason,
                    rolled_back_by,
                    ..
                } => {
                    return Ok(End::Ended {
                        reason,
                        rolled_back_by,
                    });
                }
                Verdict::Ready if continue_ready => {
                    eprintln!(
                        "{env}: {id}: continuing past the Ready wait (a rollback does not wait for a promotion)"
                    );
                    self.codedeploy.continue_ready(id).await?;
                }
                Verdict::Ready | Verdict::Waiting(_) => {}
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Ok(End::TimedOut(started.elapsed()));
            }
            let wake = (now + self.poll).min(self.deadline);
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {}
                () = self.cancel.cancelled() => return self.cancelled(id).await,
            }
        }
    }

    async fn cancelled(&self, id: &str) -> Result<End, PlatformError> {
        eprintln!(
            "{}: cancelled: stopping {id} with CodeDeploy's rollback (the service goes back to what ran before it)",
            self.env
        );
        self.codedeploy.stop(id, true).await?;
        Ok(End::Cancelled)
    }
}

fn finish(env: &str, id: &str, end: End) -> Result<(), Error> {
    match end {
        End::Succeeded => {
            eprintln!("{env}: rolled back (CodeDeploy deployment {id} succeeded)");
            Ok(())
        }
        End::Ended {
            reason,
            rolled_back_by,
        } => Err(Error::Deployment {
            code: 1,
            message: format!(
                "error: {env}: the rollback deployment {id} did not succeed: {reason}{}",
                rolled_back_by
                    .map(|by| format!("; CodeDeploy rolls it back with {by}"))
                    .unwrap_or_default()
            ),
        }),
        End::TimedOut(after) => Err(Error::Deployment {
            code: 1,
            message: format!(
                "error: {env}: the rollback deployment {id} has not finished after {}s; CodeDeploy carries on with it\n  = help: `movieverse-deploy status --env {env}` shows where it stands; `aws deploy get-deployment --deployment-id {id}` says what CodeDeploy waits for",
                after.as_secs()
            ),
        }),
        End::Cancelled => Err(Error::Deployment {
            code: 130,
            message: format!(
                "{env}: cancelled; {id} was stopped with rollback (the service goes back to what ran before it)"
            ),
        }),
    }
}
