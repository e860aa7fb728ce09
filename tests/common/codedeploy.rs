//! A scenario proxy in front of moto for `CodeDeploy` and ECS native blue/green. moto
//! creates, reads and lists `CodeDeploy` deployments, but leaves each one `Created` and
//! answers 500 to `StopDeployment` and `ContinueDeployment`; it has no service deployments at
//! all (and drops a service's `strategy`, hooks and `advancedConfiguration`). The proxy
//! forwards every request to moto. For `CodeDeploy` it moves each deployment's status over
//! time by the [`Plan`] the test chose, answers Stop and Continue as `CodeDeploy` does, and
//! serves the rollback deployments `CodeDeploy` would start (`<id>-rb`). For ECS native, an
//! `UpdateService` with `strategy: BLUE_GREEN` starts a service deployment that moves by the
//! same plan (see [`Native`]), read with `ListServiceDeployments` and
//! `DescribeServiceDeployments`, answered at its PAUSE hook with `ContinueServiceDeployment`
//! and stopped with `StopServiceDeployment`. An `UpdateService` on the rolling path (the
//! services of a canary on ECS) is seen rolling: moto keeps the deployment it created the
//! service with, the proxy shows a PRIMARY deployment of the new task definition that
//! completes a [`STEP`] later (see [`Roll`]). Every `ModifyRule` and `ModifyListener` is
//! followed by a read of the same rule or listener from moto, whose forward weights are kept
//! ([`Proxy::weights`]). moto drops a service's `deploymentConfiguration` and health check
//! grace period: the proxy keeps them from `CreateService` and `UpdateService` and shows them.
//! The real binary talks to it over HTTP on loopback, as it would to AWS.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How a deployment moves. Every plan starts `Created`, then `InProgress` after
/// [`STEP`]; the plan says what comes after `2 × STEP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Succeed,
    /// `Failed` (green unhealthy), and `CodeDeploy` rolls it back.
    Fail,
    /// `Ready` until `ContinueDeployment`, then `Succeeded`.
    Gate,
    /// `InProgress` for ever (until stopped).
    Hang,
    /// `Failed` because a `CloudWatch` alarm of the group fired, and rolled back.
    Alarm,
    /// `Ready` until `ContinueDeployment`, then `InProgress` for ever: the termination wait.
    Bake,
    /// `Ready` (native: held at the PAUSE hook) until continued, then the termination wait
    /// (native: the bake) for [`WAIT_READS`] reads of the deployment, then `Succeeded`: a
    /// wait its clock moves only as it is read, so it outlasts any outage of the reads.
    Wait,
}

/// How many reads of a deployment the termination wait of [`Plan::Wait`] lasts.
pub const WAIT_READS: u32 = 3;

pub const STEP: Duration = Duration::from_millis(300);

/// The role ECS native blue/green assumes to move the listener rules, in the tests' config.
pub const ROLE: &str = "arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers";

/// `deploy --env production`, polling every second.
pub const DEPLOY: &[&str] = &["deploy", "--env", "production", "--poll-interval", "1s"];

/// The real binary in `dir` (CI), its AWS SDK pointed at `proxy`.
pub fn mvd_cmd(dir: &std::path::Path, proxy: &Proxy, args: &[&str]) -> std::process::Command {
    let mut cmd = super::bin_std();
    cmd.current_dir(dir).env("CI", "true");
    for (k, v) in proxy.env() {
        cmd.env(k, v);
    }
    cmd.args(args);
    cmd
}

/// A kill table's rerun of a blue-green that the platform plays on without us (`CodeDeploy`,
/// ECS native): after the kill at `step`, `deploy` again in `dir` through `proxy`. With no
/// deployment in flight (`in_flight` is `None`) the proxy's waits are ended and the rerun
/// deploys it all (exit 0). With one in flight, the rerun is refused (exit 1) and names it
/// (its stderr holds `in_flight`), no second one starts (`started()` stays 1), and `rollout
/// resume`, once it says `picked_up` (the proxy's waits ended then), follows it to the end
/// (exit 0). The words of the two runs, for the table.
pub fn rerun_after_kill(
    step: u32,
    dir: &std::path::Path,
    proxy: &Proxy,
    in_flight: Option<&str>,
    started: impl Fn() -> usize,
    picked_up: &str,
) -> [String; 2] {
    let Some(name) = in_flight else {
        // Nothing to refuse: the rerun plays it all.
        proxy.end_waits();
        let again = super::Run::from(&mvd_cmd(dir, proxy, DEPLOY).output().unwrap());
        assert_eq!(
            again.code,
            0,
            "killed at step {step}, run again:\n{}",
            again.dump()
        );
        return ["deploys: promoted".to_owned(), "-".to_owned()];
    };
    let again = super::Run::from(&mvd_cmd(dir, proxy, DEPLOY).output().unwrap());
    assert_eq!(
        again.code,
        1,
        "killed at step {step}, run again:\n{}",
        again.dump()
    );
    assert!(
        again
            .stderr
            .contains("a second blue-green does not start over it")
            && again.stderr.contains(name),
        "killed at step {step}: the rerun names the deployment in flight:\n{}",
        again.dump()
    );
    assert_eq!(started(), 1, "{}", again.dump());
    // The wait ends once `rollout resume` has picked the deployment up.
    let mut resume = mvd_cmd(dir, proxy, &rollout_args("resume"));
    let running = super::run_until(&mut resume, picked_up);
    proxy.end_waits();
    let (code, seen) = running.wait();
    assert_eq!(
        code,
        Some(0),
        "killed at step {step}, `rollout resume`:\n{seen}"
    );
    [
        "refused, exit 1, names the deployment".to_owned(),
        "promoted".to_owned(),
    ]
}

/// `rollout ACTION --env production` (polling every second when it waits).
pub fn rollout_args(action: &str) -> Vec<&str> {
    let mut args = vec!["rollout", action, "--env", "production"];
    if action != "status" {
        args.extend(["--poll-interval", "1s"]);
    }
    args
}

/// Raises the checks' `threshold` in `dir`/deploy.yml from 2 to 50: failing checks then go
/// on for a long while, so a test can interrupt the run while they do.
pub fn checks_that_keep_failing(dir: &std::path::Path) {
    let path = dir.join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("          threshold: 2\n"), "{text}");
    let text = text.replacen("          threshold: 2\n", "          threshold: 50\n", 1);
    std::fs::write(&path, text).unwrap();
}

/// Removes the example production environment's checks of green from `dir`/deploy.yml:
/// their URL is not on this machine, and a test adds its own.
pub fn without_checks(dir: &std::path::Path) {
    let path = dir.join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text
        .find("        analysis:\n          initial_delay: 30s\n")
        .unwrap();
    let end = text[at..].find("    env:\n").unwrap() + at;
    std::fs::write(&path, format!("{}{}", &text[..at], &text[end..])).unwrap();
}

