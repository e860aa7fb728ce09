//! The canary on ECS: the edge that plays the rollout engine's effects, with one of two
//! routers. `router: alb` (below): two ECS services and one forward action this process
//! weighs. `router: ecs`: ECS native CANARY or LINEAR in the one service, ECS moving the
//! rule, each shift held at a PAUSE hook that the analysis answers (`native_start`,
//! `native_follow`, and `platform::ecs::native::next` for what to do next).
//!
//! With the ALB router:
//! - `Deploy(canary)`: the rolling machine on the canary's own service (rendered from the
//!   same templates, in the canary target group), its auto scaling registered first;
//! - `SetWeight(w)`: `ModifyRule` (or `ModifyListener`) with a forward action of stable at
//!   `100 - w` and canary at `w`, the other actions and the stickiness kept; the weights
//!   the load balancer answers are checked against the ones sent;
//! - `Measure`: the analysis (by default the ALB's `CloudWatch` metrics of the canary's
//!   target group);
//! - `Deploy(stable)`: the rolling machine on the stable service (and the environment's
//!   other services), the revision the canary ran;
//! - `ScaleDown(canary)`: its auto scaling held at 0, then its desired count 0.
//!
//! The engine's state is kept in the stable service's tags
//! (`platform::ecs::state_tags`), saved before every effect: `rollout
//! status|promote|abort|resume` and a later `deploy` read it back, as on Kubernetes.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::deploy::{platform_error, rendered_specs, run_machines_with, watch_signals};
use super::rollout::{
    Begin, Effects, Ended, Judge, SaveError, begin, conclude, event_line, metric_links, now_ms,
    play, played_step_by_step, provider_error, status_text,
};
use super::{Error, print_out};
use crate::cli::{DeployArgs, WaitArgs};
use crate::config::{Canary, Loaded};
use crate::driver::{MAX_FAILED_READS, Unit, retried, retried_write};
use crate::metrics::{Measurer, QueryVars};
use crate::platform::Platform as _;
use crate::platform::ServiceSpec;
use crate::platform::ecs::Ecs;
use crate::platform::ecs::alb::{Alb, Forwarder, Weights, check_forward, weights_of};
use crate::platform::ecs::native::{self, Native, Next, Toward};
use crate::platform::ecs::state_tags;
use crate::platform::observation::PlatformError;
use crate::report::terminal::Vocabulary;
use crate::rollout::engine::{Analysis, Effect, Event, Input, Outcome, State, Status};
use crate::rollout::script::{Script, Track, canary};
use crate::strategy::rolling::{Outcome as RollingOutcome, Rolling, Settings};

/// Who moves a canary's traffic on ECS.
enum Router {
    /// The canary's own service, weighed on the listener rule by this process.
    Alb(Box<ServiceSpec>),
    /// ECS native CANARY or LINEAR in the one service.
    Native(Native),
}

/// Everything a canary on ECS needs, read and validated up front.
struct EcsCanary<'a> {
    loaded: &'a Loaded,
    name: &'a str,
    c: &'a Canary,
    ecs: Ecs,
    alb: Alb,
    script: Script,
    analysis: Analysis,
    measurer: Measurer,
    /// The stable service first, then the environment's other services: they roll to the
    /// new revision together at promotion. Under ECS native the first is the one service
    /// the canary runs in.
    stable: Vec<ServiceSpec>,
    /// Who moves the traffic: the canary's own service, weighed on the listener by this
    /// process, or ECS native.
    router: Router,
    stable_tg: String,
    canary_tg: String,
    image: String,
    git: crate::git::GitInfo,
    wait: WaitArgs,
    /// The stable service's ARN (the state's tags are on it) and its tags as last read.
    arn: String,
    tags: Vec<(String, String)>,
    /// The state's text as we last read or wrote it.
    last: Option<String>,
    /// Whether the rollout, as last saved, has promoted the new revision.
    promoted: bool,
    cancel: CancellationToken,
}

