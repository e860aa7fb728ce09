//! The deployment engine (driver + rolling state machine) against the deterministic simulator
//! on tokio's paused clock: a data-driven table of scenarios, each asserting the outcome, the
//! exit code, what the service runs afterwards, the API calls made and the virtual time taken.

use std::fmt::Write as _;
use std::time::Duration;

use movieverse_deploy::driver::{DriveOptions, Unit, drive};
use movieverse_deploy::platform::ServiceSpec;
use movieverse_deploy::platform::sim::{Fault, Health, Scenario, Sim};
use movieverse_deploy::strategy::rolling::{
    CancelPolicy, ErrorKind, Event, Failure, Outcome, Phase, Rolling, Settings,
};
use tokio_util::sync::CancellationToken;

const SVC: &str = "movieverse-app";
const V1: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-app:1";
const V2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-app:2";

fn spec(name: &str) -> ServiceSpec {
    ServiceSpec {
        cluster: "movieverse-staging".into(),
        name: name.into(),
        definition: serde_json::json!({"family": name}),
        service: serde_json::json!({}),
        scaling: Some(serde_json::json!({})),
        tags: vec![],
        manifests: vec![],
    }
}

fn settings() -> Settings {
    Settings {
        progress_deadline: Duration::from_mins(10),
        keep_revisions: 10,
        on_cancel: CancelPolicy::Rollback,
        no_wait: false,
    }
}

/// What a scenario ran into.
struct Ran {
    outcome: Outcome,
    events: Vec<(Duration, Event)>,
    sim: Sim,
    virtual_time: Duration,
}

/// Runs one service through the driver. `cancel_at` cancels when that phase starts.
async fn run(
    scenario: Scenario,
    settings: Settings,
    options: DriveOptions,
    cancel_at: Option<Phase>,
    target: Option<&str>,
) -> Ran {
    let sim = Sim::new([(SVC.to_owned(), scenario)]);
    let cancel = CancellationToken::new();
    let mut machine = Rolling::new(SVC, settings, 1_800_000_000);
    if let Some(t) = target {
        machine = machine.with_target(t);
    }
    let mut units = [Unit {
        spec: spec(SVC),
        machine,
    }];
    let mut events = Vec::new();
    let token = cancel.clone();
    let started = tokio::time::Instant::now();
    let mut on_event = |_: &str, at: Duration, e: &Event| {
        if let (Some(p), Event::Phase { phase }) = (cancel_at, e)
            && *phase == p
        {
            token.cancel();
        }
        events.push((at, e.clone()));
    };
    let outcome = drive(&sim, &mut units, &options, &cancel, &mut on_event)
        .await
        .remove(0);
    Ran {
        outcome,
        events,
        sim,
        virtual_time: started.elapsed(),
    }
}

fn calls(ran: &Ran, op: &str) -> u32 {
    ran.sim.calls().get(op).copied().unwrap_or(0)
}

/// One row of the table.
struct Row {
    name: &'static str,
    scenario: Scenario,
    settings: Settings,
    cancel_at: Option<Phase>,
    /// The exit code the outcome maps to.
    exit: u8,
    /// What the service runs afterwards.
    runs: &'static str,
    check: fn(&Ran),
}

fn row(
    name: &'static str,
    scenario: Scenario,
    exit: u8,
    runs: &'static str,
    check: fn(&Ran),
) -> Row {
    Row {
        name,
        scenario,
        settings: settings(),
        cancel_at: None,
        exit,
        runs,
        check,
    }
}

/// Every platform call of a rolling deploy, in the order a deploy makes them.
const OPERATIONS: [&str; 7] = [
    "DescribeServices",
    "DescribeTaskDefinition",
    "RegisterTaskDefinition",
    "UpdateService",
    "RegisterScalableTarget",
    "PutScalingPolicy",
    "ListTaskDefinitions",
];

fn faults_everywhere(kind: ErrorKind, times: u32) -> Vec<Fault> {
    OPERATIONS
        .into_iter()
        .map(|operation| Fault {
            operation,
            kind,
            times,
        })
        .collect()
}

