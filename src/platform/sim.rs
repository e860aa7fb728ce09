//! A deterministic ECS simulator. Each service follows a [`Scenario`]: how long a new task
//! takes to become healthy, whether tasks fail and the circuit breaker rolls back, which API
//! calls fail and how. Time is tokio's clock: under `tokio::time::pause` a 10-minute rollout
//! runs in well under a second, and the same scenario always gives the same result.
//!
//! This is a test component: it is compiled into the binary only so the benchmarks and the
//! CLI tests can drive the real driver with it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Platform, Prepared, ServiceSpec};
use crate::platform::observation::{
    DeploymentView, ErrorKind, PlatformError, Rollout, ServiceEvent, ServiceView, StoppedTask,
};

/// How new tasks behave once a deployment starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Each batch of tasks is healthy `per_task` after it starts.
    Healthy,
    /// Tasks start and fail their health checks; with the circuit breaker on, ECS rolls the
    /// deployment back after `threshold` failures.
    CrashLoop { circuit_breaker: bool },
    /// Tasks stay pending (capacity, image pull): no progress at all.
    Stuck,
    /// Tasks crash, and after `after` the platform marks the rollout failed *without* rolling
    /// back (a Kubernetes Deployment past its `progressDeadlineSeconds`).
    Stalls { after: Duration },
}

/// An API call that fails: the first `times` calls of `operation` fail with `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub operation: &'static str,
    pub kind: ErrorKind,
    pub times: u32,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub desired: u32,
    /// Tasks started at once (max surge + max unavailable).
    pub batch: u32,
    /// Time for a batch of tasks to start and pass health checks.
    pub per_task: Duration,
    pub health: Health,
    pub definition_changed: bool,
    pub settings_changed: bool,
    pub faults: Vec<Fault>,
    /// The service does not exist yet (a first Kubernetes deploy creates the Deployment): it
    /// runs no revision until the first update.
    pub fresh: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            desired: 2,
            batch: 1,
            per_task: Duration::from_mins(1),
            health: Health::Healthy,
            definition_changed: true,
            settings_changed: false,
            faults: Vec::new(),
            fresh: false,
        }
    }
}

#[derive(Debug)]
struct SimDeployment {
    id: String,
    revision: String,
    started: Instant,
}

#[derive(Debug)]
struct SimService {
    scenario: Scenario,
    revision: String,
    revisions: Vec<String>,
    deployment: Option<SimDeployment>,
    /// Revisions the circuit breaker rolled back from.
    rolled_back_from: Option<String>,
}

/// The simulator: services by name.
#[derive(Debug)]
pub struct Sim {
    services: Mutex<BTreeMap<String, SimService>>,
    calls: Mutex<HashMap<&'static str, u32>>,
    failures_left: Mutex<HashMap<(String, &'static str), u32>>,
    /// Unix time the simulation calls "now" at its start, for event times.
    epoch: i64,
    started: Instant,
}

const CIRCUIT_BREAKER_THRESHOLD: u32 = 3;

impl Sim {
    pub fn new(services: impl IntoIterator<Item = (String, Scenario)>) -> Self {
        let mut failures = HashMap::new();
        let services = services
            .into_iter()
            .map(|(name, scenario)| {
                for f in &scenario.faults {
                    failures.insert((name.clone(), f.operation), f.times);
                }
                let (revision, revisions) = if scenario.fresh {
                    (String::new(), vec![])
                } else {
                    let r = format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{name}:1");
                    (r.clone(), vec![r])
                };
                (
                    name,
                    SimService {
                        scenario,
                        revisions,
                        revision,
                        deployment: None,
                        rolled_back_from: None,
                    },
                )
            })
            .collect();
        Self {
            services: Mutex::new(services),
            calls: Mutex::new(HashMap::new()),
            failures_left: Mutex::new(failures),
            epoch: 1_800_000_000,
            started: Instant::now(),
        }
    }

    /// API calls made so far, by operation.
    pub fn calls(&self) -> HashMap<&'static str, u32> {
        self.calls.lock().expect("not poisoned").clone()
    }

    pub fn total_calls(&self) -> u32 {
        self.calls().values().sum()
    }

    /// The revision a service runs now.
    pub fn revision(&self, service: &str) -> String {
        self.services.lock().expect("not poisoned")[service]
            .revision
            .clone()
    }

    /// Every revision registered for a service, oldest first.
    pub fn revisions(&self, service: &str) -> Vec<String> {
        self.services.lock().expect("not poisoned")[service]
            .revisions
            .clone()
    }

