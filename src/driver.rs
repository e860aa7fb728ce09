//! The loop: observe, decide, act. It owns time (tokio's clock), retries, the poll interval,
//! the deadline and cancellation; the strategy machines own every decision.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::platform::{Platform, ServiceSpec, Wake};
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

/// The first back-off between tries of a throttled or transient call; each next one is twice
/// the last, up to 16 times this (1, 2, 4, 8, 16 s). `MVD_RETRY_BASE` sets it.
pub const RETRY_BASE: Duration = Duration::from_secs(1);

/// The environment variable that sets [`RETRY_BASE`]: a duration (`250ms`, `2s`).
pub const RETRY_BASE_VAR: &str = "MVD_RETRY_BASE";

/// The first back-off: [`RETRY_BASE`], or `MVD_RETRY_BASE` (10 ms to 60 s); what is wrong
/// with the variable otherwise.
pub fn retry_base() -> Result<Duration, String> {
    let Some(v) = std::env::var_os(RETRY_BASE_VAR) else {
        return Ok(RETRY_BASE);
    };
    let v = v.to_string_lossy();
    match humantime::parse_duration(v.trim()) {
        Ok(d) if (Duration::from_millis(10)..=Duration::from_mins(1)).contains(&d) => Ok(d),
        _ => Err(format!(
            "{RETRY_BASE_VAR}={v:?} is not a duration from 10ms to 60s"
        )),
    }
}

/// The back-off after failed try number `attempt` (from 0): the base doubled `attempt`
/// times, at most 4.
pub fn backoff(attempt: u32) -> Duration {
    retry_base().unwrap_or(RETRY_BASE) * (1 << attempt.min(4))
}

/// One service being deployed.
#[derive(Debug)]
pub struct Unit {
    pub spec: ServiceSpec,
    pub machine: Rolling,
}

/// With a platform that watches, the poll is only the fallback: at least this long.
const WATCH_FALLBACK: Duration = Duration::from_secs(30);

/// What ends a wait early: a cancellation the loop has not acted on yet, and the deploy's
/// time limit. Both bound every wait, the back-off between retries included.
#[derive(Clone, Copy)]
struct Stop<'a> {
    cancel: Option<&'a CancellationToken>,
    deadline: Option<Instant>,
}

impl Stop<'_> {
    /// Completes when the cancellation fires or the deadline passes; never, with neither.
    async fn reached(self) {
        let cancel = async {
            match self.cancel {
                Some(c) => c.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancel => {}
            () = deadline => {}
        }
    }
}

/// A retry about to happen, for the reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub error: PlatformError,
    pub delay: Duration,
    /// This retry's number, from 1, of `of`.
    pub attempt: u32,
    pub of: u32,
}

/// Why an effect did not finish: the cancellation or the time limit came first.
#[derive(Debug)]
struct Interrupted;

/// Runs an effect, retrying throttled and transient errors with exponential back-off
/// ([`backoff`]: 1 s, 2 s, 4 s, … capped at 16 s), announcing each retry. An effect may make
/// several API calls: the budget of `retries` is per failing call, and starts again when a
/// later call fails (the earlier ones went through, so the effect made progress).
///
/// `stop` interrupts the back-off at once, and the call itself when `abandon` says that is
/// safe (a read: nothing was changed if it is dropped half-way). A write in flight is let
/// finish, bounded by the client's own timeouts, so the machine knows what it did.
/// Sleeps until `at`; no time at all without one.
async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

async fn with_retries<T, F, Fut>(
    retries: u32,
    stop: Stop<'_>,
    abandon: bool,
    on_retry: &(dyn Fn(&Retry) + Sync),
    mut f: F,
) -> Result<Result<T, PlatformError>, Interrupted>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PlatformError>>,
{
    let mut attempt = 0;
    let mut failing: Option<String> = None;
    loop {
        let result = if abandon {
            tokio::select! {
                r = f() => r,
                () = stop.reached() => return Err(Interrupted),
            }
        } else {
            f().await
        };
        match result {
            Err(e) if e.kind.retryable() => {
                if failing.as_deref() != Some(e.operation.as_str()) {
                    failing = Some(e.operation.clone());
                    attempt = 0;
                }
                if attempt >= retries {
                    return Ok(Err(e));
                }
                let delay = backoff(attempt);
                attempt += 1;
                on_retry(&Retry {
                    error: e,
                    delay,
                    attempt,
                    of: retries,
                });
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.reached() => return Err(Interrupted),
                }
            }
            other => return Ok(other),
        }
    }
}

