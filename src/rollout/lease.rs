//! One rollout per service at a time: the lease's rules, pure.
//!
//! A lease is a record in a store both writers read and write with a version (a Kubernetes
//! `Lease`'s `resourceVersion`, a `DynamoDB` item's `version` attribute under a conditional
//! write): whoever writes against the version it read wins, the other reads again. What this
//! module decides, from the record read and the time given:
//!
//! - no record, or our own: take (or renew) it;
//! - a record whose holder stopped renewing for its whole duration: take it over, and say so;
//! - a record whose holder is provably gone before expiry: the same GitHub Actions run and job
//!   in an earlier attempt (a re-run starts only after the attempt ended), or a process on this
//!   host that no longer runs (the edge asks the operating system): take it over at once;
//! - otherwise: held, until its expiry at the latest.
//!
//! Time is absolute milliseconds, passed in. Clocks of different machines only meet in the
//! expiry (`renewed + duration`): a skew of a few seconds moves a takeover by as much, never
//! makes two holders (the conditional write decides).

use serde::{Deserialize, Serialize};

use super::engine::Millis;

/// Who holds (or asks for) a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Unique per process: `gha:RUN_ID:JOB:ATTEMPT:PID@HOST` in GitHub Actions,
    /// `local:PID@HOST` elsewhere.
    pub id: String,
    /// Where the holder runs: the workflow run's URL, or `USER@HOST (pid N)`.
    pub run: String,
    /// Who started it: `GITHUB_ACTOR`, or the local user.
    pub actor: String,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub holder: Holder,
    /// When this holder took it.
    pub since: Millis,
    /// When this holder last renewed it.
    pub renewed: Millis,
    /// How long it stays held without a renewal.
    pub duration: Millis,
}

impl Record {
    /// A lease taken by `holder` at `now`.
    pub fn taken(holder: Holder, now: Millis, duration: Millis) -> Self {
        Self {
            holder,
            since: now,
            renewed: now,
            duration,
        }
    }

    /// When it ends without a renewal.
    pub fn expires(&self) -> Millis {
        self.renewed.saturating_add(self.duration)
    }
}

/// Why a lease held by another is taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// Not renewed for its whole duration.
    Expired,
    /// An earlier attempt of the same workflow run and job.
    EarlierAttempt,
    /// A process on this host that no longer runs.
    ProcessEnded,
}

/// What to do with the record read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write our record (nobody holds it, or it is ours).
    Take,
    /// Write our record over a holder that is gone, and say so.
    TakeOver { previous: Record, gone: Gone },
    /// Another holds it, until `until` at the latest.
    Held { by: Record, until: Millis },
}

/// The decision for `me` at `now`, given the stored record; `alive` answers whether a process
/// id on this host still runs (asked only for a local holder on the same host).
pub fn decide(
    current: Option<&Record>,
    me: &Holder,
    now: Millis,
    alive: &dyn Fn(u32) -> bool,
) -> Decision {
    let Some(current) = current else {
        return Decision::Take;
    };
    if current.holder.id == me.id {
        return Decision::Take;
    }
    let gone = if now >= current.expires() {
        Some(Gone::Expired)
    } else if earlier_attempt(&current.holder.id, &me.id) {
        Some(Gone::EarlierAttempt)
    } else if ended_here(&current.holder.id, &me.id, alive) {
        Some(Gone::ProcessEnded)
    } else {
        None
    };
    match gone {
        Some(gone) => Decision::TakeOver {
            previous: current.clone(),
            gone,
        },
        None => Decision::Held {
            by: current.clone(),
            until: current.expires(),
        },
    }
}

/// `gha:RUN:JOB:ATTEMPT:…` of the same run and job, an older attempt.
fn earlier_attempt(theirs: &str, mine: &str) -> bool {
    let parse = |id: &str| -> Option<(String, String, u64)> {
        let mut parts = id.strip_prefix("gha:")?.splitn(4, ':');
        let run = parts.next()?.to_owned();
        let job = parts.next()?.to_owned();
        let attempt = parts.next()?.parse().ok()?;
        Some((run, job, attempt))
    };
    match (parse(theirs), parse(mine)) {
        (Some((run_a, job_a, a)), Some((run_b, job_b, b))) => {
            run_a == run_b && job_a == job_b && a < b
        }
        _ => false,
    }
}

/// `…:PID@HOST` on our host whose process no longer runs.
fn ended_here(theirs: &str, mine: &str, alive: &dyn Fn(u32) -> bool) -> bool {
    let parse = |id: &str| -> Option<(u32, String)> {
        let tail = id.rsplit(':').next()?;
        let (pid, host) = tail.split_once('@')?;
        Some((pid.parse().ok()?, host.to_owned()))
    };
    match (parse(theirs), parse(mine)) {
        (Some((pid, host)), Some((_, my_host))) => host == my_host && !alive(pid),
        _ => false,
    }
}