    /// The time the current deployment of `service` reaches a final state, if it does.
    pub fn finishes_at(&self, service: &str) -> Option<Instant> {
        let services = self.services.lock().expect("not poisoned");
        let s = &services[service];
        let d = s.deployment.as_ref()?;
        match s.scenario.health {
            Health::Healthy => Some(
                d.started
                    + s.scenario.per_task * s.scenario.desired.div_ceil(s.scenario.batch.max(1)),
            ),
            Health::CrashLoop {
                circuit_breaker: true,
            } => Some(d.started + s.scenario.per_task * CIRCUIT_BREAKER_THRESHOLD),
            Health::Stalls { after } => Some(d.started + after),
            _ => None,
        }
    }

    /// Counts the call, and fails it if a fault is scripted for it.
    fn call(&self, service: &str, operation: &'static str) -> Result<(), PlatformError> {
        *self
            .calls
            .lock()
            .expect("not poisoned")
            .entry(operation)
            .or_default() += 1;
        let mut left = self.failures_left.lock().expect("not poisoned");
        if let Some(n) = left.get_mut(&(service.to_owned(), operation))
            && *n > 0
        {
            *n -= 1;
            let services = self.services.lock().expect("not poisoned");
            let kind = services[service]
                .scenario
                .faults
                .iter()
                .find(|f| f.operation == operation)
                .map_or(ErrorKind::Transient, |f| f.kind);
            return Err(PlatformError::new(
                kind,
                operation,
                format!("simulated {kind:?} error"),
            ));
        }
        Ok(())
    }

    fn unix(&self, at: Instant) -> i64 {
        self.epoch + i64::try_from(at.duration_since(self.started).as_secs()).unwrap_or(0)
    }

    fn view(&self, name: &str, s: &SimService, now: Instant) -> ServiceView {
        let mut events = Vec::new();
        let mut deployments = Vec::new();
        if let Some(d) = &s.deployment {
            let sc = &s.scenario;
            let elapsed = now.duration_since(d.started);
            let steps = u32::try_from(elapsed.as_millis() / sc.per_task.as_millis().max(1))
                .unwrap_or(u32::MAX);
            let (rollout, running, pending, failed, reason) = match sc.health {
                Health::Healthy => {
                    let running = (steps * sc.batch).min(sc.desired);
                    let rollout = if running == sc.desired {
                        Rollout::Completed
                    } else {
                        Rollout::InProgress
                    };
                    (rollout, running, sc.desired - running, 0, None)
                }
                Health::CrashLoop { circuit_breaker } => {
                    let failed = steps.min(if circuit_breaker {
                        CIRCUIT_BREAKER_THRESHOLD
                    } else {
                        steps
                    });
                    for i in 0..failed {
                        events.push(ServiceEvent {
                            at: self.unix(d.started + sc.per_task * (i + 1)),
                            message: format!("(service {name}) has started 1 tasks: (task t-{i})."),
                        });
                    }
                    if circuit_breaker && failed >= CIRCUIT_BREAKER_THRESHOLD {
                        events.push(ServiceEvent {
                            at: self.unix(d.started + sc.per_task * failed),
                            message: format!("(service {name}) (deployment {}) deployment failed: tasks failed to start.", d.id),
                        });
                        (
                            Rollout::Failed,
                            0,
                            0,
                            failed,
                            Some(
                                "ECS deployment circuit breaker: tasks failed to start.".to_owned(),
                            ),
                        )
                    } else {
                        (Rollout::InProgress, 0, 1, failed, None)
                    }
                }
                Health::Stuck => (Rollout::InProgress, 0, sc.batch.min(sc.desired), 0, None),
                Health::Stalls { after } if elapsed >= after => (
                    Rollout::Failed,
                    0,
                    1,
                    1,
                    Some(format!(
                        "ProgressDeadlineExceeded: ReplicaSet \"{name}-{}\" has timed out progressing.",
                        d.id
                    )),
                ),
                Health::Stalls { .. } => (Rollout::InProgress, 0, 1, 1, None),
            };
            let rolled_back = !matches!(sc.health, Health::Stalls { .. });
            events.reverse();
            deployments.push(DeploymentView {
                id: d.id.clone(),
                revision: d.revision.clone(),
                rollout,
                reason,
                primary: rollout != Rollout::Failed || !rolled_back,
                rolled_back,
                desired: sc.desired,
                running,
                pending,
                failed,
            });
        }
        ServiceView {
            name: name.to_owned(),
            revision: s.revision.clone(),
            deployments,
            events,
        }
    }
}

impl Platform for Sim {
    async fn prepare(&self, spec: &ServiceSpec) -> Result<Prepared, PlatformError> {
        self.call(&spec.name, "DescribeServices")?;
        self.call(&spec.name, "DescribeTaskDefinition")?;
        let services = self.services.lock().expect("not poisoned");
        let s = services.get(&spec.name).ok_or_else(|| {
            PlatformError::new(
                ErrorKind::NotFound,
                "DescribeServices",
                format!("service {} not found", spec.name),
            )
        })?;
        Ok(Prepared {
            service: self.view(&spec.name, s, Instant::now()),
            definition_changed: s.scenario.definition_changed,
            settings_changed: s.scenario.settings_changed,
        })
    }

