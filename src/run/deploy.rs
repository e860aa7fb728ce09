//! `deploy`, `status` and `rollback`: the edge that wires the config, the rendered artifacts,
//! the ECS platform, the driver, signals and the terminal reporter together.

use std::fmt::Write as _;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Error, print_out, render_selection, select};
use crate::cli::{DeployArgs, Selection, WaitArgs};
use crate::config::{Loaded, Strategy, Target};
use crate::driver::{DriveOptions, Unit, drive};
use crate::git::GitInfo;
use crate::platform::ecs::Ecs;
use crate::platform::kubernetes::{Kubernetes, ObjectChange, ObjectDiff};
use crate::platform::{Platform, ServiceSpec};
use crate::render::templates::{
    ECS_SCALING, ECS_SERVICE, ECS_TASK_DEFINITION, K8S_DEPLOYMENT, K8S_HPA,
};
use crate::report::terminal::{Terminal, Vocabulary, failure_text, outcome_text};
use crate::strategy::rolling::{ErrorKind, Failure, Outcome, PlatformError, Rolling, Settings};

/// Why a deploy by tag goes ahead, and how to pin the digest instead.
pub(super) fn tag_note(image: &str, given: bool) -> String {
    if given {
        format!(
            "note: deploying {image} by tag: the platform resolves a tag when each task or pod starts, so if the tag moves, new tasks run another image; pass REPOSITORY@sha256:DIGEST (the `image` output of `build`) to pin it"
        )
    } else {
        format!(
            "note: deploying {image}, this commit's tag (pushed by `build` for this commit); pass --image REPOSITORY@sha256:DIGEST (the `image` output of `build`) to pin the digest"
        )
    }
}

/// A runtime on this thread, for the commands that wait on one platform.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::Environment(anyhow::Error::new(e).context("cannot start the async runtime"))
        })
}