/// Reads of a deployment that may fail in a row (throttled, 5xx) before a wait on it gives
/// up (blue-green, the ECS native canary): the deployment goes on without us meanwhile.
pub const MAX_FAILED_READS: u32 = 5;

/// One platform call of a rollout's effect (a weight, a selector switch, a scale-down),
/// retried as the driver retries its calls: throttled and transient errors up to 5 times after
/// 1, 2, 4, 8, 16 s, each retry said on stderr (`who: retrying in 2 s (2/5): …`). Never cut
/// short by a cancellation: these calls move traffic, and the way back to stable must not give
/// up at the first throttled answer (the engine reacts to the cancellation once the call is
/// done). Whatever else fails is returned at once.
pub async fn retried<T, F, Fut>(who: &str, f: F) -> Result<T, PlatformError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PlatformError>>,
{
    let say = |r: &Retry| {
        eprintln!(
            "{who}: retrying in {} ({}/{}): {}: {}",
            crate::report::terminal::wait(r.delay),
            r.attempt,
            r.of,
            r.error.operation,
            r.error.message
        );
    };
    let never = Stop {
        cancel: None,
        deadline: None,
    };
    match with_retries(DriveOptions::default().retries, never, false, &say, f).await {
        Ok(result) => result,
        Err(Interrupted) => unreachable!("nothing interrupts a wait without a stop"),
    }
}

/// [`retried`] for a write whose answer may be lost although it was done (a timeout, a
/// connection dropped on the way back), and that must not be sent twice blindly: a second
/// `CreateDeployment` is refused, a second `UpdateService` may start a second deployment, a
/// second answer to a hook that has moved on is refused. Before each retry `done` looks
/// whether the earlier attempt was done (the deployment it starts is in flight, the hook it
/// answers no longer awaits); what it finds is then the result, and the call is not sent
/// again. A `done` that fails counts as a failed attempt.
pub async fn retried_write<T, F, Fut, D, DFut>(
    who: &str,
    mut f: F,
    done: D,
) -> Result<T, PlatformError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PlatformError>>,
    D: Fn() -> DFut,
    DFut: Future<Output = Result<Option<T>, PlatformError>>,
{
    let mut tried = false;
    retried(who, || {
        // Boxed: the two futures of an SDK call are large, and both are held here.
        let check = std::mem::replace(&mut tried, true).then(|| Box::pin(done()));
        let call = Box::pin(f());
        async move {
            if let Some(check) = check
                && let Some(found) = check.await?
            {
                return Ok(found);
            }
            call.await
        }
    })
    .await
}

async fn execute<P: Platform>(
    platform: &P,
    spec: &ServiceSpec,
    command: &Command,
    retries: u32,
    stop: Stop<'_>,
    on_retry: &(dyn Fn(&Retry) + Sync),
) -> Option<Input> {
    let result = match command {
        Command::Prepare => with_retries(retries, stop, true, on_retry, || platform.prepare(spec))
            .await
            .map(|r| {
                r.map(|p| Input::Prepared {
                    service: p.service,
                    definition_changed: p.definition_changed,
                    settings_changed: p.settings_changed,
                })
            }),
        Command::Register => {
            with_retries(retries, stop, false, on_retry, || platform.register(spec))
                .await
                .map(|r| r.map(|revision| Input::Registered { revision }))
        }
        Command::Update { revision } => with_retries(retries, stop, false, on_retry, || {
            platform.update(spec, revision)
        })
        .await
        .map(|r| r.map(|deployment| Input::Updated { deployment })),
        Command::ApplyScaling => with_retries(retries, stop, false, on_retry, || {
            platform.apply_scaling(spec)
        })
        .await
        .map(|r| r.map(|()| Input::ScalingApplied)),
        Command::Diagnose { deployment } => with_retries(retries, stop, true, on_retry, || {
            platform.diagnose(spec, deployment)
        })
        .await
        .map(|r| r.map(|stopped| Input::Diagnosed { stopped })),
        Command::CleanUp { keep } => with_retries(retries, stop, false, on_retry, || {
            platform.clean_up(spec, *keep)
        })
        .await
        .map(|r| r.map(|deregistered| Input::CleanedUp { deregistered })),
        Command::Revert { revision } => with_retries(retries, stop, false, on_retry, || {
            platform.revert(spec, revision)
        })
        .await
        .map(|r| r.map(|()| Input::Updated { deployment: None })),
        Command::Observe => unreachable!("observations are batched by the loop"),
    };
    result.ok().map(|r| r.unwrap_or_else(Input::CommandFailed))
}