    async fn register(&self, spec: &ServiceSpec) -> Result<String, PlatformError> {
        self.call(&spec.name, "RegisterTaskDefinition")?;
        let mut services = self.services.lock().expect("not poisoned");
        let s = services.get_mut(&spec.name).expect("a known service");
        let revision = format!(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/{}:{}",
            spec.name,
            s.revisions.len() + 1
        );
        s.revisions.push(revision.clone());
        Ok(revision)
    }

    async fn update(
        &self,
        spec: &ServiceSpec,
        revision: &str,
    ) -> Result<Option<String>, PlatformError> {
        self.call(&spec.name, "UpdateService")?;
        let mut services = self.services.lock().expect("not poisoned");
        let s = services.get_mut(&spec.name).expect("a known service");
        revision.clone_into(&mut s.revision);
        let id = format!("ecs-svc/{}", 1000 + s.revisions.len());
        s.deployment = Some(SimDeployment {
            id: id.clone(),
            revision: revision.to_owned(),
            started: Instant::now(),
        });
        Ok(Some(id))
    }

    async fn apply_scaling(&self, spec: &ServiceSpec) -> Result<(), PlatformError> {
        if spec.scaling.is_some() {
            self.call(&spec.name, "RegisterScalableTarget")?;
            self.call(&spec.name, "PutScalingPolicy")?;
        }
        Ok(())
    }

    async fn observe(&self, specs: &[&ServiceSpec]) -> Result<Vec<ServiceView>, PlatformError> {
        // One DescribeServices call per 10 services, as ECS allows.
        for chunk in specs.chunks(10) {
            self.call(&chunk[0].name, "DescribeServices")?;
        }
        let now = Instant::now();
        let mut services = self.services.lock().expect("not poisoned");
        let mut views = Vec::new();
        for spec in specs {
            let s = services.get_mut(&spec.name).expect("a known service");
            let view = self.view(&spec.name, s, now);
            // The circuit breaker puts the service back on the previous revision.
            if view
                .deployments
                .first()
                .is_some_and(|d| d.rollout == Rollout::Failed && d.rolled_back)
                && s.rolled_back_from.is_none()
            {
                s.rolled_back_from = Some(s.revision.clone());
                if s.revisions.len() >= 2 {
                    s.revision = s.revisions[s.revisions.len() - 2].clone();
                }
            }
            views.push(view);
        }
        Ok(views)
    }

    async fn diagnose(
        &self,
        spec: &ServiceSpec,
        deployment: &str,
    ) -> Result<Vec<StoppedTask>, PlatformError> {
        self.call(&spec.name, "ListTasks")?;
        self.call(&spec.name, "DescribeTasks")?;
        let services = self.services.lock().expect("not poisoned");
        let s = &services[&spec.name];
        let crashed = matches!(
            s.scenario.health,
            Health::CrashLoop { .. } | Health::Stalls { .. }
        );
        let _ = deployment;
        Ok(if crashed {
            vec![StoppedTask {
                what: "stopped task".into(),
                id: "t-0".into(),
                reason: "Essential container in task exited".into(),
                stop_code: Some("EssentialContainerExited".into()),
                containers: vec![("movieverse-app".into(), Some(1), None)],
            }]
        } else {
            vec![]
        })
    }

    async fn clean_up(&self, spec: &ServiceSpec, keep: u32) -> Result<Vec<String>, PlatformError> {
        self.call(&spec.name, "ListTaskDefinitions")?;
        let mut services = self.services.lock().expect("not poisoned");
        let s = services.get_mut(&spec.name).expect("a known service");
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let mut removed = Vec::new();
        while s.revisions.len() > keep {
            let old = s.revisions.remove(0);
            if old == s.revision {
                s.revisions.insert(0, old);
                break;
            }
            removed.push(old);
        }
        drop(services);
        for _ in &removed {
            self.call(&spec.name, "DeregisterTaskDefinition")?;
        }
        Ok(removed)
    }

    async fn revert(&self, spec: &ServiceSpec, revision: &str) -> Result<(), PlatformError> {
        self.call(&spec.name, "UpdateService")?;
        let mut services = self.services.lock().expect("not poisoned");
        let s = services.get_mut(&spec.name).expect("a known service");
        revision.clone_into(&mut s.revision);
        s.deployment = None;
        Ok(())
    }

    async fn previous_revision(&self, spec: &ServiceSpec) -> Result<Option<String>, PlatformError> {
        self.call(&spec.name, "ListTaskDefinitions")?;
        let services = self.services.lock().expect("not poisoned");
        let s = &services[&spec.name];
        let i = s.revisions.iter().position(|r| *r == s.revision);
        Ok(i.and_then(|i| i.checked_sub(1))
            .map(|i| s.revisions[i].clone()))
    }
}
