//! One rollout per service at a time, at the edge: takes the environment's lease before a
//! command changes anything, renews it while the command runs, gives it up at the end.
//!
//! The lease lives on its own thread with its own runtime (a Kubernetes client is used on the
//! runtime it was made on), so the rollouts keep their single-threaded runtimes untouched:
//! - taking: read, decide (`rollout::lease::decide`), write against the version read; a lost
//!   race reads again. Held by another: wait up to `--lock-timeout` (a line every 30 s says
//!   who holds it and until when), then exit 3 naming the holder.
//! - renewing: every third of the lease's duration. A renewal that finds another holder, or
//!   that cannot land before the lease expires, ends the process at once (exit 3): another
//!   run may be changing the service now, so this one must not go on. The rollout's own
//!   record lets the next run resume or roll back, as after a crash.
//! - giving up: when the guard is dropped, on every way out of the command.

use std::sync::mpsc;
use std::time::Duration;

use super::Error;
use crate::config::{Loaded, Target};
use crate::platform::lease::{Store, Stored};
use crate::platform::observation::{ErrorKind, PlatformError};
use crate::rollout::engine::Millis;
use crate::rollout::lease::{Decision, Holder, Record, decide, describe, renewal_in_time};

/// Held while alive; dropping it gives the lease up.
pub(super) struct Guard {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Who this process is, from the workflow run or the machine.
pub(crate) fn me() -> Holder {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let host = hostname();
    let pid = std::process::id();
    let Some(run) = var("GITHUB_RUN_ID") else {
        let user = var("USER")
            .or_else(|| var("USERNAME"))
            .unwrap_or_else(|| "unknown".into());
        return Holder {
            id: format!("local:{pid}@{host}"),
            run: format!("{user}@{host} (pid {pid})"),
            actor: user,
        };
    };
    let url = match (var("GITHUB_SERVER_URL"), var("GITHUB_REPOSITORY")) {
        (Some(s), Some(r)) => format!("{s}/{r}/actions/runs/{run}"),
        _ => format!("workflow run {run}"),
    };
    let job = var("GITHUB_JOB").unwrap_or_else(|| "job".into());
    let attempt = var("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into());
    Holder {
        id: format!("gha:{run}:{job}:{attempt}:{pid}@{host}"),
        run: format!("{url} (job {job}, attempt {attempt})"),
        actor: var("GITHUB_ACTOR").unwrap_or_else(|| "unknown".into()),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether a process of this host still runs (Linux's /proc; elsewhere it is assumed to, and
/// the lease is taken over at its expiry).
fn alive(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn now_ms() -> Millis {
    super::rollout::now_ms()
}

/// Where environment `name`'s lease lives: Kubernetes always; ECS when `lock.table` is set.
enum Place {
    Kubernetes {
        context: Option<String>,
        namespace: String,
        app: String,
    },
    DynamoDb {
        region: String,
        table: String,
        key: String,
    },
}

fn place(loaded: &Loaded, name: &str) -> Option<Place> {
    let env = &loaded.config.environments[name];
    match (&env.target, &env.kubernetes, &env.ecs, &env.lock.table) {
        (Target::Kubernetes, Some(k), _, _) => Some(Place::Kubernetes {
            context: k.context.clone(),
            namespace: k.namespace.clone(),
            app: loaded.config.app.clone(),
        }),
        (Target::Ecs, _, Some(ecs), Some(table)) => {
            let region = super::deploy::region_of(loaded);
            Some(Place::DynamoDb {
                key: format!("ecs/{region}/{}/{}", ecs.cluster, ecs.service),
                region,
                table: table.clone(),
            })
        }
        _ => None,
    }
}

async fn connect(place: &Place) -> anyhow::Result<Store> {
    Ok(match place {
        Place::Kubernetes {
            context,
            namespace,
            app,
        } => {
            let k = crate::platform::kubernetes::Kubernetes::connect(
                context.as_deref(),
                namespace,
                false,
            )
            .await?;
            Store::kubernetes(k.client(), namespace, app)
        }
        Place::DynamoDb { region, table, key } => Store::DynamoDb {
            client: aws_sdk_dynamodb::Client::new(&crate::aws::sdk_config(region, true).await),
            table: table.clone(),
            key: key.clone(),
        },
    })
}

/// Takes environment `name`'s lease for a command that changes it, waiting up to `timeout`
/// for another holder. `None` when the environment has no lease (ECS without `lock.table`).
pub(super) fn hold(loaded: &Loaded, name: &str, timeout: Duration) -> Result<Option<Guard>, Error> {
    let Some(place) = place(loaded, name) else {
        return Ok(None);
    };
    let duration = Millis::try_from(loaded.config.environments[name].lock.duration.0.as_millis())
        .unwrap_or(60_000);
    let env = name.to_owned();
    let (told, answer) = mpsc::channel::<Result<(), Error>>();
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("lease".into())
        .spawn(move || {
            let rt = match super::deploy::runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = told.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let store = match connect(&place).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = told.send(Err(Error::Environment(
                            e.context(format!("{env}: cannot reach where the lease is kept")),
                        )));
                        return;
                    }
                };
                let me = me();
                let taken = match take(&store, &me, &env, duration, timeout).await {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = told.send(Err(e));
                        return;
                    }
                };
                let _ = told.send(Ok(()));
                keep(&store, &env, taken, &stopped).await;
            });
        })
        .map_err(|e| {
            Error::Environment(anyhow::Error::new(e).context("cannot start the lease's thread"))
        })?;
    let guard = Guard {
        stop: Some(stop),
        thread: Some(thread),
    };
    match answer.recv() {
        Ok(Ok(())) => Ok(Some(guard)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Environment(anyhow::anyhow!(
            "{name}: the lease's thread ended before it answered"
        ))),
    }
}

fn lease_error(env: &str, store: &Store, e: &PlatformError) -> Error {
    let help = match e.kind {
        ErrorKind::NotFound => match store {
            Store::DynamoDb { table, .. } => format!(
                "create the DynamoDB table {table} with the partition key `lock` (a string), or remove `lock.table` from deploy.yml"
            ),
            Store::Kubernetes { .. } => {
                "the namespace must exist before a deploy takes its Lease: create it (kubectl create namespace), or deploy once with `create_namespace: true`".into()
            }
        },
        ErrorKind::Permission => match store {
            Store::DynamoDb { table, .. } => format!(
                "the deploy's role needs dynamodb:GetItem, PutItem and DeleteItem on the table {table}"
            ),
            Store::Kubernetes { .. } => "the kubeconfig's user needs get, create, update and delete on leases.coordination.k8s.io in the namespace".into(),
        },
        _ => "check the connection and credentials, then run the command again".into(),
    };
    Error::Deployment {
        code: 3,
        message: format!(
            "error: {env}: cannot take the lease ({}): {} failed: {}\n  = help: {help}",
            store.describe(),
            e.operation,
            e.message
        ),
    }
}

/// The lease store failed in passing (`transient` times so far): said, then a pause of
/// 1, 2, 4, 8, 8 s before the next try.
async fn pause(env: &str, transient: u32, e: &PlatformError) {
    let wait = Duration::from_millis(500 << transient.min(4));
    eprintln!(
        "{env}: retrying in {:.1} s ({transient}/5): {}: {}",
        wait.as_secs_f64(),
        e.operation,
        e.message
    );
    tokio::time::sleep(wait).await;
}

/// Takes the lease, waiting up to `timeout`: what was written (no version when there is no
/// namespace to keep a Lease in yet).
async fn take(
    store: &Store,
    me: &Holder,
    env: &str,
    duration: Millis,
    timeout: Duration,
) -> Result<Option<(Record, String)>, Error> {
    let started = now_ms();
    let deadline = started.saturating_add(Millis::try_from(timeout.as_millis()).unwrap_or(0));
    let mut said_at: Option<Millis> = None;
    let mut transient = 0u32;
    let mut conflicts = 0u32;
    loop {
        let now = now_ms();
        let stored = match store.read().await {
            Ok(s) => s,
            Err(e) if e.kind.retryable() && transient < 5 => {
                transient += 1;
                pause(env, transient, &e).await;
                continue;
            }
            Err(e) => return Err(lease_error(env, store, &e)),
        };
        let current = stored.as_ref().and_then(|s| s.record.as_ref());
        let (since, over) = match decide(current, me, now, &alive) {
            Decision::Take => (
                current
                    .filter(|r| r.holder.id == me.id)
                    .map_or(now, |r| r.since),
                None,
            ),
            Decision::TakeOver { previous, gone } => (now, Some((previous, gone))),
            Decision::Held { by, until } => {
                if now >= deadline {
                    return Err(held_error(env, store, &by, now, timeout));
                }
                if said_at.is_none_or(|t| now.saturating_sub(t) >= 30_000) {
                    eprintln!(
                        "{env}: waiting for {} (up to {} more), held by {}",
                        store.describe(),
                        humantime::format_duration(Duration::from_secs(
                            deadline.saturating_sub(now).div_ceil(1000)
                        )),
                        describe(&by, now)
                    );
                    said_at = Some(now);
                }
                // Look again in 2 s, at the expiry, or at the deadline, whichever is first.
                let next = (now + 2000).min(until).min(deadline).max(now + 100);
                tokio::time::sleep(Duration::from_millis(next - now)).await;
                continue;
            }
        };
        let record = Record {
            since,
            ..Record::taken(me.clone(), now, duration)
        };
        match store
            .write(&record, stored.as_ref().map(|s| s.version.as_str()))
            .await
        {
            Ok(version) => {
                if let Some((previous, gone)) = over {
                    eprintln!(
                        "{env}: took over {}: its holder, {}, is gone ({gone}); a rollout it left is resumed or rolled back from its record",
                        store.describe(),
                        describe(&previous, now)
                    );
                } else if said_at.is_some() {
                    eprintln!(
                        "{env}: took {} after {}s",
                        store.describe(),
                        now.saturating_sub(started).div_ceil(1000)
                    );
                }
                return Ok(Some((record, version)));
            }
            Err(e) if e.kind == ErrorKind::Conflict && conflicts < 20 => conflicts += 1,
            Err(e)
                if e.kind == ErrorKind::NotFound && matches!(store, Store::Kubernetes { .. }) =>
            {
                // No namespace yet (a Lease cannot be created in it), so nothing can be
                // rolling there: the deploy creates it (`create_namespace`) or says it is
                // missing.
                return Ok(None);
            }
            Err(e) if e.kind.retryable() && transient < 5 => {
                transient += 1;
                pause(env, transient, &e).await;
            }
            Err(e) => return Err(lease_error(env, store, &e)),
        }
    }
}

fn held_error(env: &str, store: &Store, by: &Record, now: Millis, timeout: Duration) -> Error {
    let waited = if timeout.is_zero() {
        String::new()
    } else {
        format!(
            " (waited {})",
            humantime::format_duration(Duration::from_secs(timeout.as_secs()))
        )
    };
    Error::Deployment {
        code: 3,
        message: format!(
            "error: {env}: another rollout holds {}{waited}: {}\n  = help: wait for it (pass --lock-timeout 15m to wait here), or stop it in its workflow run; a holder that died is taken over {}s after its last renewal",
            store.describe(),
            describe(by, now),
            by.duration.div_ceil(1000)
        ),
    }
}

/// Renews the lease every third of its duration until `stopped` says the command ended, then
/// gives it up. Losing it ends the process.
async fn keep(
    store: &Store,
    env: &str,
    taken: Option<(Record, String)>,
    stopped: &mpsc::Receiver<()>,
) {
    let Some((mut record, mut version)) = taken else {
        // No namespace when it was taken: nothing to keep.
        let _ = stopped.recv();
        return;
    };
    let me = record.holder.clone();
    let duration = record.duration;
    let retry_soon = |e: &PlatformError| {
        eprintln!(
            "{env}: warning: renewing {}: {} failed: {}; trying again in 1 s",
            store.describe(),
            e.operation,
            e.message
        );
    };
    let every = Duration::from_millis((duration / 3).max(500));
    let mut wait = every;
    loop {
        match stopped.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Err(e) = store.release(&me, &version).await {
                    eprintln!(
                        "{env}: warning: could not give up {} ({}: {}); it is taken over {}s after its last renewal",
                        store.describe(),
                        e.operation,
                        e.message,
                        duration / 1000
                    );
                }
                return;
            }
        }
        let now = now_ms();
        if !renewal_in_time(&record, now) {
            lost(
                env,
                store,
                &format!("it could not be renewed within its {}s", duration / 1000),
            );
        }
        let current = match store.read().await {
            Ok(c) => c,
            Err(e) => {
                retry_soon(&e);
                wait = Duration::from_secs(1);
                continue;
            }
        };
        match current {
            Some(Stored {
                record: Some(r), ..
            }) if r.holder.id != me.id => lost(
                env,
                store,
                &format!("it was taken over by {}", describe(&r, now)),
            ),
            None | Some(Stored { record: None, .. }) => {
                lost(env, store, "it was given up by someone else")
            }
            Some(Stored { version: v, .. }) => {
                let renewed = Record {
                    renewed: now,
                    ..record.clone()
                };
                match store.write(&renewed, Some(&v)).await {
                    Ok(next) => {
                        version = next;
                        record = renewed;
                        wait = every;
                    }
                    Err(e) => {
                        retry_soon(&e);
                        wait = Duration::from_secs(1);
                    }
                }
            }
        }
    }
}

/// The lease is gone: another run may be changing the service, so this process must not.
fn lost(env: &str, store: &Store, why: &str) -> ! {
    eprintln!(
        "error: {env}: lost {}: {why}; stopping now so that two rollouts never change the service at once. The rollout's record stays where it stood: the run holding the lease (or the next `deploy`) resumes or rolls it back",
        store.describe()
    );
    std::process::exit(3)
}