impl<'a> EcsCanary<'a> {
    async fn new(
        loaded: &'a Loaded,
        name: &'a str,
        image: Option<String>,
        wait: &WaitArgs,
    ) -> Result<Self, Error> {
        let env = &loaded.config.environments[name];
        let crate::config::Strategy::Canary(c) = &env.strategy else {
            unreachable!("an ECS canary environment");
        };
        let ecs_config = env.ecs.as_ref().expect("an ECS environment");
        let (git, image, mut stable) = rendered_specs(loaded, name, image)?;
        let region = &loaded.config.region;
        let router = if c.native() {
            Router::Native(Native::from_env(region).await)
        } else {
            Router::Alb(Box::new(
                stable
                    .pop()
                    .expect("a canary's own service is rendered last"),
            ))
        };
        let measurer = Measurer::connect(&loaded.config, &c.analysis)
            .await
            .map_err(|e| provider_error(name, "the metric provider cannot be used", &e))?;
        Ok(Self {
            loaded,
            name,
            c,
            ecs: Ecs::from_env(region).await,
            alb: Alb::from_env(region).await,
            script: canary(c),
            analysis: Analysis::from_canary(c),
            measurer,
            stable,
            router,
            stable_tg: ecs_config
                .load_balancer
                .as_ref()
                .map(|lb| lb.target_group_arn.clone())
                .unwrap_or_default(),
            canary_tg: c.canary_target_group.clone().unwrap_or_default(),
            image,
            git,
            wait: WaitArgs {
                env: crate::cli::EnvArgs {
                    env: name.to_owned(),
                },
                timeout: None,
                poll_interval: wait.poll_interval,
                no_wait: false,
                lock_timeout: wait.lock_timeout,
            },
            arn: String::new(),
            tags: Vec::new(),
            last: None,
            promoted: false,
            cancel: CancellationToken::new(),
        })
    }

