//! The canary on Kubernetes: the edge that plays the rollout engine's effects.
//!
//! - `Deploy(canary)` / `Deploy(stable)`: the rolling machine on that Deployment (the shared
//!   manifests are applied with the canary's);
//! - `SetWeight`: the NGINX canary Ingress' weight, under the router's own field manager;
//! - `Measure`: every metric's queries (Prometheus, Datadog or `CloudWatch`) over the window
//!   since the weight changed;
//! - `ScaleDown`: the canary Deployment to zero.
//!
//! The engine's state is saved on the stable Deployment (an annotation written against its
//! resourceVersion) before every effect, so `rollout status|promote|abort|resume` and a
//! later `deploy` read it back: the same revision resumes where it stood, a new one first
//! takes traffic back to stable.

use std::fmt::Write as _;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::deploy::{
    one_environment, platform_error, rendered_specs, run_machines_with, watch_signals,
};
use super::{Error, print_out};
use crate::cli::{DeployArgs, RolloutAction, RolloutArgs, WaitArgs};
use crate::config::HookPoint;
use crate::config::{Loaded, Strategy};
use crate::driver::Unit;
use crate::metrics::{Facts, Measurer, QueryVars};
use crate::platform::ServiceSpec;
use crate::platform::kubernetes::{Holder, Kubernetes, colour_name, colour_selector};
use crate::platform::observation::PlatformError;
use crate::report::terminal::Vocabulary;
use crate::rollout::analysis::Verdict;
use crate::rollout::engine::{
    Analysis, Colours, Effect, Engine, Event, Input, Millis, Outcome, State, Status,
};
use crate::rollout::script::{Gate, Script, Track, canary};
use crate::strategy::rolling::{Outcome as RollingOutcome, Rolling, Settings};

pub(super) fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Everything a rollout of one environment on Kubernetes needs (a canary, or a blue-green),
/// read and validated up front.
struct Rollout<'a> {
    loaded: &'a Loaded,
    name: &'a str,
    k8s: Kubernetes,
    script: Script,
    analysis: Analysis,
    /// The analysis' queries on their providers.
    measurer: Measurer,
    /// The Deployment the new revision ends on: a canary's stable Deployment, or a
    /// blue-green's green (`<app>-<digest>`, a Deployment per revision).
    stable: ServiceSpec,
    shape: Shape,
    image: String,
    git: crate::git::GitInfo,
    wait: WaitArgs,
    /// The stable Deployment's resourceVersion after our last write (or read).
    version: String,
    /// The state's text as we last read or wrote it.
    last: Option<String>,
    cancel: CancellationToken,
}

/// What moves the traffic, and the workloads it moves it between.
enum Shape {
    /// A canary: a fixed canary Deployment beside the stable one, a weight on the router.
    Canary {
        canary: Box<ServiceSpec>,
        router: Router,
    },
    /// A blue-green: the live Service's selector picks a colour, all at once; the preview
    /// Service selects green.
    BlueGreen {
        /// Green's revision label, as this checkout renders it.
        label: String,
        /// The two colours of the rollout in play (set once it is known: new or loaded).
        colours: Option<Colours>,
    },
}

/// Who sets the canary's share of traffic.
enum Router {
    /// The NGINX canary Ingress' weight annotation.
    Nginx { ingress: String },
    /// The `HTTPRoute`'s backend weights.
    Gateway {
        route: String,
        path: String,
        gateway: crate::config::GatewayRef,
    },
}

/// The `pre-rollout` webhooks of `measurer`, before anything changes: each passed one is
/// told; any refusal ends the deploy (exit 1), with every refusal's answer.
pub(super) async fn pre_rollout_hooks(
    env: &str,
    measurer: &Measurer,
    vars: &QueryVars,
    facts: &Facts,
) -> Result<(), Error> {
    if !measurer.has_hooks(HookPoint::PreRollout) {
        return Ok(());
    }
    let results = measurer.pre_rollout(vars, facts).await;
    for r in results.iter().filter(|r| r.passed) {
        eprintln!(
            "{env}: pre-rollout webhook `{}` passed: {}",
            r.name, r.detail
        );
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("webhook `{}`: {}", r.name, r.detail))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Deployment {
        code: 1,
        message: format!(
            "error: {env}: a pre-rollout webhook refused the rollout; nothing was changed\n  - {}",
            failed.join("\n  - ")
        ),
    })
}

/// A provider failure before the rollout: what failed, the provider's words, what to do;
/// exit 2 for a query to fix in deploy.yml, 3 for the environment (keys, reachability).
pub(super) fn provider_error(env: &str, what: &str, e: &crate::metrics::ProviderError) -> Error {
    let help = if e.exit_code() == 2 {
        "fix the query in deploy.yml; nothing was changed"
    } else {
        "check `providers` in deploy.yml, the provider's keys in the environment, and that this runner can reach it; nothing was changed"
    };
    Error::Deployment {
        code: e.exit_code(),
        message: format!("error: {env}: {what}: {e}\n  = help: {help}"),
    }
}

/// An environment `rollout` and this `deploy` path do not drive.
fn not_driven(name: &str) -> Error {
    Error::Usage {
        message: format!(
            "environment `{name}` is not a canary or a blue-green on Kubernetes: `rollout` drives those (and a blue-green on ECS)"
        ),
        help: "use `status` and `rollback` for the other environments".into(),
    }
}

/// How a drive ended.
pub(super) enum Ended {
    Done(Outcome),
    Paused,
    /// The run returned at a stage it was asked to (`deploy --return-at`), before `step`; the
    /// controller carries the rollout on, and `rollout status|resume` pick it up.
    Returned {
        step: String,
    },
}

impl<'a> Rollout<'a> {
    async fn new(
        loaded: &'a Loaded,
        name: &'a str,
        image: Option<String>,
        wait: &WaitArgs,
    ) -> Result<Self, Error> {
        let env = &loaded.config.environments[name];
        let Some(k) = &env.kubernetes else {
            return Err(not_driven(name));
        };
        let (git, image, mut specs) = rendered_specs(loaded, name, image)?;
        let k8s = Kubernetes::connect(k.context.as_deref(), &k.namespace, k.create_namespace)
            .await
            .map_err(Error::Environment)?;
        let wait = WaitArgs {
            env: crate::cli::EnvArgs {
                env: name.to_owned(),
            },
            timeout: None,
            poll_interval: wait.poll_interval,
            no_wait: false,
            lock_timeout: wait.lock_timeout,
        };
        let (script, analysis, measurer, stable, shape) = match &env.strategy {
            Strategy::BlueGreen(b) => {
                let mut green = specs.swap_remove(0);
                let label =
                    crate::platform::kubernetes::colour(&mut green.definition, &loaded.config.app);
                green.name = colour_name(&loaded.config.app, &label);
                let measurer = match b.analysis.as_deref() {
                    None => Ok(Measurer::none()),
                    Some(a) => Measurer::connect(&loaded.config, a).await,
                };
                (
                    crate::rollout::script::blue_green_selector(b),
                    b.analysis
                        .as_deref()
                        .map_or_else(Analysis::none, Analysis::from_config),
                    measurer,
                    green,
                    Shape::BlueGreen {
                        label,
                        colours: None,
                    },
                )
            }
            Strategy::Canary(c) => {
                if specs.len() != 2 {
                    return Err(Error::Usage {
                        message: format!(
                            "environment `{name}` renders {} Deployment(s); a canary needs the stable and the canary one",
                            specs.len()
                        ),
                        help: "check templates.kubernetes/deployment.yaml: it must render both tracks for a canary strategy".into(),
                    });
                }
                let mut canary_spec = specs.pop().expect("two specs");
                let mut stable = specs.pop().expect("two specs");
                // The shared objects (Services, Ingresses, RBAC, ConfigMap, PDB) go with the
                // canary, before it; the HPA with the stable Deployment.
                canary_spec.manifests = std::mem::take(&mut stable.manifests);
                let router = match (k.router, &k.gateway) {
                    (crate::config::Router::GatewayApi, Some(g)) => Router::Gateway {
                        route: loaded.config.app.clone(),
                        path: k.ingress.path.clone(),
                        gateway: g.clone(),
                    },
                    _ => Router::Nginx {
                        ingress: format!("{}-canary", loaded.config.app),
                    },
                };
                (
                    canary(c),
                    Analysis::from_canary(c),
                    Measurer::connect(&loaded.config, &c.analysis).await,
                    stable,
                    Shape::Canary {
                        canary: Box::new(canary_spec),
                        router,
                    },
                )
            }
            Strategy::Rolling(_) => return Err(not_driven(name)),
        };
        let measurer =
            measurer.map_err(|e| provider_error(name, "the metric provider cannot be used", &e))?;
        Ok(Self {
            loaded,
            name,
            k8s,
            script,
            analysis,
            measurer,
            stable,
            shape,
            image,
            git,
            wait,
            version: String::new(),
            last: None,
            cancel: CancellationToken::new(),
        })
    }