fn table() -> Vec<Row> {
    vec![
        row("success", Scenario::default(), 0, V2, |r| {
            assert!(
                matches!(r.outcome, Outcome::Succeeded { waited: true, .. }),
                "{:?}",
                r.outcome
            );
            assert_eq!(calls(r, "RegisterTaskDefinition"), 1);
            assert_eq!(calls(r, "UpdateService"), 1);
            assert_eq!(calls(r, "PutScalingPolicy"), 1);
            // 2 tasks × 60 s, seen within one 5 s poll.
            assert!(
                r.virtual_time >= Duration::from_mins(2)
                    && r.virtual_time <= Duration::from_secs(125),
                "{:?}",
                r.virtual_time
            );
        }),
        row(
            "slow start (5 min per task: 10 min in all, each under the deadline)",
            Scenario {
                per_task: Duration::from_mins(5),
                ..Scenario::default()
            },
            0,
            V2,
            |r| {
                assert!(
                    matches!(r.outcome, Outcome::Succeeded { .. }),
                    "{:?}",
                    r.outcome
                );
                assert!(
                    r.virtual_time >= Duration::from_mins(10),
                    "{:?}",
                    r.virtual_time
                );
            },
        ),
        row(
            "tasks never become healthy (no circuit breaker): the progress deadline fails it",
            Scenario {
                health: Health::CrashLoop {
                    circuit_breaker: false,
                },
                ..Scenario::default()
            },
            1,
            V2,
            |r| {
                let Outcome::Failed {
                    failure: Failure::DeadlineExceeded { after: 600 },
                    details,
                } = &r.outcome
                else {
                    panic!("{:?}", r.outcome)
                };
                assert!(
                    details
                        .iter()
                        .any(|d| d.contains("Essential container in task exited")
                            && d.contains("exit 1")),
                    "{details:?}"
                );
                assert!(
                    details[0].starts_with("last seen: 0 running"),
                    "{details:?}"
                );
            },
        ),
        row(
            "circuit breaker rolls back",
            Scenario {
                health: Health::CrashLoop {
                    circuit_breaker: true,
                },
                ..Scenario::default()
            },
            1,
            V1,
            |r| {
                let Outcome::Failed {
                    failure: Failure::RolledBack { reason },
                    details,
                } = &r.outcome
                else {
                    panic!("{:?}", r.outcome)
                };
                assert!(reason.contains("circuit breaker"), "{reason}");
                assert!(
                    details
                        .iter()
                        .any(|d| d.contains("deployment failed: tasks failed to start")),
                    "{details:?}"
                );
                assert!(
                    details
                        .iter()
                        .any(|d| d.contains("EssentialContainerExited")),
                    "{details:?}"
                );
                // Detected within one poll of the failure (3 × 60 s).
                assert!(
                    r.virtual_time <= Duration::from_secs(185),
                    "{:?}",
                    r.virtual_time
                );
            },
        ),
        row(
            "deadline exceeded (tasks stay pending)",
            Scenario {
                health: Health::Stuck,
                ..Scenario::default()
            },
            1,
            V2,
            |r| {
                let Outcome::Failed {
                    failure: Failure::DeadlineExceeded { .. },
                    details,
                } = &r.outcome
                else {
                    panic!("{:?}", r.outcome)
                };
                assert!(
                    details[0].contains("0 running, 1 pending of 2 desired"),
                    "{details:?}"
                );
                assert!(
                    r.virtual_time >= Duration::from_mins(10)
                        && r.virtual_time <= Duration::from_secs(606),
                    "{:?}",
                    r.virtual_time
                );
            },
        ),
        row(
            "throttling on every API call: retried, succeeds",
            Scenario {
                faults: faults_everywhere(ErrorKind::Throttled, 2),
                ..Scenario::default()
            },
            0,
            V2,
            |r| {
                assert!(
                    matches!(r.outcome, Outcome::Succeeded { .. }),
                    "{:?}",
                    r.outcome
                );
                assert_eq!(
                    calls(r, "RegisterTaskDefinition"),
                    3,
                    "two throttled, then accepted"
                );
                assert_eq!(calls(r, "UpdateService"), 3);
            },
        ),
        row(
            "5xx on every API call: retried, succeeds",
            Scenario {
                faults: faults_everywhere(ErrorKind::Transient, 3),
                ..Scenario::default()
            },
            0,
            V2,
            |r| {
                assert!(
                    matches!(r.outcome, Outcome::Succeeded { .. }),
                    "{:?}",
                    r.outcome
                );
                assert_eq!(calls(r, "UpdateService"), 4);
            },
        ),
        row(
            "permission denied on register: exit 3, the service untouched",
            Scenario {
                faults: vec![Fault {
                    operation: "RegisterTaskDefinition",
                    kind: ErrorKind::Permission,
                    times: 99,
                }],
                ..Scenario::default()
            },
            3,
            V1,
            |r| {
                assert!(
                    matches!(&r.outcome, Outcome::Failed { failure: Failure::Platform(e), .. } if e.kind == ErrorKind::Permission),
                    "{:?}",
                    r.outcome
                );
                assert_eq!(
                    calls(r, "RegisterTaskDefinition"),
                    1,
                    "a permission error is not retried"
                );
                assert_eq!(calls(r, "UpdateService"), 0);
            },
        ),
        row(
            "permission denied on update: exit 3, the service untouched",
            Scenario {
                faults: vec![Fault {
                    operation: "UpdateService",
                    kind: ErrorKind::Permission,
                    times: 99,
                }],
                ..Scenario::default()
            },
            3,
            V1,
            |r| {
                assert!(
                    matches!(&r.outcome, Outcome::Failed { failure: Failure::Platform(e), .. } if e.kind == ErrorKind::Permission),
                    "{:?}",
                    r.outcome
                );
                assert_eq!(calls(r, "PutScalingPolicy"), 0);
            },
        ),
        row(
            "rerun with the same input: no change, nothing registered, no deployment",
            Scenario {
                definition_changed: false,
                ..Scenario::default()
            },
            0,
            V1,
            |r| {
                assert!(
                    matches!(r.outcome, Outcome::NoChange { .. }),
                    "{:?}",
                    r.outcome
                );
                assert_eq!(
                    calls(r, "RegisterTaskDefinition")
                        + calls(r, "UpdateService")
                        + calls(r, "PutScalingPolicy"),
                    0
                );
                assert!(r.events.iter().any(|(_, e)| *e == Event::NoChange));
            },
        ),
        row(
            "settings changed only: the service is updated, no new revision",
            Scenario {
                definition_changed: false,
                settings_changed: true,
                ..Scenario::default()
            },
            0,
            V1,
            |r| {
                assert!(
                    matches!(r.outcome, Outcome::Succeeded { .. }),
                    "{:?}",
                    r.outcome
                );
                assert_eq!(
                    (
                        calls(r, "RegisterTaskDefinition"),
                        calls(r, "UpdateService")
                    ),
                    (0, 1)
                );
            },
        ),
        Row {
            name: "no-wait: succeeds once started",
            settings: Settings {
                no_wait: true,
                ..settings()
            },
            ..row("", Scenario::default(), 0, V2, |r| {
                assert!(
                    matches!(r.outcome, Outcome::Succeeded { waited: false, .. }),
                    "{:?}",
                    r.outcome
                );
                assert_eq!(r.virtual_time, Duration::ZERO);
            })
        },
        Row {
            name: "cancel while preparing: nothing changed",
            cancel_at: Some(Phase::Preparing),
            ..row("", Scenario::default(), 130, V1, |r| {
                assert_eq!(r.outcome, Outcome::Cancelled { reverted_to: None });
                assert_eq!(calls(r, "UpdateService"), 0);
            })
        },
        Row {
            name: "cancel while registering: nothing changed",
            cancel_at: Some(Phase::Registering),
            ..row("", Scenario::default(), 130, V1, |r| {
                assert_eq!(r.outcome, Outcome::Cancelled { reverted_to: None });
                assert_eq!(calls(r, "UpdateService"), 0);
            })
        },
        Row {
            name: "cancel while updating: put back on the previous revision",
            cancel_at: Some(Phase::Updating),
            ..row("", Scenario::default(), 130, V1, |r| {
                assert_eq!(
                    r.outcome,
                    Outcome::Cancelled {
                        reverted_to: Some(V1.into())
                    }
                );
            })
        },
        Row {
            name: "cancel while rolling out: put back on the previous revision",
            cancel_at: Some(Phase::RollingOut),
            ..row("", Scenario::default(), 130, V1, |r| {
                assert_eq!(
                    r.outcome,
                    Outcome::Cancelled {
                        reverted_to: Some(V1.into())
                    }
                );
                assert_eq!(
                    calls(r, "UpdateService"),
                    2,
                    "the deploy's update, then the revert"
                );
            })
        },
        Row {
            name: "cancel while rolling out, policy leave: left as it is",
            cancel_at: Some(Phase::RollingOut),
            settings: Settings {
                on_cancel: CancelPolicy::Leave,
                ..settings()
            },
            ..row("", Scenario::default(), 130, V2, |r| {
                assert_eq!(r.outcome, Outcome::Cancelled { reverted_to: None });
                assert_eq!(calls(r, "UpdateService"), 1);
            })
        },
        Row {
            name: "cancel while diagnosing a failure: the failure stands",
            cancel_at: Some(Phase::Diagnosing),
            ..row(
                "",
                Scenario {
                    health: Health::CrashLoop {
                        circuit_breaker: true,
                    },
                    ..Scenario::default()
                },
                1,
                V1,
                |r| {
                    assert!(
                        matches!(
                            r.outcome,
                            Outcome::Failed {
                                failure: Failure::RolledBack { .. },
                                ..
                            }
                        ),
                        "{:?}",
                        r.outcome
                    );
                },
            )
        },
        row(
            "the platform gives up without rolling back (Kubernetes ProgressDeadlineExceeded)",
            Scenario {
                health: Health::Stalls {
                    after: Duration::from_mins(5),
                },
                ..Scenario::default()
            },
            1,
            V2,
            |r| {
                let Outcome::Failed {
                    failure: Failure::Stalled { reason },
                    details,
                } = &r.outcome
                else {
                    panic!("{:?}", r.outcome)
                };
                assert!(reason.starts_with("ProgressDeadlineExceeded"), "{reason}");
                assert!(
                    details.iter().any(|d| d.contains("exit 1")),
                    "the crashing task's reason: {details:?}"
                );
                // The platform's verdict, seen within one poll; nothing reverted it.
                assert!(
                    r.virtual_time >= Duration::from_mins(5)
                        && r.virtual_time <= Duration::from_secs(305),
                    "{:?}",
                    r.virtual_time
                );
                assert_eq!(calls(r, "UpdateService"), 1);
            },
        ),
        row(
            "first deploy of a service that does not exist yet",
            Scenario {
                fresh: true,
                ..Scenario::default()
            },
            0,
            "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-app:1",
            |r| {
                assert!(
                    matches!(r.outcome, Outcome::Succeeded { waited: true, .. }),
                    "{:?}",
                    r.outcome
                );
            },
        ),
        Row {
            name: "first deploy cancelled while rolling out: nothing to put back",
            cancel_at: Some(Phase::RollingOut),
            ..row(
                "",
                Scenario {
                    fresh: true,
                    ..Scenario::default()
                },
                130,
                "arn:aws:ecs:us-east-1:123456789012:task-definition/movieverse-app:1",
                |r| {
                    assert_eq!(r.outcome, Outcome::Cancelled { reverted_to: None });
                    assert_eq!(calls(r, "UpdateService"), 1, "no revert to nothing");
                },
            )
        },
        Row {
            name: "cancel while cleaning up: the deploy succeeded",
            cancel_at: Some(Phase::CleaningUp),
            ..row("", Scenario::default(), 0, V2, |r| {
                assert!(
                    matches!(r.outcome, Outcome::Succeeded { .. }),
                    "{:?}",
                    r.outcome
                );
            })
        },
    ]
}