/// One named environment (not `all`) for a command that changes it.
pub(super) fn one_environment<'a>(
    loaded: &'a Loaded,
    env: &str,
    verb: &str,
) -> Result<&'a str, Error> {
    if env == "all" {
        return Err(Error::Usage {
            message: format!("`--env all`: {verb} one environment at a time"),
            help: format!(
                "use one of: {}",
                loaded
                    .config
                    .environments
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let name = select(loaded, env)?.remove(0);
    Ok(loaded
        .config
        .environments
        .get_key_value(&name)
        .expect("selected")
        .0
        .as_str())
}

/// The environment must be one ECS or Kubernetes environment with the rolling strategy: the
/// other strategies arrive with their issues, and say so.
fn single_rolling<'a>(
    loaded: &'a Loaded,
    env: &str,
) -> Result<
    (
        &'a str,
        &'a crate::config::Environment,
        &'a crate::config::Rolling,
    ),
    Error,
> {
    let name = one_environment(loaded, env, "deploys")?;
    let e = &loaded.config.environments[name];
    match &e.strategy {
        Strategy::Rolling(r) => Ok((name, e, r)),
        strategy => Err(Error::Usage {
            message: format!("environment `{name}` is {} with the {} strategy, which `deploy` does not drive yet", e.target, strategy.name()),
            help: "this release deploys rolling environments (ECS, Kubernetes), blue-green on ECS (CodeDeploy or ECS native) and Kubernetes, and canaries on ECS and Kubernetes; `plan`, `render` and `status` work for every environment".into(),
        }),
    }
}

/// A platform error outside a rollout, as the command's error (its exit code as a rollout's):
/// `what` failed, then the call, where it went, the cause, and advice.
pub(super) fn platform_error(loaded: &Loaded, env: &str, e: &PlatformError, what: &str) -> Error {
    let mut message = format!("error: {what}: {}", error_line(loaded, env, e));
    if let Some(help) = error_help(loaded, env, e) {
        let _ = write!(message, "\n  = help: {help}");
    }
    Error::Deployment {
        code: Outcome::Failed {
            failure: Failure::Platform(e.clone()),
            details: vec![],
        }
        .exit_code(),
        message,
    }
}

/// Where an environment's call `operation` goes: the Kubernetes context, or the AWS service's
/// endpoint and region as the SDK resolves them from the environment.
fn endpoint_of(loaded: &Loaded, env: &str, operation: &str) -> String {
    let e = &loaded.config.environments[env];
    if let (Target::Kubernetes, Some(k)) = (&e.target, &e.kubernetes) {
        return match &k.context {
            Some(c) => format!("the Kubernetes API server of context `{c}`"),
            None => "the Kubernetes API server of the current context".to_owned(),
        };
    }
    let region = region_of(loaded);
    let (service, variable, host) =
        if crate::platform::ecs::codedeploy::OPERATIONS.contains(&operation) {
            ("CodeDeploy", "AWS_ENDPOINT_URL_CODEDEPLOY", "codedeploy")
        } else {
            ("ECS", "AWS_ENDPOINT_URL_ECS", "ecs")
        };
    let url = [variable, "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| format!("https://{host}.{region}.amazonaws.com"));
    format!("{service} at {url}")
}

pub(super) fn region_of(loaded: &Loaded) -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| loaded.config.region.clone())
}

/// One line: the call, where it went when the connection is the problem, and the cause.
fn error_line(loaded: &Loaded, env: &str, e: &PlatformError) -> String {
    match e.kind {
        ErrorKind::Unreachable | ErrorKind::Transient | ErrorKind::Permission => {
            format!(
                "{} ({}): {}",
                e.operation,
                endpoint_of(loaded, env, &e.operation),
                e.message
            )
        }
        _ => e.to_string(),
    }
}

/// What to check for an error that is about where calls go or who makes them.
fn error_help(loaded: &Loaded, env: &str, e: &PlatformError) -> Option<String> {
    let kubernetes = loaded.config.environments[env].target == Target::Kubernetes;
    match (e.kind, kubernetes) {
        (ErrorKind::Unreachable | ErrorKind::Transient, true) => Some(
            "check that the API server answers, and the kubeconfig in use (KUBECONFIG, or `kubernetes.context` in deploy.yml)".to_owned(),
        ),
        (ErrorKind::Permission, true) => Some(
            "the kubeconfig's user may not do this: check its RBAC (kubectl auth can-i), or the context (KUBECONFIG, `kubernetes.context` in deploy.yml)".to_owned(),
        ),
        (ErrorKind::Unreachable | ErrorKind::Transient | ErrorKind::Permission, false) => Some(format!(
            "check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or --role-to-assume in GitHub Actions), the endpoint (AWS_ENDPOINT_URL) and the region ({}, from AWS_REGION or deploy.yml)",
            region_of(loaded)
        )),
        _ => None,
    }
}

fn deployment_id() -> String {
    match (
        std::env::var("GITHUB_RUN_ID"),
        std::env::var("GITHUB_RUN_ATTEMPT"),
    ) {
        (Ok(id), Ok(attempt)) => format!("gha-{id}-{attempt}"),
        _ => format!("local-{}", unix_now()),
    }
}

/// One spec per service of the environment: per ECS service, the main one first; on
/// Kubernetes, the Deployment with the HPA as its scaling and every other manifest beside it.
pub(super) fn specs(
    loaded: &Loaded,
    env: &str,
    image: Option<String>,
) -> Result<Vec<ServiceSpec>, Error> {
    Ok(rendered_specs(loaded, env, image)?.2)
}

/// [`specs`], with the commit and the image reference they were rendered for.
pub(super) fn rendered_specs(
    loaded: &Loaded,
    env: &str,
    image: Option<String>,
) -> Result<(crate::git::GitInfo, String, Vec<ServiceSpec>), Error> {
    let (git, rendered) = render_selection(
        loaded,
        &Selection {
            env: env.to_owned(),
            image,
        },
    )?;
    let r = rendered
        .into_iter()
        .next()
        .expect("one environment rendered");
    let tags = vec![
        ("commit".to_owned(), git.sha.clone()),
        ("deployment".to_owned(), deployment_id()),
    ];
    let environment = &loaded.config.environments[env];
    if let Some(k8s) = &environment.kubernetes {
        // Every Deployment is a spec of its own (a canary environment renders the stable one
        // first, then the canary): the first carries the other manifests and the HPA.
        let mut definitions = Vec::new();
        let mut scaling = None;
        let mut manifests = Vec::new();
        for a in r.artifacts {
            match a.template {
                K8S_DEPLOYMENT => definitions.push(a.value),
                K8S_HPA => scaling = Some(a.value),
                _ => manifests.push(a.value),
            }
        }
        assert!(
            !definitions.is_empty(),
            "a Deployment is rendered for a Kubernetes environment"
        );
        let mut extras = (scaling, manifests);
        let specs = definitions
            .into_iter()
            .enumerate()
            .map(|(i, definition)| {
                let (scaling, manifests) = if i == 0 {
                    std::mem::take(&mut extras)
                } else {
                    (None, Vec::new())
                };
                ServiceSpec {
                    cluster: k8s.namespace.clone(),
                    name: definition["metadata"]["name"]
                        .as_str()
                        .unwrap_or(&loaded.config.app)
                        .to_owned(),
                    definition,
                    service: serde_json::Value::Null,
                    scaling,
                    tags: tags.clone(),
                    manifests,
                }
            })
            .collect();
        return Ok((git, r.image, specs));
    }
    let ecs = environment.ecs.as_ref().expect("an ECS environment");
    // A canary's own service (ALB router) comes last.
    let canary = match &environment.strategy {
        Strategy::Canary(c) if !c.native() => Some(c.canary_service_name(ecs)),
        _ => None,
    };
    let specs = ecs
        .all_services(&loaded.config.app, env)
        .iter()
        .map(|svc| svc.name.to_owned())
        .chain(canary)
        .map(|name| {
            let find = |id: &str| {
                r.artifacts
                    .iter()
                    .find(|a| a.template == id && a.service.as_deref() == Some(name.as_str()))
                    .map(|a| a.value.clone())
            };
            ServiceSpec {
                cluster: ecs.cluster.clone(),
                name: name.clone(),
                definition: find(ECS_TASK_DEFINITION)
                    .expect("a task definition is rendered for each service"),
                service: find(ECS_SERVICE).expect("service settings are rendered for each service"),
                scaling: find(ECS_SCALING),
                tags: tags.clone(),
                manifests: vec![],
            }
        })
        .collect();
    Ok((git, r.image, specs))
}

pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Cancels `token` on SIGINT or SIGTERM; a second signal exits at once with 130. The
/// listeners are registered before this returns, so a signal that arrives at any later point
/// is seen.
pub(super) fn watch_signals(token: CancellationToken) {
    const FIRST: &str = "cancelling: stopping the wait, then acting on the cancel policy (send the signal again to exit at once)";
    const SECOND: &str = "cancelled again: exiting now; a change in flight is left as it is (run `status` to see where it stands)";
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            eprintln!(
                "warning: cannot listen for SIGINT/SIGTERM; a cancelled run will not revert the service"
            );
            return;
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("{FIRST}");
            token.cancel();
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("{SECOND}");
            std::process::exit(130);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("{FIRST}");
        token.cancel();
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("{SECOND}");
        std::process::exit(130);
    });
}