    fn forwarder(&self) -> Forwarder<'a> {
        match (&self.c.listener_rule, &self.c.listener_arn) {
            (Some(rule), _) => Forwarder::Rule(rule),
            (None, listener) => Forwarder::Listener(listener.as_deref().unwrap_or_default()),
        }
    }

    fn err(&self, e: &PlatformError, what: &str) -> Error {
        platform_error(self.loaded, self.name, e, &format!("{}: {what}", self.name))
    }

    fn vars(&self, window_secs: u64) -> QueryVars {
        QueryVars::for_environment(&self.loaded.config, self.name, window_secs)
    }

    /// Before anything changes: the two services exist, the listener forwards to the two
    /// target groups and nothing else, each metric provider answers and every query runs.
    async fn preflight(&self) -> Result<(), Error> {
        let at = self.forwarder();
        let found = retried(self.name, || self.alb.forward(at))
            .await
            .map_err(|e| self.err(&e, &format!("read {}", at.arn())))?;
        if let Err(why) = check_forward(&found, &self.stable_tg, &self.canary_tg) {
            return Err(Error::Deployment {
                code: 3,
                message: format!(
                    "error: {}: the canary cannot be weighed on {}: {why}; nothing was changed\n  = help: point `listener_rule` (or `listener_arn`) in deploy.yml at the rule that forwards to the stable target group, or make that rule forward to the stable target group ({}) and the canary's ({}) only",
                    self.name,
                    at.arn(),
                    self.stable_tg,
                    self.canary_tg
                ),
            });
        }
        match &self.router {
            Router::Alb(canary) => {
                retried(self.name, || self.ecs.tags(canary))
                    .await
                    .map_err(|e| self.err(&e, "read the canary service"))?;
            }
            Router::Native(_) => {
                let controller = retried(self.name, || self.ecs.controller(&self.stable[0]))
                    .await
                    .map_err(|e| self.err(&e, "read the service"))?;
                if controller != "ECS" {
                    return Err(Error::Deployment {
                        code: 3,
                        message: format!(
                            "error: {}: service {} has the {controller} deployment controller; ECS native CANARY and LINEAR need the ECS controller; nothing was changed\n  = help: the deployment controller is set when the service is created: create the service with `deploymentController: ECS`, or use `router: alb`",
                            self.name, self.stable[0].name
                        ),
                    });
                }
            }
        }
        self.judge().preflight().await
    }

    /// The saved state, if any (the stable service's tags).
    async fn load(&mut self) -> Result<Option<State>, Error> {
        let (arn, tags) = retried(self.name, || self.ecs.tags(&self.stable[0]))
            .await
            .map_err(|e| self.err(&e, "read the stable service's tags"))?;
        let text = state_tags::decode(&tags).map_err(|e| self.damaged(&e))?;
        self.arn = arn;
        self.tags = tags;
        self.last.clone_from(&text);
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    fn damaged(&self, e: &state_tags::TagError) -> Error {
        Error::Deployment {
            code: 1,
            message: format!(
                "error: {}: {e} (service {})\n  = help: remove the tags `{}` and `{}.*` from the service to start over (`aws ecs untag-resource`); traffic may be split: check the listener's weights first",
                self.name,
                self.stable[0].name,
                state_tags::HEAD,
                state_tags::HEAD
            ),
        }
    }

    /// Writes the state into the stable service's tags, after checking that they still hold
    /// what this process last read or wrote (tags have no version to write against: the
    /// check narrows the window in which two writers could both win to one call).
    async fn save(&mut self, state: &State) -> Result<(), SaveError> {
        let text = serde_json::to_string(state).expect("a state serializes");
        let (_, now) = retried(self.name, || self.ecs.tags(&self.stable[0]))
            .await
            .map_err(|e| SaveError::Failed(self.err(&e, "read the stable service's tags")))?;
        let current = state_tags::decode(&now).map_err(|e| SaveError::Failed(self.damaged(&e)))?;
        if current != self.last {
            return Err(SaveError::Contested(Error::Deployment {
                code: 3,
                message: format!(
                    "error: {}: another process moved this rollout (the state in service {}'s tags changed); this run stops here\n  = help: `movieverse-deploy rollout status --env {}` shows where it stands",
                    self.name, self.stable[0].name, self.name
                ),
            }));
        }
        let add = state_tags::encode(&text).map_err(|e| {
            SaveError::Failed(Error::Deployment {
                code: 1,
                message: format!("error: {}: {e}", self.name),
            })
        })?;
        let old_chunks = state_tags::stale(&now, &add);
        retried(self.name, || {
            self.ecs.set_tags(&self.arn, &add, old_chunks.clone())
        })
        .await
        .map_err(|e| {
            SaveError::Failed(self.err(&e, "save the rollout in the stable service's tags"))
        })?;
        self.last = Some(text);
        self.promoted = state.promoted;
        Ok(())
    }

    /// Rolls `specs` with the rolling machine; the result as the engine's input.
    async fn roll(&self, specs: Vec<ServiceSpec>) -> Input {
        let settings = Settings {
            progress_deadline: crate::config::defaults::progress_deadline().0
                + (2 * self.wait.poll_interval).max(Duration::from_secs(30)),
            keep_revisions: u32::MAX,
            on_cancel: crate::strategy::rolling::CancelPolicy::Leave,
            no_wait: false,
        };
        let units = specs
            .into_iter()
            .map(|spec| Unit {
                machine: Rolling::new(
                    spec.name.clone(),
                    settings.clone(),
                    super::deploy::unix_now(),
                ),
                spec,
            })
            .collect();
        let outcomes = run_machines_with(
            &self.ecs,
            units,
            self.name,
            &self.wait,
            Vocabulary::Ecs,
            &self.cancel,
        )
        .await;
        let mut failed = Vec::new();
        for (service, o) in &outcomes {
            match o {
                RollingOutcome::Succeeded { .. } | RollingOutcome::NoChange { .. } => {}
                RollingOutcome::Cancelled { .. } => return Input::Cancel,
                RollingOutcome::Failed { failure, details } => {
                    let mut text = format!(
                        "{service}: {}",
                        crate::report::terminal::failure_text(failure)
                    );
                    for d in details.iter().take(5) {
                        text.push_str("; ");
                        text.push_str(d);
                    }
                    failed.push(text);
                }
            }
        }
        if outcomes.is_empty() {
            return Input::Done(Err("no outcome".into()));
        }
        if failed.is_empty() {
            Input::Done(Ok(()))
        } else {
            Input::Done(Err(failed.join("; ")))
        }
    }

    /// The canary service up on the new revision: its auto scaling's bounds first (a
    /// scaled-down canary is held at 0), then the rolling machine with the desired count
    /// sent.
    async fn deploy_canary(&self, canary: &ServiceSpec) -> Input {
        if let Err(e) = self.ecs.apply_scaling(canary).await {
            return Input::Done(Err(e.to_string()));
        }
        let spec = ServiceSpec {
            scaling: None,
            ..canary.clone()
        };
        self.roll(vec![spec]).await
    }

    /// ECS native: the service updated to the new revision (unless a deployment of it is in
    /// flight already: a resumed run follows that one), then followed until the new tasks
    /// hold at the PAUSE hook before the first shift.
    async fn native_start(&self, n: &Native) -> Input {
        let spec = &self.stable[0];
        let who = self.name;
        // Each call tried again as the driver does: a second registration only adds a
        // revision.
        let started = async {
            let in_flight = retried(who, || n.in_flight(&spec.cluster, &spec.name)).await?;
            if in_flight.is_empty() {
                let prepared = retried(who, || self.ecs.prepare(spec)).await?;
                let revision = if prepared.definition_changed {
                    let revision = retried(who, || self.ecs.register(spec)).await?;
                    eprintln!("{}: registered {revision}", self.name);
                    revision
                } else {
                    prepared.service.revision.clone()
                };
                // An `UpdateService` whose answer was lost (a timeout) may have started the
                // deployment all the same: once one is in flight, the call is not sent again.
                retried_write(
                    who,
                    || async { self.ecs.update(spec, &revision).await.map(drop) },
                    || async {
                        Ok((!n.in_flight(&spec.cluster, &spec.name).await?.is_empty())
                            .then_some(()))
                    },
                )
                .await?;
                eprintln!(
                    "{}: updated service {} to {revision}: ECS starts its {} deployment",
                    self.name,
                    spec.name,
                    self.native_kind()
                );
            }
            Ok::<(), PlatformError>(())
        };
        if let Err(e) = started.await {
            return Input::Done(Err(e.to_string()));
        }
        self.native_follow(n, Toward::Shifts(0)).await
    }

    fn native_kind(&self) -> &'static str {
        match self.c.native_shape() {
            Some(crate::config::NativeShape::Linear { .. }) => "LINEAR",
            _ => "CANARY",
        }
    }

    /// Follows the service deployment in flight `toward` a point: answering its PAUSE hook,
    /// stopping it, or waiting; each wait one poll, bounded by the progress deadline and
    /// the bake of a step, cancellable. Each call is tried again as the driver does; a read
    /// that fails after [`MAX_FAILED_READS`] failed in a row ends the wait (on the way back: the
    /// deployment is stopped with rollback all the same); a ROLLBACK answer that fails
    /// becomes a stop with rollback (either puts all traffic back on the previous tasks).
    async fn native_follow(&self, n: &Native, toward: Toward) -> Input {
        let spec = &self.stable[0];
        let who = self.name;
        let arn = match retried(who, || n.in_flight(&spec.cluster, &spec.name)).await {
            Ok(arns) => arns.into_iter().next(),
            Err(e) => return Input::Done(Err(e.to_string())),
        };
        let Some(arn) = arn else {
            return Input::Done(if toward == Toward::Back {
                // Nothing in flight: ECS has nothing to take back.
                Ok(())
            } else {
                Err(format!(
                    "no service deployment of {} is in flight: it ended without this run (see `aws ecs list-service-deployments --service {}`)",
                    spec.name, spec.name
                ))
            });
        };
        let deadline = tokio::time::Instant::now()
            + crate::config::defaults::progress_deadline().0
            + self.c.analysis.interval.0;
        let mut last = String::new();
        let mut failed_reads = 0;
        loop {
            let r = match n.read(&arn).await {
                Ok(r) => r,
                Err(e) if e.kind.retryable() && failed_reads < MAX_FAILED_READS => {
                    failed_reads += 1;
                    eprintln!(
                        "{}: {e}; reading again ({failed_reads}/{MAX_FAILED_READS})",
                        self.name
                    );
                    if self.pause(deadline).await.is_err() && toward != Toward::Back {
                        return Input::Cancel;
                    }
                    continue;
                }
                Err(e) if toward == Toward::Back => {
                    eprintln!(
                        "{}: the service deployment cannot be read ({e}); stopping it with rollback all the same",
                        self.name
                    );
                    return Input::Done(
                        retried(who, || n.stop(&arn))
                            .await
                            .map_err(|e| e.to_string()),
                    );
                }
                Err(e) => return Input::Done(Err(e.to_string())),
            };
            failed_reads = 0;
            let shown = format!(
                "{} ({})",
                r.status,
                r.stage.as_deref().unwrap_or("no stage")
            );
            if shown != last {
                eprintln!("{}: service deployment {shown}", self.name);
                last = shown;
            }
            let acted = match native::next(&r, toward) {
                Next::Done => return Input::Done(Ok(())),
                Next::Failed(why) => return Input::Done(Err(why)),
                Next::Answer { hook, go_on } => {
                    eprintln!(
                        "{}: answering the PAUSE hook {}",
                        self.name,
                        if go_on { "CONTINUE" } else { "ROLLBACK" }
                    );
                    // An answer whose reply was lost (a timeout) may have been taken: once
                    // the hook no longer awaits one, it was.
                    let answered = retried_write(
                        who,
                        || n.answer(&arn, &hook, go_on),
                        || async {
                            Ok((n.read(&arn).await?.awaiting_hook.as_ref() != Some(&hook))
                                .then_some(()))
                        },
                    )
                    .await;
                    match answered {
                        Err(e) if !go_on => {
                            eprintln!(
                                "{}: the ROLLBACK answer failed ({e}); stopping the service deployment with rollback instead",
                                self.name
                            );
                            retried(who, || n.stop(&arn)).await
                        }
                        other => other,
                    }
                }
                Next::Stop => {
                    eprintln!(
                        "{}: stopping the service deployment with rollback",
                        self.name
                    );
                    retried(who, || n.stop(&arn)).await
                }
                Next::Wait => Ok(()),
            };
            if let Err(e) = acted {
                return Input::Done(Err(e.to_string()));
            }
            if tokio::time::Instant::now() >= deadline {
                return Input::Done(Err(format!(
                    "the service deployment {arn} stayed {} past the deadline",
                    r.status
                )));
            }
            if self.pause(deadline).await.is_err() && toward != Toward::Back {
                return Input::Cancel;
            }
        }
    }

    /// One poll interval (at most until `deadline`); `Err` when cancelled.
    async fn pause(&self, deadline: tokio::time::Instant) -> Result<(), ()> {
        let until = (tokio::time::Instant::now() + self.wait.poll_interval).min(deadline);
        tokio::select! {
            () = tokio::time::sleep_until(until) => Ok(()),
            () = self.cancel.cancelled() => Err(()),
        }
    }

    /// The weights on the listener; the ones the load balancer answers must be the ones sent.
    async fn set_weight(&self, weight: u8) -> Result<(), PlatformError> {
        if let Router::Native(n) = &self.router {
            // ECS moves the weights; on the way back, it rolls the deployment back.
            let toward = if weight == 0 {
                Toward::Back
            } else {
                Toward::Shifts(self.shift_of(weight))
            };
            return match self.native_follow(n, toward).await {
                Input::Done(Ok(())) => Ok(()),
                Input::Done(Err(why)) => Err(PlatformError::new(
                    crate::platform::observation::ErrorKind::Invalid,
                    "DescribeServiceDeployments",
                    why,
                )),
                _ => Err(PlatformError::new(
                    crate::platform::observation::ErrorKind::Invalid,
                    "DescribeServiceDeployments",
                    "cancelled",
                )),
            };
        }
        let w = Weights::canary_at(weight);
        let answered = self
            .alb
            .set_weights(self.forwarder(), &self.stable_tg, &self.canary_tg, w)
            .await?;
        let seen = weights_of(&answered, &self.stable_tg, &self.canary_tg);
        if seen != w {
            return Err(PlatformError::new(
                crate::platform::observation::ErrorKind::Transient,
                "ModifyRule",
                format!(
                    "the listener answered weights stable {} / canary {}, not the {} / {} sent",
                    seen.stable, seen.canary, w.stable, w.canary
                ),
            ));
        }
        eprintln!(
            "{}: {} forwards stable {}% / canary {}%",
            self.name,
            self.forwarder().arn(),
            w.stable,
            w.canary
        );
        Ok(())
    }

    /// The analysis, told this rollout's revision.
    fn judge(&self) -> Judge<'_> {
        Judge {
            loaded: self.loaded,
            name: self.name,
            revision: &self.image,
            measurer: &self.measurer,
        }
    }

    async fn measure(&self, since: u64, last: bool, weight: u8) -> Input {
        self.judge().check(&self.script, since, last, weight).await
    }

    async fn pre_rollout(&self) -> Result<(), Error> {
        self.judge().pre_rollout().await
    }

    /// Traffic back on stable and the canary at 0: what an older rollout is left with when
    /// a new one starts over it.
    async fn back_to_stable(&self) -> Result<(), Error> {
        self.set_weight(0)
            .await
            .map_err(|e| self.err(&e, "weight 0"))?;
        match &self.router {
            Router::Alb(canary) => self
                .ecs
                .scale_to_zero(canary)
                .await
                .map_err(|e| self.err(&e, "scale the canary service down")),
            Router::Native(_) => Ok(()),
        }
    }

    /// Which production traffic shift of ECS native takes the canary to `weight` (from 1).
    fn shift_of(&self, weight: u8) -> usize {
        self.c
            .weights()
            .iter()
            .position(|w| *w == weight)
            .map_or(usize::MAX, |i| i + 1)
    }

    async fn report(
        &self,
        reporting: super::github::Reporting,
        state: &State,
        ended: &Ended,
        report_file: Option<&std::path::Path>,
    ) {
        let env = &self.loaded.config.environments[self.name];
        let paused = matches!(ended, Ended::Paused);
        let mut row = super::simulate::env_report(
            self.name,
            env,
            &state.revision,
            state,
            reporting.elapsed_secs(),
            paused,
        );
        row.revision = Some(state.revision.clone());
        row.metric_links = metric_links(
            self.loaded,
            self.name,
            &self.c.analysis,
            &self.vars(self.script.timing.interval),
            state.started_at,
        );
        reporting
            .finish_row(
                self.loaded,
                &state.revision,
                row,
                paused.then_some("paused"),
                report_file,
            )
            .await;
    }
}

