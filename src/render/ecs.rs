//! ECS rules for rendered artifacts: what `RegisterTaskDefinition`, `CreateService` and
//! `CodeDeploy` would reject, caught before anything is sent. These matter most for overridden
//! templates: the built-in ones are rendered from an already validated config.

use std::path::PathBuf;

use serde_json::Value;

use super::Artifact;
use super::templates::{ECS_APPSPEC, ECS_SERVICE, ECS_TASK_DEFINITION};
use crate::config::validate::{fargate_memory_options, looks_like_secret};
use crate::config::{Environment, Strategy};
use crate::diag::Diagnostic;

struct Out<'a> {
    file: PathBuf,
    artifact: &'a str,
    problems: &'a mut Vec<Diagnostic>,
}

impl Out<'_> {
    fn err(&mut self, path: &str, message: impl Into<String>, help: impl Into<String>) {
        self.problems.push(
            Diagnostic::new(&self.file, format!("{}: {}", self.artifact, message.into()))
                .path(path)
                .help(help),
        );
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

pub fn validate(
    _env_name: &str,
    env: &Environment,
    artifacts: &[Artifact],
    file_of: &dyn Fn(&str) -> PathBuf,
) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let find = |id: &str| artifacts.iter().find(|a| a.template == id);
    if let Some(td) = find(ECS_TASK_DEFINITION) {
        let mut out = Out {
            file: file_of(ECS_TASK_DEFINITION),
            artifact: "task-definition.json",
            problems: &mut problems,
        };
        task_definition(&mut out, &td.value);
        let names: Vec<(String, Vec<u64>)> = containers(&td.value)
            .iter()
            .map(|c| {
                let ports = c["portMappings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| as_u64(&p["containerPort"]))
                    .collect();
                (c["name"].as_str().unwrap_or_default().to_owned(), ports)
            })
            .collect();
        if let Some(svc) = find(ECS_SERVICE) {
            let mut out = Out {
                file: file_of(ECS_SERVICE),
                artifact: "service.json",
                problems: &mut problems,
            };
            service(&mut out, env, &svc.value, &names);
        }
        if let Some(spec) = find(ECS_APPSPEC) {
            let mut out = Out {
                file: file_of(ECS_APPSPEC),
                artifact: "appspec.yaml",
                problems: &mut problems,
            };
            appspec(&mut out, &spec.value, &names);
        }
    }
    problems
}

fn containers(td: &Value) -> Vec<Value> {
    td["containerDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn task_definition(out: &mut Out<'_>, td: &Value) {
    let family = td["family"].as_str().unwrap_or_default();
    if family.is_empty()
        || family.len() > 255
        || !family
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        out.err(
            "family",
            format!("`{family}` is not a valid task definition family"),
            "use up to 255 letters, digits, `-` and `_`",
        );
    }
    let defs = containers(td);
    if defs.is_empty() {
        out.err(
            "containerDefinitions",
            "the task definition has no containers",
            "define at least the app container",
        );
        return;
    }
    let fargate = td["requiresCompatibilities"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "FARGATE"));
    let mode = td["networkMode"].as_str().unwrap_or("bridge");
    if fargate {
        if mode != "awsvpc" {
            out.err(
                "networkMode",
                format!("network mode `{mode}` on Fargate"),
                "Fargate tasks require `\"networkMode\": \"awsvpc\"`",
            );
        }
        match (as_u64(&td["cpu"]), as_u64(&td["memory"])) {
            (Some(cpu), Some(memory)) => {
                match fargate_memory_options(u32::try_from(cpu).unwrap_or(0)) {
                    None => out.err(
                        "cpu",
                        format!("{cpu} is not a Fargate CPU size"),
                        "use 256, 512, 1024, 2048, 4096, 8192 or 16384",
                    ),
                    Some(opts) if !opts.contains(&u32::try_from(memory).unwrap_or(0)) => out.err(
                        "memory",
                        format!("{memory} MiB is not valid with {cpu} CPU units on Fargate"),
                        format!(
                            "use one of: {} MiB",
                            opts.iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    Some(_) => {}
                }
            }
            _ => out.err(
                "cpu",
                "Fargate task definitions need task-level `cpu` and `memory`",
                "set both, for example \"512\" and \"1024\"",
            ),
        }
    }
    let task_memory = as_u64(&td["memory"]);
    let mut reserved = 0;
    let mut names = Vec::new();
    let mut any_essential = false;
    let mut needs_execution_role = false;
    for (i, c) in defs.iter().enumerate() {
        let at = |rest: &str| format!("containerDefinitions[{i}]{rest}");
        let name = c["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            out.err(
                &at(".name"),
                "a container has no name",
                "give every container a name",
            );
        } else if names.contains(&name) {
            out.err(
                &at(".name"),
                format!("two containers are named `{name}`"),
                "container names must be unique",
            );
        }
        names.push(name);
        if c["image"].as_str().unwrap_or_default().is_empty() {
            out.err(
                &at(".image"),
                format!("container `{name}` has no image"),
                "set `image`",
            );
        }
        // ECS treats a container without `essential` as essential.
        any_essential |= c["essential"].as_bool().unwrap_or(true);
        reserved += as_u64(&c["memory"])
            .or_else(|| as_u64(&c["memoryReservation"]))
            .unwrap_or(0);
        for (j, p) in c["portMappings"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let container_port = as_u64(&p["containerPort"]);
            if !container_port.is_some_and(|p| (1..=65535).contains(&p)) {
                out.err(
                    &at(&format!(".portMappings[{j}].containerPort")),
                    format!("container `{name}` has an invalid containerPort"),
                    "use a port from 1 to 65535",
                );
            }
            if mode == "awsvpc"
                && let Some(host) = as_u64(&p["hostPort"])
                && Some(host) != container_port
            {
                out.err(
                    &at(&format!(".portMappings[{j}].hostPort")),
                    format!(
                        "container `{name}`: hostPort {host} differs from containerPort {}",
                        container_port.unwrap_or(0)
                    ),
                    "with awsvpc, hostPort must equal containerPort or be left out",
                );
            }
        }
        for (j, e) in c["environment"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let var = e["name"].as_str().unwrap_or_default();
            if looks_like_secret(var) {
                out.err(
                    &at(&format!(".environment[{j}]")),
                    format!("container `{name}`: `{var}` looks like a secret but is a plain environment variable"),
                    "reference it under `secrets` with `valueFrom` (a Secrets Manager or SSM ARN) instead of inlining it",
                );
            }
        }
        for (j, s) in c["secrets"].as_array().into_iter().flatten().enumerate() {
            needs_execution_role = true;
            let from = s["valueFrom"].as_str().unwrap_or_default();
            if from.is_empty() || s.get("value").is_some() {
                out.err(
                    &at(&format!(".secrets[{j}]")),
                    format!("container `{name}`: secret `{}` is not a reference", s["name"].as_str().unwrap_or("?")),
                    "a secret needs `valueFrom` (a Secrets Manager or SSM ARN) and no inline `value`",
                );
            }
        }
        needs_execution_role |= c["logConfiguration"]["logDriver"] == "awslogs";
    }
    if !any_essential {
        out.err("containerDefinitions", "no container is essential", "mark the app container `\"essential\": true`; ECS needs at least one essential container");
    }
    if let Some(task) = task_memory
        && reserved > task
    {
        out.err(
            "containerDefinitions",
            format!("containers reserve {reserved} MiB, more than the task's {task} MiB"),
            "lower the container memory or raise the task memory",
        );
    }
    if needs_execution_role
        && td["executionRoleArn"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    {
        out.err(
            "executionRoleArn",
            "secrets or awslogs are used but there is no executionRoleArn",
            "set the execution role that may read the secrets and write the logs",
        );
    }
}

/// The main service of an ECS native canary: the strategy deploy.yml's schedule plays as,
/// the PAUSE hook before each production traffic shift (the analysis answers it: without it
/// ECS would shift on its own), and the load balancer's `advancedConfiguration`.
fn native_canary(out: &mut Out<'_>, c: &crate::config::Canary, svc: &Value) {
    let d = &svc["deploymentConfiguration"];
    let strategy = d["strategy"].as_str().unwrap_or("ROLLING");
    let expected = match c.native_shape() {
        Some(crate::config::NativeShape::Linear { .. }) => "LINEAR",
        _ => "CANARY",
    };
    if strategy != expected {
        out.err(
            "deploymentConfiguration.strategy",
            format!("strategy `{strategy}` is not the {expected} deploy.yml's canary plays as (`router: ecs`)"),
            format!("use `\"strategy\": \"{expected}\"`"),
        );
    }
    let paused = d["lifecycleHooks"].as_array().is_some_and(|hooks| {
        hooks.iter().any(|h| {
            h["targetType"] == "PAUSE"
                && h["lifecycleStages"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == "PRE_PRODUCTION_TRAFFIC_SHIFT"))
        })
    });
    if !paused {
        out.err(
            "deploymentConfiguration.lifecycleHooks",
            "no PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT: ECS would shift every step without waiting for the analysis",
            "keep the hook the built-in template writes: {\"targetType\": \"PAUSE\", \"lifecycleStages\": [\"PRE_PRODUCTION_TRAFFIC_SHIFT\"]}",
        );
    }
    if !svc["loadBalancers"][0]["advancedConfiguration"].is_object() {
        out.err(
            "loadBalancers[0].advancedConfiguration",
            "ECS native canary needs the load balancer's advancedConfiguration",
            "keep `advancedConfiguration` with alternateTargetGroupArn (the canary target group), productionListenerRule and roleArn (the built-in template writes them from deploy.yml)",
        );
    }
}

fn service(out: &mut Out<'_>, env: &Environment, svc: &Value, containers: &[(String, Vec<u64>)]) {
    let controller = svc["deploymentController"]["type"]
        .as_str()
        .unwrap_or("ECS");
    let native = matches!(&env.strategy, Strategy::BlueGreen(b) if b.native());
    let expected = match &env.strategy {
        Strategy::BlueGreen(b) if !b.native() => "CODE_DEPLOY",
        _ => "ECS",
    };
    if controller != expected {
        out.err(
            "deploymentController.type",
            format!(
                "deployment controller `{controller}` does not fit the {} strategy",
                env.strategy.name()
            ),
            format!("use `{expected}`"),
        );
    }
    if expected == "ECS"
        && svc["deploymentConfiguration"]["deploymentCircuitBreaker"]["rollback"] != true
    {
        out.err(
            "deploymentConfiguration.deploymentCircuitBreaker",
            "the deployment circuit breaker with rollback is off",
            "keep `{\"enable\": true, \"rollback\": true}`: a failing rollout must go back on its own",
        );
    }
    if native {
        let strategy = svc["deploymentConfiguration"]["strategy"]
            .as_str()
            .unwrap_or("ROLLING");
        if strategy != "BLUE_GREEN" {
            out.err(
                "deploymentConfiguration.strategy",
                format!("strategy `{strategy}` is not ECS native blue/green (`controller: ecs`)"),
                "use `\"strategy\": \"BLUE_GREEN\"` with `bakeTimeInMinutes`",
            );
        }
        if !svc["loadBalancers"][0]["advancedConfiguration"].is_object() {
            out.err(
                "loadBalancers[0].advancedConfiguration",
                "ECS native blue/green needs the load balancer's advancedConfiguration",
                "keep `advancedConfiguration` with alternateTargetGroupArn, productionListenerRule, testListenerRule and roleArn (the built-in template writes them from deploy.yml)",
            );
        }
    }
    if let Strategy::Canary(c) = &env.strategy
        && c.native()
    {
        native_canary(out, c, svc);
    }
    for (i, lb) in svc["loadBalancers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        lb_target(
            out,
            &format!("loadBalancers[{i}]"),
            lb["containerName"].as_str(),
            as_u64(&lb["containerPort"]),
            containers,
        );
    }
}