fn options(wait: &WaitArgs) -> DriveOptions {
    DriveOptions {
        poll: wait.poll_interval.max(Duration::from_millis(100)),
        timeout: wait.timeout,
        ..DriveOptions::default()
    }
}

/// Maps the outcomes to the exit code: a cancellation wins, then the first failure; the
/// failures' reasons form the error message (the reporter already printed each ending).
fn conclude(loaded: &Loaded, env: &str, outcomes: &[(String, Outcome)]) -> Result<(), Error> {
    if let Some((_, o)) = outcomes
        .iter()
        .find(|(_, o)| matches!(o, Outcome::Cancelled { .. }))
    {
        let text: Vec<String> = outcomes
            .iter()
            .map(|(s, o)| format!("{env}/{s}: {}", outcome_text(o)))
            .collect();
        return Err(Error::Deployment {
            code: o.exit_code(),
            message: text.join("\n"),
        });
    }
    let failed: Vec<&(String, Outcome)> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed { .. }))
        .collect();
    let Some((_, first)) = failed.first() else {
        return Ok(());
    };
    let mut message = String::new();
    let mut help = None;
    for (service, outcome) in &failed {
        if let Outcome::Failed { failure, details } = outcome {
            let text = match failure {
                Failure::Platform(e) => {
                    help = help.or_else(|| error_help(loaded, env, e));
                    error_line(loaded, env, e)
                }
                other => failure_text(other),
            };
            let _ = write!(
                message,
                "{}error: deploying {env}/{service} failed: {text}",
                if message.is_empty() { "" } else { "\n" },
            );
            for d in details {
                let _ = write!(message, "\n  - {d}");
            }
        }
    }
    if let Some(help) = help {
        let _ = write!(message, "\n  = help: {help}");
    }
    Err(Error::Deployment {
        code: first.exit_code(),
        message,
    })
}