    /// Where the rollout's state is kept.
    fn holder(&self) -> Holder {
        match &self.shape {
            Shape::Canary { .. } => Holder::Deployment(self.stable.name.clone()),
            Shape::BlueGreen { .. } => Holder::Service(self.loaded.config.app.clone()),
        }
    }

    fn vars(&self, window_secs: u64) -> QueryVars {
        QueryVars::for_environment(&self.loaded.config, self.name, window_secs)
    }

    fn err(&self, e: &PlatformError, what: &str) -> Error {
        platform_error(self.loaded, self.name, e, what)
    }

    /// Before anything changes: the Gateway exists, each metric provider answers and every
    /// query runs once.
    async fn preflight(&self) -> Result<(), Error> {
        if let Shape::Canary {
            router: Router::Gateway { gateway, .. },
            ..
        } = &self.shape
        {
            let found = self
                .k8s
                .gateway_exists(&gateway.name, gateway.namespace.as_deref())
                .await
                .map_err(|e| self.err(&e, &format!("{}: read the Gateway", self.name)))?;
            if !found {
                return Err(Error::Deployment {
                    code: 3,
                    message: format!(
                        "error: {}: the Gateway `{}` (namespace {}) does not exist, so the HTTPRoute would carry no traffic; nothing was changed\n  = help: create it with your Gateway API implementation, or fix `kubernetes.gateway` in deploy.yml",
                        self.name,
                        gateway.name,
                        gateway
                            .namespace
                            .clone()
                            .unwrap_or_else(|| self.k8s_namespace())
                    ),
                });
            }
        }
        self.judge().preflight().await
    }

    /// The saved state (if any) and the stable Deployment's resourceVersion; `None` when the
    /// stable Deployment does not exist yet.
    async fn load(&mut self) -> Result<Option<Option<State>>, Error> {
        let holder = self.holder();
        let read = crate::driver::retried(self.name, || self.k8s.read_rollout(&holder))
            .await
            .map_err(|e| self.err(&e, &format!("{}: read the rollout", self.name)))?;
        let Some((text, version)) = read else {
            return Ok(None);
        };
        self.version = version;
        self.last.clone_from(&text);
        Ok(Some(text.and_then(|t| serde_json::from_str(&t).ok())))
    }

    /// Writes the state against the stable Deployment's resourceVersion. The controller bumps
    /// that version with every status update: on a conflict the Deployment is read again,
    /// and the write is retried only if the rollout state on it is still the one this
    /// process last read or wrote. Otherwise another process moved the rollout: this one
    /// stops, and says so.
    async fn save(&mut self, state: &State) -> Result<(), SaveError> {
        let text = serde_json::to_string(state).expect("a state serializes");
        let holder = self.holder();
        for _ in 0..10 {
            let version = self.version.clone();
            let written = crate::driver::retried(self.name, || {
                self.k8s.write_rollout(&holder, &text, &version)
            })
            .await;
            match written {
                Ok(version) => {
                    self.version = version;
                    self.last = Some(text);
                    return Ok(());
                }
                Err(e) if e.kind == crate::platform::observation::ErrorKind::Conflict => {
                    let read = crate::driver::retried(self.name, || self.k8s.read_rollout(&holder))
                        .await
                        .map_err(|e| {
                            SaveError::Failed(
                                self.err(&e, &format!("{}: read the rollout", self.name)),
                            )
                        })?;
                    match read {
                        // A write that failed on the way back (a reset) may have landed.
                        Some((current, version)) if current.as_deref() == Some(text.as_str()) => {
                            self.version = version;
                            self.last = Some(text);
                            return Ok(());
                        }
                        Some((current, version)) if current == self.last => self.version = version,
                        _ => {
                            return Err(SaveError::Contested(
                                self.err(&e, &format!("{}: save the rollout", self.name)),
                            ));
                        }
                    }
                }
                Err(e) => {
                    return Err(SaveError::Failed(
                        self.err(&e, &format!("{}: save the rollout", self.name)),
                    ));
                }
            }
        }
        Err(SaveError::Contested(Error::Deployment {
            code: 3,
            message: format!(
                "error: {}: {} kept changing; the rollout state could not be saved",
                self.name,
                self.holder()
            ),
        }))
    }