impl Effects for EcsCanary<'_> {
    async fn run(&self, effect: Effect) -> Input {
        if let Router::Native(n) = &self.router {
            return match effect {
                Effect::Deploy(Track::Canary) => self.native_start(n).await,
                Effect::Deploy(Track::Stable) => {
                    let promoted = self.native_follow(n, Toward::End).await;
                    if promoted != Input::Done(Ok(())) || self.stable.len() == 1 {
                        return promoted;
                    }
                    // The environment's other services roll to the new revision.
                    self.roll(self.stable[1..].to_vec()).await
                }
                Effect::Measure {
                    since,
                    last,
                    weight,
                } => self.measure(since, last, weight).await,
                // Promoted, ECS has ended the old tasks: the weight is all on the new ones.
                Effect::SetWeight(0) if self.promoted => Input::Done(Ok(())),
                Effect::SetWeight(w) => {
                    Input::Done(self.set_weight(w).await.map_err(|e| e.to_string()))
                }
                // ECS scales the tasks of a shifted or rolled-back deployment down itself.
                Effect::ScaleDown(_) => Input::Done(Ok(())),
            };
        }
        let Router::Alb(canary) = &self.router else {
            unreachable!("native returned above")
        };
        let result = match effect {
            Effect::Deploy(Track::Canary) => return self.deploy_canary(canary).await,
            Effect::Deploy(Track::Stable) => return self.roll(self.stable.clone()).await,
            Effect::Measure {
                since,
                last,
                weight,
            } => return self.measure(since, last, weight).await,
            Effect::SetWeight(w) => retried(self.name, || self.set_weight(w)).await,
            Effect::ScaleDown(Track::Canary) => {
                retried(self.name, || self.ecs.scale_to_zero(canary)).await
            }
            Effect::ScaleDown(Track::Stable) => {
                return Input::Done(Err("a canary never scales its stable service down".into()));
            }
        };
        Input::Done(result.map_err(|e| e.to_string()))
    }

    async fn save(&mut self, state: &State) -> Result<(), SaveError> {
        EcsCanary::save(self, state).await
    }

    fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    fn say(&self, script: &Script, state: &State, event: &Event) {
        if let Router::Native(_) = &self.router
            && let Some(line) = native_line(self.name, script, state, event)
        {
            eprintln!("{line}");
            return;
        }
        eprintln!("{}", event_line(self.name, script, state, event, "service"));
    }

    fn name(&self) -> &str {
        self.name
    }
}