async fn run_machines<P: Platform>(
    platform: &P,
    units: Vec<Unit>,
    env: &str,
    wait: &WaitArgs,
    words: Vocabulary,
) -> Vec<(String, Outcome)> {
    let cancel = CancellationToken::new();
    watch_signals(cancel.clone());
    run_machines_with(platform, units, env, wait, words, &cancel).await
}

/// [`run_machines`] under a cancellation the caller owns (a rollout that runs several).
pub(super) async fn run_machines_with<P: Platform>(
    platform: &P,
    units: Vec<Unit>,
    env: &str,
    wait: &WaitArgs,
    words: Vocabulary,
    cancel: &CancellationToken,
) -> Vec<(String, Outcome)> {
    let mut terminal = Terminal::new(env, words);
    let mut units = units;
    let mut on_event = |service: &str, at: Duration, e: &crate::strategy::rolling::Event| {
        terminal.event(service, at, e);
    };
    let outcomes = drive(platform, &mut units, &options(wait), cancel, &mut on_event).await;
    units
        .into_iter()
        .map(|u| u.spec.name)
        .zip(outcomes)
        .collect()
}

/// A rolling deploy as the engine plays it: the script's one step, `Deploy(stable)`, is the
/// rolling machine on every service of the environment (ECS services side by side, or the
/// Deployment). It keeps no state between processes: a rerun compares with the live service.
struct RollingEffects<'a, P: Platform> {
    platform: &'a P,
    units: std::cell::RefCell<Vec<Unit>>,
    outcomes: std::cell::RefCell<Vec<(String, Outcome)>>,
    name: &'a str,
    wait: &'a WaitArgs,
    words: Vocabulary,
    cancel: CancellationToken,
}

impl<P: Platform> super::rollout::Effects for RollingEffects<'_, P> {
    async fn run(&self, effect: crate::rollout::engine::Effect) -> crate::rollout::engine::Input {
        use crate::rollout::engine::{Effect, Input};
        if effect != Effect::Deploy(crate::rollout::script::Track::Stable) {
            return Input::Done(Err(format!("a rolling deploy has no {effect:?} step")));
        }
        let units = std::mem::take(&mut *self.units.borrow_mut());
        let outcomes = run_machines_with(
            self.platform,
            units,
            self.name,
            self.wait,
            self.words,
            &self.cancel,
        )
        .await;
        let input = if outcomes
            .iter()
            .any(|(_, o)| matches!(o, Outcome::Cancelled { .. }))
        {
            Input::Cancel
        } else if let Some((service, o)) = outcomes
            .iter()
            .find(|(_, o)| matches!(o, Outcome::Failed { .. }))
        {
            Input::Done(Err(format!("{service}: {}", outcome_text(o))))
        } else {
            Input::Done(Ok(()))
        };
        *self.outcomes.borrow_mut() = outcomes;
        input
    }

    async fn save(
        &mut self,
        _: &crate::rollout::engine::State,
    ) -> Result<(), super::rollout::SaveError> {
        Ok(())
    }

    fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    fn say(
        &self,
        _: &crate::rollout::script::Script,
        _: &crate::rollout::engine::State,
        _: &crate::rollout::engine::Event,
    ) {
        // The rolling machine's terminal reporter already tells every phase.
    }

    fn name(&self) -> &str {
        self.name
    }
}

