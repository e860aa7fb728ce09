//! Blue-green on ECS, at the edge: `deploy` (the engine plays
//! [`crate::rollout::script::blue_green`]; the controller shifts the traffic, each step starts
//! and observes what it does), `rollout status|promote|abort|resume`, and `rollback`.
//!
//! Two controllers switch the traffic ([`Switch`]): `CodeDeploy` (a deployment group's
//! deployments, held at Ready for the gate) and ECS native blue/green (the service's own
//! deployments, held by a PAUSE hook after test traffic moved). Both are read into the words
//! of [`crate::platform::ecs::bluegreen`], so one waiter and one set of effects serve both.
//!
//! The rollout's state is the controller's: the deployment in flight and its status. A later
//! process finds it there (`ListDeployments`, `ListServiceDeployments`), so nothing else is
//! stored.
//!
//! `rollback`:
//! - A deployment in flight is stopped with rollback (blue takes the traffic back), and the
//!   rollback is followed to its end.
//! - Otherwise the task definition that ran before the current one is deployed as a new
//!   blue-green (`CodeDeploy`: through the deployment group, with the rendered `appspec.yaml`
//!   pointing at it; native: `UpdateService`). A gate on the way is continued: a rollback
//!   does not wait for a promotion.
//!
//! Each wait shows the status as it changes, is bounded by `--timeout` (else the strategy's
//! `progress_deadline`), and ends at SIGINT/SIGTERM: a rollback cancelled in flight is stopped
//! with the controller's own rollback, which leaves the service as it was before it.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::deploy::{platform_error, rendered_specs, runtime, watch_signals};
use super::rollout::{Effects, Ended, SaveError, conclude, now_ms, play};
use super::{Error, print_out};
use crate::cli::{DeployArgs, RolloutAction, Selection, WaitArgs};
use crate::config::{BlueGreen, HookPoint, Loaded};
use crate::driver::{MAX_FAILED_READS, retried, retried_write};
use crate::git::GitInfo;
use crate::metrics::{Facts, Measurer, QueryVars};
use crate::platform::Platform as _;
use crate::platform::ServiceSpec;
use crate::platform::ecs::Ecs;
use crate::platform::ecs::alb::{Alb, target_group_dimension};
use crate::platform::ecs::bluegreen::{Observed, Status, Verdict, judge};
use crate::platform::ecs::codedeploy::{CodeDeploy, appspec};
use crate::platform::ecs::native::Native;
use crate::platform::observation::PlatformError;
use crate::render::templates::ECS_APPSPEC;
use crate::rollout::engine::{
    Analysis, Effect, Event, Input, Outcome, State, Status as EngineStatus,
};
use crate::rollout::script::{Gate, Script, Step, Track, blue_green};

/// What `plan --live` reads of a blue-green environment on ECS: what the deploy relies on
/// (the deployment group or the controller, a deployment in flight). Nothing changes.
pub(super) async fn live_facts(
    loaded: &Loaded,
    name: &str,
    b: &BlueGreen,
    image: Option<String>,
) -> Result<Vec<(bool, String)>, Error> {
    let (_, _, spec, _) = inputs(loaded, name, b, image)?;
    facts_of(loaded, name, b, &spec).await
}

async fn facts_of(
    loaded: &Loaded,
    name: &str,
    b: &BlueGreen,
    spec: &ServiceSpec,
) -> Result<Vec<(bool, String)>, Error> {
    let region = &loaded.config.region;
    let switch = Switch::new(region, b, spec).await;
    let scope = switch.scope();
    let fail = |e: &PlatformError, what: &str| platform_error(loaded, name, e, what);
    let gated = match (&b.gate, &b.analysis) {
        (Some(_), _) => Some("the gate"),
        (None, Some(_)) => Some("the checks of green"),
        (None, None) => None,
    };
    let mut facts = Vec::new();
    match &switch {
        Switch::CodeDeploy {
            client,
            application,
            group,
        } => {
            let g = client
                .group(application, group)
                .await
                .map_err(|e| fail(&e, &format!("{name}: read the deployment group {scope}")))?;
            facts.push(match (g.stops_at_ready, gated) {
                (true, _) => (true, format!("deployment group {scope} holds deployments at Ready (deploymentReadyOption STOP_DEPLOYMENT)")),
                (false, Some(what)) => (false, format!("deployment group {scope} does not stop at Ready: `deploy` refuses {what} until it does (deploymentReadyOption.actionOnTimeout: STOP_DEPLOYMENT)")),
                (false, None) => (true, format!("deployment group {scope} does not stop at Ready (no gate or checks ask it to)")),
            });
            let unwatched = g.unwatched(&b.alarms);
            if !b.alarms.is_empty() {
                facts.push(if unwatched.is_empty() {
                    (
                        true,
                        format!(
                            "it watches the alarms deploy.yml names: {}",
                            b.alarms.join(", ")
                        ),
                    )
                } else {
                    (
                        false,
                        format!(
                            "it does not watch {}: `deploy` refuses to start until it does",
                            unwatched.join(", ")
                        ),
                    )
                });
            }
        }
        Switch::Native { .. } => {
            let ecs = Ecs::from_env(region).await;
            let controller = ecs
                .controller(spec)
                .await
                .map_err(|e| fail(&e, &format!("{name}: read the {scope}")))?;
            facts.push(if controller == "ECS" {
                (true, format!("{scope} has the ECS deployment controller (ECS native blue/green)"))
            } else {
                (false, format!("{scope} has the {controller} deployment controller: `deploy` refuses ECS native blue/green until it has the ECS one"))
            });
        }
    }
    let in_flight = switch
        .in_flight()
        .await
        .map_err(|e| fail(&e, &format!("{name}: list the deployments of {scope}")))?;
    facts.push(match in_flight.first() {
        Some(id) => (
            false,
            format!(
                "{} {id} is in flight: `deploy` does not start another over it (`rollout status --env {name}`)",
                switch.what()
            ),
        ),
        None => (true, "no deployment in flight".to_owned()),
    });
    Ok(facts)
}

