//! The rollout engine on virtual time: one table row per step kind and outcome, transcripts of
//! the example's canary, and two laws checked by property tests: resuming a saved rollout
//! after any decision plays out as the uninterrupted run does, and an abort from any state
//! ends with all traffic on stable and the canary scaled down.

mod common;

use movieverse_deploy::config::NoDataPolicy;
use movieverse_deploy::rollout::analysis::{MetricSpec, Relative, Sample};
use movieverse_deploy::rollout::engine::{
    Analysis, Effect, Engine, Event, Input, Outcome, State, Status,
};
use movieverse_deploy::rollout::script::{Gate, Script, Step, Timing, Track};
use movieverse_deploy::rollout::simulate::{Scenario, Transcript, World, play};
use proptest::prelude::*;

const T0: u64 = 1_767_225_600_000;
const MIN: u64 = 60_000;

fn canary_script(weights: &[u8], pause: Option<Gate>, threshold: u32, deadline_min: u64) -> Script {
    let mut steps = vec![Step::Deploy(Track::Canary)];
    for w in weights {
        steps.extend([Step::SetWeight(*w), Step::Analyse]);
    }
    if let Some(g) = pause {
        steps.push(Step::Pause(g));
    }
    steps.extend([
        Step::Deploy(Track::Stable),
        Step::SetWeight(0),
        Step::ScaleDown(Track::Canary),
    ]);
    Script {
        strategy: "canary".into(),
        steps,
        on_abort: vec![Step::SetWeight(0), Step::ScaleDown(Track::Canary)],
        timing: Timing {
            initial_delay: 60,
            interval: 60,
            threshold,
            deadline: deadline_min * 60,
            step_deadline: 0,
        },
    }
}

fn metrics(policy: NoDataPolicy) -> Analysis {
    Analysis {
        metrics: vec![
            MetricSpec {
                name: "success-rate".into(),
                min: Some(99.0),
                max: None,
                relative: Relative::default(),
                on_no_data: policy,
            },
            MetricSpec {
                name: "p99-latency-ms".into(),
                min: None,
                max: Some(500.0),
                relative: Relative::default(),
                on_no_data: policy,
            },
        ],
        min_requests: 0,
    }
}

fn world(s: Scenario) -> World {
    World::new(s, 5 * 60, 60)
}

/// Effects in order, as `SetWeight(10)` / `Measure` / … with minutes since the start.
fn effects(t: &Transcript) -> Vec<String> {
    t.effects
        .iter()
        .map(|(at, e)| {
            let what = match e {
                Effect::Deploy(track) => format!("deploy {track}"),
                Effect::SetWeight(w) => format!("weight {w}"),
                Effect::Measure { .. } => "measure".into(),
                Effect::ScaleDown(track) => format!("scale down {track}"),
            };
            format!("{}m {what}", (at - T0) / MIN)
        })
        .collect()
}

fn outcome_word(state: &State) -> String {
    match state.outcome() {
        None => "waiting".into(),
        Some(Outcome::Promoted) => "promoted".into(),
        Some(Outcome::RolledBack { .. }) => "rolled back".into(),
        Some(Outcome::Cancelled) => "cancelled".into(),
        Some(Outcome::Failed { .. }) => "failed".into(),
    }
}

struct Row {
    name: &'static str,
    script: Script,
    analysis: Analysis,
    scenario: Scenario,
    /// Inputs fed when the play stops (at a gate), in order.
    then: Vec<Input>,
    outcome: &'static str,
    /// The effects, joined with ", ".
    effects: &'static str,
    /// Words the final reason must contain.
    reason: &'static str,
}