/// The platform of an environment: ECS through the AWS SDK, or Kubernetes through kube-rs.
enum AnyPlatform {
    Ecs(Ecs),
    Kubernetes(Box<Kubernetes>),
}

async fn platform(loaded: &Loaded, env: &str) -> Result<AnyPlatform, Error> {
    let e = &loaded.config.environments[env];
    match (&e.target, &e.kubernetes) {
        (Target::Kubernetes, Some(k)) => {
            Kubernetes::connect(k.context.as_deref(), &k.namespace, k.create_namespace)
                .await
                .map(|k| AnyPlatform::Kubernetes(Box::new(k)))
                .map_err(Error::Environment)
        }
        _ => Ok(AnyPlatform::Ecs(Ecs::from_env(&loaded.config.region).await)),
    }
}

fn words(loaded: &Loaded, env: &str) -> Vocabulary {
    match loaded.config.environments[env].target {
        Target::Kubernetes => Vocabulary::Kubernetes,
        Target::Ecs => Vocabulary::Ecs,
    }
}

/// Runs `$body` with `$p` bound to the concrete platform (the trait is not object safe).
macro_rules! on_platform {
    ($platform:expr, $p:ident => $body:expr) => {
        match $platform {
            AnyPlatform::Ecs($p) => $body,
            AnyPlatform::Kubernetes($p) => {
                let $p = &**$p;
                $body
            }
        }
    };
}

/// Our own progress deadline. On Kubernetes the Deployment's `progressDeadlineSeconds` (the
/// same setting) is the authority and its verdict names the reason; ours is a backstop, later
/// by two polls (at least 30 s), for a controller that never says.
fn progress_deadline(loaded: &Loaded, env: &str, configured: Duration, poll: Duration) -> Duration {
    match loaded.config.environments[env].target {
        Target::Kubernetes => configured + (2 * poll).max(Duration::from_secs(30)),
        Target::Ecs => configured,
    }
}