    /// Rolls one track's Deployment with the rolling machine; the result as the engine's input.
    async fn roll(&self, track: Track) -> Input {
        let spec = match (&self.shape, track) {
            (Shape::Canary { canary, .. }, Track::Canary) => (**canary).clone(),
            (Shape::BlueGreen { .. }, Track::Canary) => match self.green().await {
                Ok(spec) => spec,
                Err(e) => return Input::Done(Err(e.to_string())),
            },
            (_, Track::Stable) => self.stable.clone(),
        };
        let settings = Settings {
            progress_deadline: crate::config::defaults::progress_deadline().0
                + (2 * self.wait.poll_interval).max(Duration::from_secs(30)),
            keep_revisions: u32::MAX,
            on_cancel: crate::strategy::rolling::CancelPolicy::Leave,
            no_wait: false,
        };
        let units = vec![Unit {
            machine: Rolling::new(spec.name.clone(), settings, super::deploy::unix_now()),
            spec,
        }];
        let outcomes = run_machines_with(
            &self.k8s,
            units,
            self.name,
            &self.wait,
            Vocabulary::Kubernetes,
            &self.cancel,
        )
        .await;
        match outcomes.first().map(|(_, o)| o) {
            Some(RollingOutcome::Succeeded { .. } | RollingOutcome::NoChange { .. }) => {
                if let (Shape::BlueGreen { label, .. }, Track::Canary) = (&self.shape, track) {
                    // Green is ready: the preview Service selects it, for the checks.
                    let preview = format!("{}-preview", self.loaded.config.app);
                    let selector = colour_selector(&self.loaded.config.app, label);
                    if let Err(e) = self.k8s.set_selector(&preview, &selector).await {
                        return Input::Done(Err(e.to_string()));
                    }
                    eprintln!(
                        "{}: green {} is ready; the preview Service {preview} selects it",
                        self.name, self.stable.name
                    );
                }
                Input::Done(Ok(()))
            }
            Some(RollingOutcome::Cancelled { .. }) => Input::Cancel,
            Some(RollingOutcome::Failed { failure, details }) => {
                let mut text = crate::report::terminal::failure_text(failure);
                for d in details.iter().take(5) {
                    let _ = write!(text, "; {d}");
                }
                Input::Done(Err(text))
            }
            None => Input::Done(Err("no outcome".into())),
        }
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

    async fn measure(&self, since: Millis, last: bool, weight: u8) -> Input {
        self.judge().check(&self.script, since, last, weight).await
    }

    async fn pre_rollout(&self) -> Result<(), Error> {
        self.judge().pre_rollout().await
    }

    async fn set_weight(&self, weight: u8) -> Result<(), PlatformError> {
        let (router, canary) = match &self.shape {
            Shape::Canary { router, canary } => (router, canary),
            Shape::BlueGreen { colours, .. } => {
                let c = colours
                    .as_ref()
                    .expect("the colours are known before the rollout plays");
                let label = if weight == 0 { &c.blue } else { &c.green };
                return self.switch(label).await;
            }
        };
        match router {
            Router::Nginx { ingress } => self.k8s.set_canary_weight(ingress, weight).await,
            Router::Gateway { route, path, .. } => {
                self.k8s
                    .set_route_weight(route, path, &self.stable.name, &canary.name, weight)
                    .await
            }
        }
    }

    /// A blue-green's switch: the live Service selects the colour `label`, and the HPA (when
    /// scaling is on) follows it.
    async fn switch(&self, label: &str) -> Result<(), PlatformError> {
        let app = &self.loaded.config.app;
        self.k8s
            .set_selector(app, &colour_selector(app, label))
            .await?;
        if let Some(hpa) = self.hpa_on(label) {
            self.k8s.apply_one(&hpa).await?;
        }
        Ok(())
    }

    /// The rendered HPA (when scaling is on), scaling the colour `label`.
    fn hpa_on(&self, label: &str) -> Option<serde_json::Value> {
        let mut hpa = self.stable.scaling.clone()?;
        hpa["spec"]["scaleTargetRef"]["name"] =
            serde_json::json!(colour_name(&self.loaded.config.app, label));
        Some(hpa)
    }

    /// Green as it is rolled: beside blue, at blue's size when an HPA scales blue, and the
    /// HPA left on blue until the switch (on green itself when it is the first colour).
    async fn green(&self) -> Result<ServiceSpec, PlatformError> {
        let mut green = self.stable.clone();
        let Shape::BlueGreen { label, colours } = &self.shape else {
            return Ok(green);
        };
        let blue = colours.as_ref().map_or(label, |c| &c.blue);
        green.scaling = self.hpa_on(blue);
        if blue == label || green.scaling.is_none() {
            return Ok(green);
        }
        if let Some(n) = self
            .k8s
            .replicas(&colour_name(&self.loaded.config.app, blue))
            .await?
            && green.definition["spec"]["replicas"]
                .as_i64()
                .is_none_or(|r| r < i64::from(n))
        {
            green.definition["spec"]["replicas"] = serde_json::json!(n);
        }
        Ok(green)
    }

    /// The Deployment of a track: a canary's, or a blue-green's colour (blue is stable).
    fn workload(&self, track: Track) -> String {
        match (&self.shape, track) {
            (Shape::Canary { canary, .. }, Track::Canary) => canary.name.clone(),
            (Shape::Canary { .. }, Track::Stable) => self.stable.name.clone(),
            (Shape::BlueGreen { colours, label }, track) => {
                let c = colours.as_ref();
                let label = match track {
                    Track::Canary => c.map_or(label, |c| &c.green),
                    Track::Stable => c.map_or(label, |c| &c.blue),
                };
                colour_name(&self.loaded.config.app, label)
            }
        }
    }

    async fn run(&self, effect: Effect) -> Input {
        let result = match effect {
            Effect::Deploy(track) => return self.roll(track).await,
            Effect::Measure {
                since,
                last,
                weight,
            } => return self.measure(since, last, weight).await,
            Effect::SetWeight(w) => crate::driver::retried(self.name, || self.set_weight(w)).await,
            Effect::ScaleDown(track) => {
                let workload = self.workload(track);
                crate::driver::retried(self.name, || self.k8s.scale(&workload, 0)).await
            }
        };
        Input::Done(result.map_err(|e| e.to_string()))
    }

    /// Plays the engine from `first` until the rollout ends or waits at a manual gate.
    async fn drive(&mut self, state: &mut State, first: Input) -> Result<Ended, Error> {
        let script = self.script.clone();
        let analysis = self.analysis.clone();
        play(self, &script, &analysis, state, first).await
    }
}

impl Effects for Rollout<'_> {
    async fn run(&self, effect: Effect) -> Input {
        Rollout::run(self, effect).await
    }

    async fn save(&mut self, state: &State) -> Result<(), SaveError> {
        Rollout::save(self, state).await
    }

    fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    fn say(&self, script: &Script, state: &State, event: &Event) {
        eprintln!(
            "{}",
            event_line(self.name, script, state, event, "Deployment")
        );
    }

    fn name(&self) -> &str {
        self.name
    }
}

/// Why a rollout's state was not saved.
pub(super) enum SaveError {
    /// Another process moved the rollout since this one read it: this one stops, and leaves
    /// traffic where the other put it.
    Contested(Error),
    /// The platform did not take the write, after its retries.
    Failed(Error),
}

impl From<SaveError> for Error {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::Contested(e) | SaveError::Failed(e) => e,
        }
    }
}

/// The edge that runs a script's effects for one platform and strategy, and keeps its state.
pub(super) trait Effects {
    /// Runs one effect; its result as the engine's input.
    async fn run(&self, effect: Effect) -> Input;
    /// Keeps the state where a later process finds it (before the effects run).
    async fn save(&mut self, state: &State) -> Result<(), SaveError>;
    fn cancel(&self) -> &CancellationToken;
    /// Shows an engine event.
    fn say(&self, script: &Script, state: &State, event: &Event);
    fn name(&self) -> &str;
    /// Whether the run returns instead of running `effect` (`deploy --return-at`): what the
    /// step is, in words.
    fn returns_before(&self, _effect: &Effect) -> Option<String> {
        None
    }
}