fn rows() -> Vec<Row> {
    use Scenario::{Failing, Healthy, NoData};
    vec![
        Row {
            name: "healthy canary: every weight, then promotion, weight 0, scale down",
            script: canary_script(&[10, 50], None, 3, 60),
            analysis: metrics(NoDataPolicy::Fail),
            scenario: Healthy,
            then: vec![],
            outcome: "promoted",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 2m weight 50, 3m measure, 3m deploy stable, 8m weight 0, 8m scale down canary",
            reason: "",
        },
        Row {
            name: "failing canary: rolled back when failed checks reach the threshold; traffic first",
            script: canary_script(&[10, 50], None, 3, 60),
            analysis: metrics(NoDataPolicy::Fail),
            scenario: Failing,
            then: vec![],
            outcome: "rolled back",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 3m measure, 4m measure, 4m weight 0, 4m scale down canary",
            reason: "3 failed checks reached the threshold of 3 at weight 10%",
        },
        Row {
            name: "no data fails by default",
            script: canary_script(&[10], None, 2, 60),
            analysis: metrics(NoDataPolicy::Fail),
            scenario: NoData,
            then: vec![],
            outcome: "rolled back",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 3m measure, 3m weight 0, 3m scale down canary",
            reason: "2 failed checks",
        },
        Row {
            name: "no data with wait: inconclusive until the deadline, which says so",
            script: canary_script(&[10], None, 2, 5),
            analysis: metrics(NoDataPolicy::Wait),
            scenario: NoData,
            then: vec![],
            outcome: "rolled back",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 3m measure, 4m measure, 5m weight 0, 5m scale down canary",
            reason: "not promoted within the deadline (5m); the last check was inconclusive",
        },
        Row {
            name: "checks that stay inconclusive end at the step's deadline, which says so",
            script: {
                let mut s = canary_script(&[10], None, 2, 0);
                s.timing.step_deadline = 180;
                s
            },
            analysis: metrics(NoDataPolicy::Wait),
            scenario: NoData,
            then: vec![],
            outcome: "rolled back",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 3m measure, 4m measure, 5m weight 0, 5m scale down canary",
            reason: "the checks did not pass within 3m of the first one; the last check was inconclusive",
        },
        Row {
            name: "no data skipped everywhere is no evidence: never promoted on nothing",
            script: canary_script(&[10], None, 2, 3),
            analysis: metrics(NoDataPolicy::Skip),
            scenario: NoData,
            then: vec![],
            outcome: "rolled back",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 3m weight 0, 3m scale down canary",
            reason: "not promoted within the deadline (3m)",
        },
        Row {
            name: "a manual gate stops the play; promote continues it",
            script: canary_script(&[10], Some(Gate::Manual), 2, 60),
            analysis: metrics(NoDataPolicy::Fail),
            scenario: Healthy,
            then: vec![Input::Promote { full: false }],
            outcome: "promoted",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 2m deploy stable, 7m weight 0, 7m scale down canary",
            reason: "",
        },
        Row {
            name: "a manual gate between two weights: promote continues to the next weight",
            script: {
                let mut s = canary_script(&[10, 50], None, 2, 60);
                s.steps.insert(3, Step::Pause(Gate::Manual));
                s
            },
            analysis: metrics(NoDataPolicy::Fail),
            scenario: Healthy,
            then: vec![Input::Promote { full: false }],
            outcome: "promoted",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 2m weight 50, 3m measure, 3m deploy stable, 8m weight 0, 8m scale down canary",
            reason: "",
        },
        Row {
            name: "a timed gate waits, then goes on by itself",
            script: canary_script(&[10], Some(Gate::Timed(600)), 2, 60),
            analysis: metrics(NoDataPolicy::Fail),
            scenario: Healthy,
            then: vec![],
            outcome: "promoted",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 12m deploy stable, 17m weight 0, 17m scale down canary",
            reason: "",
        },
        Row {
            name: "abort at a gate: traffic to stable, canary down",
            script: canary_script(&[10], Some(Gate::Manual), 2, 60),
            analysis: metrics(NoDataPolicy::Fail),
            scenario: Healthy,
            then: vec![Input::Abort {
                reason: "rollout abort".into(),
            }],
            outcome: "rolled back",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 2m weight 0, 2m scale down canary",
            reason: "rollout abort",
        },
        Row {
            name: "cancel at a gate: cancelled, traffic to stable first",
            script: canary_script(&[10], Some(Gate::Manual), 2, 60),
            analysis: metrics(NoDataPolicy::Fail),
            scenario: Healthy,
            then: vec![Input::Cancel],
            outcome: "cancelled",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 2m weight 0, 2m scale down canary",
            reason: "",
        },
        Row {
            name: "promote --full at a gate skips to promotion",
            script: canary_script(&[10], Some(Gate::Manual), 2, 60),
            analysis: metrics(NoDataPolicy::Fail),
            scenario: Healthy,
            then: vec![Input::Promote { full: true }],
            outcome: "promoted",
            effects: "0m deploy canary, 1m weight 10, 2m measure, 2m deploy stable, 7m weight 0, 7m scale down canary",
            reason: "",
        },
        Row {
            name: "rolling: one deploy of the stable workload",
            script: Script {
                strategy: "rolling".into(),
                steps: vec![Step::Deploy(Track::Stable)],
                on_abort: vec![],
                timing: Timing {
                    initial_delay: 0,
                    interval: 0,
                    threshold: 0,
                    deadline: 0,
                    step_deadline: 0,
                },
            },
            analysis: metrics(NoDataPolicy::Fail),
            scenario: Healthy,
            then: vec![],
            outcome: "promoted",
            effects: "0m deploy stable",
            reason: "",
        },
    ]
}