/// Rewrites the example's production environment in `dir`/deploy.yml (written by
/// `Moto::staging_config`) to ECS native blue/green on `world`'s load balancer (from
/// `moto_world.py native`; the example's ARNs where it has none), without its checks, with
/// `extra` lines added to the strategy (a gate, checks).
pub fn native_config(dir: &std::path::Path, world: &Value, extra: &str) {
    without_checks(dir);
    let path = dir.join("deploy.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let from = text.find("        application: movieverse\n").unwrap();
    let to = text.find("        termination_wait: 5m\n").unwrap();
    let end = text[to..].find("    env:\n").unwrap() + to;
    let native = format!(
        "        controller: ecs\n        green_target_group: {}\n        prod_listener_rule: {}\n        test_listener_rule: {}\n        infrastructure_role: {ROLE}\n        test_port: 8080\n",
        world["green"].as_str().unwrap_or("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-green/0123456789abcdef"),
        world["prod_rule"].as_str().unwrap_or("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/1111111111111111/0000000000000001"),
        world["test_rule"].as_str().unwrap_or("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/8080808080808080/0000000000000002"),
    );
    let text = format!(
        "{}{native}{}{extra}{}",
        &text[..from],
        &text[to..end],
        &text[end..]
    )
    .replacen(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-blue/0123456789abcdef",
        world["blue"].as_str().unwrap(),
        1,
    );
    std::fs::write(&path, text).unwrap();
}

struct Tracked {
    plan: Plan,
    since: Instant,
    continued: Option<Instant>,
    /// When it was stopped, and whether with rollback.
    stopped: Option<(Instant, bool)>,
    /// Reads (`GetDeployment`) served since it was continued.
    reads_since_continue: u32,
}

impl Tracked {
    fn new(plan: Plan) -> Self {
        Self {
            plan,
            since: Instant::now(),
            continued: None,
            stopped: None,
            reads_since_continue: 0,
        }
    }

    /// Status, errorInformation and rollbackInfo now.
    fn state(&self, id: &str) -> (&'static str, Value, Value) {
        let none = || (json!({}), json!({}));
        if let Some((at, rollback)) = self.stopped
            && at.elapsed() >= STEP
        {
            return (
                "Stopped",
                json!({"code": "MANUAL_STOP", "message": "The deployment was stopped by a user request."}),
                if rollback {
                    json!({"rollbackDeploymentId": format!("{id}-rb"), "rollbackMessage": format!("Deployment {id} was rolled back by {id}-rb")})
                } else {
                    json!({})
                },
            );
        }
        let t = self.since.elapsed();
        let (status, (error, rollback)) = if t < STEP {
            ("Created", none())
        } else if t < 2 * STEP || self.stopped.is_some() {
            ("InProgress", none())
        } else {
            match self.plan {
                Plan::Succeed => ("Succeeded", none()),
                Plan::Hang => ("InProgress", none()),
                Plan::Fail => (
                    "Failed",
                    (
                        json!({"code": "HEALTH_CONSTRAINTS", "message": "The ECS task set movieverse-green failed its target group health checks"}),
                        json!({"rollbackDeploymentId": format!("{id}-rb"), "rollbackMessage": format!("Deployment {id} was rolled back by {id}-rb")}),
                    ),
                ),
                Plan::Gate => match self.continued {
                    None => ("Ready", none()),
                    Some(c) if c.elapsed() < STEP => ("InProgress", none()),
                    Some(_) => ("Succeeded", none()),
                },
                Plan::Bake => match self.continued {
                    None => ("Ready", none()),
                    Some(_) => ("InProgress", none()),
                },
                Plan::Wait => match self.continued {
                    None => ("Ready", none()),
                    Some(_) if self.reads_since_continue < WAIT_READS => ("InProgress", none()),
                    Some(_) => ("Succeeded", none()),
                },
                Plan::Alarm => (
                    "Failed",
                    (
                        json!({"code": "ALARM_ACTIVE", "message": "One or more alarms have been activated according to the Amazon CloudWatch metric you selected, and the affected deployments have been stopped. Activated alarms: <movieverse-production-5xx>"}),
                        json!({"rollbackDeploymentId": format!("{id}-rb"), "rollbackMessage": format!("Deployment {id} was rolled back by {id}-rb")}),
                    ),
                ),
            }
        };
        (status, error, rollback)
    }
}

/// An ECS native service deployment: `PENDING`, then `IN_PROGRESS` (`SCALE_UP`) after
/// [`STEP`]; after `2 × STEP`, by the plan:
/// - with a PAUSE hook in the update, `POST_TEST_TRAFFIC_SHIFT` with the hook
///   `AWAITING_ACTION` until it is answered (any plan but `Fail` and `Hang`);
/// - then `PRODUCTION_TRAFFIC_SHIFT` for a step, `BAKE_TIME` for a step (for ever with
///   `Bake`), `SUCCESSFUL`; with `Alarm`, rolled back instead, the alarm triggered;
/// - `Fail`: rolled back by the circuit breaker (3 failed tasks); `Hang`: `SCALE_UP` for ever.
///
/// A ROLLBACK answer or a stop: `ROLLBACK_REQUESTED`, `ROLLBACK_IN_PROGRESS` a step later,
/// `ROLLBACK_SUCCESSFUL` a step after that.
struct Native {
    arn: String,
    cluster: String,
    service: String,
    plan: Plan,
    since: Instant,
    created_at: f64,
    hook: bool,
    continued: Option<Instant>,
    /// When a rollback was asked for, and why.
    rollback: Option<(Instant, &'static str)>,
    /// ECS native CANARY or LINEAR: its shifts (see [`Shifts`]).
    shifts: Option<Shifts>,
    /// Reads (`DescribeServiceDeployments`) served since it was continued.
    reads_since_continue: u32,
}

/// An ECS native CANARY or LINEAR deployment: after `SCALE_UP`, before each production
/// traffic shift the PAUSE hook (`PRE_PRODUCTION_TRAFFIC_SHIFT`, a new hook id each time)
/// awaits an answer; CONTINUE shifts (`PRODUCTION_TRAFFIC_SHIFT` for a step, `BAKE_TIME` for
/// a step), and ECS's move of the listener rule is played on moto at once; after the last
/// shift (100 %) and its bake, `SUCCESSFUL`. ROLLBACK or a stop puts the rule back on the
/// production target group.
struct Shifts {
    /// The canary's share after each shift; the last is 100.
    weights: Vec<u8>,
    /// When each hook was answered CONTINUE.
    continued: Vec<Instant>,
    rule: String,
    production: String,
    alternate: String,
}

impl Shifts {
    /// The rule ECS moves, and the production and alternate target groups.
    fn rule(&self) -> (String, String, String) {
        (
            self.rule.clone(),
            self.production.clone(),
            self.alternate.clone(),
        )
    }

    /// Stage, the hooks' details (the awaiting one last) and whether it succeeded, at `t`
    /// since the deployment started.
    fn now(&self, t: Duration) -> (&'static str, Vec<Value>, bool) {
        let hook = |i: usize, status: &str| json!({"hookId": format!("hook-pre-prod-{}", i + 1), "targetType": "PAUSE", "status": status, "timeoutAction": "ROLLBACK"});
        let mut hooks: Vec<Value> = (0..self.continued.len())
            .map(|i| hook(i, "SUCCEEDED"))
            .collect();
        if t < 2 * STEP {
            return ("SCALE_UP", hooks, false);
        }
        let since = self.continued.last().map(Instant::elapsed);
        match since {
            Some(e) if e < STEP => ("PRODUCTION_TRAFFIC_SHIFT", hooks, false),
            Some(e) if e < 2 * STEP => ("BAKE_TIME", hooks, false),
            _ if self.continued.len() == self.weights.len() => ("CLEAN_UP", hooks, true),
            _ => {
                hooks.push(hook(self.continued.len(), "AWAITING_ACTION"));
                ("PRE_PRODUCTION_TRAFFIC_SHIFT", hooks, false)
            }
        }
    }
}

impl Native {
    /// The `ServiceDeployment` as `DescribeServiceDeployments` shows it now.
    fn describe(&self) -> Value {
        if let Some(shifts) = &self.shifts {
            return self.describe_shifts(shifts);
        }
        let mut status = "IN_PROGRESS";
        let mut stage = "SCALE_UP";
        let mut hook = None;
        let mut alarms: Vec<&str> = Vec::new();
        let mut breaker = "MONITORING";
        let mut reason = None;
        let t = self.since.elapsed();
        let rolling_back = |at: Instant| {
            let e = at.elapsed();
            if e < STEP {
                "ROLLBACK_REQUESTED"
            } else if e < 2 * STEP {
                "ROLLBACK_IN_PROGRESS"
            } else {
                "ROLLBACK_SUCCESSFUL"
            }
        };
        if let Some((at, why)) = self.rollback {
            status = rolling_back(at);
            reason = Some(why);
        } else if t < STEP {
            status = "PENDING";
            stage = "RECONCILE_SERVICE";
        } else if t < 2 * STEP || self.plan == Plan::Hang {
            // Green's tasks start (for ever with `Hang`).
        } else if self.plan == Plan::Fail {
            status = rolling_back(self.since + STEP);
            breaker = "TRIGGERED";
            reason = Some("ECS deployment circuit breaker: tasks failed to start.");
        } else if self.hook && self.continued.is_none() {
            stage = "POST_TEST_TRAFFIC_SHIFT";
            hook = Some("AWAITING_ACTION");
        } else {
            let shifted = self.continued.unwrap_or(self.since + 2 * STEP);
            let e = shifted.elapsed();
            if self.plan == Plan::Alarm && e >= STEP {
                status = rolling_back(shifted);
                alarms.push("movieverse-production-5xx");
                reason = Some("CloudWatch alarm movieverse-production-5xx is in ALARM");
            } else if e < STEP {
                stage = "PRODUCTION_TRAFFIC_SHIFT";
            } else if e < 2 * STEP
                || self.plan == Plan::Bake
                || (self.plan == Plan::Wait && self.reads_since_continue < WAIT_READS)
            {
                stage = "BAKE_TIME";
            } else {
                status = "SUCCESSFUL";
                stage = "CLEAN_UP";
            }
        }
        let mut d = json!({
            "serviceDeploymentArn": self.arn,
            "serviceArn": format!("arn:aws:ecs:us-east-1:123456789012:service/{}/{}", self.cluster, self.service),
            "clusterArn": format!("arn:aws:ecs:us-east-1:123456789012:cluster/{}", self.cluster),
            "createdAt": self.created_at,
            "status": status,
            "deploymentCircuitBreaker": {"status": breaker, "failureCount": if breaker == "TRIGGERED" { 3 } else { 0 }, "threshold": 3},
            "alarms": {"status": if alarms.is_empty() { "MONITORING" } else { "TRIGGERED" }, "alarmNames": ["movieverse-production-5xx"], "triggeredAlarmNames": alarms},
        });
        // A rollback's stage is not documented: none is shown.
        if !status.starts_with("ROLLBACK") {
            d["lifecycleStage"] = json!(stage);
        }
        if self.hook {
            d["lifecycleHookDetails"] = json!([{
                "hookId": "hook-post-test-1",
                "targetType": "PAUSE",
                "status": hook.unwrap_or(if self.continued.is_some() { "SUCCEEDED" } else { "IN_PROGRESS" }),
                "timeoutAction": "ROLLBACK",
            }]);
        }
        if let Some(why) = reason {
            d["statusReason"] = json!(why);
            if status.starts_with("ROLLBACK") {
                d["rollback"] = json!({"reason": why, "startedAt": self.created_at + 1.0});
            }
        }
        d
    }

    fn status(&self) -> String {
        self.describe()["status"].as_str().unwrap().to_owned()
    }

    /// [`Native::describe`] of a CANARY or LINEAR deployment.
    fn describe_shifts(&self, shifts: &Shifts) -> Value {
        let t = self.since.elapsed();
        let (mut status, mut stage, hooks, done) = if t < STEP {
            ("PENDING", Some("RECONCILE_SERVICE"), Vec::new(), false)
        } else {
            let (stage, hooks, done) = shifts.now(t);
            ("IN_PROGRESS", Some(stage), hooks, done)
        };
        if done {
            status = "SUCCESSFUL";
        }
        let mut reason = None;
        if let Some((at, why)) = self.rollback {
            let e = at.elapsed();
            status = if e < STEP {
                "ROLLBACK_REQUESTED"
            } else if e < 2 * STEP {
                "ROLLBACK_IN_PROGRESS"
            } else {
                "ROLLBACK_SUCCESSFUL"
            };
            stage = None;
            reason = Some(why);
        }
        let mut d = json!({
            "serviceDeploymentArn": self.arn,
            "serviceArn": format!("arn:aws:ecs:us-east-1:123456789012:service/{}/{}", self.cluster, self.service),
            "clusterArn": format!("arn:aws:ecs:us-east-1:123456789012:cluster/{}", self.cluster),
            "createdAt": self.created_at,
            "status": status,
            "lifecycleHookDetails": hooks,
        });
        if let Some(stage) = stage {
            d["lifecycleStage"] = json!(stage);
        }
        if let Some(why) = reason {
            d["statusReason"] = json!(why);
            d["rollback"] = json!({"reason": why, "startedAt": self.created_at + 1.0});
        }
        d
    }
}

/// A service rolled by `UpdateService` on the rolling path, as ECS would show it: a PRIMARY
/// deployment of `task_definition`, `IN_PROGRESS` with no task running for a [`STEP`], then
/// `COMPLETED` with `desired` tasks running, the one before it ACTIVE until then.
struct Roll {
    task_definition: String,
    previous: String,
    desired: i64,
    since: Instant,
    n: usize,
}

impl Roll {
    /// The service as `DescribeServices` shows it now.
    fn show(&self, s: &mut Value) {
        let done = self.since.elapsed() >= STEP;
        let running = if done { self.desired } else { 0 };
        let mut deployments = vec![json!({
            "id": format!("ecs-svc/70000000000000{:05}", self.n),
            "status": "PRIMARY",
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired,
            "pendingCount": self.desired - running,
            "runningCount": running,
            "failedTasks": 0,
            "rolloutState": if done { "COMPLETED" } else { "IN_PROGRESS" },
            "rolloutStateReason": if done { "ECS deployment completed." } else { "ECS deployment in progress." },
        })];
        if !done && self.previous != self.task_definition {
            deployments.push(json!({
                "id": format!("ecs-svc/60000000000000{:05}", self.n),
                "status": "ACTIVE",
                "taskDefinition": self.previous,
                "desiredCount": self.desired,
                "pendingCount": 0,
                "runningCount": self.desired,
                "failedTasks": 0,
                "rolloutState": "COMPLETED",
            }));
        }
        s["deployments"] = json!(deployments);
        s["taskDefinition"] = json!(self.task_definition);
        s["desiredCount"] = json!(self.desired);
        s["runningCount"] = json!(running);
        s["pendingCount"] = json!(self.desired - running);
    }
}

#[derive(Default)]
struct State {
    /// Services rolled by `UpdateService` on the rolling path, by name.
    rolling: HashMap<String, Roll>,
    /// The forward weights moto holds after each `ModifyRule` / `ModifyListener`, read back,
    /// and when the read answered.
    weights: Vec<(Instant, Vec<(String, i64)>)>,
    /// The alarms the deployment group watches: moto keeps a group's `alarmConfiguration`
    /// but answers `{}`, so `GetDeploymentGroup` is answered with these (by default the two
    /// of the example's production environment).
    group_alarms: Option<Vec<String>>,
    /// The task definition of a green that failed (`Plan::Fail`): ECS shows one stopped task
    /// of it (`ListTasks`, `DescribeTasks`), which moto cannot, since it runs none.
    failed_revision: Option<String>,
    plan: Option<Plan>,
    /// ECS native service deployments, in the order they started.
    native: Vec<Native>,
    /// `GetDeployment` calls still to answer with a throttling error.
    throttle_reads: u32,
    /// Calls answered with a fault instead of being served: operation (ECS, `CodeDeploy`) or
    /// query Action (`ELBv2`), and how many more times.
    failing: Vec<(String, u32)>,
    /// The kinds of the next injected faults, in turn (a 500 once none is left).
    fault_kinds: std::collections::VecDeque<Fault>,
    /// Calls of an operation let through before its `failing` entry starts.
    passing: Vec<(String, u32)>,
    /// Failures armed by a call: once `trigger` is seen, the next `n` calls of `operation`
    /// fail (trigger, operation, n).
    armed: Vec<(String, String, u32)>,
    tracked: HashMap<String, Tracked>,
    /// The deployment `CreateDeployment` created last: the group's `lastAttemptedDeployment`
    /// (its rollback deployment once it has one, as `CodeDeploy` counts).
    last_created: Option<String>,
    /// Access keys an [`Fault::Expired`] refused: every later call signed with one is refused
    /// the same way.
    expired_keys: Vec<String>,
    /// When each of `calls` arrived.
    call_times: Vec<Instant>,
    /// Every `CodeDeploy` call: operation and request body.
    calls: Vec<(String, Value)>,
    /// What moto drops of a service: its `deploymentConfiguration` and
    /// `healthCheckGracePeriodSeconds` as `CreateService` and `UpdateService` set them, by
    /// service name; `DescribeServices` answers with them.
    settings: HashMap<String, serde_json::Map<String, Value>>,
    /// ECS as the circuit breaker leaves it: once an `UpdateService` was seen,
    /// `DescribeServices` answers with the failed deployment gone and ECS's rollback to this
    /// task definition as the primary deployment.
    circuit_breaker_back_to: Option<String>,
}

impl State {
    fn record(&mut self, operation: &str, body: Value) {
        self.calls.push((operation.to_owned(), body));
        self.call_times.push(Instant::now());
    }

    fn track(&mut self, id: &str) -> &mut Tracked {
        let plan = self.plan.unwrap_or(Plan::Succeed);
        if !self.tracked.contains_key(id)
            && let Some(original) = id.strip_suffix("-rb")
            && let Some(o) = self.tracked.get(original)
        {
            // A rollback deployment exists from the moment its original failed or stopped.
            let mut rb = Tracked::new(Plan::Succeed);
            rb.since = o.stopped.map_or(o.since + 2 * STEP, |(at, _)| at + STEP);
            self.tracked.insert(id.to_owned(), rb);
        }
        self.tracked
            .entry(id.to_owned())
            .or_insert_with(|| Tracked::new(plan))
    }
}

pub struct Proxy {
    pub url: String,
    state: Arc<Mutex<State>>,
}

/// The fault columns of the ECS fault matrices (#14): the header, and the faults a call gets
/// in turn before it is served (99: for good). In the column of expired credentials the
/// binary runs with a role ([`role_env`]).
pub fn fault_columns() -> [(&'static str, Vec<Fault>); 4] {
    [
        ("500 twice", vec![Fault::Internal; 2]),
        (
            "throttled, reset, timed out",
            vec![
                Fault::Throttled,
                Fault::Reset,
                Fault::Silent(Duration::from_secs(8)),
            ],
        ),
        ("credentials expired", vec![Fault::Expired]),
        ("500 for good", vec![Fault::Internal; 99]),
    ]
}

/// For a column that expires credentials ([`Fault::Expired`]), the binary's credentials
/// are a role's, as in a GitHub job with `role-to-assume`: the job's OIDC token (from a token
/// endpoint started here) exchanged with moto's STS through the proxy. The proxy refuses the
/// expired access key for good, so only renewed credentials get through. Nothing otherwise.
pub fn role_env(faults: &[Fault]) -> Vec<(&'static str, String)> {
    if !faults.contains(&Fault::Expired) {
        return Vec::new();
    }
    let (url, _) = super::answer_all(
        "200 OK",
        "application/json",
        json!({"value": super::jwt()}).to_string(),
    );
    vec![
        (
            "MVD_ROLE_TO_ASSUME",
            "arn:aws:iam::123456789012:role/movieverse-deploy".into(),
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", format!("{url}/token")),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token".into()),
    ]
}

/// What a cell's words add when the run renewed its role's credentials after AWS said they
/// expired.
pub fn renewed(stderr: &str) -> &'static str {
    if stderr.contains("AWS having said they expired") {
        ", credentials renewed"
    } else {
        ""
    }
}

/// The binary's environment in the fault matrices' runs: the matrices' back-off
/// ([`super::matrix::RETRY_BASE`]), and the call timeout (`MVD_AWS_CALL_TIMEOUT`, seconds):
/// [`Fault::Silent`] outlasts it, and moto answers far within it even with seven beds at once,
/// so no other call times out (the tables count retries exactly).
pub const MATRIX_ENV: [(&str, &str); 2] =
    [("MVD_AWS_CALL_TIMEOUT", "5"), super::matrix::RETRY_BASE];

/// What an injected fault does to the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A 500 in the protocol's own shape: the service's internal failure.
    Internal,
    /// A 400 `ThrottlingException` (`Throttling` in the query protocol).
    Throttled,
    /// The connection closed with no answer.
    Reset,
    /// A 400 `ExpiredTokenException` (`ExpiredToken` in the query protocol): the caller's
    /// credentials expired. The access key that was refused stays refused: only renewed
    /// credentials get through afterwards.
    Expired,
    /// Served upstream, but no answer for this long, then the connection closed: longer than
    /// the binary's call timeout (`MVD_AWS_CALL_TIMEOUT`), a call that times out although
    /// what it asked for was done (an answer lost on its way back).
    Silent(Duration),
}

impl Proxy {
    /// Starts the proxy on a free loopback port in front of `moto` (its URL).
    pub fn start(moto: &str, plan: Plan) -> Self {
        let state = Arc::new(Mutex::new(State {
            plan: Some(plan),
            ..State::default()
        }));
        let upstream = moto.to_owned();
        let shared = state.clone();
        let url = super::http::serve_each(move |stream| serve(stream, &upstream, &shared));
        Self { url, state }
    }

    /// The alarms the deployment group watches from now on.
    pub fn set_group_alarms(&self, alarms: &[&str]) {
        self.state.lock().unwrap().group_alarms =
            Some(alarms.iter().map(|a| (*a).to_owned()).collect());
    }

    /// The plan for deployments not seen yet.
    pub fn set_plan(&self, plan: Plan) {
        self.state.lock().unwrap().plan = Some(plan);
    }

    /// From the next `UpdateService` on, ECS is seen rolling the service back to `previous`
    /// with the circuit breaker, the failed deployment already gone (`DescribeServices`).
    pub fn circuit_breaker_back_to(&self, previous: &str) {
        self.state.lock().unwrap().circuit_breaker_back_to = Some(previous.to_owned());
    }

    /// Answers the next `n` `GetDeployment` calls with `ThrottlingException` (400).
    pub fn throttle_reads(&self, n: u32) {
        self.state.lock().unwrap().throttle_reads = n;
    }

    /// The next `n` calls of `operation` (an ECS or `CodeDeploy` operation, or an `ELBv2`
    /// Action) are answered with a 500, as a service's internal failure, and not served.
    pub fn fail_next(&self, operation: &str, n: u32) {
        self.state
            .lock()
            .unwrap()
            .failing
            .push((operation.to_owned(), n));
    }

    /// The kinds of the faults injected from now on, in turn ([`Fault::Internal`] once they
    /// are used up).
    pub fn fault_kinds(&self, kinds: &[Fault]) {
        self.state.lock().unwrap().fault_kinds = kinds.iter().copied().collect();
    }

    /// `faults` in turn for the calls of `operation`: from the first call of `trigger` on
    /// ([`Proxy::fail_after`]), or once `pass` calls were served, or from the next call.
    pub fn inject(&self, operation: &str, trigger: Option<&str>, pass: u32, faults: &[Fault]) {
        self.fault_kinds(faults);
        let n = u32::try_from(faults.len()).unwrap();
        match trigger {
            Some(t) => self.fail_after(t, operation, n),
            None if pass > 0 => self.pass_then_fail(operation, pass, n),
            None => self.fail_next(operation, n),
        }
    }

    /// [`Proxy::fail_next`] once `pass` calls of `operation` have been served.
    pub fn pass_then_fail(&self, operation: &str, pass: u32, n: u32) {
        let mut s = self.state.lock().unwrap();
        s.passing.push((operation.to_owned(), pass));
        s.failing.push((operation.to_owned(), n));
    }

    /// [`Proxy::fail_next`] of `operation` armed by the first call of `trigger` (served or
    /// not): the `n` calls of `operation` from then on fail (the trigger itself too, when it
    /// is `operation`).
    pub fn fail_after(&self, trigger: &str, operation: &str, n: u32) {
        self.state
            .lock()
            .unwrap()
            .armed
            .push((trigger.to_owned(), operation.to_owned(), n));
    }

    /// Each `CodeDeploy` deployment created so far (rollback deployments aside), with its
    /// status now: `Succeeded`, `Ready`, `InProgress`, `Created`, `Failed, rolled back`,
    /// `Stopped, rolled back` or `Stopped`.
    pub fn deployments(&self) -> Vec<(String, String)> {
        let s = self.state.lock().unwrap();
        let mut out: Vec<(String, String)> = s
            .tracked
            .iter()
            .filter(|(id, _)| !id.ends_with("-rb"))
            .map(|(id, t)| {
                let (status, _, rollback) = t.state(id);
                let rolled_back = rollback.get("rollbackDeploymentId").is_some();
                let status = match (status, rolled_back) {
                    ("Failed" | "Stopped", true) => format!("{status}, rolled back"),
                    _ => status.to_owned(),
                };
                (id.clone(), status)
            })
            .collect();
        out.sort();
        out
    }

    /// How many native service deployments were started.
    pub fn native_count(&self) -> usize {
        self.state.lock().unwrap().native.len()
    }

    /// Ends the bake of every native deployment baking for ever (`Plan::Bake`): they
    /// succeed.
    pub fn end_bakes(&self) {
        for d in &mut self.state.lock().unwrap().native {
            if d.plan == Plan::Bake {
                d.plan = Plan::Succeed;
                d.continued = Some(Instant::now().checked_sub(2 * STEP).unwrap());
            }
        }
    }

    /// Ends the termination wait (`CodeDeploy`) or the bake (native) of every deployment of
    /// `Plan::Bake`, now or once it is continued: from then on each plays as `Plan::Gate`
    /// (held at Ready or at its hook until continued, then succeeding), and so do the
    /// deployments started later.
    pub fn end_waits(&self) {
        let mut s = self.state.lock().unwrap();
        if s.plan == Some(Plan::Bake) {
            s.plan = Some(Plan::Gate);
        }
        for t in s.tracked.values_mut() {
            if t.plan == Plan::Bake {
                t.plan = Plan::Gate;
            }
        }
        for d in &mut s.native {
            if d.plan == Plan::Bake {
                d.plan = Plan::Gate;
            }
        }
    }

    /// The forward weights moto held after each `ModifyRule` / `ModifyListener`, in order.
    pub fn weights(&self) -> Vec<Vec<(String, i64)>> {
        self.state
            .lock()
            .unwrap()
            .weights
            .iter()
            .map(|(_, w)| w.clone())
            .collect()
    }

    /// When each read of [`Proxy::weights`] answered.
    pub fn weights_seen_at(&self) -> Vec<Instant> {
        self.state
            .lock()
            .unwrap()
            .weights
            .iter()
            .map(|(at, _)| *at)
            .collect()
    }

    /// Every call seen so far, by operation (or Query action), with when it arrived.
    pub fn timed_calls(&self) -> Vec<(String, Instant)> {
        let s = self.state.lock().unwrap();
        s.calls
            .iter()
            .map(|(op, _)| op.clone())
            .zip(s.call_times.iter().copied())
            .collect()
    }

    /// The status of the native service deployment started `n`-th (from 1).
    pub fn native_status(&self, n: usize) -> String {
        self.state.lock().unwrap().native[n - 1].status()
    }

    /// The request bodies of every `CodeDeploy` call `operation` seen so far (for a Query
    /// protocol call, such as `GetMetricData`, its parameters).
    pub fn calls(&self, operation: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(op, _)| op == operation)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// The variables that point the binary's AWS SDK at this proxy.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        super::aws_env(&self.url)
    }
}