/// The one loop every strategy's deploy runs: the engine decides, `fx` acts, the clock and
/// signals feed it back. Until the rollout ends or waits at a manual gate.
pub(super) async fn play<E: Effects>(
    fx: &mut E,
    script: &Script,
    analysis: &Analysis,
    state: &mut State,
    first: Input,
) -> Result<Ended, Error> {
    let engine = Engine { script, analysis };
    let mut input = first;
    loop {
        let d = engine.step(state, input, now_ms());
        if let Some(saved) = &d.save
            && let Err(e) = fx.save(saved).await
        {
            return Err(match e {
                SaveError::Contested(e) => e,
                SaveError::Failed(e) => unsaved(fx, state, e).await,
            });
        }
        for e in &d.events {
            fx.say(script, state, e);
        }
        if let Some(o) = state.outcome() {
            return Ok(Ended::Done(o.clone()));
        }
        if d.paused {
            return Ok(Ended::Paused);
        }
        let aborting = matches!(state.status, Status::Aborting { .. });
        if let Some(effect) = d.effects.first().copied() {
            if let Some(step) = fx.returns_before(&effect).filter(|_| !aborting) {
                return Ok(Ended::Returned { step });
            }
            let answer = fx.run(effect).await;
            input = if fx.cancel().is_cancelled() && !aborting {
                Input::Cancel
            } else {
                answer
            };
            continue;
        }
        let Some(wake) = d.wake_at else {
            return Err(Error::Deployment {
                code: 1,
                message: format!(
                    "error: {}: the rollout has nothing to do and nothing to wait for at step {}",
                    fx.name(),
                    state.index + 1
                ),
            });
        };
        let wait = Duration::from_millis(wake.saturating_sub(now_ms()));
        let cancel = fx.cancel().clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => input = Input::Tick,
            () = cancel.cancelled(), if !aborting => input = Input::Cancel,
        }
    }
}

/// The state could not be saved, so the engine cannot go on: traffic on the new revision is
/// put back on stable first (best effort, the state as last saved still records the
/// rollout, which a rerun resumes), and the error says where traffic is.
async fn unsaved<E: Effects>(fx: &E, state: &State, e: Error) -> Error {
    if state.weight == 0 || state.promoted {
        return e;
    }
    let back = match fx.run(Effect::SetWeight(0)).await {
        Input::Done(Ok(())) => format!(
            "; the canary's {}% of traffic was put back on stable; the rollout stays recorded as last saved: run the deploy again to resume it, or `rollout abort`",
            state.weight
        ),
        Input::Done(Err(why)) => format!(
            "; putting the canary's {}% of traffic back on stable failed too ({why}): run `rollout abort` once the platform answers",
            state.weight
        ),
        _ => return e,
    };
    Error::Deployment {
        code: e.exit_code(),
        message: format!("{}{back}", e.to_string().trim_end()),
    }
}