/// An engine event of an ECS native canary in ECS's words (`None`: the common words fit).
fn native_line(env: &str, script: &Script, state: &State, e: &Event) -> Option<String> {
    use crate::rollout::script::Step;
    let step = |s: &Step| -> String {
        match s {
            Step::Deploy(Track::Canary) => "update the service: ECS starts the new tasks in the canary target group and holds them at the PAUSE hook before the first shift".into(),
            Step::Deploy(Track::Stable) => "promote: CONTINUE at the last PAUSE hook; ECS shifts all traffic to the new tasks and ends the deployment".into(),
            Step::SetWeight(0) if state.promoted => "nothing to move back: all traffic is on the new tasks".into(),
            Step::SetWeight(0) => "ROLLBACK at the PAUSE hook (or stop the deployment with rollback): ECS puts all traffic back on the previous tasks".into(),
            Step::SetWeight(w) => format!("CONTINUE at the PAUSE hook: ECS shifts {w}% of traffic to the new tasks"),
            Step::ScaleDown(_) => "nothing to scale down: ECS ends the tasks it no longer needs".into(),
            other => super::simulate::step_text(*other, "service"),
        }
    };
    Some(match e {
        Event::Step { index, step: s } => {
            format!(
                "{env}: step {}/{}: {}",
                index + 1,
                script.steps.len(),
                step(s)
            )
        }
        Event::Reverting { step: s } => format!("{env}: {}", step(s)),
        Event::Weight { weight: 0 } if state.promoted => {
            format!("{env}: all traffic on the new revision")
        }
        Event::Weight { weight: 0 } => format!("{env}: all traffic back on the previous tasks"),
        Event::Weight { weight } => {
            format!("{env}: ECS shifted {weight}% of traffic to the new tasks")
        }
        _ => return None,
    })
}