fn final_reason(state: &State) -> String {
    match state.outcome() {
        Some(Outcome::RolledBack { reason, failures }) => {
            format!("{reason} | {}", failures.join(" | "))
        }
        Some(Outcome::Failed { reason }) => reason.clone(),
        _ => String::new(),
    }
}

#[test]
fn engine_table() {
    for row in rows() {
        let engine = Engine {
            script: &row.script,
            analysis: &row.analysis,
        };
        let mut state = State::new(&row.script, "movieverse@abc", T0);
        let mut w = world(row.scenario);
        let mut t = play(&engine, &mut state, &mut w, Input::Start, T0, 1000);
        for input in row.then {
            let more = play(&engine, &mut state, &mut w, input, t.ended_at, 1000);
            t.effects.extend(more.effects);
            t.events.extend(more.events);
            t.ended_at = more.ended_at;
        }
        assert_eq!(outcome_word(&state), row.outcome, "{}", row.name);
        assert_eq!(effects(&t).join(", "), row.effects, "{}", row.name);
        assert!(
            final_reason(&state).contains(row.reason),
            "{}: {}",
            row.name,
            final_reason(&state)
        );
        if state.outcome() != Some(&Outcome::Promoted) {
            assert_eq!(w.weight, 0, "{}: traffic back on stable", row.name);
            assert!(
                !w.ready.contains(&Track::Canary),
                "{}: canary scaled down",
                row.name
            );
        }
    }
}

#[test]
fn a_failed_rollout_names_each_metric_with_value_bound_and_step() {
    let script = canary_script(&[10, 50], None, 2, 60);
    let analysis = metrics(NoDataPolicy::Fail);
    let engine = Engine {
        script: &script,
        analysis: &analysis,
    };
    let mut state = State::new(&script, "r", T0);
    play(
        &engine,
        &mut state,
        &mut world(Scenario::Failing),
        Input::Start,
        T0,
        1000,
    );
    let Some(Outcome::RolledBack { failures, .. }) = state.outcome() else {
        panic!("{:?}", state.status)
    };
    assert_eq!(
        failures,
        &[
            "success-rate = 95 (bound >= 99) at step 1 (weight 10%); failed in 2 checks",
            "p99-latency-ms = 650 (bound <= 500) at step 1 (weight 10%); failed in 2 checks",
        ]
    );
}

#[test]
fn a_failed_effect_before_promotion_rolls_back() {
    let script = canary_script(&[10], None, 2, 60);
    let analysis = metrics(NoDataPolicy::Fail);
    let engine = Engine {
        script: &script,
        analysis: &analysis,
    };
    let mut state = State::new(&script, "r", T0);
    let d = engine.step(&mut state, Input::Start, T0);
    assert_eq!(d.effects, vec![Effect::Deploy(Track::Canary)]);
    assert!(d.save.is_some(), "saved before the effect runs");
    let d = engine.step(&mut state, Input::Done(Err("pods crash".into())), T0 + MIN);
    assert_eq!(d.effects, vec![Effect::SetWeight(0)]);
    assert!(matches!(d.events[0], Event::Aborting { .. }));
    engine.step(&mut state, Input::Done(Ok(())), T0 + MIN);
    engine.step(&mut state, Input::Done(Ok(())), T0 + MIN);
    assert!(
        matches!(state.outcome(), Some(Outcome::RolledBack { reason, .. }) if reason.contains("pods crash")),
        "{:?}",
        state.status
    );
}