impl Rollout<'_> {
    /// GitHub's side at the start (a deployment in progress), when running in Actions.
    async fn begin_report(&self) -> super::github::Reporting {
        super::github::Reporting::begin(self.loaded, self.name, &self.git.sha, self.git.pr).await
    }

    /// The pull request comment, the job summary and the outputs: the canary's checks per
    /// step, and where it waits and how to continue when it is paused.
    async fn report(
        &self,
        reporting: super::github::Reporting,
        state: &State,
        ended: &Ended,
        report_file: Option<&std::path::Path>,
    ) {
        let env = &self.loaded.config.environments[self.name];
        let secs = reporting.elapsed_secs();
        let paused = matches!(ended, Ended::Paused);
        let mut row =
            super::simulate::env_report(self.name, env, &state.revision, state, secs, paused);
        row.revision = Some(state.revision.clone());
        if matches!(self.shape, Shape::BlueGreen { .. }) {
            let app = &self.loaded.config.app;
            let preview = self.vars(0).test_url.unwrap_or_default();
            if paused {
                row.phase = format!(
                    "⏸️ waiting for promotion: green is up behind the preview Service {app}-preview ({preview}); production stays on blue. To continue, run the promote workflow (workflow_dispatch inputs: environment `{name}`, action `continue`; or `abort`), or `movieverse-deploy rollout promote --env {name}`",
                    name = self.name
                );
            }
            row.links.push(("preview (green)".into(), preview));
        }
        let analysis = match &env.strategy {
            Strategy::Canary(c) => Some(&c.analysis),
            Strategy::BlueGreen(b) => b.analysis.as_deref(),
            Strategy::Rolling(_) => None,
        };
        if let Some(a) = analysis {
            let vars = self.vars(self.script.timing.interval);
            row.metric_links = metric_links(self.loaded, self.name, a, &vars, state.started_at);
        }
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

/// A check in one line: each metric against its bound, the HTTP checks and webhooks, and the
/// verdict with the failed checks so far.
pub(super) fn check_text(
    script: &Script,
    state: &State,
    c: &crate::rollout::engine::CheckRecord,
) -> String {
    let metrics = super::simulate::metrics_text(c);
    let verdict = match &c.verdict {
        Verdict::Pass => "pass".to_owned(),
        Verdict::Fail(r) => format!(
            "FAIL ({} of {} failed checks: {})",
            state.failed_checks,
            script.timing.threshold,
            r.join("; ")
        ),
        Verdict::Inconclusive(r) => format!("not judged: {r}"),
    };
    format!("{metrics} -> {verdict}")
}

/// A blue-green step on Kubernetes, in the words of its colours.
pub(super) fn colour_step_text(
    step: crate::rollout::script::Step,
    weight: u8,
    colours: Option<&Colours>,
) -> String {
    use crate::rollout::script::Step;
    let (blue, green) = colours.map_or(("blue".to_owned(), "green".to_owned()), |c| {
        (
            format!("blue (revision {})", c.blue),
            format!("green (revision {})", c.green),
        )
    });
    match step {
        Step::Deploy(_) => format!(
            "start {green} beside blue and wait until it is ready; the preview Service selects it"
        ),
        Step::Analyse => {
            "check green through the preview Service (the analysis: HTTP checks, metrics, webhooks)"
                .into()
        }
        Step::Pause(Gate::Manual) => "wait at the gate for `rollout promote`".into(),
        Step::Pause(Gate::Timed(s)) if weight == 100 => format!(
            "keep {blue} for {}: `rollout abort` switches back at once",
            crate::plan::fmt_secs(s)
        ),
        Step::Pause(Gate::Timed(s)) => format!("hold green for {}", crate::plan::fmt_secs(s)),
        Step::SetWeight(0) => format!("switch the live Service back to {blue}"),
        Step::SetWeight(_) => format!("switch the live Service to {green}, all traffic at once"),
        Step::ScaleDown(Track::Stable) => format!("scale {blue} to 0"),
        Step::ScaleDown(Track::Canary) => format!("scale {green} to 0"),
    }
}

/// One line per engine event, for the log.
pub(super) fn event_line(
    env: &str,
    script: &Script,
    state: &State,
    e: &Event,
    workload: &str,
) -> String {
    let total = script.steps.len();
    if state.colours.is_some() {
        match e {
            Event::Step { index, step } => {
                return format!(
                    "{env}: step {}/{total}: {}",
                    index + 1,
                    colour_step_text(*step, state.weight, state.colours.as_ref())
                );
            }
            Event::Reverting { step } => {
                return format!(
                    "{env}: {}",
                    colour_step_text(*step, state.weight, state.colours.as_ref())
                );
            }
            Event::Weight { weight: 100 } => {
                return format!(
                    "{env}: the live Service selects green: all traffic on the new revision"
                );
            }
            Event::Weight { .. } => {
                return format!(
                    "{env}: the live Service selects blue: all traffic on the previous revision"
                );
            }
            Event::Paused { gate: Gate::Manual } => {
                return format!(
                    "{env}: green is up behind the preview Service; production stays on blue until `movieverse-deploy rollout promote --env {env}` (or `rollout abort`)"
                );
            }
            Event::Aborting { reason, .. } => {
                return format!("{env}: rolling back, traffic to blue first: {reason}");
            }
            Event::Check(c) => {
                return format!("{env}: check of green: {}", check_text(script, state, c));
            }
            _ => {}
        }
    }
    match e {
        Event::Step { index, step } => {
            format!(
                "{env}: step {}/{total}: {}",
                index + 1,
                super::simulate::step_text(*step, workload)
            )
        }
        Event::Weight { weight } => format!("{env}: canary weight {weight}%"),
        Event::Check(c) => format!(
            "{env}: check at {}%: {}",
            c.weight,
            check_text(script, state, c)
        ),
        Event::Paused { gate: Gate::Manual } => format!(
            "{env}: paused before promotion at weight {}%: continue with `movieverse-deploy rollout promote --env {env}` (or `rollout abort`)",
            state.weight
        ),
        Event::Paused {
            gate: Gate::Timed(s),
        } => format!(
            "{env}: waiting {} before going on",
            crate::plan::fmt_secs(*s)
        ),
        Event::Continued => format!("{env}: continuing"),
        Event::Aborting { reason, .. } => {
            format!("{env}: rolling back, traffic to stable first: {reason}")
        }
        Event::Reverting { step } => {
            format!("{env}: {}", super::simulate::step_text(*step, workload))
        }
        Event::Finished { outcome } => format!("{env}: {}", super::simulate::outcome_text(outcome)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    super::deploy::runtime()
}

/// The result of a drive as the command's result, with the `result` step output.
pub(super) fn conclude(name: &str, ended: Ended) -> Result<(), Error> {
    let (word, result) = match ended {
        Ended::Paused => ("paused", Ok(())),
        Ended::Returned { step } => {
            let _ = print_out(&format!(
                "result=returned\n{name}: returned before `{step}` (--return-at); it carries on without this run. `movieverse-deploy rollout status --env {name}` shows where it stands, `rollout resume` follows it to the end, `rollout abort` goes back to blue.\n"
            ));
            return Ok(());
        }
        Ended::Done(Outcome::Promoted) => ("succeeded", Ok(())),
        Ended::Done(Outcome::Cancelled) => (
            "cancelled",
            Err(Error::Deployment {
                code: 130,
                message: format!("{name}: cancelled; traffic is back on stable"),
            }),
        ),
        Ended::Done(o @ Outcome::RolledBack { .. }) => (
            "rolled-back",
            Err(Error::Deployment {
                code: 1,
                message: format!("error: {name}: {}", super::simulate::outcome_text(&o)),
            }),
        ),
        Ended::Done(o @ Outcome::Failed { .. }) => (
            "failed",
            Err(Error::Deployment {
                code: 1,
                message: format!("error: {name}: {}", super::simulate::outcome_text(&o)),
            }),
        ),
    };
    if word == "paused" {
        let _ = print_out(&format!(
            "result=paused\n{name}: the rollout waits at its gate. Continue with `movieverse-deploy rollout promote --env {name}` (the Action: command `rollout`, rollout `promote`), or go back with `rollout abort`.\n"
        ));
    }
    result
}

/// An environment's analysis as a rollout of `revision` plays it (a canary on ECS or
/// Kubernetes, a blue-green on Kubernetes): the pre-flight of its providers, its
/// `pre-rollout` webhooks, and one check of a step.
pub(super) struct Judge<'a> {
    pub loaded: &'a Loaded,
    pub name: &'a str,
    pub revision: &'a str,
    pub measurer: &'a Measurer,
}

impl Judge<'_> {
    fn vars(&self, window_secs: u64) -> QueryVars {
        QueryVars::for_environment(&self.loaded.config, self.name, window_secs)
    }

    /// What a webhook is told.
    fn facts(&self, phase: HookPoint, weight: u8, window: Option<(Millis, Millis)>) -> Facts {
        Facts {
            app: self.loaded.config.app.clone(),
            environment: self.name.to_owned(),
            revision: self.revision.to_owned(),
            phase,
            weight,
            window: window.map(|(a, b)| [super::analyze::stamp(a), super::analyze::stamp(b)]),
        }
    }

    /// Before anything changes: each metric provider answers and every query runs.
    pub(super) async fn preflight(&self) -> Result<(), Error> {
        self.measurer
            .preflight(&self.vars(60), now_ms())
            .await
            .map_err(|(what, e)| {
                provider_error(self.name, &format!("{what}: the query does not run"), &e)
            })
    }

    /// The `pre-rollout` webhooks, before anything changes: a failed one ends the deploy.
    pub(super) async fn pre_rollout(&self) -> Result<(), Error> {
        pre_rollout_hooks(
            self.name,
            self.measurer,
            &self.vars(60),
            &self.facts(HookPoint::PreRollout, 0, None),
        )
        .await
    }

    /// One check of `script`'s analysis over the window since `since`: every metric, the
    /// HTTP checks and the webhooks (the pre-promotion ones too when `last`); a rate-limited
    /// provider is waited for at most one interval.
    pub(super) async fn check(
        &self,
        script: &Script,
        since: Millis,
        last: bool,
        weight: u8,
    ) -> Input {
        let now = now_ms();
        let vars = self.vars((now.saturating_sub(since) / 1000).max(1));
        let facts = self.facts(HookPoint::Step, weight, Some((since, now)));
        let not_after =
            tokio::time::Instant::now() + Duration::from_secs(script.timing.interval.max(1));
        let m = self
            .measurer
            .measure(&vars, since, now, not_after, &facts, last)
            .await;
        Input::Measured {
            readings: m.readings,
            requests: m.requests,
            probes: m.probes,
        }
    }
}

/// How a `deploy` begins, given the rollout saved on the platform.
pub(super) enum Begin {
    /// The same revision was promoted: a rerun changes nothing.
    NoChange,
    /// A new rollout; `restart`: the same revision's last rollout was cancelled.
    Fresh { restart: bool },
    /// The same revision's rollout ended otherwise (rolled back, failed): not tried again.
    Ended(Outcome),
    /// The same revision's rollout stands where it was left: it goes on.
    Resume(State),
    /// Another revision's rollout stands unfinished: traffic goes back to stable first.
    Supersede(State),
}

/// What a `deploy` of `revision` (its script's hash `hash`) does with the saved rollout.
pub(super) fn begin(saved: Option<State>, revision: &str, hash: &str) -> Begin {
    match saved {
        Some(s) if s.revision == revision && s.script == hash => match s.outcome() {
            Some(Outcome::Promoted) => Begin::NoChange,
            Some(Outcome::Cancelled) => Begin::Fresh { restart: true },
            Some(o) => Begin::Ended(o.clone()),
            None => Begin::Resume(s),
        },
        Some(old) if !old.is_done() => Begin::Supersede(old),
        _ => Begin::Fresh { restart: false },
    }
}

/// Links to each metric's query at its provider, over the rollout so far.
pub(super) fn metric_links(
    loaded: &Loaded,
    _name: &str,
    analysis: &crate::config::Analysis,
    vars: &QueryVars,
    started_at: Millis,
) -> Vec<(String, String)> {
    let now = now_ms();
    analysis
        .metrics
        .iter()
        .filter_map(|m| {
            crate::metrics::link(&loaded.config, m, vars, started_at, now)
                .map(|url| (m.name.clone(), url))
        })
        .collect()
}

/// `--no-wait` and `--timeout` refused for a rollout this process plays step by step (`what`:
/// "a canary"), with what bounds it instead and how to end a run early (`help`).
pub(super) fn played_step_by_step(
    name: &str,
    what: &str,
    wait: &WaitArgs,
    help: &str,
) -> Result<(), Error> {
    if !wait.no_wait && wait.timeout.is_none() {
        return Ok(());
    }
    Err(Error::Usage {
        message: format!(
            "environment `{name}` is {what}: this process plays it step by step, so `{}` does not apply",
            if wait.no_wait {
                "--no-wait"
            } else {
                "--timeout"
            }
        ),
        help: help.into(),
    })
}

/// `deploy` of a canary environment on Kubernetes.
pub fn deploy(loaded: &Loaded, name: &str, args: &DeployArgs) -> Result<(), Error> {
    played_step_by_step(
        name,
        "a canary",
        &args.wait,
        "the canary's `deadline` in deploy.yml bounds it; to end the run early, pause it (`pause_before_promotion: manual`, or `{pause: manual}` in `steps`) and continue later with `rollout promote`",
    )?;
    let _lease = super::lock::hold(loaded, name, args.wait.lock_timeout)?;
    let rt = runtime()?;
    rt.block_on(async {
        let mut c = Rollout::new(loaded, name, args.image.clone(), &args.wait).await?;
        c.preflight().await?;
        watch_signals(c.cancel.clone());
        if matches!(c.shape, Shape::BlueGreen { .. }) {
            return deploy_blue_green(&mut c, args).await;
        }
        let revision = c.image.clone();
        let Some(saved) = c.load().await? else {
            // A first deploy: there is no stable version to compare with, so the new one
            // becomes stable directly (Argo Rollouts and Flagger do the same).
            eprintln!("{name}: no stable Deployment yet: a first deploy rolls the stable Deployment out directly");
            c.pre_rollout().await?;
            if let Shape::Canary { canary, .. } = &c.shape {
                c.stable.manifests.clone_from(&canary.manifests);
            }
            let input = c.roll(Track::Stable).await;
            if let Input::Done(Err(e)) = input {
                return Err(Error::Deployment { code: 1, message: format!("error: deploying {name} failed: {e}") });
            }
            if input == Input::Cancel {
                return Err(Error::Deployment { code: 130, message: format!("{name}: cancelled") });
            }
            // Every request to stable (with Gateway API the route has no backends before this).
            c.set_weight(0).await.map_err(|e| c.err(&e, &format!("{name}: route traffic to stable")))?;
            c.load().await?;
            let mut state = State::new(&c.script, &revision, now_ms());
            state.index = c.script.steps.len();
            state.promoted = true;
            state.status = Status::Done(Outcome::Promoted);
            c.save(&state).await?;
            return conclude(name, Ended::Done(Outcome::Promoted));
        };
        let (mut state, first) = match begin(saved, &revision, &c.script.hash()) {
            Begin::NoChange => {
                eprintln!("{name}: no change: the rollout of {revision} finished, promoted; nothing applied");
                return conclude(name, Ended::Done(Outcome::Promoted));
            }
            Begin::Fresh { restart } => {
                if restart {
                    eprintln!("{name}: the last rollout of {revision} was cancelled: starting it again");
                }
                c.pre_rollout().await?;
                (State::new(&c.script, &revision, now_ms()), Input::Start)
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
            Begin::Supersede(old) => {
                c.pre_rollout().await?;
                eprintln!(
                    "{name}: a rollout of {} stands at step {}/{} (weight {}%): taking traffic back to stable first, then starting the rollout of {revision}",
                    old.revision, old.index + 1, c.script.steps.len(), old.weight
                );
                c.set_weight(0).await.map_err(|e| c.err(&e, &format!("{name}: weight 0")))?;
                c.k8s.scale(&c.workload(Track::Canary), 0).await.map_err(|e| c.err(&e, &format!("{name}: scale the canary down")))?;
                let mut old = old;
                old.pending = None;
                old.status = Status::Done(Outcome::RolledBack {
                    reason: format!("superseded by the rollout of {revision}"),
                    failures: vec![],
                });
                c.save(&old).await?;
                (State::new(&c.script, &revision, now_ms()), Input::Start)
            }
        };
        let reporting = c.begin_report().await;
        let ended = c.drive(&mut state, first).await?;
        c.report(reporting, &state, &ended, args.report.as_deref()).await;
        conclude(name, ended)
    })
}

/// `deploy` of a blue-green on Kubernetes. The state is kept on the live Service (the
/// Deployments come and go with revisions), and the live Service's selector says which
/// colour serves: that one is blue for the next rollout.
async fn deploy_blue_green(c: &mut Rollout<'_>, args: &DeployArgs) -> Result<(), Error> {
    let name = c.name;
    let app = c.loaded.config.app.clone();
    let revision = c.image.clone();
    let Shape::BlueGreen { label, .. } = &c.shape else {
        unreachable!("a blue-green")
    };
    let label = label.clone();
    let saved = c.load().await?.flatten();
    let hash = c.script.hash();
    if let Some(s) = &saved {
        if s.revision == revision && s.script == hash {
            match s.outcome() {
                Some(Outcome::Promoted) => {
                    eprintln!(
                        "{name}: no change: the blue-green of {revision} finished, {} takes the traffic; nothing applied",
                        c.stable.name
                    );
                    return conclude(name, Ended::Done(Outcome::Promoted));
                }
                Some(Outcome::Cancelled) => {
                    eprintln!(
                        "{name}: the last blue-green of {revision} was cancelled: starting it again"
                    );
                }
                Some(o) => {
                    return Err(Error::Deployment {
                        code: 1,
                        message: format!(
                            "error: {name}: the blue-green of {revision} ended: {}\n  = help: deploy a new revision; this one is not tried again",
                            super::simulate::outcome_text(o)
                        ),
                    });
                }
                None => {
                    eprintln!(
                        "{name}: resuming the blue-green of {revision} at step {}/{}",
                        s.index + 1,
                        c.script.steps.len()
                    );
                    let mut state = s.clone();
                    c.shape = Shape::BlueGreen {
                        label,
                        colours: s.colours.clone(),
                    };
                    if let Some(e) = green_rendered_elsewhere(c, &state, &Input::Resume) {
                        return Err(e);
                    }
                    return drive_reported(c, &mut state, Input::Resume, args.report.as_deref())
                        .await;
                }
            }
        } else if !s.is_done() {
            return Err(Error::Deployment {
                code: 1,
                message: format!(
                    "error: {name}: the blue-green of {} is in progress (step {}/{}{}): a second one does not start over it; nothing was changed\n  = help: `movieverse-deploy rollout status --env {name}` shows it; `rollout promote` or `rollout abort` ends it",
                    s.revision,
                    s.index + 1,
                    c.script.steps.len(),
                    if matches!(s.status, Status::Paused { .. }) {
                        ", paused"
                    } else {
                        ""
                    },
                ),
            });
        }
    }
    // Blue is the colour the live Service selects now.
    let live = crate::driver::retried(name, || c.k8s.service_selector(&app))
        .await
        .map_err(|e| c.err(&e, &format!("{name}: read the live Service")))?;
    let blue = live
        .as_ref()
        .and_then(|s| s.get(crate::platform::kubernetes::REVISION_LABEL).cloned());
    let blue = match blue {
        Some(b) => {
            let blue_name = colour_name(&app, &b);
            let found = crate::driver::retried(name, || c.k8s.replicas(&blue_name))
                .await
                .map_err(|e| c.err(&e, &format!("{name}: read blue")))?;
            if found.is_none() {
                eprintln!(
                    "{name}: the live Service selects {app}-{b}, which does not exist: deploying green as the first colour"
                );
            }
            found.map(|_| b)
        }
        None => None,
    };
    if blue.as_ref() == Some(&label) {
        eprintln!(
            "{name}: no change: {} already takes the traffic; nothing applied",
            c.stable.name
        );
        return conclude(name, Ended::Done(Outcome::Promoted));
    }
    c.pre_rollout().await?;
    let Some(blue) = blue else {
        return first_colour(c, &label, live, args.report.as_deref()).await;
    };
    eprintln!(
        "{name}: blue is {app}-{blue} (the live Service selects it); green will be {}",
        c.stable.name
    );
    // Colours at 0 from before (a failed green, an older blue) are not kept past one rollout.
    let pruned = c
        .k8s
        .prune_colours(&app, &[&blue, &label])
        .await
        .map_err(|e| c.err(&e, &format!("{name}: remove the idle colours")))?;
    if !pruned.is_empty() {
        eprintln!(
            "{name}: removed the idle colours (at 0 replicas): {}",
            pruned.join(", ")
        );
    }
    let colours = Colours {
        blue,
        green: label.clone(),
    };
    c.shape = Shape::BlueGreen {
        label,
        colours: Some(colours.clone()),
    };
    let mut state = State::new(&c.script, &revision, now_ms());
    state.colours = Some(colours);
    drive_reported(c, &mut state, Input::Start, args.report.as_deref()).await
}

/// The first colour of a blue-green: green is rolled out and takes the traffic directly
/// (there is no blue to compare with). A Service that already selects pods (the environment
/// ran another strategy) is adopted by the router first, so the re-apply without a selector
/// does not leave it selecting nothing.
async fn first_colour(
    c: &mut Rollout<'_>,
    label: &str,
    live: Option<std::collections::BTreeMap<String, String>>,
    report: Option<&std::path::Path>,
) -> Result<(), Error> {
    let name = c.name;
    let app = c.loaded.config.app.clone();
    eprintln!(
        "{name}: no colour takes the traffic yet: a first deploy rolls green, {}, out and switches to it",
        c.stable.name
    );
    if let Some(selector) = live.filter(|s| !s.is_empty()) {
        c.k8s
            .set_selector(&app, &selector)
            .await
            .map_err(|e| c.err(&e, &format!("{name}: adopt the live Service's selector")))?;
    }
    let colours = Colours {
        blue: label.to_owned(),
        green: label.to_owned(),
    };
    c.shape = Shape::BlueGreen {
        label: label.to_owned(),
        colours: Some(colours.clone()),
    };
    let reporting = c.begin_report().await;
    let input = c.roll(Track::Canary).await;
    if let Input::Done(Err(e)) = input {
        return Err(Error::Deployment {
            code: 1,
            message: format!("error: deploying {name} failed: {e}"),
        });
    }
    if input == Input::Cancel {
        return Err(Error::Deployment {
            code: 130,
            message: format!("{name}: cancelled"),
        });
    }
    c.switch(label)
        .await
        .map_err(|e| c.err(&e, &format!("{name}: switch the live Service to green")))?;
    c.load().await?;
    let mut state = State::new(&c.script, &c.image, now_ms());
    state.index = c.script.steps.len();
    state.weight = 100;
    state.colours = Some(colours);
    state.status = Status::Done(Outcome::Promoted);
    c.save(&state).await?;
    let ended = Ended::Done(Outcome::Promoted);
    c.report(reporting, &state, &ended, report).await;
    conclude(name, ended)
}

/// Drives a rollout with its GitHub report around it.
async fn drive_reported(
    c: &mut Rollout<'_>,
    state: &mut State,
    first: Input,
    report: Option<&std::path::Path>,
) -> Result<(), Error> {
    let reporting = c.begin_report().await;
    let ended = c.drive(state, first).await?;
    c.report(reporting, state, &ended, report).await;
    conclude(c.name, ended)
}

/// The environment's cluster, for a read that needs nothing else of the rollout.
async fn cluster_of(loaded: &Loaded, name: &str) -> Result<Option<Kubernetes>, Error> {
    let Some(k) = &loaded.config.environments[name].kubernetes else {
        return Ok(None);
    };
    Kubernetes::connect(k.context.as_deref(), &k.namespace, false)
        .await
        .map(Some)
        .map_err(Error::Environment)
}

/// The colour the live Service of a blue-green on Kubernetes selects (`None`: none yet).
pub(super) async fn live_colour(loaded: &Loaded, name: &str) -> Result<Option<String>, Error> {
    let Some(k8s) = cluster_of(loaded, name).await? else {
        return Ok(None);
    };
    let selector = k8s
        .service_selector(&loaded.config.app)
        .await
        .map_err(|e| platform_error(loaded, name, &e, &format!("{name}: read the live Service")))?;
    Ok(selector.and_then(|s| s.get(crate::platform::kubernetes::REVISION_LABEL).cloned()))
}

/// `rollback` of a blue-green on Kubernetes: the previous colour is scaled to 0 after the
/// termination wait, so going back is a new blue-green of the previous image (green checked
/// before it takes traffic), not a blind switch. Said, with the image to deploy; during the
/// wait, `rollout abort` switches back at once. Reads the state and the previous colour
/// only: no rendering, no metric provider.
pub fn rollback_blue_green(loaded: &Loaded, name: &str) -> Result<(), Error> {
    let rt = runtime()?;
    rt.block_on(async {
        let app = &loaded.config.app;
        let Some(k8s) = cluster_of(loaded, name).await? else {
            return Err(not_driven(name));
        };
        let read_err = |e: &PlatformError, what: &str| platform_error(loaded, name, e, &format!("{name}: {what}"));
        let state: Option<State> = k8s
            .read_rollout(&Holder::Service(app.clone()))
            .await
            .map_err(|e| read_err(&e, "read the rollout"))?
            .and_then(|(text, _)| text)
            .and_then(|t| serde_json::from_str(&t).ok());
        let Some(state) = state else {
            return Err(Error::Deployment {
                code: 1,
                message: format!("error: {name}: no blue-green is recorded on Service {app}: there is nothing to go back to"),
            });
        };
        if !state.is_done() {
            return Err(Error::Usage {
                message: format!("environment `{name}`: the blue-green of {} is in progress", state.revision),
                help: format!("`movieverse-deploy rollout abort --env {name}` puts the traffic back on blue at once"),
            });
        }
        let previous = match (&state.status, &state.colours) {
            (Status::Done(Outcome::Promoted), Some(c)) if c.blue != c.green => Some(colour_name(app, &c.blue)),
            _ => None,
        };
        let image = match &previous {
            Some(deployment) => k8s
                .image_of(deployment)
                .await
                .map_err(|e| read_err(&e, "read the previous colour"))?,
            None => None,
        };
        Err(Error::Usage {
            message: format!(
                "environment `{name}` is a blue-green on Kubernetes: the previous colour{} is scaled to 0 once the termination wait ends, so `rollback` does not switch to it blindly",
                previous.map(|d| format!(" ({d})")).unwrap_or_default()
            ),
            help: match image {
                Some(image) => format!("deploy the previous image again, checked as green before it takes traffic: `movieverse-deploy deploy --env {name} --image {image}`"),
                None => format!("deploy the image to go back to: `movieverse-deploy deploy --env {name} --image IMAGE`; during a termination wait, `rollout abort` switches back at once"),
            },
        })
    })
}

/// `rollout status|promote|abort|resume`.
pub fn rollout(loaded: &Loaded, args: &RolloutArgs) -> Result<(), Error> {
    let (env, wait, input) = match &args.action {
        RolloutAction::Status(e) => (&e.env, None, None),
        RolloutAction::Promote { wait, full } => (
            &wait.env.env,
            Some(wait),
            Some(Input::Promote { full: *full }),
        ),
        RolloutAction::Abort(wait) => (
            &wait.env.env,
            Some(wait),
            Some(Input::Abort {
                reason: "rollout abort".into(),
            }),
        ),
        RolloutAction::Resume(wait) => (&wait.env.env, Some(wait), Some(Input::Resume)),
    };
    let name = one_environment(loaded, env, "a rollout runs in")?;
    let env = &loaded.config.environments[name];
    // Promote and resume play the rollout on: one process at a time. An abort never waits for
    // the lease (a person must always be able to stop a rollout): the holder's next save
    // finds the rollout moved and stops.
    let _lease = match (&args.action, wait) {
        (RolloutAction::Promote { .. } | RolloutAction::Resume(_), Some(w)) => {
            super::lock::hold(loaded, name, w.lock_timeout)?
        }
        _ => None,
    };
    if let (Strategy::BlueGreen(b), None) = (&env.strategy, &env.kubernetes) {
        return super::bluegreen::rollout(loaded, name, b, &args.action);
    }
    let default_wait = WaitArgs {
        env: crate::cli::EnvArgs {
            env: name.to_owned(),
        },
        timeout: None,
        poll_interval: Duration::from_secs(5),
        no_wait: false,
        lock_timeout: Duration::ZERO,
    };
    let wait = wait.unwrap_or(&default_wait);
    if let (Strategy::Canary(_), None) = (&env.strategy, &env.kubernetes) {
        return super::ecs_canary::rollout(loaded, name, input, wait);
    }
    let rt = runtime()?;
    rt.block_on(async {
        let mut c = Rollout::new(loaded, name, None, wait).await?;
        let Some(Some(recorded)) = c.load().await? else {
                return Err(Error::Deployment {
                    code: 1,
                    message: format!("error: {name}: no rollout is recorded on {} (namespace {})\n  = help: `movieverse-deploy deploy --env {name}` starts one", c.holder(), c.k8s_namespace()),
                });
        };
        // The recorded revision is what rolls on (promotion rolls the stable Deployment to
        // it), whatever this checkout's commit renders.
        let mut c = Rollout::new(loaded, name, Some(recorded.revision.clone()), wait).await?;
        let state = c.load().await?.flatten().unwrap_or(recorded);
        if let Shape::BlueGreen { colours, .. } = &mut c.shape {
            colours.clone_from(&state.colours);
        }
        if state.script != c.script.hash() {
            eprintln!("{name}: note: deploy.yml's canary settings changed since this rollout started; it goes on with the current ones");
            let mut s = state.clone();
            s.script = c.script.hash();
            return drive_from(&mut c, s, input, name).await;
        }
        drive_from(&mut c, state, input, name).await
    })
}

/// A blue-green whose green is still to be (re)applied (`Deploy(green)` pending) cannot go
/// on from a checkout that renders green differently (another commit's deploy.yml or
/// templates): it would start a third colour. Said, with what to do; `abort` is unaffected.
fn green_rendered_elsewhere(c: &Rollout<'_>, state: &State, input: &Input) -> Option<Error> {
    let (Shape::BlueGreen { label, .. }, Some(colours)) = (&c.shape, &state.colours) else {
        return None;
    };
    let deploying = c
        .script
        .steps
        .iter()
        .position(|s| *s == crate::rollout::script::Step::Deploy(Track::Canary))
        .is_some_and(|at| state.index <= at)
        && !matches!(state.status, Status::Aborting { .. })
        && state.outcome().is_none();
    (deploying && colours.green != *label && !matches!(input, Input::Abort { .. })).then(|| {
        Error::Deployment {
            code: 1,
            message: format!(
                "error: {}: the blue-green's green is revision {} (rendered by the commit that started it), and this checkout renders it as {label}: going on from here would start another colour; nothing was changed\n  = help: resume or promote from that commit's checkout (its workflow run), or end it with `movieverse-deploy rollout abort --env {}`",
                c.name, colours.green, c.name
            ),
        }
    })
}

async fn drive_from(
    c: &mut Rollout<'_>,
    mut state: State,
    input: Option<Input>,
    name: &str,
) -> Result<(), Error> {
    let Some(input) = input else {
        return print_out(&status_text(name, &c.script, &state, "Deployment"));
    };
    if let Some(e) = green_rendered_elsewhere(c, &state, &input) {
        return Err(e);
    }
    if let Some(o) = state.outcome() {
        eprintln!(
            "{name}: the rollout of {} has ended: {}; nothing to do",
            state.revision,
            super::simulate::outcome_text(o)
        );
        return Ok(());
    }
    watch_signals(c.cancel.clone());
    let reporting = c.begin_report().await;
    let ended = c.drive(&mut state, input).await?;
    c.report(reporting, &state, &ended, None).await;
    conclude(name, ended)
}

impl Rollout<'_> {
    fn k8s_namespace(&self) -> String {
        self.stable.cluster.clone()
    }
}

pub(super) fn status_text(name: &str, script: &Script, s: &State, workload: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{name}: rollout of {}", s.revision);
    if let Some(c) = &s.colours {
        let ((on, on_label), (other, other_label)) = if s.weight == 100 {
            (("green", &c.green), ("blue", &c.blue))
        } else {
            (("blue", &c.blue), ("green", &c.green))
        };
        let _ = writeln!(
            o,
            "  blue-green: the live Service selects {on} (revision {on_label}); {other} is revision {other_label}"
        );
    }
    let step = script.steps.get(s.index).copied();
    let _ = match &s.status {
        Status::Done(outcome) => writeln!(o, "  ended: {}", super::simulate::outcome_text(outcome)),
        Status::Paused { .. } => writeln!(
            o,
            "  paused at step {}/{} ({}), weight {}%: continue with `movieverse-deploy rollout promote --env {name}`, or `rollout abort`",
            s.index + 1,
            script.steps.len(),
            step.map(|s| super::simulate::step_text(s, workload))
                .unwrap_or_default(),
            s.weight
        ),
        Status::Aborting { reason, .. } => writeln!(
            o,
            "  rolling back ({reason}); `rollout resume --env {name}` carries it on"
        ),
        Status::Running => writeln!(
            o,
            "  at step {}/{} ({}), weight {}%",
            s.index + 1,
            script.steps.len(),
            step.map(|s| super::simulate::step_text(s, workload))
                .unwrap_or_default(),
            s.weight
        ),
    };
    let _ = writeln!(
        o,
        "  failed checks: {} of {}",
        s.failed_checks, script.timing.threshold
    );
    if let Some(c) = s.checks.last() {
        let _ = writeln!(
            o,
            "  last check at {}%: {}",
            c.weight,
            match &c.verdict {
                Verdict::Pass => "pass".to_owned(),
                Verdict::Fail(r) => format!("fail: {}", r.join("; ")),
                Verdict::Inconclusive(r) => format!("not judged: {r}"),
            }
        );
    }
    o
}