fn appspec(out: &mut Out<'_>, spec: &Value, containers: &[(String, Vec<u64>)]) {
    let target = &spec["Resources"][0]["TargetService"];
    if target["Type"] != "AWS::ECS::Service" {
        out.err(
            "Resources[0].TargetService.Type",
            "the AppSpec does not target an ECS service",
            "set `Type: AWS::ECS::Service`",
        );
    }
    let props = &target["Properties"];
    if props["TaskDefinition"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        out.err(
            "Resources[0].TargetService.Properties.TaskDefinition",
            "the AppSpec names no task definition",
            "keep the `<TASK_DEFINITION>` placeholder; the deploy fills in the registered ARN",
        );
    }
    let lb = &props["LoadBalancerInfo"];
    lb_target(
        out,
        "Resources[0].TargetService.Properties.LoadBalancerInfo",
        lb["ContainerName"].as_str(),
        as_u64(&lb["ContainerPort"]),
        containers,
    );
}

fn lb_target(
    out: &mut Out<'_>,
    path: &str,
    name: Option<&str>,
    port: Option<u64>,
    containers: &[(String, Vec<u64>)],
) {
    let name = name.unwrap_or_default();
    match containers.iter().find(|(n, _)| n == name) {
        None => out.err(path, format!("the load balancer targets container `{name}`, which the task definition does not have"), format!("use one of: {}", containers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "))),
        Some((_, ports)) if !port.is_some_and(|p| ports.contains(&p)) => out.err(
            path,
            format!("the load balancer targets port {} of `{name}`, which maps no such port", port.unwrap_or(0)),
            format!("use a mapped containerPort: {ports:?}"),
        ),
        Some(_) => {}
    }
}