/// moto's `DescribeServices` answer with the settings it dropped put back.
fn with_settings(
    body: &[u8],
    settings: &HashMap<String, serde_json::Map<String, Value>>,
) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    if let Some(services) = v["services"].as_array_mut() {
        for s in services {
            let name = s["serviceName"].as_str().unwrap_or_default().to_owned();
            for (k, value) in settings.get(&name).into_iter().flatten() {
                s[k] = value.clone();
            }
        }
    }
    v.to_string().into_bytes()
}

/// moto's `DescribeServices` answer as ECS shows a circuit breaker's rollback once the failed
/// deployment is gone: one PRIMARY deployment of `previous`, in progress, with ECS's reason.
fn circuit_breaker(body: &[u8], previous: &str) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    if let Some(services) = v["services"].as_array_mut() {
        for s in services {
            s["taskDefinition"] = json!(previous);
            s["deploymentConfiguration"]["deploymentCircuitBreaker"] =
                json!({"enable": true, "rollback": true});
            s["deployments"] = json!([{
                "id": "ecs-svc/9000000000000000001",
                "status": "PRIMARY",
                "taskDefinition": previous,
                "desiredCount": 2,
                "pendingCount": 0,
                "runningCount": 2,
                "failedTasks": 0,
                "rolloutState": "IN_PROGRESS",
                "rolloutStateReason": "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/8000000000000000001.",
            }]);
            s["events"] = json!([{
                "id": "e1",
                "createdAt": 1_800_000_000.0,
                "message": "(service movieverse-app) (deployment ecs-svc/8000000000000000002) deployment failed: tasks failed to start.",
            }]);
        }
    }
    v.to_string().into_bytes()
}