#[test]
fn every_decision_before_a_traffic_change_saves_first() {
    let script = canary_script(&[10, 25, 50], None, 2, 60);
    let analysis = metrics(NoDataPolicy::Fail);
    let engine = Engine {
        script: &script,
        analysis: &analysis,
    };
    let mut state = State::new(&script, "r", T0);
    let mut w = world(Scenario::Healthy);
    let mut input = Input::Start;
    let mut now = T0;
    for _ in 0..200 {
        let d = engine.step(&mut state, input, now);
        for e in &d.effects {
            if matches!(
                e,
                Effect::SetWeight(_) | Effect::Deploy(_) | Effect::ScaleDown(_)
            ) {
                let saved = d
                    .save
                    .as_ref()
                    .expect("a change is saved before it is made");
                assert_eq!(saved.pending, Some(*e), "the saved state knows the change");
            }
        }
        if let Some(e) = d.effects.first() {
            let t = play(
                &engine,
                &mut state.clone(),
                &mut w.clone(),
                Input::Resume,
                now,
                1,
            );
            assert_eq!(
                t.effects.first().map(|x| x.1),
                Some(*e),
                "a resume issues it again"
            );
            input = match e {
                Effect::Measure { .. } => Input::Measured {
                    readings: vec![Sample::Value(99.9).into(), Sample::Value(100.0).into()],
                    probes: Vec::new(),
                    requests: None,
                },
                Effect::SetWeight(x) => {
                    w.weight = *x;
                    Input::Done(Ok(()))
                }
                _ => Input::Done(Ok(())),
            };
        } else if let Some(at) = d.wake_at {
            now = at;
            input = Input::Tick;
        } else {
            break;
        }
    }
    assert_eq!(state.outcome(), Some(&Outcome::Promoted));
}

/// Consecutive repeats removed: a resume issues the outstanding effect once more, which is
/// idempotent by contract.
fn dedup(v: Vec<(u64, Effect)>) -> Vec<(u64, Effect)> {
    let mut out: Vec<(u64, Effect)> = Vec::new();
    for x in v {
        if out.last().is_some_and(|l| l.1 == x.1) {
            continue;
        }
        out.push(x);
    }
    out
}

fn scenario() -> impl Strategy<Value = Scenario> {
    prop_oneof![
        Just(Scenario::Healthy),
        Just(Scenario::Failing),
        Just(Scenario::NoData),
    ]
}

fn policy() -> impl Strategy<Value = NoDataPolicy> {
    prop_oneof![
        Just(NoDataPolicy::Fail),
        Just(NoDataPolicy::Skip),
        Just(NoDataPolicy::Wait),
    ]
}