pub fn deploy(loaded: &Loaded, args: &DeployArgs) -> Result<(), Error> {
    let name = one_environment(loaded, &args.wait.env.env, "deploys")?;
    let env = &loaded.config.environments[name];
    // A canary (ECS or Kubernetes) or a blue-green on Kubernetes: the engine plays it step
    // by step.
    let played = matches!(env.strategy, Strategy::Canary(_))
        || matches!(env.strategy, Strategy::BlueGreen(_)) && env.target == Target::Kubernetes;
    let blue_green = match &env.strategy {
        Strategy::BlueGreen(b) if env.target == Target::Ecs => Some(b),
        _ => None,
    };
    if args.return_at.is_some() && blue_green.is_none() {
        return Err(Error::Usage {
            message: format!(
                "--return-at applies to a blue-green on ECS; environment `{name}` is {} with the {} strategy",
                env.target,
                env.strategy.name()
            ),
            help: "CodeDeploy or ECS carries a blue-green on ECS on by itself; other rollouts are played by this process (a canary or blue-green on Kubernetes waits at `gate: manual` instead)".into(),
        });
    }
    let (name, rolling) = if played || blue_green.is_some() {
        (name, None)
    } else {
        let (name, _, rolling) = single_rolling(loaded, name)?;
        (name, Some(rolling))
    };
    if args.image.is_none() && GitInfo::discover(&loaded.source.dir).origin == "unknown" {
        return Err(Error::Usage {
            message: format!(
                "no commit to deploy: {} is not in a git repository and GITHUB_SHA is not set, so the image would be `…:sha-unknown`",
                crate::diag::display_path(&loaded.source.dir).display()
            ),
            help: "pass --image REGISTRY/REPOSITORY@sha256:DIGEST (the `image` output of `build`), or run from the repository's checkout".into(),
        });
    }
    // Every input is checked before the lease is taken (taking it writes to the cluster or
    // the table): the rendering here, each strategy's flags before its `lock::hold`.
    super::render_selection(
        loaded,
        &Selection {
            env: name.to_owned(),
            image: args.image.clone(),
        },
    )?;
    if let Some(b) = blue_green {
        return super::bluegreen::deploy(loaded, name, b, args);
    }
    let Some(rolling) = rolling else {
        if env.target == Target::Ecs {
            return super::ecs_canary::deploy(loaded, name, args);
        }
        return super::rollout::deploy(loaded, name, args);
    };
    let (git, image, specs) = rendered_specs(loaded, name, args.image.clone())?;
    if !super::check_image_arg(&image)? {
        eprintln!("{}", tag_note(&image, args.image.is_some()));
    }
    let _lease = super::lock::hold(loaded, name, args.wait.lock_timeout)?;
    let settings = Settings {
        progress_deadline: progress_deadline(
            loaded,
            name,
            rolling.progress_deadline.0,
            args.wait.poll_interval,
        ),
        keep_revisions: rolling.revision_history,
        on_cancel: rolling.on_cancel,
        no_wait: args.wait.no_wait,
    };
    let rt = runtime()?;
    let outcomes = rt.block_on(async {
        let platform = platform(loaded, name).await?;
        let reporting = super::github::Reporting::begin(loaded, name, &git.sha, git.pr).await;
        let started = unix_now();
        let units = specs
            .into_iter()
            .map(|spec| Unit {
                machine: Rolling::new(spec.name.clone(), settings.clone(), started),
                spec,
            })
            .collect();
        // The engine plays the rolling script, `[Deploy(stable)]`: its one step is the rolling
        // machine on every service of the environment.
        let script = crate::rollout::script::compile(&loaded.config.environments[name])
            .expect("a rolling strategy compiles to a script");
        let analysis = crate::rollout::engine::Analysis {
            metrics: vec![],
            min_requests: 0,
        };
        let cancel = CancellationToken::new();
        watch_signals(cancel.clone());
        let outcomes = on_platform!(&platform, p => {
            let mut fx = RollingEffects {
                platform: p,
                units: std::cell::RefCell::new(units),
                outcomes: std::cell::RefCell::new(Vec::new()),
                name,
                wait: &args.wait,
                words: words(loaded, name),
                cancel: cancel.clone(),
            };
            let mut state = crate::rollout::engine::State::new(&script, &image, super::rollout::now_ms());
            super::rollout::play(&mut fx, &script, &analysis, &mut state, crate::rollout::engine::Input::Start).await?;
            fx.outcomes.into_inner()
        });
        reporting
            .finish(loaded, &image, &outcomes, args.report.as_deref())
            .await;
        Ok::<_, Error>(outcomes)
    })?;
    conclude(loaded, name, &outcomes)
}

async fn rollback_on<P: Platform>(
    loaded: &Loaded,
    platform: &P,
    specs: Vec<ServiceSpec>,
    settings: &Settings,
    name: &str,
    args: &WaitArgs,
    words: Vocabulary,
) -> Result<Vec<(String, Outcome)>, Error> {
    let started = unix_now();
    let mut units = Vec::new();
    for spec in specs {
        let previous = match platform.previous_revision(&spec).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(Error::Deployment {
                    code: 1,
                    message: format!(
                        "error: {name}/{}: there is no earlier revision to roll back to",
                        spec.name
                    ),
                });
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Err(platform_error(
                    loaded,
                    name,
                    &e,
                    &format!("{name}/{}: cannot find the previous revision", spec.name),
                ));
            }
            Err(e) => {
                return Err(platform_error(
                    loaded,
                    name,
                    &e,
                    &format!("{name}/{}: rollback", spec.name),
                ));
            }
        };
        eprintln!("{name}/{}: rolling back to {previous}", spec.name);
        units.push(Unit {
            machine: Rolling::new(spec.name.clone(), settings.clone(), started)
                .with_target(previous),
            spec,
        });
    }
    Ok(run_machines(platform, units, name, args, words).await)
}

