//! `verify --env NAME|all` (#15, first part: ECS environments): a read-only pre-flight of what
//! a deploy depends on. Every check reads one thing (describe, get, list: nothing is changed)
//! and says where deploy.yml names it; each missing piece is a diagnostic with its line and
//! what to do, and any of them makes the exit code 3. Not checked yet: IAM roles, secrets,
//! the log group, and Kubernetes environments (said as such, never passed silently).

use std::fmt::Write as _;

use super::{Error, print_out, select};
use crate::config::tree::Seg;
use crate::config::{Loaded, Strategy, Target};
use crate::diag::Diagnostics;
use crate::platform::ServiceSpec;
use crate::platform::ecs::Ecs;
use crate::platform::ecs::alb::{Alb, Forwarder};
use crate::platform::observation::{ErrorKind, PlatformError};

/// One check: what was read, where deploy.yml names it, and what was found.
struct Check {
    what: String,
    at: Vec<Seg>,
    /// `Ok`: found (a detail); `Err`: missing or wrong, with how to fix it.
    found: Result<String, (String, String)>,
}

fn key(base: &[Seg], rest: &[&str]) -> Vec<Seg> {
    base.iter()
        .cloned()
        .chain(rest.iter().map(|k| Seg::Key((*k).to_owned())))
        .collect()
}

/// A read that failed for another reason than "not there": the call's words, and that the
/// check could not be made (still a problem: a deploy would meet it too).
fn unreadable(e: &PlatformError) -> (String, String) {
    (
        format!("could not be read: {e}"),
        "check the credentials, the region and that this runner may call the API (exit 3 either way: a deploy would fail here too)".into(),
    )
}