/// `deploy` of a canary environment on ECS.
pub(super) fn deploy(loaded: &Loaded, name: &str, args: &DeployArgs) -> Result<(), Error> {
    played_step_by_step(
        name,
        "a canary",
        &args.wait,
        "the canary's `deadline` in deploy.yml bounds it; to end the run early, pause it (`pause_before_promotion: manual`, or `{pause: manual}` in `steps`) and continue later with `rollout promote`",
    )?;
    let _lease = super::lock::hold(loaded, name, args.wait.lock_timeout)?;
    let rt = super::deploy::runtime()?;
    rt.block_on(async {
        let mut c = EcsCanary::new(loaded, name, args.image.clone(), &args.wait).await?;
        if !super::check_image_arg(&c.image)? {
            eprintln!("{}", super::deploy::tag_note(&c.image, args.image.is_some()));
        }
        c.preflight().await?;
        watch_signals(c.cancel.clone());
        let revision = c.image.clone();
        let saved = c.load().await?;
        let (mut state, first) = match begin(saved, &revision, &c.script.hash()) {
            Begin::NoChange => {
                eprintln!("{name}: no change: the rollout of {revision} finished, promoted; nothing applied");
                return conclude(name, Ended::Done(Outcome::Promoted));
            }
            Begin::Ended(o) => {
                return Err(Error::Deployment {
                    code: 1,
                    message: format!("error: {name}: the rollout of {revision} ended: {}\n  = help: deploy a new revision; this one is not tried again", super::simulate::outcome_text(&o)),
                });
            }
            Begin::Resume(s) => {
                eprintln!("{name}: resuming the rollout of {revision} at step {}/{} (weight {}%)", s.index + 1, c.script.steps.len(), s.weight);
                (s, Input::Resume)
            }
            Begin::Supersede(mut old) => {
                c.pre_rollout().await?;
                eprintln!(
                    "{name}: a rollout of {} stands at step {}/{} (weight {}%): taking traffic back to stable first, then starting the rollout of {revision}",
                    old.revision, old.index + 1, c.script.steps.len(), old.weight
                );
                c.back_to_stable().await?;
                old.pending = None;
                old.status = Status::Done(Outcome::RolledBack {
                    reason: format!("superseded by the rollout of {revision}"),
                    failures: vec![],
                });
                c.save(&old).await?;
                (State::new(&c.script, &revision, now_ms()), Input::Start)
            }
            Begin::Fresh { restart } => {
                // Nothing recorded, and the stable service already runs what this renders:
                // a rerun changes nothing.
                let prepared = c
                    .ecs
                    .prepare(&c.stable[0])
                    .await
                    .map_err(|e| c.err(&e, "read the stable service"))?;
                if !restart && !prepared.definition_changed {
                    eprintln!("{name}: no change: the stable service already runs this task definition; nothing registered, no canary started");
                    return conclude(name, Ended::Done(Outcome::Promoted));
                }
                if restart {
                    eprintln!("{name}: the last rollout of {revision} was cancelled: starting it again");
                }
                c.pre_rollout().await?;
                (State::new(&c.script, &revision, now_ms()), Input::Start)
            }
        };
        let reporting = super::github::Reporting::begin(loaded, name, &c.git.sha, c.git.pr).await;
        let script = c.script.clone();
        let analysis = c.analysis.clone();
        let ended = play(&mut c, &script, &analysis, &mut state, first).await?;
        c.report(reporting, &state, &ended, args.report.as_deref()).await;
        conclude(name, ended)
    })
}