/// `rollback`: a rolling environment's services go back to their previous revision; on a
/// canary environment, the stable Deployment goes back to its previous template (the canary
/// Deployment takes no traffic outside a rollout, as rendered). Blue-green rolls back through
/// `CodeDeploy` (see `bluegreen`).
pub fn rollback(loaded: &Loaded, args: &WaitArgs) -> Result<(), Error> {
    let name = one_environment(loaded, &args.env.env, "rolls back")?;
    let env = &loaded.config.environments[name];
    let mut specs = specs(loaded, name, None)?;
    let lease = || super::lock::hold(loaded, name, args.lock_timeout);
    if matches!(env.strategy, Strategy::BlueGreen(_)) && env.target == Target::Kubernetes {
        let _lease = lease()?;
        return super::rollout::rollback_blue_green(loaded, name);
    }
    let (deadline, on_cancel) = match &loaded.config.environments[name].strategy {
        Strategy::Rolling(r) => (r.progress_deadline.0, r.on_cancel),
        Strategy::Canary(c) if c.native() && env.target == Target::Ecs => {
            return Err(Error::Usage {
                message: format!(
                    "environment `{name}` is a canary through ECS native: a service update there starts another CANARY/LINEAR deployment, held at its PAUSE hook"
                ),
                help: format!(
                    "a rollout in flight goes back with `movieverse-deploy rollout abort --env {name}`; after a promotion, deploy the previous image as a new canary: `movieverse-deploy deploy --env {name} --image REPOSITORY@sha256:DIGEST`"
                ),
            });
        }
        Strategy::Canary(_) => {
            specs.truncate(1);
            let workload = if env.target == Target::Ecs {
                "service"
            } else {
                "Deployment"
            };
            eprintln!(
                "{name}: canary environment: rolling back the stable {workload} {}; the canary {workload} is left as it is",
                specs[0].name
            );
            (
                crate::config::defaults::progress_deadline().0,
                crate::strategy::rolling::CancelPolicy::default(),
            )
        }
        Strategy::BlueGreen(b) => {
            let _lease = lease()?;
            return super::bluegreen::rollback(loaded, name, b, args);
        }
    };
    let _lease = lease()?;
    let settings = Settings {
        progress_deadline: progress_deadline(loaded, name, deadline, args.poll_interval),
        keep_revisions: u32::MAX,
        on_cancel,
        no_wait: args.no_wait,
    };
    let rt = runtime()?;
    let outcomes = rt.block_on(async {
        let platform = platform(loaded, name).await?;
        on_platform!(&platform, p => rollback_on(loaded, p, specs, &settings, name, args, words(loaded, name)).await)
    })?;
    conclude(loaded, name, &outcomes)
}