fn retry_event(r: &Retry) -> Event {
    Event::Retrying {
        operation: r.error.operation.clone(),
        message: r.error.message.clone(),
        delay: r.delay,
        attempt: r.attempt,
        of: r.of,
    }
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
    // Shared by the loop and the retry notices of effects running side by side (one task).
    let on_event = std::sync::Mutex::new(on_event);
    let emit = |service: &str, at: Duration, e: &Event| {
        let mut f = on_event
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (*f)(service, at, e);
    };
    let feed =
        |units: &mut [Unit], i: usize, input: Option<Input>, queue: &mut Vec<(usize, Command)>| {
            let now = start.elapsed();
            let step = match input {
                Some(input) => units[i].machine.step(input, now),
                None => units[i].machine.start(),
            };
            for e in &step.events {
                emit(&units[i].spec.name, now, e);
            }
            queue.extend(step.commands.into_iter().map(|c| (i, c)));
        };
    for i in 0..units.len() {
        feed(units, i, None, &mut queue);
    }
    let mut cancelled = false;
    let mut timed_out = false;
    let mut last_observed: Option<Instant> = None;
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
        let stop = Stop {
            cancel: (!cancelled).then_some(cancel),
            deadline: options
                .timeout
                .filter(|_| !cancelled && !timed_out)
                .map(|t| start + t),
        };
        let (observe, act): (Vec<_>, Vec<_>) =
            queue.drain(..).partition(|(_, c)| *c == Command::Observe);
        if !act.is_empty() {
            let shared: &[Unit] = units;
            let emit = &emit;
            let results: Vec<(usize, Command, Option<Input>)> =
                futures_util::stream::iter(act.into_iter().map(|(i, c)| async move {
                    let name = &shared[i].spec.name;
                    let on_retry = |r: &Retry| emit(name, start.elapsed(), &retry_event(r));
                    let input = execute(
                        platform,
                        &shared[i].spec,
                        &c,
                        options.retries,
                        stop,
                        &on_retry,
                    )
                    .await;
                    (i, c, input)
                }))
                .buffer_unordered(options.parallelism.max(1))
                .collect()
                .await;
            // An interrupted effect has no result: it stays queued, and the stop at the top of
            // the loop replaces it (its machine gets the cancellation or the time limit).
            for (i, c, input) in results {
                match input {
                    Some(input) => feed(units, i, Some(input), &mut queue),
                    None => queue.push((i, c)),
                }
            }
            queue.extend(observe);
            continue;
        }
        // Everything left is waiting: one interval, then one batched observation. Where the
        // platform watches, the interval is only the fallback (at least 30 s): a change that
        // may settle the rollout wakes the wait at once (no sooner than a second after the
        // last observation, so a burst of status updates costs one), and progress wakes it no
        // sooner than one poll interval after the last observation. A wait with no change
        // costs no call.
        let watching = platform.watches();
        let poll = if watching {
            options.poll.max(WATCH_FALLBACK)
        } else {
            options.poll
        };
        let wait = options
            .timeout
            .map_or(poll, |t| poll.min(t.saturating_sub(start.elapsed())));
        if !cancelled {
            let waiting: Vec<&ServiceSpec> = observe.iter().map(|(i, _)| &units[*i].spec).collect();
            let early = async {
                let mut progressed = false;
                let after = |gap: Duration| last_observed.map(|last| last + gap);
                let progress_at = after(options.poll);
                loop {
                    let wake = tokio::select! {
                        wake = platform.changed(&waiting) => wake,
                        () = sleep_until(progress_at), if progressed => return,
                    };
                    match wake {
                        Wake::Settled => {
                            sleep_until(after(options.poll.min(Duration::from_secs(1)))).await;
                            return;
                        }
                        Wake::Progress => progressed = true,
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = early, if watching => {}
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
        let names = specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let on_retry = |r: &Retry| emit(&names, start.elapsed(), &retry_event(r));
        last_observed = Some(Instant::now());
        let Ok(result) = with_retries(options.retries, stop, true, &on_retry, || {
            platform.observe(&specs)
        })
        .await
        else {
            queue.extend(observe);
            continue;
        };
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