#[tokio::test(start_paused = true)]
async fn scenarios() {
    for row in table() {
        let ran = run(
            row.scenario,
            row.settings,
            DriveOptions::default(),
            row.cancel_at,
            None,
        )
        .await;
        assert_eq!(
            ran.outcome.exit_code(),
            row.exit,
            "{}: {:?}",
            row.name,
            ran.outcome
        );
        assert_eq!(
            ran.sim.revision(SVC),
            row.runs,
            "{}: what the service runs",
            row.name
        );
        (row.check)(&ran);
        // Every run ends with exactly one Finished event.
        assert_eq!(
            ran.events
                .iter()
                .filter(|(_, e)| matches!(e, Event::Finished { .. }))
                .count(),
            1,
            "{}",
            row.name
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_overall_timeout_fails_the_deploy() {
    let options = DriveOptions {
        timeout: Some(Duration::from_secs(90)),
        ..DriveOptions::default()
    };
    let ran = run(Scenario::default(), settings(), options, None, None).await;
    assert!(
        matches!(
            ran.outcome,
            Outcome::Failed {
                failure: Failure::DeadlineExceeded { .. },
                ..
            }
        ),
        "{:?}",
        ran.outcome
    );
    assert!(
        ran.virtual_time >= Duration::from_secs(90) && ran.virtual_time < Duration::from_secs(96),
        "{:?}",
        ran.virtual_time
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_to_a_target_revision_waits_for_it() {
    let scenario = Scenario {
        definition_changed: false,
        ..Scenario::default()
    };
    let sim_target = V1;
    // The service runs V1; "roll back" to V1 is no change.
    let ran = run(
        scenario.clone(),
        settings(),
        DriveOptions::default(),
        None,
        Some(sim_target),
    )
    .await;
    assert!(
        matches!(ran.outcome, Outcome::NoChange { .. }),
        "{:?}",
        ran.outcome
    );
    // To another revision: an update and a wait, and no registration.
    let ran = run(
        scenario,
        settings(),
        DriveOptions::default(),
        None,
        Some(V2),
    )
    .await;
    assert!(
        matches!(ran.outcome, Outcome::Succeeded { .. }),
        "{:?}",
        ran.outcome
    );
    assert_eq!(
        (
            calls(&ran, "RegisterTaskDefinition"),
            calls(&ran, "UpdateService")
        ),
        (0, 1)
    );
    assert_eq!(ran.sim.revision(SVC), V2);
}

#[tokio::test(start_paused = true)]
async fn old_revisions_are_deregistered_keeping_the_newest() {
    let ran = run(
        Scenario::default(),
        Settings {
            keep_revisions: 1,
            ..settings()
        },
        DriveOptions::default(),
        None,
        None,
    )
    .await;
    assert!(
        matches!(ran.outcome, Outcome::Succeeded { .. }),
        "{:?}",
        ran.outcome
    );
    assert_eq!(ran.sim.revisions(SVC), [V2]);
    assert_eq!(calls(&ran, "DeregisterTaskDefinition"), 1);
}

#[tokio::test(start_paused = true)]
async fn many_services_are_polled_in_batches_of_ten() {
    let names: Vec<String> = (0..25).map(|i| format!("svc-{i:02}")).collect();
    let sim = Sim::new(names.iter().map(|n| (n.clone(), Scenario::default())));
    let mut units: Vec<Unit> = names
        .iter()
        .map(|n| Unit {
            spec: spec(n),
            machine: Rolling::new(n.clone(), settings(), 1_800_000_000),
        })
        .collect();
    let before = sim.calls();
    let outcomes = drive(
        &sim,
        &mut units,
        &DriveOptions::default(),
        &CancellationToken::new(),
        &mut |_, _, _| {},
    )
    .await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Succeeded { .. })),
        "{outcomes:?}"
    );
    assert!(before.is_empty());
    let describes = sim.calls()["DescribeServices"];
    // 25 prepares, then ceil(25/10) = 3 calls per poll for the 120 s rollout plus a final
    // describe per service for clean-up-free runs: at most 3 per 5-second poll.
    let polls = 120 / 5 + 1;
    assert!(
        describes <= 25 + 3 * polls,
        "{describes} DescribeServices calls"
    );
}

/// #14's fault matrix for the rolling strategy (ECS and Kubernetes play the same machine),
/// on the simulator: every platform call × each fault class, once as a blip (the first two
/// calls fail) and once for good. A timeout and a dropped connection are the same class as a
/// 5xx by the time they reach the machine (`platform::ecs::classify` and the Kubernetes
/// `classify` map them to `Transient`); credentials that expired without a renewal are
/// `Permission`. ARCHITECTURE.md carries the table this test produces, between its markers:
/// the test fails when they differ, and `MVD_UPDATE_DOCS=1` writes it there.
#[tokio::test(start_paused = true)]
async fn fault_matrix_rolling() {
    let faults: [(&str, ErrorKind, u32); 5] = [
        ("throttled twice", ErrorKind::Throttled, 2),
        ("5xx / timeout / reset twice", ErrorKind::Transient, 2),
        ("throttled for good", ErrorKind::Throttled, 99),
        ("5xx / timeout / reset for good", ErrorKind::Transient, 99),
        ("expired static credentials", ErrorKind::Permission, 99),
    ];
    let mut table = format!(
        "| call | {} |\n|---|{}\n",
        faults.map(|f| f.0).join(" | "),
        "---|".repeat(faults.len())
    );
    let (mut survived, mut cells) = (0, 0);
    for op in OPERATIONS {
        let mut line = format!("| `{op}` |");
        for (_, kind, times) in faults {
            let ran = run(
                Scenario {
                    faults: vec![Fault {
                        operation: op,
                        kind,
                        times,
                    }],
                    ..Scenario::default()
                },
                settings(),
                DriveOptions::default(),
                None,
                None,
            )
            .await;
            let runs = ran.sim.revision(SVC);
            let cell = match &ran.outcome {
                Outcome::Succeeded { .. } if runs == V2 => "completed".to_owned(),
                o => {
                    let code = o.exit_code();
                    let reverted = ran.events.iter().any(|(_, e)| {
                        matches!(
                            e,
                            Event::Phase {
                                phase: Phase::Reverting
                            }
                        )
                    });
                    if runs == V1 && reverted {
                        format!("failed safe: put back on the previous revision, exit {code}")
                    } else if runs == V1 {
                        format!("failed safe: nothing changed, exit {code}")
                    } else {
                        format!("FAILED, left on {runs}, exit {code}")
                    }
                }
            };
            // Every cell must end completed or failed safe.
            assert!(
                cell == "completed" || cell.starts_with("failed safe"),
                "{op} × {kind:?}×{times}: {cell}: {:?}",
                ran.outcome
            );
            cells += 1;
            survived += 1;
            let _ = write!(line, " {cell} |");
        }
        table.push_str(&line);
        table.push('\n');
    }
    let _ = write!(
        table,
        "\n{cells} faults injected, {survived} completed or failed safe (`cargo test --test engine fault_matrix_rolling`).\n"
    );
    let path = common_root().join("ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = (
        "<!-- fault-matrix rolling -->\n",
        "<!-- /fault-matrix rolling -->",
    );
    let at = doc
        .find(begin)
        .expect("ARCHITECTURE.md has the matrix's markers")
        + begin.len();
    let to = doc[at..].find(end).expect("the end marker") + at;
    if std::env::var_os("MVD_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &doc[..at], &doc[to..])).unwrap();
    } else {
        assert_eq!(
            doc[at..to],
            table,
            "ARCHITECTURE.md's fault matrix is stale: MVD_UPDATE_DOCS=1 cargo test --test engine fault_matrix_rolling"
        );
    }
}

fn common_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