/// `status`: read-only, for every kind of environment (rolling, blue-green, canary) and for
/// `--env all`. Each environment is read on its own; one that cannot be read is reported and
/// the others are still shown. The exit code is the first failure's.
pub fn status(loaded: &Loaded, env: &crate::cli::EnvArgs) -> Result<(), Error> {
    let names = select(loaded, &env.env)?;
    let rt = runtime()?;
    let mut first_error = None;
    for name in &names {
        let mut specs = specs(loaded, name, None)?;
        let e = &loaded.config.environments[name];
        if matches!(e.strategy, Strategy::BlueGreen(_)) && e.target == Target::Kubernetes {
            // Each colour is a Deployment of its own: the one the live Service selects.
            if let Some(label) = rt.block_on(super::rollout::live_colour(loaded, name))? {
                for s in &mut specs {
                    s.name = crate::platform::kubernetes::colour_name(&loaded.config.app, &label);
                    s.definition["metadata"]["name"] = serde_json::json!(s.name);
                }
            }
        }
        let header = format!("{name}: {} {}", e.target, e.strategy.name());
        let views = rt.block_on(async {
            let platform = platform(loaded, name).await?;
            let refs = specs.iter().collect::<Vec<_>>();
            on_platform!(&platform, p => p.observe(&refs).await)
                .map_err(|e| platform_error(loaded, name, &e, &format!("{name}: status")))
        });
        match views {
            Ok(views) => print_out(&format!("{header}\n{}", status_text(name, &views)))?,
            Err(err) => {
                print_out(&format!("{header}\n  cannot be read (below)\n"))?;
                if names.len() == 1 {
                    return Err(err);
                }
                eprintln!("{err}");
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(first) => Err(Error::Deployment {
            code: first.exit_code(),
            message: "error: some environments could not be read (above)".into(),
        }),
    }
}

fn status_text(name: &str, views: &[crate::strategy::rolling::ServiceView]) -> String {
    let mut out = String::new();
    for v in views {
        if v.revision.is_empty() && v.deployments.is_empty() {
            let _ = writeln!(out, "{name}/{}: not deployed yet", v.name);
            continue;
        }
        if v.revision.is_empty() {
            let _ = writeln!(out, "{name}/{}:", v.name);
        } else {
            let _ = writeln!(out, "{name}/{}: runs {}", v.name, v.revision);
        }
        for d in &v.deployments {
            let _ = writeln!(
                out,
                "  deployment {}{}: {:?}, {}/{} running, {} pending, {} failed, revision {}{}",
                d.id,
                if d.primary { " (primary)" } else { "" },
                d.rollout,
                d.running,
                d.desired,
                d.pending,
                d.failed,
                d.revision,
                d.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        for e in v.events.iter().take(5) {
            let _ = writeln!(out, "  event: {}", e.message);
        }
    }
    out
}

/// One environment's server dry run.
#[derive(Debug, serde::Serialize)]
pub struct LiveDiff {
    pub env: String,
    pub namespace: String,
    /// `None`: the namespace does not exist yet.
    pub objects: Option<Vec<ObjectDiff>>,
    pub create_namespace: bool,
}

/// `plan --server-dry-run`: the API server's view of every Kubernetes environment selected.
pub fn server_dry_run(loaded: &Loaded, selection: &Selection) -> Result<Vec<LiveDiff>, Error> {
    let names = select(loaded, &selection.env)?;
    let rt = runtime()?;
    let mut out = Vec::new();
    for name in names {
        let Some(k) = loaded.config.environments[&name].kubernetes.as_ref() else {
            continue;
        };
        let specs = specs(loaded, &name, selection.image.clone())?;
        let objects = rt.block_on(async {
            let platform =
                Kubernetes::connect(k.context.as_deref(), &k.namespace, k.create_namespace)
                    .await
                    .map_err(Error::Environment)?;
            let mut all = Some(Vec::new());
            for spec in &specs {
                match platform.diff(spec).await {
                    Ok(Some(d)) => all.as_mut().expect("set").extend(d),
                    Ok(None) => all = None,
                    Err(e) => {
                        return Err(platform_error(
                            loaded,
                            &name,
                            &e,
                            &format!("{name}: the server dry run failed"),
                        ));
                    }
                }
            }
            Ok(all)
        })?;
        out.push(LiveDiff {
            env: name.clone(),
            namespace: k.namespace.clone(),
            objects,
            create_namespace: k.create_namespace,
        });
    }
    Ok(out)
}

pub fn server_dry_run_text(diffs: &[LiveDiff]) -> String {
    let mut out = String::new();
    for d in diffs {
        let _ = writeln!(
            out,
            "\nServer dry run: {} (namespace {})",
            d.env, d.namespace
        );
        let Some(objects) = &d.objects else {
            let _ = writeln!(
                out,
                "  namespace {} does not exist yet: {}",
                d.namespace,
                if d.create_namespace {
                    "the deploy creates it and every object in it"
                } else {
                    "the deploy would fail; create it or set `kubernetes.create_namespace: true`"
                }
            );
            continue;
        };
        for o in objects {
            match &o.change {
                ObjectChange::Create => {
                    let _ = writeln!(out, "  {} {}: would be created", o.kind, o.name);
                }
                ObjectChange::Unchanged => {
                    let _ = writeln!(out, "  {} {}: unchanged", o.kind, o.name);
                }
                ObjectChange::Change { diff } => {
                    let _ = writeln!(out, "  {} {}: would change", o.kind, o.name);
                    for line in diff.lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                }
            }
        }
    }
    out
}
