//! The loop: observe, decide, act. It owns time (tokio's clock), retries, the poll interval,
//! the deadline and cancellation; the strategy machines own every decision.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::platform::{Platform, ServiceSpec};
use crate::strategy::rolling::{Command, Event, Input, Outcome, PlatformError, Rolling};

#[derive(Debug, Clone)]
pub struct DriveOptions {
    /// Time between observations. Fixed: no back-off while waiting.
    pub poll: Duration,
    /// The whole deploy's time limit.
    pub timeout: Option<Duration>,
    /// Services acted on at once.
    pub parallelism: usize,
    /// Attempts after the first for a throttled or transient error.
    pub retries: u32,
}

impl Default for DriveOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(5),
            timeout: None,
            parallelism: 4,
            retries: 5,
        }
    }
}

/// One service being deployed.
#[derive(Debug)]
pub struct Unit {
    pub spec: ServiceSpec,
    pub machine: Rolling,
}

/// Runs an effect, retrying throttled and transient errors with exponential back-off
/// (1 s, 2 s, 4 s, … capped at 16 s). An effect may make several API calls: the budget of
/// `retries` is per failing call, and starts again when a later call fails (the earlier ones
/// went through, so the effect made progress).
async fn with_retries<T, F, Fut>(retries: u32, mut f: F) -> Result<T, PlatformError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PlatformError>>,
{
    let mut attempt = 0;
    let mut failing: Option<String> = None;
    loop {
        match f().await {
            Err(e) if e.kind.retryable() => {
                if failing.as_deref() != Some(e.operation.as_str()) {
                    failing = Some(e.operation.clone());
                    attempt = 0;
                }
                if attempt >= retries {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_secs(1 << attempt.min(4))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn execute<P: Platform>(
    platform: &P,
    spec: &ServiceSpec,
    command: &Command,
    retries: u32,
) -> Input {
    let result = match command {
        Command::Prepare => with_retries(retries, || platform.prepare(spec))
            .await
            .map(|p| Input::Prepared {
                service: p.service,
                definition_changed: p.definition_changed,
                settings_changed: p.settings_changed,
            }),
        Command::Register => with_retries(retries, || platform.register(spec))
            .await
            .map(|revision| Input::Registered { revision }),
        Command::Update { revision } => with_retries(retries, || platform.update(spec, revision))
            .await
            .map(|deployment| Input::Updated { deployment }),
        Command::ApplyScaling => with_retries(retries, || platform.apply_scaling(spec))
            .await
            .map(|()| Input::ScalingApplied),
        Command::Diagnose { deployment } => {
            with_retries(retries, || platform.diagnose(spec, deployment))
                .await
                .map(|stopped| Input::Diagnosed { stopped })
        }
        Command::CleanUp { keep } => with_retries(retries, || platform.clean_up(spec, *keep))
            .await
            .map(|deregistered| Input::CleanedUp { deregistered }),
        Command::Revert { revision } => with_retries(retries, || platform.revert(spec, revision))
            .await
            .map(|()| Input::Updated { deployment: None }),
        Command::Observe => unreachable!("observations are batched by the loop"),
    };
    result.unwrap_or_else(Input::CommandFailed)
}

/// Drives every unit to an outcome. `on_event` receives each event with the service name and
/// the time since the start.
pub async fn drive<P: Platform>(
    platform: &P,
    units: &mut [Unit],
    options: &DriveOptions,
    cancel: &CancellationToken,
    on_event: &mut (dyn FnMut(&str, Duration, &Event) + Send),
) -> Vec<Outcome> {
    let start = Instant::now();
    let mut queue: Vec<(usize, Command)> = Vec::new();
    let mut feed =
        |units: &mut [Unit], i: usize, input: Option<Input>, queue: &mut Vec<(usize, Command)>| {
            let now = start.elapsed();
            let step = match input {
                Some(input) => units[i].machine.step(input, now),
                None => units[i].machine.start(),
            };
            for e in &step.events {
                on_event(&units[i].spec.name, now, e);
            }
            queue.extend(step.commands.into_iter().map(|c| (i, c)));
        };
    for i in 0..units.len() {
        feed(units, i, None, &mut queue);
    }
    let mut cancelled = false;
    let mut timed_out = false;
    while !queue.is_empty() {
        // A cancellation or the time limit replaces whatever was queued.
        let stop = if !cancelled && cancel.is_cancelled() {
            cancelled = true;
            Some(Input::Cancel)
        } else if !timed_out && !cancelled && options.timeout.is_some_and(|t| start.elapsed() >= t)
        {
            timed_out = true;
            Some(Input::TimedOut)
        } else {
            None
        };
        if let Some(input) = stop {
            queue.clear();
            for i in 0..units.len() {
                if !units[i].machine.is_done() {
                    feed(units, i, Some(input.clone()), &mut queue);
                }
            }
            continue;
        }
        let (observe, act): (Vec<_>, Vec<_>) =
            queue.drain(..).partition(|(_, c)| *c == Command::Observe);
        if !act.is_empty() {
            let shared: &[Unit] = units;
            let results: Vec<(usize, Input)> =
                futures_util::stream::iter(act.into_iter().map(|(i, c)| async move {
                    (
                        i,
                        execute(platform, &shared[i].spec, &c, options.retries).await,
                    )
                }))
                .buffer_unordered(options.parallelism.max(1))
                .collect()
                .await;
            for (i, input) in results {
                feed(units, i, Some(input), &mut queue);
            }
            queue.extend(observe);
            continue;
        }
        // Everything left is waiting: one interval, then one batched observation.
        let wait = options.timeout.map_or(options.poll, |t| {
            options.poll.min(t.saturating_sub(start.elapsed()))
        });
        if !cancelled {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => {}
            }
        }
        if cancel.is_cancelled() && !cancelled
            || options.timeout.is_some_and(|t| start.elapsed() >= t) && !timed_out && !cancelled
        {
            queue.extend(observe);
            continue;
        }
        let specs: Vec<&ServiceSpec> = observe.iter().map(|(i, _)| &units[*i].spec).collect();
        let result = with_retries(options.retries, || platform.observe(&specs)).await;
        for (i, _) in observe {
            let input = match &result {
                Ok(views) => match views.iter().find(|v| v.name == units[i].spec.name) {
                    Some(v) => Input::Observed(v.clone()),
                    None => Input::CommandFailed(PlatformError::new(
                        crate::strategy::rolling::ErrorKind::NotFound,
                        "DescribeServices",
                        format!("service {} is no longer there", units[i].spec.name),
                    )),
                },
                Err(e) => Input::CommandFailed(e.clone()),
            };
            feed(units, i, Some(input), &mut queue);
        }
    }
    units
        .iter()
        .map(|u| {
            u.machine
                .outcome()
                .cloned()
                .expect("every machine finishes")
        })
        .collect()
}