/// `rollout status|promote|abort|resume` of a canary environment on ECS.
pub(super) fn rollout(
    loaded: &Loaded,
    name: &str,
    input: Option<Input>,
    wait: &WaitArgs,
) -> Result<(), Error> {
    let rt = super::deploy::runtime()?;
    rt.block_on(async {
        let mut c = EcsCanary::new(loaded, name, None, wait).await?;
        let Some(recorded) = c.load().await? else {
            return Err(Error::Deployment {
                code: 1,
                message: format!(
                    "error: {name}: no rollout is recorded on the service {} (cluster {})\n  = help: `movieverse-deploy deploy --env {name}` starts one",
                    c.stable[0].name, c.stable[0].cluster
                ),
            });
        };
        // The recorded revision is what rolls on (promotion rolls the stable service to it),
        // whatever this checkout's commit renders.
        let mut c = EcsCanary::new(loaded, name, Some(recorded.revision.clone()), wait).await?;
        let mut state = c.load().await?.unwrap_or(recorded);
        let Some(input) = input else {
            return print_out(&status_text(name, &c.script, &state, "service"));
        };
        if let Some(o) = state.outcome() {
            eprintln!(
                "{name}: the rollout of {} has ended: {}; nothing to do",
                state.revision,
                super::simulate::outcome_text(o)
            );
            return Ok(());
        }
        if state.script != c.script.hash() {
            eprintln!("{name}: note: deploy.yml's canary settings changed since this rollout started; it goes on with the current ones");
            state.script = c.script.hash();
        }
        watch_signals(c.cancel.clone());
        let reporting = super::github::Reporting::begin(loaded, name, &c.git.sha, c.git.pr).await;
        let script = c.script.clone();
        let analysis = c.analysis.clone();
        let ended = play(&mut c, &script, &analysis, &mut state, input).await?;
        c.report(reporting, &state, &ended, None).await;
        conclude(name, ended)
    })
}