/// moto's `DescribeServices` answer with each service rolled through the proxy shown as ECS
/// would show it.
fn rolled(body: &[u8], rolling: &HashMap<String, Roll>) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let mut changed = false;
    if let Some(services) = v["services"].as_array_mut() {
        for s in services {
            let name = s["serviceName"].as_str().unwrap_or_default().to_owned();
            if let Some(r) = rolling.get(&name) {
                r.show(s);
                changed = true;
            }
        }
    }
    if changed {
        v.to_string().into_bytes()
    } else {
        body.to_vec()
    }
}

/// A value for a form-encoded body.
fn encode(value: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("v", value)])
        .map(|u| {
            u.query()
                .unwrap_or_default()
                .trim_start_matches("v=")
                .to_owned()
        })
        .unwrap_or_default()
}

/// The target groups and weights of the forward action in a load balancer XML answer (the first
/// `<TargetGroups>` list).
fn forward_weights(xml: &str) -> Vec<(String, i64)> {
    let Some(list) = xml
        .split_once("<TargetGroups>")
        .and_then(|(_, rest)| rest.split_once("</TargetGroups>"))
        .map(|(list, _)| list)
    else {
        return Vec::new();
    };
    let field = |member: &str, tag: &str| -> Option<String> {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        member
            .split_once(&open)
            .and_then(|(_, rest)| rest.split_once(&close))
            .map(|(v, _)| v.trim().to_owned())
    };
    list.split("</member>")
        .filter_map(|m| {
            Some((
                field(m, "TargetGroupArn")?,
                field(m, "Weight").and_then(|w| w.parse().ok()).unwrap_or(1),
            ))
        })
        .collect()
}