/// `rollback --env E` for a blue-green environment on ECS.
pub(super) fn rollback(
    loaded: &Loaded,
    name: &str,
    b: &BlueGreen,
    args: &WaitArgs,
) -> Result<(), Error> {
    // Everything that can be wrong locally is found before the first call.
    let (_, _, spec, rendered_appspec) = inputs(loaded, name, b, None)?;
    let limit = args.timeout.unwrap_or(b.progress_deadline.0);
    let rt = runtime()?;
    rt.block_on(async {
        let cancel = CancellationToken::new();
        watch_signals(cancel.clone());
        let region = &loaded.config.region;
        let switch = Switch::new(region, b, &spec).await;
        let fail = |e: &PlatformError, what: &str| platform_error(loaded, name, e, what);
        let (what, scope) = (switch.what(), switch.scope());
        let in_flight = switch
            .in_flight()
            .await
            .map_err(|e| fail(&e, &format!("{name}: list the deployments of {scope}")))?;
        let waiter = Waiter {
            switch: &switch,
            cancel: &cancel,
            poll: args.poll_interval,
            env: name,
        };
        let deadline = Instant::now() + limit;
        let to_the_end = Until {
            statuses: &[Status::Succeeded],
            continue_ready: true,
            interruptible: true,
            deadline,
        };
        if let Some(id) = in_flight.first() {
            eprintln!(
                "{name}: {what} {id} of {scope} is in flight: stopping it with rollback (blue takes the traffic back)"
            );
            switch
                .stop(id, false)
                .await
                .map_err(|e| fail(&e, &format!("{name}: stop deployment {id}")))?;
            println!("deployment={id}");
            if args.no_wait {
                eprintln!("{name}: stop requested; not waiting (--no-wait)");
                return Ok(());
            }
            let stopped = Until {
                statuses: &[],
                continue_ready: false,
                interruptible: true,
                deadline,
            };
            return match waiter.follow(id, &stopped).await.map_err(|e| fail(&e, name))? {
                End::Ended {
                    rolled_back_by: Some(by),
                    ..
                } => {
                    eprintln!("{name}: {id} is rolled back ({by})");
                    println!("rollback_deployment={by}");
                    let end = waiter.follow(&by, &to_the_end).await.map_err(|e| fail(&e, name))?;
                    finish(name, &switch, &by, end)
                }
                End::Ended { reason, .. } => {
                    eprintln!("{name}: {id} ended: {reason}");
                    Ok(())
                }
                other => finish(name, &switch, id, other),
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
        eprintln!(
            "{name}/{}: rolling back to {previous} through {} ({scope})",
            spec.name,
            switch.owner()
        );
        let id = switch
            .start(
                name,
                &ecs,
                &spec,
                rendered_appspec.as_ref(),
                &previous,
                &b.deployment_config,
                &format!("movieverse-deploy rollback of {name} to {previous}"),
                (&cancel, deadline),
            )
            .await
            .map_err(|e| fail(&e, &format!("{name}: start the rollback deployment")))?;
        println!("deployment={id}");
        if args.no_wait {
            eprintln!(
                "{name}: {what} {id} started; not waiting (--no-wait). `movieverse-deploy status --env {name}` shows where it stands"
            );
            return Ok(());
        }
        let end = waiter.follow(&id, &to_the_end).await.map_err(|e| fail(&e, name))?;
        if let End::Interrupted = end {
            eprintln!(
                "{name}: cancelled: stopping {id} with rollback (the service goes back to what ran before it)"
            );
            switch
                .stop(&id, false)
                .await
                .map_err(|e| fail(&e, &format!("{name}: stop deployment {id}")))?;
        }
        finish(name, &switch, &id, end)
    })
}

/// The deployment an `UpdateService` started (ECS native): the newest in flight, looked for
/// until `deadline`.
async fn started(
    who: &str,
    switch: &Switch,
    cancel: &CancellationToken,
    deadline: Instant,
) -> Result<String, PlatformError> {
    loop {
        if let Some(id) = retried(who, || switch.in_flight())
            .await?
            .into_iter()
            .next()
        {
            return Ok(id);
        }
        if Instant::now() >= deadline || cancel.is_cancelled() {
            return Err(PlatformError::new(
                crate::platform::observation::ErrorKind::NotFound,
                "ListServiceDeployments",
                "the service was updated, but ECS lists no service deployment in flight for it",
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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

/// Who switches the traffic, with what it needs to find its deployments.
enum Switch {
    CodeDeploy {
        client: CodeDeploy,
        application: String,
        group: String,
    },
    /// ECS native blue/green: the service's deployments.
    Native {
        client: Native,
        cluster: String,
        service: String,
    },
}

impl Switch {
    async fn new(region: &str, b: &BlueGreen, spec: &ServiceSpec) -> Self {
        if b.native() {
            Switch::Native {
                client: Native::from_env(region).await,
                cluster: spec.cluster.clone(),
                service: spec.name.clone(),
            }
        } else {
            Switch::CodeDeploy {
                client: CodeDeploy::from_env(region).await,
                application: b.application().to_owned(),
                group: b.deployment_group().to_owned(),
            }
        }
    }

    /// What one deployment is called, for the messages.
    fn what(&self) -> &'static str {
        match self {
            Switch::CodeDeploy { .. } => "CodeDeploy deployment",
            Switch::Native { .. } => "ECS service deployment",
        }
    }

    /// The AWS CLI command that says what the controller waits for.
    fn inspect(&self, id: &str) -> String {
        match self {
            Switch::CodeDeploy { .. } => format!(
                "`aws deploy get-deployment --deployment-id {id}` says what CodeDeploy waits for"
            ),
            Switch::Native { .. } => format!(
                "`aws ecs describe-service-deployments --service-deployment-arns {}` says what ECS waits for",
                id.trim_end_matches(crate::platform::ecs::native::ROLLBACK_SUFFIX)
            ),
        }
    }

    /// Who carries a deployment on when we stop waiting.
    fn owner(&self) -> &'static str {
        match self {
            Switch::CodeDeploy { .. } => "CodeDeploy",
            Switch::Native { .. } => "ECS",
        }
    }

    /// Whose deployments they are: the deployment group, or the service.
    fn scope(&self) -> String {
        match self {
            Switch::CodeDeploy {
                application, group, ..
            } => format!("{application}/{group}"),
            Switch::Native {
                cluster, service, ..
            } => format!("service {cluster}/{service}"),
        }
    }

    /// Where the gate holds green, in the controller's words.
    fn gate_word(&self) -> &'static str {
        match self {
            Switch::CodeDeploy { .. } => "Ready",
            Switch::Native { .. } => "the PAUSE hook after test traffic (POST_TEST_TRAFFIC_SHIFT)",
        }
    }

    /// Starts a blue-green of `revision` (registered): `CreateDeployment` of the rendered
    /// `appspec` pointed at it, or natively `UpdateService` and the service deployment ECS
    /// started (looked for until the deadline, or a cancel). Its id.
    #[allow(clippy::too_many_arguments)]
    async fn start(
        &self,
        who: &str,
        ecs: &Ecs,
        spec: &ServiceSpec,
        rendered: Option<&serde_json::Value>,
        revision: &str,
        config: &str,
        description: &str,
        (cancel, deadline): (&CancellationToken, Instant),
    ) -> Result<String, PlatformError> {
        if let (
            Switch::CodeDeploy {
                client,
                application,
                group,
            },
            Some(rendered),
        ) = (self, rendered)
        {
            // The AppSpec's shape was checked before anything changed (`inputs`).
            let (content, sha) = appspec(rendered, revision).map_err(|why| {
                PlatformError::new(
                    crate::platform::observation::ErrorKind::Invalid,
                    "CreateDeployment",
                    why,
                )
            })?;
            // `CreateDeployment` is not idempotent, and an attempt whose answer was lost (a
            // timeout) may have created the deployment all the same. None was in flight before
            // (the pre-flight), so one in flight before a retry is that attempt's: it is
            // followed, and no second one is asked for.
            let (content, sha) = (&content, &sha);
            retried_write(
                who,
                || client.create(application, group, config, (content, sha), description),
                || async {
                    let found = client.in_flight(application, group).await?.into_iter().next();
                    if let Some(id) = &found {
                        eprintln!(
                            "{who}: deployment {id} of {group} is in flight: the CreateDeployment whose answer was lost created it; following it"
                        );
                    }
                    Ok(found)
                },
            )
            .await
        } else {
            // An `UpdateService` whose answer was lost (a timeout) may have started the service
            // deployment all the same: none was in flight before (the pre-flight), so one in
            // flight before a retry is that attempt's, and the call is not sent again.
            retried_write(
                who,
                || async { ecs.update(spec, revision).await.map(drop) },
                || async { Ok((!self.in_flight().await?.is_empty()).then_some(())) },
            )
            .await?;
            started(who, self, cancel, deadline).await
        }
    }

    /// The deployments in flight, newest first.
    async fn in_flight(&self) -> Result<Vec<String>, PlatformError> {
        match self {
            Switch::CodeDeploy {
                client,
                application,
                group,
            } => client.in_flight(application, group).await,
            Switch::Native {
                client,
                cluster,
                service,
            } => client.in_flight(cluster, service).await,
        }
    }

    /// The most recent deployment, ended or not, as read, when there was one: the group's
    /// last attempted one, or the service's newest; when that is a rollback deployment, the
    /// deployment it rolled back.
    async fn last(&self) -> Result<Option<Observed>, PlatformError> {
        let id = match self {
            Switch::CodeDeploy {
                client,
                application,
                group,
            } => client.group(application, group).await?.last_attempted,
            Switch::Native {
                client,
                cluster,
                service,
            } => client.latest(cluster, service).await?,
        };
        let Some(id) = id else {
            return Ok(None);
        };
        let o = self.get(&id).await?;
        match &o.rollback_of {
            Some(of) => self.get(of).await.map(Some),
            None => Ok(Some(o)),
        }
    }

    async fn get(&self, id: &str) -> Result<Observed, PlatformError> {
        match self {
            Switch::CodeDeploy { client, .. } => client.get(id).await,
            Switch::Native { client, .. } => client.get(id).await,
        }
    }

    /// Production traffic to green: `ContinueDeployment` at Ready, or CONTINUE at the hook.
    async fn continue_ready(&self, id: &str) -> Result<(), PlatformError> {
        match self {
            Switch::CodeDeploy { client, .. } => client.continue_ready(id).await,
            Switch::Native { client, .. } => {
                let o = client.get(id).await?;
                match &o.hook {
                    Some(hook) => client.answer(id, hook, true).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Stops `id` with rollback: `StopDeployment`; natively `StopServiceDeployment`
    /// (ROLLBACK), or with `answer_gate` and green waiting at the PAUSE hook, the hook's
    /// ROLLBACK answer (the verdict of the checks there), and the stop if that answer fails
    /// (either takes production back to blue).
    async fn stop(&self, id: &str, answer_gate: bool) -> Result<(), PlatformError> {
        match self {
            Switch::CodeDeploy { client, .. } => client.stop(id, true).await,
            Switch::Native { client, .. } => {
                let hook = if answer_gate {
                    client.get(id).await.ok().and_then(|o| o.hook)
                } else {
                    None
                };
                if let Some(hook) = hook {
                    match client.answer(id, &hook, false).await {
                        Ok(()) => return Ok(()),
                        Err(e) => eprintln!(
                            "the ROLLBACK answer to the {hook} hook of {id} failed ({e}); stopping the deployment with rollback instead"
                        ),
                    }
                }
                client.stop(id).await
            }
        }
    }
}

/// How a followed deployment ended for us.
#[derive(Debug)]
enum End {
    /// It reached one of the statuses waited for.
    Reached,
    Ended {
        reason: String,
        rolled_back_by: Option<String>,
    },
    TimedOut(Duration),
    /// The run was cancelled (only for an interruptible wait): nothing was done about it.
    Interrupted,
}

/// What to wait for.
struct Until<'s> {
    statuses: &'s [Status],
    /// Continue a Ready wait on the way (`ContinueDeployment`).
    continue_ready: bool,
    /// A cancellation ends the wait (never for a wait that is itself the way back).
    interruptible: bool,
    deadline: Instant,
}

struct Waiter<'a> {
    switch: &'a Switch,
    cancel: &'a CancellationToken,
    poll: Duration,
    env: &'a str,
}

impl Waiter<'_> {
    /// Polls `id` until it reaches a status of `until`, ends otherwise, the deadline passes
    /// or (when interruptible) the run is cancelled. Each change of status is shown.
    async fn follow(&self, id: &str, until: &Until<'_>) -> Result<End, PlatformError> {
        let env = self.env;
        let started = Instant::now();
        let mut last = None;
        let mut failed_reads = 0;
        let interrupted = || until.interruptible && self.cancel.is_cancelled();
        loop {
            if interrupted() {
                return Ok(End::Interrupted);
            }
            let read = tokio::select! {
                o = self.switch.get(id) => o,
                () = self.cancel.cancelled(), if until.interruptible => return Ok(End::Interrupted),
            };
            // A throttled or failed read is read again at the next poll (shown), a few times
            // in a row at most: a hiccup of the API must not end, let alone roll back, a
            // deployment that goes well.
            let observed = match read {
                Ok(o) => {
                    failed_reads = 0;
                    o
                }
                Err(e) if e.kind.retryable() && failed_reads < MAX_FAILED_READS => {
                    failed_reads += 1;
                    eprintln!(
                        "{env}: retrying in {}s ({failed_reads}/{MAX_FAILED_READS}): {e}",
                        self.poll.as_secs()
                    );
                    let wake = (Instant::now() + self.poll).min(until.deadline);
                    tokio::select! {
                        () = tokio::time::sleep_until(wake.into()) => {}
                        () = self.cancel.cancelled(), if until.interruptible => return Ok(End::Interrupted),
                    }
                    if Instant::now() >= until.deadline {
                        return Ok(End::TimedOut(started.elapsed()));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let verdict = judge(&observed);
            let seen = (verdict.clone(), observed.shown.clone());
            if last.as_ref() != Some(&seen) {
                let elapsed = started.elapsed().as_secs();
                let what = match &verdict {
                    Verdict::Ready => "Ready (green takes test traffic)",
                    Verdict::Succeeded => "Succeeded",
                    Verdict::Waiting(s) | Verdict::Ended { status: s, .. } => s.name(),
                };
                match &observed.shown {
                    Some(shown) => eprintln!("[{elapsed:>5}s] {env}: {id} {shown}: {what}"),
                    None => eprintln!("[{elapsed:>5}s] {env}: {id} {what}"),
                }
                last = Some(seen);
            }
            if until.statuses.contains(&observed.status) {
                return Ok(End::Reached);
            }
            match verdict {
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
                Verdict::Succeeded => {
                    return Ok(End::Ended {
                        reason: "the deployment succeeded".into(),
                        rolled_back_by: None,
                    });
                }
                Verdict::Ready if until.continue_ready => {
                    eprintln!(
                        "{env}: {id}: continuing past the Ready wait (a rollback does not wait for a promotion)"
                    );
                    self.switch.continue_ready(id).await?;
                }
                Verdict::Ready | Verdict::Waiting(_) => {}
            }
            let now = Instant::now();
            if now >= until.deadline {
                return Ok(End::TimedOut(started.elapsed()));
            }
            let wake = (now + self.poll).min(until.deadline);
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {}
                () = self.cancel.cancelled(), if until.interruptible => return Ok(End::Interrupted),
            }
        }
    }

    /// Follows a rollback to its end: `Ok` once it succeeded.
    async fn rolled_back(&self, id: &str, deadline: Instant) -> Result<(), String> {
        match self
            .follow(
                id,
                &Until {
                    statuses: &[Status::Succeeded],
                    continue_ready: true,
                    interruptible: false,
                    deadline,
                },
            )
            .await
        {
            Ok(End::Reached) => Ok(()),
            Ok(End::Ended { reason, .. }) => {
                Err(format!("the rollback {id} did not succeed: {reason}"))
            }
            Ok(End::TimedOut(after)) => Err(format!(
                "the rollback {id} has not finished after {}s; {} carries on with it",
                after.as_secs(),
                self.switch.owner()
            )),
            Ok(End::Interrupted) => Err("interrupted".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn finish(env: &str, switch: &Switch, id: &str, end: End) -> Result<(), Error> {
    let what = switch.what();
    match end {
        End::Reached => {
            eprintln!("{env}: rolled back ({what} {id} succeeded)");
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
                    .map(|by| format!("; {} rolls it back with {by}", switch.owner()))
                    .unwrap_or_default()
            ),
        }),
        End::TimedOut(after) => Err(Error::Deployment {
            code: 1,
            message: format!(
                "error: {env}: the rollback deployment {id} has not finished after {}s; {} carries on with it\n  = help: `movieverse-deploy status --env {env}` shows where it stands; {}",
                after.as_secs(),
                switch.owner(),
                switch.inspect(id)
            ),
        }),
        End::Interrupted => Err(Error::Deployment {
            code: 130,
            message: format!(
                "{env}: cancelled; {id} was stopped with rollback (the service goes back to what ran before it)"
            ),
        }),
    }
}

/// The engine's effects through `CodeDeploy` (see [`crate::rollout::script::blue_green`]).
struct Green<'a> {
    name: &'a str,
    b: &'a BlueGreen,
    ecs: Ecs,
    switch: Switch,
    spec: ServiceSpec,
    /// The rendered `AppSpec` (`CodeDeploy` only).
    appspec: Option<serde_json::Value>,
    /// The deployment this rollout plays: created by `Deploy(green)`, or found in flight.
    deployment: std::sync::Mutex<Option<String>>,
    /// Green's task definition, once `Deploy(green)` registered it: its stopped tasks say
    /// why a failed green did not stay up.
    registered: std::sync::Mutex<Option<String>>,
    cancel: CancellationToken,
    poll: Duration,
    /// The checks of green at Ready (`analysis:`), on their providers.
    measurer: Option<Measurer>,
    config: &'a crate::config::Config,
    /// What webhooks are told as the revision.
    revision: String,
    /// Green's target group as `CloudWatch` names it (`targetgroup/NAME/ID`), looked up
    /// when there are checks.
    target_group: Option<String>,
    /// The rollout is ended by `rollout abort` (not by a failed check).
    user_abort: bool,
    /// `deploy --return-at`.
    return_at: Option<crate::cli::ReturnAt>,
}

impl Green<'_> {
    fn waiter(&self) -> Waiter<'_> {
        Waiter {
            switch: &self.switch,
            cancel: &self.cancel,
            poll: self.poll,
            env: self.name,
        }
    }

    fn id(&self) -> Option<String> {
        self.deployment
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Follows the deployment until one of `statuses` (interruptible by cancellation).
    async fn until(&self, statuses: &[Status], within: Duration) -> Result<(), String> {
        let Some(id) = self.id() else {
            return Err(format!("no {} was created", self.switch.what()));
        };
        let until = Until {
            statuses,
            continue_ready: false,
            interruptible: true,
            deadline: Instant::now() + within,
        };
        match self.waiter().follow(&id, &until).await {
            Ok(End::Reached) => Ok(()),
            Ok(End::Ended {
                reason,
                rolled_back_by,
            }) => Err(format!(
                "{} {id}: {reason}{}{}{}",
                self.switch.what(),
                rolled_back_by
                    .map(|by| format!("; {} rolled it back ({by})", self.switch.owner()))
                    .unwrap_or_default(),
                self.failed_events(&id).await,
                self.stop_reasons().await
            )),
            Ok(End::TimedOut(after)) => Err(format!(
                "{} {id} did not get there within {}s (progress_deadline)",
                self.switch.what(),
                after.as_secs()
            )),
            Ok(End::Interrupted) => Err("cancelled".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Where a `CodeDeploy` deployment that ended badly stopped: its ECS target's failed
    /// lifecycle events (`; lifecycle events: …`), or nothing (best effort; none natively).
    async fn failed_events(&self, id: &str) -> String {
        let Switch::CodeDeploy { client, .. } = &self.switch else {
            return String::new();
        };
        match client.failed_events(id).await {
            Ok(events) if !events.is_empty() => {
                format!("; lifecycle events: {}", events.join(", "))
            }
            _ => String::new(),
        }
    }

    /// Why green's tasks stopped, read after a deployment ended badly (`; green's stopped
    /// tasks: …`), or nothing: best effort, a failed read is left out.
    async fn stop_reasons(&self) -> String {
        let Some(revision) = self
            .registered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        else {
            return String::new();
        };
        match self.ecs.stopped_of(&self.spec, &revision).await {
            Ok(stopped) if !stopped.is_empty() => format!(
                "; green's stopped tasks: {}",
                stopped
                    .iter()
                    .map(crate::platform::observation::StoppedTask::describe)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            _ => String::new(),
        }
    }

    /// `Deploy(green)`: registers the task definition and starts the deployment (unless one
    /// is already being played: `CreateDeployment`, or natively `UpdateService`), then waits
    /// until the controller holds green at the gate or has finished on its own.
    async fn deploy_green(&self) -> Result<(), String> {
        if self.id().is_none() {
            // A second registration of the same definition only adds a revision.
            let revision = retried(self.name, || self.ecs.register(&self.spec))
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("{}: registered {revision}", self.name);
            *self
                .registered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(revision.clone());
            let id = self
                .switch
                .start(
                    self.name,
                    &self.ecs,
                    &self.spec,
                    self.appspec.as_ref(),
                    &revision,
                    &self.b.deployment_config,
                    &format!("movieverse-deploy: {} to {revision}", self.name),
                    (&self.cancel, Instant::now() + self.b.progress_deadline.0),
                )
                .await
                .map_err(|e| e.to_string())?;
            eprintln!(
                "{}: {} {id} started ({}{})",
                self.name,
                self.switch.what(),
                self.switch.scope(),
                if self.b.native() {
                    String::new()
                } else {
                    format!(", {}", self.b.deployment_config)
                }
            );
            let _ = print_out(&format!("deployment={id}\n"));
            *self
                .deployment
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id);
        }
        // Without a gate the controller goes on by itself: production traffic on green (the
        // bake) is as far as this step waits.
        self.until(
            &[Status::Ready, Status::Baking, Status::Succeeded],
            self.b.progress_deadline.0,
        )
        .await
    }

    /// `SetWeight(100)`: production traffic to green (`ContinueDeployment` at Ready, or
    /// CONTINUE at the PAUSE hook).
    async fn switch(&self) -> Result<(), String> {
        let Some(id) = self.id() else {
            return Err(format!("no {} was created", self.switch.what()));
        };
        let now = retried(self.name, || self.switch.get(&id))
            .await
            .map_err(|e| e.to_string())?;
        if now.status == Status::Ready {
            // A `ContinueDeployment` whose answer was lost (a timeout) may have been done: once
            // the deployment has left Ready, it was.
            retried_write(
                self.name,
                || self.switch.continue_ready(&id),
                || async {
                    Ok((self.switch.get(&id).await?.status != Status::Ready).then_some(()))
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        self.until(
            &[Status::InProgress, Status::Baking, Status::Succeeded],
            self.b.progress_deadline.0,
        )
        .await
    }

    /// `SetWeight(0)`, the way back: the deployment stopped with rollback, followed to its
    /// end (and its rollback, to its end). Idempotent: a deployment that failed or stopped is
    /// back on blue already.
    async fn back_to_blue(&self) -> Result<(), String> {
        let Some(id) = self.id() else {
            return Ok(());
        };
        let waiter = self.waiter();
        let deadline = Instant::now() + self.b.progress_deadline.0;
        let what = self.switch.what();
        // A deployment that cannot be read is stopped all the same: the stop is what takes
        // production back to blue, and the controller refuses it if the deployment ended.
        let status = match retried(self.name, || self.switch.get(&id)).await {
            Ok(now) => Some(now.status),
            Err(e) => {
                eprintln!(
                    "{}: {what} {id} cannot be read ({e}); stopping it all the same",
                    self.name
                );
                None
            }
        };
        match status {
            Some(Status::Failed | Status::Stopped) => {}
            Some(Status::Succeeded) => {
                return Err(format!(
                    "{what} {id} has already succeeded: blue is gone; `movieverse-deploy rollback --env {}` deploys the previous task definition",
                    self.name
                ));
            }
            // A person's abort (or a cancelled run) stops the deployment; the checks' verdict
            // answers the gate.
            _ => {
                let with_rollback = !(self.user_abort || self.cancel.is_cancelled());
                retried(self.name, || self.switch.stop(&id, with_rollback))
                    .await
                    .map_err(|e| e.to_string())?;
                if status.is_none() {
                    // Stopped, but not followed: its reads still fail.
                    eprintln!(
                        "{}: {what} {id} stopped{}; it could not be followed (`movieverse-deploy rollout status --env {}` shows where it stands)",
                        self.name,
                        if with_rollback {
                            " with rollback: the controller takes production back to blue"
                        } else {
                            ""
                        },
                        self.name
                    );
                    return Ok(());
                }
            }
        }
        let ended = Until {
            statuses: &[],
            continue_ready: false,
            interruptible: false,
            deadline,
        };
        match waiter
            .follow(&id, &ended)
            .await
            .map_err(|e| e.to_string())?
        {
            End::Ended {
                rolled_back_by: Some(by),
                ..
            } => waiter.rolled_back(&by, deadline).await,
            End::TimedOut(after) => Err(format!(
                "{} {id} has not stopped after {}s",
                self.switch.what(),
                after.as_secs()
            )),
            End::Ended { .. } | End::Reached | End::Interrupted => Ok(()),
        }
    }
}

impl Effects for Green<'_> {
    async fn run(&self, effect: Effect) -> Input {
        let result = match effect {
            Effect::Deploy(Track::Canary) => self.deploy_green().await,
            Effect::SetWeight(100) => self.switch().await,
            Effect::SetWeight(0) => self.back_to_blue().await,
            // The termination wait: blue is kept (an abort switches back at once), then
            // terminated, and the deployment succeeds.
            Effect::ScaleDown(Track::Stable) => {
                self.until(
                    &[Status::Succeeded],
                    self.b.termination_wait.0 + self.b.progress_deadline.0,
                )
                .await
            }
            Effect::Measure {
                since,
                last,
                weight,
            } => return self.measure(since, last, weight).await,
            other => Err(format!("{other:?} is not a step of a blue-green rollout")),
        };
        Input::Done(result)
    }

    /// `CodeDeploy` keeps the state: the group's deployment in flight and its status.
    async fn save(&mut self, _state: &State) -> Result<(), SaveError> {
        Ok(())
    }

    fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    fn say(&self, script: &Script, state: &State, event: &Event) {
        let line = match event {
            Event::Check(c) => format!(
                "{}: check of green on the test listener: {}",
                self.name,
                super::rollout::check_text(script, state, c)
            ),
            e => event_line(self.name, self.b, script, e),
        };
        eprintln!("{line}");
    }

    fn name(&self) -> &str {
        self.name
    }

    fn returns_before(&self, effect: &Effect) -> Option<String> {
        match (self.return_at, effect) {
            (Some(crate::cli::ReturnAt::Bake), Effect::ScaleDown(Track::Stable)) => {
                Some(step_text(Step::ScaleDown(Track::Stable), self.b.native()))
            }
            _ => None,
        }
    }
}

/// A step in blue-green words (`native`: ECS native blue/green's).
fn step_text(step: Step, native: bool) -> String {
    match step {
        Step::Deploy(_) if native => {
            "deploy green: register the task definition, update the service (ECS native blue/green), wait until green takes test traffic (the PAUSE hook)".into()
        }
        Step::Deploy(_) => {
            "deploy green: register the task definition, create the CodeDeploy deployment, wait until green takes test traffic (Ready)".into()
        }
        Step::Pause(Gate::Manual) => "wait at the gate for `rollout promote`".into(),
        Step::Pause(Gate::Timed(s)) => format!("hold green on test traffic for {}", crate::plan::fmt_secs(s)),
        Step::SetWeight(0) => "stop the deployment with rollback: traffic back on blue".into(),
        Step::SetWeight(_) if native => {
            "switch production traffic to green (ContinueServiceDeployment CONTINUE)".into()
        }
        Step::SetWeight(_) => "switch production traffic to green (ContinueDeployment)".into(),
        Step::ScaleDown(_) if native => {
            "bake: blue and green both run for the bake time, then ECS stops blue".into()
        }
        Step::ScaleDown(_) => "keep blue for the termination wait, then terminate it".into(),
        Step::Analyse => {
            "check green on the test listener (the analysis: HTTP checks, metrics, webhooks)".into()
        }
    }
}

fn event_line(env: &str, b: &BlueGreen, script: &Script, e: &Event) -> String {
    let total = script.steps.len();
    let test_port = b.test_port;
    match e {
        Event::Step { index, step } => {
            format!(
                "{env}: step {}/{total}: {}",
                index + 1,
                step_text(*step, b.native())
            )
        }
        Event::Weight { weight: 100 } => format!("{env}: production traffic is on green"),
        Event::Weight { .. } => format!("{env}: production traffic is on blue"),
        Event::Paused { gate: Gate::Manual } => format!(
            "{env}: green takes test traffic on port {test_port}; production stays on blue until `movieverse-deploy rollout promote --env {env}` (or `rollout abort`)"
        ),
        Event::Paused {
            gate: Gate::Timed(s),
        } => {
            format!("{env}: holding at Ready for {}", crate::plan::fmt_secs(*s))
        }
        Event::Continued => format!("{env}: continuing"),
        Event::Aborting { reason, .. } => format!("{env}: rolling back, traffic to blue: {reason}"),
        Event::Reverting { step } => format!("{env}: {}", step_text(*step, b.native())),
        Event::Check(_) => format!("{env}: check"),
        Event::Finished { outcome } => match outcome {
            Outcome::Promoted => {
                format!("{env}: promoted: green serves production, blue is terminated")
            }
            o => format!("{env}: {}", super::simulate::outcome_text(o)),
        },
    }
}

impl<'a> Green<'a> {
    async fn new(
        loaded: &'a Loaded,
        name: &'a str,
        b: &'a BlueGreen,
        spec: ServiceSpec,
        appspec: Option<serde_json::Value>,
        poll: Duration,
    ) -> Result<Self, Error> {
        let region = &loaded.config.region;
        let measurer = match &b.analysis {
            Some(a) => Some(Measurer::connect(&loaded.config, a).await.map_err(|e| {
                super::rollout::provider_error(name, "the metric provider cannot be used", &e)
            })?),
            None => None,
        };
        Ok(Self {
            name,
            b,
            ecs: Ecs::from_env(region).await,
            switch: Switch::new(region, b, &spec).await,
            spec,
            appspec,
            deployment: std::sync::Mutex::new(None),
            registered: std::sync::Mutex::new(None),
            cancel: CancellationToken::new(),
            poll,
            measurer,
            config: &loaded.config,
            revision: String::new(),
            target_group: None,
            user_abort: false,
            return_at: None,
        })
    }

    fn vars(&self, window_secs: u64) -> QueryVars {
        let mut vars = QueryVars::for_environment(self.config, self.name, window_secs);
        vars.canary_target_group.clone_from(&self.target_group);
        vars
    }

    /// Looks green's target group up by name, for the checks' `CloudWatch` dimensions; a
    /// group that does not exist ends the command before anything changes.
    async fn find_green(&mut self, loaded: &Loaded) -> Result<(), Error> {
        if self.measurer.is_none() {
            return Ok(());
        }
        let name = self.name;
        let tg = self.b.green_target_group();
        let alb = Alb::from_env(&self.config.region).await;
        let arn = retried(name, || alb.target_group_arn(tg))
            .await
            .map_err(|e| {
                platform_error(
                    loaded,
                    name,
                    &e,
                    &format!("{name}: read the target group {tg}"),
                )
            })?;
        let Some(arn) = arn else {
            return Err(Error::Deployment {
                code: 3,
                message: format!(
                    "error: {name}: the green target group `{tg}` does not exist; nothing was changed\n  = help: create it behind the same listeners as blue, or fix `green_target_group` in deploy.yml"
                ),
            });
        };
        self.target_group = target_group_dimension(&arn);
        Ok(())
    }

    fn facts(&self, phase: HookPoint, window: Option<(u64, u64)>) -> Facts {
        Facts {
            app: self.config.app.clone(),
            environment: self.name.to_owned(),
            revision: self.revision.clone(),
            phase,
            weight: 0,
            window: window.map(|(a, b)| [super::analyze::stamp(a), super::analyze::stamp(b)]),
        }
    }

    /// One check of green at Ready: the analysis' HTTP checks (against `{{ test_url }}`),
    /// metrics and webhooks.
    async fn measure(&self, since: u64, last: bool, _weight: u8) -> Input {
        let Some(m) = &self.measurer else {
            return Input::Done(Err("no analysis is configured".into()));
        };
        let now = now_ms();
        let vars = self.vars((now.saturating_sub(since) / 1000).max(1));
        let interval = self
            .b
            .analysis
            .as_ref()
            .map_or(60, |a| a.interval.as_secs().max(1));
        let facts = self.facts(HookPoint::Step, Some((since, now)));
        let out = m
            .measure(
                &vars,
                since,
                now,
                tokio::time::Instant::now() + Duration::from_secs(interval),
                &facts,
                last,
            )
            .await;
        Input::Measured {
            readings: out.readings,
            requests: out.requests,
            probes: out.probes,
        }
    }

    /// The analysis' pre-flight (providers answer, queries run, secrets set) and its
    /// `pre-rollout` webhooks, before anything changes.
    async fn analysis_preflight(&self) -> Result<(), Error> {
        let Some(m) = &self.measurer else {
            return Ok(());
        };
        let name = self.name;
        m.preflight(&self.vars(60), now_ms())
            .await
            .map_err(|(what, e)| {
                super::rollout::provider_error(name, &format!("{what}: the query does not run"), &e)
            })?;
        super::rollout::pre_rollout_hooks(
            name,
            m,
            &self.vars(60),
            &self.facts(HookPoint::PreRollout, None),
        )
        .await
    }

    /// The deployment in flight, as read.
    async fn in_flight(&self, loaded: &Loaded) -> Result<Option<Observed>, Error> {
        let name = self.name;
        let fail = |e: &PlatformError, what: &str| platform_error(loaded, name, e, what);
        let ids = retried(name, || self.switch.in_flight())
            .await
            .map_err(|e| {
                fail(
                    &e,
                    &format!("{name}: list the deployments of {}", self.switch.scope()),
                )
            })?;
        let Some(id) = ids.into_iter().next() else {
            return Ok(None);
        };
        let o = retried(name, || self.switch.get(&id))
            .await
            .map_err(|e| fail(&e, &format!("{name}: read deployment {id}")))?;
        Ok(Some(o))
    }

    /// Before anything changes: `CodeDeploy`'s group exists and stops at Ready when deploy.yml
    /// asks for a gate, or (native) the service has the ECS controller; and no deployment is
    /// in flight.
    async fn preflight(&self, loaded: &Loaded) -> Result<(), Error> {
        let name = self.name;
        let scope = self.switch.scope();
        let stops = match &self.switch {
            Switch::CodeDeploy {
                client,
                application,
                group,
            } => {
                let g = retried(name, || client.group(application, group))
                    .await
                    .map_err(|e| {
                        platform_error(
                            loaded,
                            name,
                            &e,
                            &format!("{name}: read the deployment group {scope}"),
                        )
                    })?;
                // The alarms deploy.yml names roll a deployment back only if the group
                // watches them (ECS native gets them with the service update).
                let unwatched = g.unwatched(&self.b.alarms);
                if !unwatched.is_empty() {
                    return Err(Error::Deployment {
                        code: 3,
                        message: format!(
                            "error: {name}: deploy.yml names the alarm(s) {}, but the deployment group {scope} does not watch them{}: CodeDeploy would not roll back when they fire; nothing was created\n  = help: add them to the group's alarmConfiguration (enabled), or remove them from `alarms` in deploy.yml",
                            unwatched.join(", "),
                            if g.alarms.is_empty() {
                                " (it watches no alarm)".to_owned()
                            } else {
                                format!(" (it watches {})", g.alarms.join(", "))
                            }
                        ),
                    });
                }
                g.stops_at_ready
            }
            Switch::Native { .. } => {
                let controller = retried(name, || self.ecs.controller(&self.spec))
                    .await
                    .map_err(|e| {
                        platform_error(loaded, name, &e, &format!("{name}: read the {scope}"))
                    })?;
                if controller != "ECS" {
                    return Err(Error::Deployment {
                        code: 3,
                        message: format!(
                            "error: {name}: the {scope} has the {controller} deployment controller; ECS native blue/green (`controller: ecs`) needs the ECS controller; nothing was changed\n  = help: move the service to the ECS controller (`aws ecs update-service --deployment-controller type=ECS`), or use `controller: codedeploy` with its deployment group"
                        ),
                    });
                }
                // Our own PAUSE hook holds green on test traffic.
                true
            }
        };
        let group = scope;
        let asks = match (&self.b.gate, &self.b.analysis) {
            (Some(_), _) => Some("a gate (`gate:`)"),
            (None, Some(_)) => Some("checks of green at Ready (`analysis:`)"),
            (None, None) => None,
        };
        if let Some(what) = asks
            && !stops
        {
            return Err(Error::Deployment {
                code: 3,
                message: format!(
                    "error: {name}: deploy.yml asks for {what}, but the deployment group {group} does not stop at Ready: CodeDeploy would move production traffic without waiting; nothing was created\n  = help: set the group's blueGreenDeploymentConfiguration.deploymentReadyOption to {{actionOnTimeout: STOP_DEPLOYMENT, waitTimeInMinutes: …}}, or remove `gate:` and `analysis:` from the strategy"
                ),
            });
        }
        if let Some(o) = self.in_flight(loaded).await? {
            return Err(Error::Deployment {
                code: 1,
                message: format!(
                    "error: {name}: {} {} of {group} is in progress ({}): a second blue-green does not start over it; nothing was changed\n  = help: `movieverse-deploy rollout status --env {name}` shows it; `rollout promote` or `rollout abort` ends it",
                    self.switch.what(),
                    o.id,
                    o.shown.as_deref().unwrap_or(o.status.name())
                ),
            });
        }
        Ok(())
    }
}

/// The analysis settings the engine needs: the checks at Ready, or none.
fn analysis_of(b: &BlueGreen) -> Analysis {
    b.analysis
        .as_deref()
        .map_or_else(Analysis::none, Analysis::from_config)
}

/// What `deploy` and `rollout` need before any call: the service's spec (rendered for
/// `image`) and, through `CodeDeploy`, the rendered `AppSpec`, checked for its shape.
fn inputs(
    loaded: &Loaded,
    name: &str,
    b: &BlueGreen,
    image: Option<String>,
) -> Result<(GitInfo, String, ServiceSpec, Option<serde_json::Value>), Error> {
    let (git, image, specs) = rendered_specs(loaded, name, image)?;
    let spec = specs
        .into_iter()
        .next()
        .expect("an ECS environment renders its service");
    if b.native() {
        return Ok((git, image, spec, None));
    }
    let rendered = rendered_appspec(loaded, name)?;
    appspec(&rendered, "check").map_err(|why| Error::Usage {
        message: format!("{name}: {why}"),
        help: "the appspec template must keep the AppSpec's shape (Resources: - TargetService: Properties: …)".into(),
    })?;
    Ok((git, image, spec, Some(rendered)))
}

/// The pull request comment, the job summary and the outputs of a blue-green rollout; at
/// the gate, where it waits (the test listener) and how to continue.
async fn report(
    loaded: &Loaded,
    name: &str,
    b: &BlueGreen,
    reporting: super::github::Reporting,
    state: &State,
    ended: &Ended,
    report_file: Option<&std::path::Path>,
) {
    let env = &loaded.config.environments[name];
    let paused = matches!(ended, Ended::Paused);
    let mut row = super::simulate::env_report(
        name,
        env,
        &state.revision,
        state,
        reporting.elapsed_secs(),
        paused,
    );
    let test_url = env.url_on_port(b.test_port);
    if paused {
        row.phase = format!(
            "⏸️ waiting for promotion: green takes test traffic on port {}{}; production stays on blue. To continue, run the promote workflow (workflow_dispatch inputs: environment `{name}`, action `continue`; or `abort`), or `movieverse-deploy rollout promote --env {name}`",
            b.test_port,
            test_url
                .as_deref()
                .map(|u| format!(" ({u})"))
                .unwrap_or_default()
        );
    } else if state.outcome().is_none() {
        row.phase = "in progress".into();
    }
    if let Some(u) = test_url {
        row.links.push(("test traffic (green)".into(), u));
    }
    reporting
        .finish_row(
            loaded,
            &state.revision,
            row,
            paused.then_some("paused"),
            report_file,
        )
        .await;
}

/// `deploy` of a blue-green environment through `CodeDeploy`.
pub(super) fn deploy(
    loaded: &Loaded,
    name: &str,
    b: &BlueGreen,
    args: &DeployArgs,
) -> Result<(), Error> {
    super::rollout::played_step_by_step(
        name,
        "blue-green",
        &args.wait,
        "the strategy's `progress_deadline` bounds each wait; to end the run early, set `gate: manual` and continue later with `rollout promote`",
    )?;
    let (git, image, spec, rendered) = inputs(loaded, name, b, args.image.clone())?;
    if !super::check_image_arg(&image)? {
        eprintln!("{}", super::deploy::tag_note(&image, args.image.is_some()));
    }
    let script = blue_green(b);
    let _lease = super::lock::hold(loaded, name, args.wait.lock_timeout)?;
    let rt = runtime()?;
    rt.block_on(async {
        let mut green =
            Green::new(loaded, name, b, spec, rendered, args.wait.poll_interval).await?;
        green.revision.clone_from(&image);
        green.return_at = args.return_at;
        green.preflight(loaded).await?;
        // A rerun of what already runs registers nothing and deploys nothing.
        let prepared = retried(name, || green.ecs.prepare(&green.spec))
            .await
            .map_err(|e| platform_error(loaded, name, &e, &format!("{name}: read the service")))?;
        if !prepared.definition_changed {
            eprintln!(
                "{name}: no change: blue already runs this task definition; nothing registered, no {} started",
                green.switch.what()
            );
            return conclude(name, Ended::Done(Outcome::Promoted));
        }
        green.find_green(loaded).await?;
        green.analysis_preflight().await?;
        watch_signals(green.cancel.clone());
        let reporting = super::github::Reporting::begin(loaded, name, &git.sha, git.pr).await;
        let mut state = State::new(&script, &image, now_ms());
        let ended = play(
            &mut green,
            &script,
            &analysis_of(b),
            &mut state,
            Input::Start,
        )
        .await?;
        report(
            loaded,
            name,
            b,
            reporting,
            &state,
            &ended,
            args.report.as_deref(),
        )
        .await;
        conclude(name, ended)
    })
}

/// `rollout status|promote|abort|resume` with no deployment in flight: how the last one
/// ended. `status` prints it; `promote` and `resume` after one that succeeded have nothing to
/// do and say so (exit 0); otherwise there is nothing to continue or abort (exit 1).
async fn nothing_in_flight(
    loaded: &Loaded,
    name: &str,
    switch: &Switch,
    input: Option<&Input>,
) -> Result<(), Error> {
    let group = switch.scope();
    let last = switch.last().await.map_err(|e| {
        platform_error(
            loaded,
            name,
            &e,
            &format!("{name}: read the last deployment of {group}"),
        )
    })?;
    let succeeded = last.as_ref().is_some_and(|o| o.status == Status::Succeeded);
    let what = last.as_ref().map_or_else(
        || "none has run yet".to_owned(),
        |o| format!("the last: {} {}", switch.what(), o.summary()),
    );
    let text = format!("{name}: no blue-green deployment of {group} is in flight; {what}\n");
    match input {
        None => print_out(&text),
        Some(Input::Resume | Input::Promote { .. }) if succeeded => print_out(&format!(
            "{text}  green serves production: nothing to continue\n"
        )),
        Some(input) => {
            let (nothing, help) = match input {
                Input::Abort { .. } if succeeded => (
                    "nothing to abort",
                    format!(
                        "`movieverse-deploy rollback --env {name}` takes production back to the revision before"
                    ),
                ),
                Input::Abort { .. } => (
                    "nothing to abort",
                    format!("`movieverse-deploy deploy --env {name}` starts a new one"),
                ),
                _ => (
                    "nothing to continue",
                    format!("`movieverse-deploy deploy --env {name}` starts one"),
                ),
            };
            Err(Error::Deployment {
                code: 1,
                message: format!(
                    "error: {name}: no blue-green deployment of {group} is in flight: {nothing}; {what}\n  = help: {help}"
                ),
            })
        }
    }
}

/// `rollout status|promote|abort|resume` of a blue-green environment: the rollout is the
/// deployment in flight, picked up where its controller holds it.
pub(super) fn rollout(
    loaded: &Loaded,
    name: &str,
    b: &BlueGreen,
    action: &RolloutAction,
) -> Result<(), Error> {
    let (wait, input) = match action {
        RolloutAction::Status(_) => (None, None),
        RolloutAction::Promote { wait, .. } => (Some(wait), Some(Input::Promote { full: false })),
        RolloutAction::Abort(wait) => (
            Some(wait),
            Some(Input::Abort {
                reason: "rollout abort".into(),
            }),
        ),
        RolloutAction::Resume(wait) => (Some(wait), Some(Input::Resume)),
    };
    let (git, _, spec, rendered) = inputs(loaded, name, b, None)?;
    let poll = wait.map_or(Duration::from_secs(5), |w| w.poll_interval);
    let script = blue_green(b);
    let rt = runtime()?;
    rt.block_on(async {
        let mut green = Green::new(loaded, name, b, spec, rendered, poll).await?;
        let group = green.switch.scope();
        let Some(observed) = green.in_flight(loaded).await? else {
            return nothing_in_flight(loaded, name, &green.switch, input.as_ref()).await;
        };
        let (id, status) = (observed.id.clone(), observed.status);
        let Some(mut input) = input else {
            let mut text = format!(
                "{name}: {} {id} of {group}: {}\n",
                green.switch.what(),
                observed.shown.as_deref().unwrap_or(status.name())
            );
            if status == Status::Ready {
                let _ = writeln!(
                    text,
                    "  green takes test traffic on port {}; production is on blue: continue with `movieverse-deploy rollout promote --env {name}`, or `rollout abort`",
                    b.test_port
                );
            }
            return print_out(&text);
        };
        *green
            .deployment
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id.clone());
        green.revision.clone_from(&id);
        green.user_abort = matches!(input, Input::Abort { .. });
        if !green.user_abort {
            green.find_green(loaded).await?;
        }
        let mut state = State::new(&script, &id, now_ms());
        let pause = script.steps.iter().position(|s| matches!(s, Step::Pause(_)));
        let analyse = script.steps.iter().position(|s| *s == Step::Analyse);
        let switch = script
            .steps
            .iter()
            .position(|s| *s == Step::SetWeight(100))
            .expect("a blue-green script switches");
        match (status, pause) {
            (Status::Ready, Some(p)) => {
                state.index = p;
                state.status = EngineStatus::Paused { since: now_ms() };
            }
            // At Ready with checks and no gate: the checks run again (`resume`), or `promote`
            // passes them.
            (Status::Ready, None) if analyse.is_some() => {
                state.index = analyse.unwrap_or_default();
                state.next_check_at = Some(now_ms());
            }
            (Status::Ready, None) => {
                state.index = switch;
                state.pending = Some(Effect::SetWeight(100));
                if matches!(input, Input::Promote { .. }) {
                    input = Input::Resume;
                }
            }
            // Production traffic is on green (the bake, the termination wait): what is left
            // is its end; `abort` stops it with rollback.
            (Status::Baking, _) => {
                state.index = script
                    .steps
                    .iter()
                    .position(|s| *s == Step::ScaleDown(Track::Stable))
                    .expect("a blue-green script ends with blue's scale-down");
                state.weight = 100;
                state.pending = Some(Effect::ScaleDown(Track::Stable));
                if matches!(input, Input::Promote { .. }) {
                    input = Input::Resume;
                }
            }
            (s, _) => {
                if matches!(input, Input::Promote { .. }) {
                    return Err(Error::Deployment {
                        code: 1,
                        message: format!(
                            "error: {name}: deployment {id} is {}, not at its gate ({}) yet: there is nothing to promote\n  = help: `movieverse-deploy rollout resume --env {name}` follows it; `rollout status` shows where it stands",
                            observed.shown.as_deref().unwrap_or(s.name()),
                            green.switch.gate_word()
                        ),
                    });
                }
                state.pending = Some(Effect::Deploy(Track::Canary));
            }
        }
        eprintln!(
            "{name}: {} {id} ({})",
            green.switch.what(),
            observed.shown.as_deref().unwrap_or(status.name())
        );
        watch_signals(green.cancel.clone());
        let reporting = super::github::Reporting::begin(loaded, name, &git.sha, git.pr).await;
        let ended = play(&mut green, &script, &analysis_of(b), &mut state, input).await?;
        report(loaded, name, b, reporting, &state, &ended, None).await;
        conclude(name, ended)
    })
}