/// `verify`: the checks of each selected environment, printed; exit 3 when any failed.
pub fn verify(loaded: &Loaded, env: &str) -> Result<(), Error> {
    let names = select(loaded, env)?;
    let rt = super::deploy::runtime()?;
    let started = std::time::Instant::now();
    let mut problems = Vec::new();
    let mut out = String::new();
    let mut checked = 0;
    for name in &names {
        let e = &loaded.config.environments[name];
        if e.target == Target::Kubernetes {
            let _ = writeln!(
                out,
                "{name}: not verified: `verify` checks ECS environments in this release; for Kubernetes, `plan --server-dry-run --env {name}` checks every manifest against the API server"
            );
            continue;
        }
        let checks = rt.block_on(ecs_checks(loaded, name));
        let _ = writeln!(out, "{name}:");
        for c in checks {
            checked += 1;
            let d = loaded.source.diag(&c.at, c.what.clone());
            let line = d
                .position
                .map(|p| format!("deploy.yml:{}", p.line))
                .unwrap_or_default();
            match c.found {
                Ok(detail) => {
                    let _ = writeln!(out, "  ok       {}: {detail} ({line})", c.what);
                }
                Err((problem, help)) => {
                    let _ = writeln!(out, "  MISSING  {}: {problem} ({line})", c.what);
                    problems.push(
                        loaded
                            .source
                            .diag(&c.at, format!("{name}: {}: {problem}", c.what))
                            .help(help),
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "{checked} check(s) in {:.1} s, {} problem(s); nothing was changed",
        started.elapsed().as_secs_f64(),
        problems.len()
    );
    print_out(&out)?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Deployment {
        code: 3,
        message: Diagnostics(problems).sorted().to_string(),
    })
}

/// The checks of ECS environment `name`, in order.
async fn ecs_checks(loaded: &Loaded, name: &str) -> Vec<Check> {
    let config = &loaded.config;
    let env = &config.environments[name];
    let ecs = env.ecs.as_ref().expect("an ECS environment");
    let base = vec![Seg::Key("environments".into()), Seg::Key(name.to_owned())];
    let platform = Ecs::from_env(&config.region).await;
    let alb = Alb::from_env(&config.region).await;
    let mut checks = Vec::new();

    // The image repository.
    let ecr = crate::image::ecr::Ecr::from_env(&config.region).await;
    checks.push(Check {
        what: format!("ECR repository {}", config.image.repository),
        at: vec![Seg::Key("image".into()), Seg::Key("repository".into())],
        found: match ecr.exists(&config.image.repository).await {
            Ok(true) => Ok("exists".into()),
            Ok(false) if config.image.create_repository => {
                Ok("missing; `build` creates it (image.create_repository)".into())
            }
            Ok(false) => Err((
                "does not exist".into(),
                "create it (`aws ecr create-repository`), or set `image.create_repository: true`"
                    .into(),
            )),
            Err(e) => Err((
                format!("could not be read: {e}"),
                "check the credentials and the region".into(),
            )),
        },
    });

    // The cluster.
    let cluster_at = key(&base, &["ecs", "cluster"]);
    let cluster_ok = match platform.cluster_status(&ecs.cluster).await {
        Ok(Some(status)) if status == "ACTIVE" => {
            checks.push(Check {
                what: format!("ECS cluster {}", ecs.cluster),
                at: cluster_at,
                found: Ok("ACTIVE".into()),
            });
            true
        }
        Ok(found) => {
            checks.push(Check {
                what: format!("ECS cluster {}", ecs.cluster),
                at: cluster_at,
                found: Err((
                    found.map_or_else(|| "does not exist".into(), |s| format!("is {s}")),
                    "create the cluster, or fix `ecs.cluster`".into(),
                )),
            });
            false
        }
        Err(e) => {
            checks.push(Check {
                what: format!("ECS cluster {}", ecs.cluster),
                at: cluster_at,
                found: Err(unreadable(&e)),
            });
            false
        }
    };

    // The services, each with the deployment controller its strategy needs.
    let expected = match &env.strategy {
        Strategy::BlueGreen(b) if !b.native() => "CODE_DEPLOY",
        _ => "ECS",
    };
    let mut services: Vec<(String, Vec<Seg>)> = ecs
        .all_services(&config.app, name)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let at = if i == 0 {
                key(&base, &["ecs", "service"])
            } else {
                let mut at = key(&base, &["ecs", "services"]);
                at.extend([Seg::Index(i - 1), Seg::Key("name".into())]);
                at
            };
            (s.name.to_owned(), at)
        })
        .collect();
    if let Strategy::Canary(c) = &env.strategy
        && !c.native()
    {
        let at = if c.canary_service.is_some() {
            key(&base, &["strategy", "canary", "canary_service"])
        } else {
            key(&base, &["strategy", "canary"])
        };
        services.push((c.canary_service_name(ecs), at));
    }
    if cluster_ok {
        for (service, at) in services {
            let spec = ServiceSpec {
                cluster: ecs.cluster.clone(),
                name: service.clone(),
                definition: serde_json::Value::Null,
                service: serde_json::Value::Null,
                scaling: None,
                tags: Vec::new(),
                manifests: Vec::new(),
            };
            let found = match platform.controller(&spec).await {
                Ok(c) if c == expected => Ok(format!("exists, deployment controller {c}")),
                Ok(c) => Err((
                    format!("has the {c} deployment controller; the {} strategy needs {expected}", env.strategy.name()),
                    "the controller is set when a service is created: create the service again with the right one, or change the strategy".into(),
                )),
                Err(e) if e.kind == ErrorKind::NotFound => Err((
                    format!("does not exist in cluster {}", ecs.cluster),
                    "create the service (this tool updates services, it does not create them), or fix its name".into(),
                )),
                Err(e) => Err(unreadable(&e)),
            };
            checks.push(Check {
                what: format!("ECS service {service}"),
                at,
                found,
            });
        }
    }

    // Target groups.
    let mut groups: Vec<(String, Vec<Seg>)> = Vec::new();
    if let Some(lb) = &ecs.load_balancer {
        groups.push((
            lb.target_group_arn.clone(),
            key(&base, &["ecs", "load_balancer", "target_group_arn"]),
        ));
    }
    match &env.strategy {
        Strategy::BlueGreen(b) => groups.push((
            b.green_target_group().to_owned(),
            key(&base, &["strategy", "blue-green", "green_target_group"]),
        )),
        Strategy::Canary(c) => groups.push((
            c.canary_target_group.clone().unwrap_or_default(),
            key(&base, &["strategy", "canary", "canary_target_group"]),
        )),
        Strategy::Rolling(_) => {}
    }
    for (tg, at) in groups {
        let found = match alb.target_group_arn(&tg).await {
            Ok(Some(_)) => Ok("exists".into()),
            Ok(None) => Err((
                "does not exist".into(),
                "create the target group behind the load balancer, or fix the ARN (or name) in deploy.yml".into(),
            )),
            Err(e) => Err(unreadable(&e)),
        };
        checks.push(Check {
            what: format!("target group {tg}"),
            at,
            found,
        });
    }

    // Listeners and listener rules.
    let mut listeners: Vec<(String, Vec<Seg>, Option<u16>)> = Vec::new();
    let mut rules: Vec<(String, Vec<Seg>)> = Vec::new();
    match &env.strategy {
        Strategy::BlueGreen(b) => {
            let p = |k: &str| key(&base, &["strategy", "blue-green", k]);
            if let Some(l) = &b.prod_listener_arn {
                listeners.push((l.clone(), p("prod_listener_arn"), None));
            }
            if let Some(l) = &b.test_listener_arn {
                listeners.push((l.clone(), p("test_listener_arn"), Some(b.test_port)));
            }
            if let Some(r) = &b.prod_listener_rule {
                rules.push((r.clone(), p("prod_listener_rule")));
            }
            if let Some(r) = &b.test_listener_rule {
                rules.push((r.clone(), p("test_listener_rule")));
            }
        }
        Strategy::Canary(c) => {
            let p = |k: &str| key(&base, &["strategy", "canary", k]);
            if let Some(l) = &c.listener_arn {
                listeners.push((l.clone(), p("listener_arn"), None));
            }
            if let Some(r) = &c.listener_rule {
                rules.push((r.clone(), p("listener_rule")));
            }
        }
        Strategy::Rolling(_) => {}
    }
    for (arn, at, port) in listeners {
        let found = match alb.listener_port(&arn).await {
            Ok(Some(p)) if port.is_none_or(|want| i32::from(want) == p) => {
                Ok(format!("exists, port {p}"))
            }
            Ok(Some(p)) => Err((
                format!(
                    "listens on port {p}, and deploy.yml's test_port is {}",
                    port.unwrap_or_default()
                ),
                "point `test_listener_arn` at the test listener, or set `test_port` to its port"
                    .into(),
            )),
            Ok(None) => Err((
                "does not exist".into(),
                "create the listener on the load balancer, or fix its ARN".into(),
            )),
            Err(e) => Err(unreadable(&e)),
        };
        checks.push(Check {
            what: format!("listener {arn}"),
            at,
            found,
        });
    }
    for (arn, at) in rules {
        let found = match alb.forward(Forwarder::Rule(&arn)).await {
            Ok(f) if f.is_empty() => Err((
                "has no forward action".into(),
                "the rule must forward to the service's target group".into(),
            )),
            Ok(f) => Ok(format!("exists, forwards to {} target group(s)", f.len())),
            Err(e) if e.kind == ErrorKind::NotFound => Err((
                "does not exist".into(),
                "create the rule on the listener, or fix its ARN".into(),
            )),
            Err(e) => Err(unreadable(&e)),
        };
        checks.push(Check {
            what: format!("listener rule {arn}"),
            at,
            found,
        });
    }

    // CodeDeploy's application and group, and the alarms it watches.
    if let Strategy::BlueGreen(b) = &env.strategy
        && !b.native()
    {
        let codedeploy =
            crate::platform::ecs::codedeploy::CodeDeploy::from_env(&config.region).await;
        let at = key(&base, &["strategy", "blue-green", "deployment_group"]);
        let found = match codedeploy.group(b.application(), b.deployment_group()).await {
            Ok(g) => {
                let unwatched = g.unwatched(&b.alarms);
                if (b.gate.is_some() || b.analysis.is_some()) && !g.stops_at_ready {
                    Err((
                        "does not hold deployments at Ready, and deploy.yml has a gate or checks there".into(),
                        "set the group's deploymentReadyOption.actionOnTimeout to STOP_DEPLOYMENT".into(),
                    ))
                } else if !unwatched.is_empty() {
                    Err((
                        format!("does not watch the alarm(s) {}", unwatched.join(", ")),
                        "add them to the group's alarm configuration (enabled), or remove them from `alarms`".into(),
                    ))
                } else {
                    Ok(format!(
                        "exists{}",
                        if g.stops_at_ready { ", holds at Ready" } else { "" }
                    ))
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound => Err((
                format!("`{}` / `{}` does not exist", b.application(), b.deployment_group()),
                "create the CodeDeploy application and its ECS deployment group, or fix their names".into(),
            )),
            Err(e) => Err(unreadable(&e)),
        };
        checks.push(Check {
            what: format!("CodeDeploy deployment group {}", b.deployment_group()),
            at,
            found,
        });
    }
    if let Strategy::BlueGreen(b) = &env.strategy
        && !b.alarms.is_empty()
    {
        let cw = crate::metrics::cloudwatch::CloudWatch::from_env(&config.region).await;
        let found = match cw.missing_alarms(&b.alarms).await {
            Ok(missing) if missing.is_empty() => Ok(format!("{} exist", b.alarms.len())),
            Ok(missing) => Err((
                format!("{} do(es) not exist", missing.join(", ")),
                "create the CloudWatch alarms, or fix their names in `alarms`".into(),
            )),
            Err(e) => Err((
                format!("could not be read: {e}"),
                "check the credentials and the region".into(),
            )),
        };
        checks.push(Check {
            what: "CloudWatch alarms".into(),
            at: key(&base, &["strategy", "blue-green", "alarms"]),
            found,
        });
    }

    // The metric providers: each answers and every query runs.
    let analysis = match &env.strategy {
        Strategy::Canary(c) => Some(&c.analysis),
        Strategy::BlueGreen(b) => b.analysis.as_deref(),
        Strategy::Rolling(_) => None,
    };
    if let Some(a) = analysis {
        let at = match &env.strategy {
            Strategy::Canary(_) => key(&base, &["strategy", "canary", "analysis"]),
            _ => key(&base, &["strategy", "blue-green", "analysis"]),
        };
        let vars = crate::metrics::QueryVars::for_environment(config, name, 60);
        let found = match crate::metrics::Measurer::connect(config, a).await {
            Err(e) => Err((
                e.to_string(),
                "check `providers` in deploy.yml and the provider's keys in the environment".into(),
            )),
            Ok(m) => match m.preflight(&vars, super::rollout::now_ms()).await {
                Ok(()) => Ok(format!(
                    "{} metric(s): every provider answers, every query runs",
                    a.metrics.len()
                )),
                Err((what, e)) => Err((
                    format!("{what}: {e}"),
                    "fix the query, or check the provider's keys and that this runner reaches it"
                        .into(),
                )),
            },
        };
        checks.push(Check {
            what: "metric providers".into(),
            at,
            found,
        });
    }
    checks
}