/// Whether a renewal at `now` keeps the lease: it must land before expiry, or another may
/// already have taken it over.
pub fn renewal_in_time(record: &Record, now: Millis) -> bool {
    now < record.expires()
}

/// The holder and its times, for a message: `run URL (actor octocat), since
/// 2026-12-01T04:30:00Z, last renewed 12s ago, expires in 48s`.
pub fn describe(record: &Record, now: Millis) -> String {
    let secs = |ms: Millis| ms.div_ceil(1000);
    let since = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(record.since),
    );
    let expiry = if now >= record.expires() {
        format!("expired {}s ago", secs(now - record.expires()))
    } else {
        format!(
            "expires in {}s unless renewed",
            secs(record.expires() - now)
        )
    };
    format!(
        "{} (actor {}), since {since}, last renewed {}s ago, {expiry}",
        record.holder.run,
        record.holder.actor,
        secs(now.saturating_sub(record.renewed)),
    )
}

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Expired => "it was not renewed for its whole duration",
            Self::EarlierAttempt => "it was an earlier attempt of this workflow run",
            Self::ProcessEnded => "its process on this host no longer runs",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(id: &str) -> Holder {
        Holder {
            id: id.into(),
            run: format!("run of {id}"),
            actor: "octocat".into(),
        }
    }

    /// Data-driven: (stored holder id, renewed, my id, now, alive?) → decision kind.
    #[test]
    fn decisions() {
        type Row<'a> = (Option<&'a str>, Millis, &'a str, Millis, bool, &'a str);
        let table: &[Row<'_>] = &[
            (None, 0, "local:1@a", 10, true, "take"),
            (Some("local:1@a"), 0, "local:1@a", 10, true, "take"),
            (Some("local:2@a"), 0, "local:1@a", 10, true, "held"),
            (Some("local:2@a"), 0, "local:1@a", 10, false, "over:process"),
            (Some("local:2@b"), 0, "local:1@a", 10, false, "held"),
            (
                Some("local:2@b"),
                0,
                "local:1@a",
                60_000,
                true,
                "over:expired",
            ),
            (Some("local:2@b"), 0, "local:1@a", 59_999, true, "held"),
            (
                Some("gha:7:deploy:1:9@r1"),
                0,
                "gha:7:deploy:2:9@r2",
                10,
                true,
                "over:attempt",
            ),
            (
                Some("gha:7:deploy:2:9@r1"),
                0,
                "gha:7:deploy:1:9@r2",
                10,
                true,
                "held",
            ),
            (
                Some("gha:7:other:1:9@r1"),
                0,
                "gha:7:deploy:2:9@r2",
                10,
                true,
                "held",
            ),
            (
                Some("gha:8:deploy:1:9@r1"),
                0,
                "gha:7:deploy:2:9@r2",
                10,
                true,
                "held",
            ),
            // A runner's process on another machine with the same host name is still judged
            // by the host name: runners are named uniquely.
            (
                Some("gha:8:deploy:1:9@r1"),
                0,
                "gha:7:deploy:1:10@r1",
                10,
                false,
                "over:process",
            ),
        ];
        for (i, (stored, renewed, me, now, alive, want)) in table.iter().enumerate() {
            let record = stored.map(|id| Record {
                holder: holder(id),
                since: 0,
                renewed: *renewed,
                duration: 60_000,
            });
            let got = match decide(record.as_ref(), &holder(me), *now, &|_| *alive) {
                Decision::Take => "take".to_owned(),
                Decision::Held { until, .. } => {
                    assert_eq!(until, 60_000, "row {i}");
                    "held".to_owned()
                }
                Decision::TakeOver { gone, .. } => match gone {
                    Gone::Expired => "over:expired",
                    Gone::EarlierAttempt => "over:attempt",
                    Gone::ProcessEnded => "over:process",
                }
                .to_owned(),
            };
            assert_eq!(got, *want, "row {i}: {stored:?} vs {me} at {now}");
        }
    }

    #[test]
    fn describes_the_holder() {
        let r = Record {
            holder: Holder {
                id: "gha:1:deploy:1:2@h".into(),
                run: "https://github.com/o/r/actions/runs/1".into(),
                actor: "octocat".into(),
            },
            since: 1_764_563_400_000,
            renewed: 1_764_563_460_000,
            duration: 60_000,
        };
        assert_eq!(
            describe(&r, 1_764_563_472_000),
            "https://github.com/o/r/actions/runs/1 (actor octocat), since 2025-12-01T04:30:00Z, last renewed 12s ago, expires in 48s unless renewed"
        );
        assert!(describe(&r, 1_764_563_530_000).ends_with("expired 10s ago"));
        assert!(renewal_in_time(&r, 1_764_563_519_999));
        assert!(!renewal_in_time(&r, 1_764_563_520_000));
    }
}