/// A form-encoded (Query protocol) body as a map of its parameters.
fn query_params(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("Action=") {
        return None;
    }
    let url = reqwest::Url::parse(&format!("http://x/?{text}")).ok()?;
    Some(
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect(),
    )
}

fn serve(stream: std::net::TcpStream, upstream: &str, state: &Mutex<State>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let mut out = stream.try_clone().unwrap();
    let mut reader = std::io::BufReader::new(stream);
    while let Some(request) = super::http::read_request(&mut reader) {
        let operation = request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
            .and_then(|(_, v)| v.strip_prefix("CodeDeploy_20141006."))
            .map(str::to_owned);
        let forward = |body: Vec<u8>| -> (u16, String, Vec<u8>) {
            let mut r = client.request(
                reqwest::Method::from_bytes(request.method.as_bytes()).unwrap(),
                format!("{upstream}{}", request.path),
            );
            for (k, v) in &request.headers {
                if !["host", "connection", "content-length"]
                    .contains(&k.to_ascii_lowercase().as_str())
                {
                    r = r.header(k.as_str(), v.as_str());
                }
            }
            rt.block_on(async {
                // moto gone (the test is ending): a 502, never a panic in this thread.
                let Ok(response) = r.body(body).send().await else {
                    return (502, JSON.into(), b"{}".to_vec());
                };
                let status = response.status().as_u16();
                let ct = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/x-amz-json-1.1")
                    .to_owned();
                let bytes = response
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                (status, ct, bytes)
            })
        };
        // Every other JSON-protocol call (ECS, App Auto Scaling) is recorded by its
        // operation, with its body, then forwarded.
        let ecs_op = request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
            .and_then(|(_, v)| v.rsplit_once('.'))
            .map(|(_, op)| op.to_owned())
            .filter(|_| operation.is_none());
        if let Some(op) = &ecs_op {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let mut s = state.lock().unwrap();
            let name = match op.as_str() {
                "CreateService" => body["serviceName"].as_str(),
                "UpdateService" => body["service"].as_str(),
                _ => None,
            };
            if let Some(name) = name {
                let kept = s.settings.entry(name.to_owned()).or_default();
                for key in ["deploymentConfiguration", "healthCheckGracePeriodSeconds"] {
                    if !body[key].is_null() {
                        kept.insert(key.to_owned(), body[key].clone());
                    }
                }
            }
            s.record(op, body);
        }
        // Query-protocol calls (CloudWatch, ELBv2) are recorded by their Action, with their
        // parameters, then forwarded.
        if operation.is_none()
            && let Some(params) = query_params(&request.body)
            && let Some(action) = params.get("Action").and_then(Value::as_str)
        {
            state
                .lock()
                .unwrap()
                .record(action, Value::Object(params.clone()));
        }
        // An injected failure: a 500 in the protocol's own shape, nothing served.
        let query_action = query_params(&request.body)
            .and_then(|p| p.get("Action").and_then(Value::as_str).map(str::to_owned));
        let called = operation
            .clone()
            .or_else(|| ecs_op.clone())
            .or(query_action.clone());
        let key = access_key(&request.headers);
        let fault = called.as_deref().and_then(|op| {
            let mut s = state.lock().unwrap();
            if key.as_ref().is_some_and(|k| s.expired_keys.contains(k)) {
                return Some(Fault::Expired);
            }
            if let Some(at) = s.armed.iter().position(|(t, _, _)| t == op) {
                let (_, operation, n) = s.armed.remove(at);
                s.failing.push((operation, n));
            }
            if let Some((_, n)) = s.passing.iter_mut().find(|(o, n)| o == op && *n > 0) {
                *n -= 1;
                return None;
            }
            s.failing
                .iter_mut()
                .find(|(o, n)| o == op && *n > 0)
                .map(|(_, n)| *n -= 1)?;
            let fault = s.fault_kinds.pop_front().unwrap_or(Fault::Internal);
            if fault == Fault::Expired
                && let Some(k) = &key
            {
                s.expired_keys.push(k.clone());
            }
            Some(fault)
        });
        // The connection closes unanswered, nothing served.
        if fault == Some(Fault::Reset) {
            return;
        }
        let silent = match fault {
            Some(Fault::Silent(d)) => Some(d),
            _ => None,
        };
        let injected = fault.is_some() && silent.is_none();
        let throttled = fault == Some(Fault::Throttled);
        let expired = fault == Some(Fault::Expired);
        let (status, ct, body) = match operation {
            _ if expired && query_action.is_some() => (
                400,
                "text/xml".to_owned(),
                b"<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>The security token included in the request is expired (injected by the scenario proxy)</Message></Error><RequestId>injected</RequestId></ErrorResponse>".to_vec(),
            ),
            _ if expired => answer(
                400,
                &json!({"__type": "ExpiredTokenException", "message": "The security token included in the request is expired (injected by the scenario proxy)"}),
            ),
            _ if throttled && query_action.is_some() => (
                400,
                "text/xml".to_owned(),
                b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded (injected by the scenario proxy)</Message></Error><RequestId>injected</RequestId></ErrorResponse>".to_vec(),
            ),
            _ if throttled => answer(
                400,
                &json!({"__type": "ThrottlingException", "message": "Rate exceeded (injected by the scenario proxy)"}),
            ),
            _ if injected && query_action.is_some() => (
                500,
                "text/xml".to_owned(),
                b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>injected by the scenario proxy</Message></Error><RequestId>injected</RequestId></ErrorResponse>".to_vec(),
            ),
            _ if injected => answer(
                500,
                &json!({"__type": "ServerException", "message": "injected by the scenario proxy"}),
            ),
            None if ecs_op.as_deref() == Some("DescribeServices") => {
                let (status, ct, body) = forward(request.body.clone());
                let s = state.lock().unwrap();
                let body = match &s.circuit_breaker_back_to {
                    Some(previous) if s.calls.iter().any(|(op, _)| op == "UpdateService") => {
                        circuit_breaker(&body, previous)
                    }
                    _ => rolled(&body, &s.rolling),
                };
                (status, ct, with_settings(&body, &s.settings))
            }
            None if ecs_op.as_deref().is_some_and(|op| NATIVE_OPS.contains(&op)) => {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let elb = Elb {
                    upstream,
                    client: &client,
                    rt: &rt,
                };
                native(ecs_op.as_deref().unwrap(), &body, state, &forward, &elb)
            }
            None if query_params(&request.body).is_some_and(|p| {
                p.get("Action").and_then(Value::as_str) == Some("GetMetricData")
            }) =>
            {
                let params = query_params(&request.body).unwrap_or_default();
                let xml = super::metric_math::play(&params, &|body| forward(body).2);
                (200, "text/xml".to_owned(), xml.into_bytes())
            }
            None if ["ModifyRule", "ModifyListener"].contains(
                &query_params(&request.body)
                    .and_then(|p| p.get("Action").cloned())
                    .and_then(|a| a.as_str().map(str::to_owned))
                    .unwrap_or_default()
                    .as_str(),
            ) =>
            {
                let answer = forward(request.body.clone());
                let params = query_params(&request.body).unwrap_or_default();
                let read = match params.get("RuleArn").and_then(Value::as_str) {
                    Some(rule) => format!(
                        "Action=DescribeRules&Version=2015-12-01&RuleArns.member.1={}",
                        encode(rule)
                    ),
                    None => format!(
                        "Action=DescribeListeners&Version=2015-12-01&ListenerArns.member.1={}",
                        encode(
                            params
                                .get("ListenerArn")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                        )
                    ),
                };
                let (_, _, back) = forward(read.into_bytes());
                state.lock().unwrap().weights.push((
                    Instant::now(),
                    forward_weights(&String::from_utf8_lossy(&back)),
                ));
                answer
            }
            None => forward(request.body.clone()),
            Some(op) => {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                state.lock().unwrap().record(&op, body.clone());
                codedeploy(&op, &body, state, &forward)
            }
        };
        // Served, but the answer never comes: the caller times out (and what it asked for
        // was done, as when an answer is lost on its way back).
        if let Some(d) = silent {
            std::thread::sleep(d);
            return;
        }
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            if status < 400 { "OK" } else { "Error" },
            body.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|()| out.write_all(&body))
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

const JSON: &str = "application/x-amz-json-1.1";

/// The stopped task of a failed green.
const STOPPED_TASK: &str = "arn:aws:ecs:us-east-1:123456789012:task/movieverse-production/0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The ECS operations the proxy plays for native blue/green (and a failed green's tasks).
const NATIVE_OPS: [&str; 7] = [
    "ListTasks",
    "DescribeTasks",
    "UpdateService",
    "ListServiceDeployments",
    "DescribeServiceDeployments",
    "ContinueServiceDeployment",
    "StopServiceDeployment",
];

fn native(
    op: &str,
    body: &Value,
    state: &Mutex<State>,
    forward: &dyn Fn(Vec<u8>) -> (u16, String, Vec<u8>),
    elb: &Elb<'_>,
) -> (u16, String, Vec<u8>) {
    let invalid = |message: String| {
        answer(
            400,
            &json!({"__type": "InvalidParameterException", "message": message}),
        )
    };
    let arn = body["serviceDeploymentArn"].as_str().unwrap_or_default();
    let failed = state.lock().unwrap().failed_revision.clone();
    match op {
        "ListTasks" if body["desiredStatus"] == "STOPPED" && failed.is_some() => {
            answer(200, &json!({"taskArns": [STOPPED_TASK]}))
        }
        "DescribeTasks" if body["tasks"][0] == STOPPED_TASK => answer(
            200,
            &json!({"tasks": [{
                "taskArn": STOPPED_TASK,
                "taskDefinitionArn": failed,
                "lastStatus": "STOPPED",
                "desiredStatus": "STOPPED",
                "stopCode": "EssentialContainerExited",
                "stoppedReason": "Essential container in task exited",
                "containers": [{"name": "movieverse-app", "exitCode": 1, "lastStatus": "STOPPED", "reason": "DATABASE_URL: connection refused"}],
            }], "failures": []}),
        ),
        "UpdateService" => {
            let previous = {
                let s = state.lock().unwrap();
                let name = body["service"].as_str().unwrap_or_default();
                s.rolling.get(name).map(|r| r.task_definition.clone())
            };
            let (code, ct, out) = forward(body.to_string().into_bytes());
            let config = &body["deploymentConfiguration"];
            if code == 200 && config["strategy"].as_str().is_none_or(|s| s == "ROLLING") {
                let answer: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
                let service = &answer["service"];
                let mut s = state.lock().unwrap();
                let n = s.rolling.len() + 1;
                let name = service["serviceName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let task_definition = service["taskDefinition"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                s.rolling.insert(
                    name,
                    Roll {
                        previous: previous.unwrap_or_else(|| {
                            service["deployments"][0]["taskDefinition"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned()
                        }),
                        task_definition,
                        desired: service["desiredCount"].as_i64().unwrap_or(0),
                        since: Instant::now(),
                        n,
                    },
                );
            }
            if code == 200 && config["strategy"] == "BLUE_GREEN" {
                let mut s = state.lock().unwrap();
                let n = s.native.len() + 1;
                let cluster = body["cluster"].as_str().unwrap_or("default").to_owned();
                let service = body["service"].as_str().unwrap_or_default().to_owned();
                let hook = config["lifecycleHooks"].as_array().is_some_and(|hooks| {
                    hooks.iter().any(|h| {
                        h["targetType"] == "PAUSE"
                            && h["lifecycleStages"]
                                .as_array()
                                .is_some_and(|st| st.iter().any(|x| x == "POST_TEST_TRAFFIC_SHIFT"))
                    })
                });
                let plan = s.plan.unwrap_or(Plan::Succeed);
                if plan == Plan::Fail {
                    s.failed_revision = body["taskDefinition"].as_str().map(str::to_owned);
                }
                s.native.push(Native {
                    arn: format!("arn:aws:ecs:us-east-1:123456789012:service-deployment/{cluster}/{service}/sd{n:04}"),
                    cluster,
                    service,
                    plan,
                    since: Instant::now(),
                    created_at: 1_800_000_000.0 + f64::from(u32::try_from(n).unwrap()),
                    hook,
                    continued: None,
                    rollback: None,
                    shifts: None,
                    reads_since_continue: 0,
                });
            }
            let shifted = match (
                config["strategy"].as_str(),
                &config["canaryConfiguration"],
                &config["linearConfiguration"],
            ) {
                (Some("CANARY"), c, _) => {
                    c["canaryPercent"].as_f64().map(|p| vec![percent(p), 100])
                }
                (Some("LINEAR"), _, l) => l["stepPercent"].as_f64().map(|p| {
                    let step = percent(p).max(1);
                    let mut weights: Vec<u8> = (step..100).step_by(usize::from(step)).collect();
                    weights.push(100);
                    weights
                }),
                _ => None,
            };
            if code == 200
                && let Some(weights) = shifted
            {
                let mut s = state.lock().unwrap();
                let n = s.native.len() + 1;
                let cluster = body["cluster"].as_str().unwrap_or("default").to_owned();
                let service = body["service"].as_str().unwrap_or_default().to_owned();
                let lb = &body["loadBalancers"][0];
                s.native.push(Native {
                    arn: format!("arn:aws:ecs:us-east-1:123456789012:service-deployment/{cluster}/{service}/sd{n:04}"),
                    cluster,
                    service,
                    plan: Plan::Succeed,
                    since: Instant::now(),
                    created_at: 1_800_000_000.0 + f64::from(u32::try_from(n).unwrap()),
                    hook: true,
                    continued: None,
                    rollback: None,
                    reads_since_continue: 0,
                    shifts: Some(Shifts {
                        weights,
                        continued: Vec::new(),
                        rule: lb["advancedConfiguration"]["productionListenerRule"].as_str().unwrap_or_default().to_owned(),
                        production: lb["targetGroupArn"].as_str().unwrap_or_default().to_owned(),
                        alternate: lb["advancedConfiguration"]["alternateTargetGroupArn"].as_str().unwrap_or_default().to_owned(),
                    }),
                });
            }
            (code, ct, out)
        }
        "ListServiceDeployments" => {
            let wanted: Vec<&str> = body["status"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let service = body["service"].as_str().unwrap_or_default();
            let s = state.lock().unwrap();
            let listed: Vec<Value> = s
                .native
                .iter()
                .rev()
                .filter(|d| d.service == service || service.ends_with(&format!("/{}", d.service)))
                .map(Native::describe)
                .filter(|d| wanted.is_empty() || wanted.iter().any(|w| d["status"] == *w))
                .map(|d| {
                    json!({
                        "serviceDeploymentArn": d["serviceDeploymentArn"],
                        "serviceArn": d["serviceArn"],
                        "clusterArn": d["clusterArn"],
                        "createdAt": d["createdAt"],
                        "status": d["status"],
                    })
                })
                .collect();
            answer(200, &json!({"serviceDeployments": listed}))
        }
        "DescribeServiceDeployments" => {
            let mut s = state.lock().unwrap();
            let mut found = Vec::new();
            let mut failures = Vec::new();
            for arn in body["serviceDeploymentArns"]
                .as_array()
                .into_iter()
                .flatten()
            {
                match s.native.iter_mut().find(|d| d.arn == *arn) {
                    Some(d) => {
                        if d.continued.is_some() {
                            d.reads_since_continue += 1;
                        }
                        found.push(d.describe());
                    }
                    None => failures.push(json!({"arn": arn, "reason": "MISSING"})),
                }
            }
            answer(
                200,
                &json!({"serviceDeployments": found, "failures": failures}),
            )
        }
        "ContinueServiceDeployment" if shifted(state, arn) => {
            let mut s = state.lock().unwrap();
            let d = s.native.iter_mut().find(|d| d.arn == arn).unwrap();
            let now = d.describe();
            let awaiting = now["lifecycleHookDetails"]
                .as_array()
                .and_then(|h| h.last())
                .filter(|h| h["status"] == "AWAITING_ACTION")
                .map(|h| h["hookId"].clone());
            if awaiting.is_none() || awaiting.as_ref() != Some(&body["hookId"]) {
                return invalid(format!(
                    "The lifecycle hook {} of {arn} is not awaiting action",
                    body["hookId"]
                ));
            }
            let shifts = d.shifts.as_mut().unwrap();
            let canary = if body["action"] == "ROLLBACK" {
                d.rollback = Some((Instant::now(), "Rolled back by the lifecycle hook's answer"));
                0
            } else {
                shifts.continued.push(Instant::now());
                shifts.weights[shifts.continued.len() - 1]
            };
            let rule = shifts.rule();
            drop(s);
            elb.move_rule(state, &rule, canary);
            answer(200, &json!({"serviceDeploymentArn": arn}))
        }
        "ContinueServiceDeployment" => {
            let mut s = state.lock().unwrap();
            let Some(d) = s.native.iter_mut().find(|d| d.arn == arn) else {
                return answer(
                    400,
                    &json!({"__type": "ServiceDeploymentNotFoundException", "message": format!("{arn} not found")}),
                );
            };
            let now = d.describe();
            let awaiting = now["lifecycleHookDetails"][0]["status"] == "AWAITING_ACTION";
            if !awaiting || body["hookId"] != now["lifecycleHookDetails"][0]["hookId"] {
                return invalid(format!(
                    "The lifecycle hook {} of {arn} is not awaiting action",
                    body["hookId"]
                ));
            }
            if body["action"] == "ROLLBACK" {
                d.rollback = Some((Instant::now(), "Rolled back by the lifecycle hook's answer"));
            } else {
                d.continued = Some(Instant::now());
            }
            answer(200, &json!({"serviceDeploymentArn": arn}))
        }
        "StopServiceDeployment" => {
            let mut s = state.lock().unwrap();
            let Some(d) = s.native.iter_mut().find(|d| d.arn == arn) else {
                return answer(
                    400,
                    &json!({"__type": "ServiceDeploymentNotFoundException", "message": format!("{arn} not found")}),
                );
            };
            let status = d.status();
            if !["PENDING", "IN_PROGRESS"].contains(&status.as_str()) {
                return invalid(format!(
                    "The service deployment {arn} is {status}; it cannot be stopped"
                ));
            }
            d.rollback = Some((
                Instant::now(),
                "Stopped by a user request (StopServiceDeployment ROLLBACK)",
            ));
            if let Some(rule) = d.shifts.as_ref().map(Shifts::rule) {
                drop(s);
                elb.move_rule(state, &rule, 0);
            }
            answer(200, &json!({"serviceDeploymentArn": arn}))
        }
        _ => forward(body.to_string().into_bytes()),
    }
}

/// A percentage written as a JSON number (`10.0`), whole.
fn percent(p: f64) -> u8 {
    format!("{p:.0}").parse().unwrap_or(0)
}

/// Whether `arn` is a CANARY or LINEAR deployment of the proxy's.
fn shifted(state: &Mutex<State>, arn: &str) -> bool {
    state
        .lock()
        .unwrap()
        .native
        .iter()
        .any(|d| d.arn == arn && d.shifts.is_some())
}

/// moto's load balancer API, called by the proxy itself (as ECS native moves a listener rule).
pub struct Elb<'a> {
    upstream: &'a str,
    client: &'a reqwest::Client,
    rt: &'a tokio::runtime::Runtime,
}

impl Elb<'_> {
    fn call(&self, body: String) -> String {
        self.rt.block_on(async {
            let Ok(r) = self
                .client
                .post(self.upstream)
                .header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
                .header(
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=testing/20261130/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=0",
                )
                .body(body)
                .send()
                .await
            else {
                return String::new();
            };
            r.text().await.unwrap_or_default()
        })
    }

    /// ECS's move of `rule` (rule, production and alternate target groups) to `canary` %,
    /// played on moto, and the weights read back kept.
    fn move_rule(&self, state: &Mutex<State>, rule: &(String, String, String), canary: u8) {
        let seen = self.set_weights(&rule.0, &rule.1, &rule.2, canary);
        state.lock().unwrap().weights.push((Instant::now(), seen));
    }

    /// The rule's forward action at `canary` % on `alternate`, the rest on `production`; the
    /// weights read back from moto.
    fn set_weights(
        &self,
        rule: &str,
        production: &str,
        alternate: &str,
        canary: u8,
    ) -> Vec<(String, i64)> {
        let p = "Actions.member.1.ForwardConfig.TargetGroups.member";
        self.call(format!(
            "Action=ModifyRule&Version=2015-12-01&RuleArn={}&Actions.member.1.Type=forward&{p}.1.TargetGroupArn={}&{p}.1.Weight={}&{p}.2.TargetGroupArn={}&{p}.2.Weight={canary}",
            encode(rule),
            encode(production),
            100 - canary,
            encode(alternate),
        ));
        forward_weights(&self.call(format!(
            "Action=DescribeRules&Version=2015-12-01&RuleArns.member.1={}",
            encode(rule)
        )))
    }
}

fn answer(status: u16, body: &Value) -> (u16, String, Vec<u8>) {
    (status, JSON.into(), body.to_string().into_bytes())
}

/// The access key a request is signed with (`Authorization: AWS4-HMAC-SHA256
/// Credential=AKID/…`).
fn access_key(headers: &[(String, String)]) -> Option<String> {
    let (_, auth) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?;
    let rest = auth.split("Credential=").nth(1)?;
    Some(rest.split('/').next()?.to_owned())
}

fn codedeploy(
    op: &str,
    body: &Value,
    state: &Mutex<State>,
    forward: &dyn Fn(Vec<u8>) -> (u16, String, Vec<u8>),
) -> (u16, String, Vec<u8>) {
    let id = body["deploymentId"].as_str().unwrap_or_default().to_owned();
    match op {
        "CreateDeployment" => {
            let (status, ct, out) = forward(body.to_string().into_bytes());
            if let Some(id) = serde_json::from_slice::<Value>(&out)
                .ok()
                .and_then(|v| v["deploymentId"].as_str().map(str::to_owned))
            {
                let mut s = state.lock().unwrap();
                s.last_created = Some(id.clone());
                if s.track(&id).plan == Plan::Fail {
                    s.failed_revision = body["revision"]["appSpecContent"]["content"]
                        .as_str()
                        .and_then(|c| serde_json::from_str::<Value>(c).ok())
                        .and_then(|a| {
                            a["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"]
                                .as_str()
                                .map(str::to_owned)
                        });
                }
            }
            (status, ct, out)
        }
        // moto keeps no deployment targets: a failed deployment's ECS target is served, with
        // the lifecycle event where it stopped.
        "ListDeploymentTargets" => answer(
            200,
            &json!({"targetIds": ["movieverse-production:movieverse-app"]}),
        ),
        "BatchGetDeploymentTargets" => {
            let failed = {
                let mut s = state.lock().unwrap();
                let t = s.track(&id);
                t.plan == Plan::Fail && t.state(&id).0 == "Failed"
            };
            let event =
                |name: &str, status: &str| json!({"lifecycleEventName": name, "status": status});
            let mut events = vec![event("BeforeInstall", "Succeeded")];
            if failed {
                events.push(json!({
                    "lifecycleEventName": "Install",
                    "status": "Failed",
                    "diagnostics": {"errorCode": "UnknownError", "message": "The ECS task set of green did not reach steady state: its tasks failed the target group health checks"},
                }));
                events.extend(
                    [
                        "AfterInstall",
                        "AllowTestTraffic",
                        "AfterAllowTestTraffic",
                        "BeforeAllowTraffic",
                        "AllowTraffic",
                        "AfterAllowTraffic",
                    ]
                    .map(|n| event(n, "Skipped")),
                );
            } else {
                events.extend(
                    ["Install", "AfterInstall", "AllowTestTraffic"].map(|n| event(n, "Succeeded")),
                );
            }
            answer(
                200,
                &json!({"deploymentTargets": [{
                    "deploymentTargetType": "ECSTarget",
                    "ecsTarget": {"deploymentId": id, "targetId": "movieverse-production:movieverse-app", "status": if failed { "Failed" } else { "InProgress" }, "lifecycleEvents": events},
                }]}),
            )
        }
        "GetDeploymentGroup" => {
            let (code, ct, out) = forward(body.to_string().into_bytes());
            if code != 200 {
                return (code, ct, out);
            }
            let mut v: Value = serde_json::from_slice(&out).unwrap();
            let alarms = state
                .lock()
                .unwrap()
                .group_alarms
                .clone()
                .unwrap_or_else(|| {
                    vec![
                        "movieverse-production-5xx".into(),
                        "movieverse-production-p99-latency".into(),
                    ]
                });
            v["deploymentGroupInfo"]["alarmConfiguration"] = json!({
                "enabled": true,
                "ignorePollAlarmFailure": false,
                "alarms": alarms.iter().map(|a| json!({"name": a})).collect::<Vec<_>>(),
            });
            let last = {
                let mut s = state.lock().unwrap();
                s.last_created.clone().map(|id| {
                    let (status, _, rollback) = s.track(&id).state(&id);
                    match rollback["rollbackDeploymentId"].as_str() {
                        Some(rb) => {
                            let rb = rb.to_owned();
                            let (status, _, _) = s.track(&rb).state(&rb);
                            (rb, status)
                        }
                        None => (id, status),
                    }
                })
            };
            if let Some((id, status)) = last {
                v["deploymentGroupInfo"]["lastAttemptedDeployment"] =
                    json!({"deploymentId": id, "status": status});
            }
            answer(200, &v)
        }
        "GetDeployment" => {
            let mut s = state.lock().unwrap();
            if s.throttle_reads > 0 {
                s.throttle_reads -= 1;
                return answer(
                    400,
                    &json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
                );
            }
            let synthetic =
                id.ends_with("-rb") && s.tracked.contains_key(id.trim_end_matches("-rb"));
            let t = s.track(&id);
            if t.continued.is_some() {
                t.reads_since_continue += 1;
            }
            let (status_now, error, rollback) = t.state(&id);
            drop(s);
            let mut info = if synthetic {
                json!({"deploymentId": id, "applicationName": "movieverse", "deploymentGroupName": "movieverse-production", "computePlatform": "ECS", "creator": "autoRollback"})
            } else {
                let (code, _, out) = forward(body.to_string().into_bytes());
                if code != 200 {
                    return (code, JSON.into(), out);
                }
                serde_json::from_slice::<Value>(&out).unwrap()["deploymentInfo"].clone()
            };
            info["status"] = json!(status_now);
            info["errorInformation"] = error;
            info["rollbackInfo"] = rollback;
            if synthetic {
                info["rollbackInfo"]["rollbackTriggeringDeploymentId"] =
                    json!(id.trim_end_matches("-rb"));
            }
            answer(200, &json!({"deploymentInfo": info}))
        }
        "ListDeployments" => {
            let wanted: Vec<String> = body["includeOnlyStatuses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut all = body.clone();
            all.as_object_mut()
                .unwrap()
                .shift_remove("includeOnlyStatuses");
            let (code, _, out) = forward(all.to_string().into_bytes());
            if code != 200 {
                return (code, JSON.into(), out);
            }
            let listed: Value = serde_json::from_slice(&out).unwrap();
            let mut ids: Vec<String> = listed["deployments"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect();
            let mut s = state.lock().unwrap();
            let rollbacks: Vec<String> = s
                .tracked
                .keys()
                .filter(|k| k.ends_with("-rb"))
                .cloned()
                .collect();
            ids.extend(rollbacks);
            ids.retain(|d| wanted.is_empty() || wanted.iter().any(|w| w == s.track(d).state(d).0));
            answer(200, &json!({"deployments": ids}))
        }
        "StopDeployment" => {
            let rollback = body["autoRollbackEnabled"].as_bool().unwrap_or(false);
            let mut s = state.lock().unwrap();
            let t = s.track(&id);
            let now = t.state(&id).0;
            if ["Succeeded", "Failed", "Stopped"].contains(&now) {
                return answer(
                    400,
                    &json!({"__type": "DeploymentAlreadyCompletedException", "message": format!("The deployment {id} has already completed")}),
                );
            }
            t.stopped = Some((Instant::now(), rollback));
            answer(
                200,
                &json!({"status": "Pending", "statusMessage": "Stopping Pending. Stopping to schedule commands in the deployment instances"}),
            )
        }
        "ContinueDeployment" => {
            let mut s = state.lock().unwrap();
            let t = s.track(&id);
            if t.state(&id).0 != "Ready" {
                return answer(
                    400,
                    &json!({"__type": "DeploymentIsNotInReadyStateException", "message": format!("The deployment {id} is not in a ready state")}),
                );
            }
            t.continued = Some(Instant::now());
            answer(200, &json!({}))
        }
        _ => forward(body.to_string().into_bytes()),
    }
}

/// Rewrites the example's production environment in `dir`/deploy.yml (written by
/// `Moto::staging_config`) to a canary on ECS on `world`'s load balancer (from
/// `moto_world.py canary`): its blue-green strategy replaced by a canary with `schedule` (its
/// steps line), a 1 s analysis judged twice before it rolls back, and `extra` lines; the
/// stable target group the world's.
pub fn canary_config(dir: &std::path::Path, world: &Value, schedule: &str, extra: &str) {
    let path = dir.join("deploy.yml");
    let strategy = format!(
        "    strategy:\n      canary:\n        {schedule}\n        canary_target_group: {}\n        listener_rule: {}\n        deadline: 10m\n{extra}        analysis:\n          initial_delay: 1s\n          interval: 1s\n          threshold: 2\n",
        world["canary"].as_str().unwrap(),
        world["rule"].as_str().unwrap(),
    );
    let text = super::with_production_strategy(&std::fs::read_to_string(&path).unwrap(), &strategy)
        .replacen(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-blue/0123456789abcdef",
            world["stable"].as_str().unwrap(),
            1,
        );
    std::fs::write(&path, text).unwrap();
}

/// `CloudWatch` datapoints of the canary's target group on `world`'s load balancer, one a
/// second from a minute ago to two minutes ahead: requests, 5xx responses among them, and
/// the response time (the proxy reads a percentile as the maximum).
pub fn alb_traffic(
    moto: &super::moto::Moto,
    world: &Value,
    requests: f64,
    errors: f64,
    seconds: f64,
) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let canary = world["canary"].as_str().unwrap();
    let tg = &canary[canary.find(":targetgroup/").unwrap() + 1..];
    let balancer = world["load_balancer"].as_str().unwrap();
    let lb = balancer.split_once(":loadbalancer/").unwrap().1;
    let mut points = Vec::new();
    for at in now.saturating_sub(60)..now + 120 {
        points.push(json!(["RequestCount", tg, at, requests, lb]));
        points.push(json!(["HTTPCode_Target_5XX_Count", tg, at, errors, lb]));
        points.push(json!(["TargetResponseTime", tg, at, seconds, lb]));
    }
    let out = moto.world(&["put-metrics", &Value::from(points).to_string()]);
    assert!(out.contains("ok"), "{out}");
}