fn gate() -> impl Strategy<Value = Option<Gate>> {
    prop_oneof![Just(None), Just(Some(Gate::Timed(300)))]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Cut the run after any decision, save the state as JSON (what the platform keeps), load
    /// it in a "new process" and resume: the same effects at the same times, the same outcome.
    #[test]
    fn resume_after_any_decision_equals_the_uninterrupted_run(
        s in scenario(), p in policy(), g in gate(), cut in 0usize..60, threshold in 1u32..4,
    ) {
        let script = canary_script(&[10, 25, 50], g, threshold, 30);
        let analysis = metrics(p);
        let engine = Engine { script: &script, analysis: &analysis };

        let mut whole = State::new(&script, "r", T0);
        let full = play(&engine, &mut whole, &mut world(s), Input::Start, T0, 10_000);

        let mut state = State::new(&script, "r", T0);
        let mut w = world(s);
        let first = play(&engine, &mut state, &mut w, Input::Start, T0, cut);
        let saved = serde_json::to_string(first.saves.last().unwrap_or(&state)).unwrap();
        let mut resumed: State = serde_json::from_str(&saved).unwrap();
        let second = play(&engine, &mut resumed, &mut w, Input::Resume, first.ended_at, 10_000);

        let mut joined = first.effects.clone();
        joined.extend(second.effects.clone());
        prop_assert_eq!(dedup(joined), dedup(full.effects.clone()));
        prop_assert_eq!(resumed.outcome(), whole.outcome());
    }

    /// Abort (or cancel) after any decision: every path ends with weight 0 and the canary
    /// scaled down, unless the rollout had already finished promoted.
    #[test]
    fn abort_from_any_state_ends_on_stable(
        s in scenario(), p in policy(), at in 0usize..60, cancel in any::<bool>(),
        pause in prop_oneof![Just(None), Just(Some(Gate::Manual)), Just(Some(Gate::Timed(300)))],
    ) {
        let script = canary_script(&[10, 25, 50], pause, 2, 30);
        let analysis = metrics(p);
        let engine = Engine { script: &script, analysis: &analysis };
        let mut state = State::new(&script, "r", T0);
        let mut w = world(s);
        let first = play(&engine, &mut state, &mut w, Input::Start, T0, at);
        let was_done = state.is_done();
        // Already going back (the threshold was reached): that rollback carries on.
        let was_aborting = matches!(state.status, Status::Aborting { .. });
        let input = if cancel { Input::Cancel } else { Input::Abort { reason: "rollout abort".into() } };
        play(&engine, &mut state, &mut w, input, first.ended_at, 10_000);
        // A second abort changes nothing.
        let again = play(&engine, &mut state, &mut w, Input::Cancel, first.ended_at, 10_000);
        prop_assert!(again.effects.is_empty());
        prop_assert!(state.is_done(), "{:?}", state.status);
        prop_assert_eq!(w.weight, 0);
        prop_assert!(!w.ready.contains(&Track::Canary));
        if !was_done && !was_aborting {
            let promoted_before = first.effects.iter().any(|(_, e)| *e == Effect::Deploy(Track::Stable))
                && !matches!(first.effects.last(), Some((_, Effect::Deploy(Track::Stable))));
            if !promoted_before {
                let expected = if cancel { "cancelled" } else { "rolled back" };
                prop_assert_eq!(outcome_word(&state), expected);
            }
        }
    }
}

/// Architecture Invariant: the engine's modules do no I/O and read no clock.
#[test]
fn the_rollout_core_is_pure() {
    let dir = common::root().join("src/rollout");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for word in [
            "tokio",
            "Instant",
            "SystemTime",
            "std::fs",
            "std::net",
            "std::process",
            "aws_",
            "kube",
            "octocrab",
            "reqwest",
            "println!",
            "eprintln!",
        ] {
            assert!(!code.contains(word), "{file} names `{word}`");
        }
    }
}

/// `deploy --simulate`: the example's canary on virtual time through the real binary, each
/// scenario's whole output (steps, checks, the comment) snapshotted.
#[test]
fn deploy_simulate_plays_the_example_canary() {
    for (scenario, code) in [("healthy", 0), ("failing", 1), ("no-data", 1)] {
        let r = common::run(
            &[
                "--config",
                common::example().to_str().unwrap(),
                "deploy",
                "--env",
                "production-k8s",
                "--simulate",
                "--scenario",
                scenario,
            ],
            &common::root(),
        );
        assert_eq!(r.code, code, "{scenario}: {}", r.dump());
        let stdout = r
            .stdout
            .lines()
            .map(|l| {
                if l.starts_with("Played ") {
                    l.split(" in ").next().unwrap_or(l).to_owned() + " in (wall time)."
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        insta::assert_snapshot!(format!("simulate_{scenario}"), stdout);
    }
    // Blue-green on ECS is CodeDeploy's (or ECS's) to play: said, exit 2.
    let r = common::run(
        &[
            "--config",
            common::example().to_str().unwrap(),
            "deploy",
            "--env",
            "production",
            "--simulate",
        ],
        &common::root(),
    );
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stderr.contains("CodeDeploy or ECS plays it"),
        "{}",
        r.dump()
    );
}
