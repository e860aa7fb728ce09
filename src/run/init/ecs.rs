//! `init --from ecs:CLUSTER/SERVICE`, the pure part: a live service, read
//! ([`LiveService`]), becomes deploy.yml's text and the templates that reproduce what the
//! built-in ones may not. Which templates are kept is decided at the edge, by rendering the
//! draft with the renderer a deploy uses and comparing with the live objects.
//!
//! The templates keep the live objects as they are, except what deploy.yml says: the task's
//! family, roles, size and log group, the app container's image, port, command, variables and
//! secrets; the service's cluster, name, family and count; the scaling's bounds. Editing
//! deploy.yml keeps meaning what it says.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::Draft;
use crate::config::validate::looks_like_secret;
use crate::platform::ecs::convert::registrable;
use crate::platform::ecs::import::LiveService;
use crate::render::templates::{ECS_SCALING, ECS_SERVICE, ECS_TASK_DEFINITION};

/// A YAML scalar: plain when it reads back as the same string, JSON-quoted otherwise.
pub(super) fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.:@-+=,".contains(c))
        && !s.starts_with(['-', ':', '@', '.', '+', '='])
        && !s.contains(": ")
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "~"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).expect("a string serializes")
    }
}

fn flow(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| scalar(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `text` with `# comment` after it, aligned on one column.
fn commented(text: &str, comment: &str) -> String {
    format!("{text:<36}# {comment}")
}

/// A DNS-1123 label from any name (lowercase letters, digits and `-`, at most 63), `app` when
/// nothing is left.
pub fn dns_label(name: &str) -> String {
    let mut label: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    label.truncate(63);
    let label = label.trim_matches('-').to_owned();
    if label.is_empty() {
        "app".into()
    } else {
        label
    }
}

/// `registry`, `repository` of an image reference (tag or digest dropped).
pub(super) fn split_image(image: &str) -> (Option<String>, String) {
    let without_digest = image.split_once('@').map_or(image, |(a, _)| a);
    let (registry, path) = match without_digest.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first.to_owned()), rest)
        }
        _ => (None, without_digest),
    };
    // A tag follows the last `:` after the last `/`.
    let repository = match path.rsplit_once(':') {
        Some((repo, _)) if !path[repo.len()..].contains('/') => repo,
        _ => path,
    };
    (registry, repository.to_owned())
}

/// The container a deploy puts its image in: the one the load balancer sends traffic to, or
/// the first essential one with a port, or the first.
fn app_container(definition: &Value, settings: &Value) -> usize {
    let containers = definition["containerDefinitions"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let by_lb = settings["loadBalancers"][0]["containerName"].as_str();
    containers
        .iter()
        .position(|c| by_lb.is_some() && c["name"].as_str() == by_lb)
        .or_else(|| {
            containers.iter().position(|c| {
                c["essential"].as_bool().unwrap_or(true)
                    && c["portMappings"].as_array().is_some_and(|p| !p.is_empty())
            })
        })
        .unwrap_or(0)
}

const ENVIRONMENT_LOOP: &str = r#"[{% for e in environment %}{"name": {{ e.name | tojson }}, "value": {{ e.value | tojson }}}{{ ", " if not loop.last }}{% endfor %}]"#;
const SECRETS_LOOP: &str = r#"[{% for s in secrets %}{"name": {{ s.name | tojson }}, "valueFrom": {{ s.value_from | tojson }}}{{ ", " if not loop.last }}{% endfor %}]"#;

/// Pretty JSON of `v` as template text: what could read as template syntax escaped, then the
/// `"@@NAME@@"` placeholders replaced by their expressions.
fn template_text(head: &str, v: &Value, exprs: &[(&str, &str)]) -> String {
    let text = serde_json::to_string_pretty(v).expect("JSON serializes");
    let mut text = text
        .replace("{{", "{{ '{{' }}")
        .replace("{%", "{{ '{%' }}")
        .replace("{#", "{{ '{#' }}");
    for (name, expr) in exprs {
        text = text.replace(&format!("\"@@{name}@@\""), expr);
    }
    format!("{head}\n{text}\n")
}

/// The secret reference `init` proposes for a plain variable that looks like a secret.
fn proposed_secret(region: &str, account: &str, app: &str, env: &str, var: &str) -> String {
    format!(
        "arn:aws:secretsmanager:{region}:{account}:secret:{app}/{env}/{}",
        dns_label(var)
    )
}

/// The draft of deploy.yml and the templates for `live`, as environment `env` of app `app`
/// (by default the service's name). Pure.
pub fn draft(live: &LiveService, env: &str, app: Option<&str>) -> Result<Draft, String> {
    let arn: Vec<&str> = live.arn.split(':').collect();
    let (region, account) = match arn.as_slice() {
        ["arn", _, "ecs", region, account, ..] => ((*region).to_owned(), (*account).to_owned()),
        _ => {
            return Err(format!(
                "the service ARN `{}` is not an ECS service ARN",
                live.arn
            ));
        }
    };
    if live.controller != "ECS" {
        return Err(format!(
            "service {} has the {} deployment controller; `init --from ecs:` imports services on the ECS controller (rolling); for blue-green through CodeDeploy, start from `init --target ecs` and see the README",
            live.name, live.controller
        ));
    }
    let app = app.map_or_else(|| dns_label(&live.name), str::to_owned);
    let def = registrable(&live.definition);
    let settings = &live.settings;
    let containers = def["containerDefinitions"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            format!(
                "the task definition of service {} has no containers",
                live.name
            )
        })?;
    let app_i = app_container(&def, settings);
    let main = &containers[app_i];
    let container_name = main["name"].as_str().unwrap_or("app").to_owned();
    let image = main["image"].as_str().unwrap_or_default().to_owned();
    let (registry, repository) = split_image(&image);
    let default_registry = format!("{account}.dkr.ecr.{region}.amazonaws.com");
    let port = main["portMappings"][0]["containerPort"].as_u64();
    let command: Vec<String> = main["command"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut notes = Vec::new();

    // The app container's variables and secrets go to deploy.yml; a plain value that looks
    // like a secret becomes a reference (its value is never written).
    let mut env_vars: Vec<(String, String)> = Vec::new();
    let mut secrets: Vec<(String, String)> = main["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["valueFrom"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut moved = |container: &str, var: &str| {
        let reference = proposed_secret(&region, &account, &app, env, var);
        notes.push(format!(
            "`{var}` of container `{container}` is a plain value that looks like a secret: deploy.yml references {reference} instead; create that secret in Secrets Manager with the value the service has now (init writes it nowhere), then put the secret's full ARN in its place"
        ));
        reference
    };
    for e in main["environment"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        let value = e["value"].as_str().unwrap_or_default().to_owned();
        if looks_like_secret(&name) {
            let reference = moved(&container_name, &name);
            secrets.push((name, reference));
        } else {
            env_vars.push((name, value));
        }
    }

    // The task definition's template.
    let mut td = def.clone();
    let mut exprs: Vec<(&str, &str)> = vec![
        ("family", "{{ ecs.family | tojson }}"),
        ("cpu", "\"{{ ecs.cpu }}\""),
        ("memory", "\"{{ ecs.memory }}\""),
        ("image", "{{ image | tojson }}"),
        ("environment", ENVIRONMENT_LOOP),
        ("secrets", SECRETS_LOOP),
        ("port", "{{ container.port }}"),
        ("command", "{{ container.command | tojson }}"),
        ("log_group", "{{ ecs.log_group | tojson }}"),
    ];
    td["family"] = json!("@@family@@");
    for (key, name, expr) in [
        (
            "taskRoleArn",
            "task_role",
            "{{ ecs.task_role_arn | tojson }}",
        ),
        (
            "executionRoleArn",
            "execution_role",
            "{{ ecs.execution_role_arn | tojson }}",
        ),
    ] {
        if td.get(key).is_some() {
            td[key] = json!(format!("@@{name}@@"));
            exprs.push((name, expr));
        }
    }
    let cpu = def["cpu"].as_str().and_then(|c| c.parse::<u32>().ok());
    let memory = def["memory"].as_str().and_then(|m| m.parse::<u32>().ok());
    let (Some(cpu), Some(memory)) = (cpu, memory) else {
        return Err(format!(
            "the task definition of service {} has no task-level cpu and memory; `init` imports Fargate services",
            live.name
        ));
    };
    td["cpu"] = json!("@@cpu@@");
    td["memory"] = json!("@@memory@@");
    let log_group = main["logConfiguration"]["options"]["awslogs-group"]
        .as_str()
        .map(str::to_owned);
    for (i, c) in td["containerDefinitions"]
        .as_array_mut()
        .expect("containers")
        .iter_mut()
        .enumerate()
    {
        let name = c["name"].as_str().unwrap_or_default().to_owned();
        if log_group.is_some()
            && c["logConfiguration"]["options"]["awslogs-group"].as_str() == log_group.as_deref()
        {
            c["logConfiguration"]["options"]["awslogs-group"] = json!("@@log_group@@");
        }
        if i == app_i {
            c["image"] = json!("@@image@@");
            c["environment"] = json!("@@environment@@");
            c["secrets"] = json!("@@secrets@@");
            if port.is_some() {
                // deploy.yml's port is the container's; in awsvpc the host port is the same
                // (ECS fills it in), so it is left out and follows.
                let mapping = &mut c["portMappings"][0];
                if mapping["hostPort"].as_u64() == port
                    && let Some(m) = mapping.as_object_mut()
                {
                    m.shift_remove("hostPort");
                }
                mapping["containerPort"] = json!("@@port@@");
            }
            if !command.is_empty() {
                c["command"] = json!("@@command@@");
            }
            continue;
        }
        // Another container's plain values that look like secrets become references too.
        let Some(vars) = c["environment"].as_array().cloned() else {
            continue;
        };
        let (hidden, kept): (Vec<Value>, Vec<Value>) = vars
            .into_iter()
            .partition(|e| e["name"].as_str().is_some_and(looks_like_secret));
        if hidden.is_empty() {
            continue;
        }
        c["environment"] = Value::Array(kept);
        let mut refs = c["secrets"].as_array().cloned().unwrap_or_default();
        for e in hidden {
            let var = e["name"].as_str().unwrap_or_default();
            refs.push(json!({"name": var, "valueFrom": moved(&name, var)}));
        }
        c["secrets"] = Value::Array(refs);
    }
    let mut templates = vec![(
        ECS_TASK_DEFINITION,
        "templates/ecs/task-definition.json.j2".to_owned(),
        template_text(
            &format!(
                "{{#- The task definition of service {}, imported by `movieverse-deploy init`. deploy.yml gives the family, roles, size and log group, and the app container's image, port, command, variables and secrets; the rest is as the service had it. -#}}",
                live.name
            ),
            &td,
            &exprs,
        ),
    )];

    // The service's template: the live settings a deploy sends.
    let mut service = json!({
        "cluster": "@@cluster@@",
        "serviceName": "@@service@@",
        "taskDefinition": "@@family@@",
        "desiredCount": "@@count@@",
    });
    if let Some(l) = &live.launch_type {
        service["launchType"] = json!(l);
    }
    if live.platform_version.is_some() {
        service["platformVersion"] = json!("@@platform@@");
    }
    service["deploymentController"] = json!({"type": "ECS"});
    for (k, v) in settings.as_object().into_iter().flatten() {
        if k != "platformVersion" {
            service[k] = v.clone();
        }
    }
    templates.push((
        ECS_SERVICE,
        "templates/ecs/service.json.j2".to_owned(),
        template_text(
            &format!(
                "{{#- The settings of service {}, imported by `movieverse-deploy init`: its deployment configuration, network and load balancers as the service had them. -#}}",
                live.name
            ),
            &service,
            &[
                ("cluster", "{{ ecs.cluster | tojson }}"),
                ("service", "{{ ecs.service | tojson }}"),
                ("family", "{{ ecs.family | tojson }}"),
                ("count", "{{ ecs.desired_count }}"),
                ("platform", "{{ ecs.platform_version | tojson }}"),
            ],
        ),
    ));
    if let Some(s) = &live.scaling {
        let scaling = json!({
            "scalableTarget": {
                "ServiceNamespace": "ecs",
                "ResourceId": "@@resource@@",
                "ScalableDimension": "ecs:service:DesiredCount",
                "MinCapacity": "@@min@@",
                "MaxCapacity": "@@max@@",
            },
            "policies": s.policies,
        });
        templates.push((
            ECS_SCALING,
            "templates/ecs/scaling.json.j2".to_owned(),
            template_text(
                &format!(
                    "{{#- The auto scaling of service {}, imported by `movieverse-deploy init`: its target tracking policies as the service had them; deploy.yml gives the bounds. -#}}",
                    live.name
                ),
                &scaling,
                &[
                    ("resource", "\"service/{{ ecs.cluster }}/{{ ecs.service }}\""),
                    ("min", "{{ ecs.scaling.min }}"),
                    ("max", "{{ ecs.scaling.max }}"),
                ],
            ),
        ));
        for p in &s.skipped {
            notes.push(format!(
                "scaling policy `{p}` is not target tracking on a predefined metric: not imported; a deploy leaves it as it is"
            ));
        }
    }

    // deploy.yml.
    let mut head = String::new();
    let _ = writeln!(
        head,
        "# deploy.yml for {app}, imported by `movieverse-deploy init --from ecs:{}/{}`.",
        live.cluster, live.name
    );
    let _ = writeln!(
        head,
        "# `movieverse-deploy plan --live --env {env} --image IMAGE` shows what a deploy of IMAGE would\n# change on the live service; with the image it runs now, nothing."
    );
    let _ = writeln!(head, "app: {}", scalar(&app));
    let _ = writeln!(head, "region: {}", scalar(&region));
    let _ = writeln!(head, "account_id: \"{account}\"");
    let _ = writeln!(head, "\nimage:");
    let _ = writeln!(
        head,
        "{}",
        commented(
            &format!("  repository: {}", scalar(&repository)),
            &format!("the image the service runs: {image}")
        )
    );
    if let Some(r) = registry.filter(|r| *r != default_registry) {
        let _ = writeln!(head, "  registry: {}", scalar(&r));
    }
    let _ = writeln!(head, "\ncontainer:");
    let _ = writeln!(head, "  name: {}", scalar(&container_name));
    if let Some(p) = port {
        let _ = writeln!(head, "  port: {p}");
    }
    if !command.is_empty() {
        let _ = writeln!(head, "  command: {}", flow(&command));
    }

    let mut e = String::new();
    let _ = writeln!(e, "\nenvironments:\n  {env}:\n    target: ecs\n    ecs:");
    let _ = writeln!(e, "      cluster: {}", scalar(&live.cluster));
    let _ = writeln!(e, "      service: {}", scalar(&live.name));
    let family = def["family"].as_str().unwrap_or_default();
    if family != format!("{app}-{env}") {
        let _ = writeln!(e, "      family: {}", scalar(family));
    }
    let _ = writeln!(e, "      cpu: {cpu}\n      memory: {memory}");
    let _ = writeln!(e, "      desired_count: {}", live.desired_count.max(1));
    if let Some(p) = live.platform_version.as_deref().filter(|p| *p != "LATEST") {
        let _ = writeln!(e, "      platform_version: {}", scalar(p));
    }
    for (key, field) in [
        ("execution_role_arn", "executionRoleArn"),
        ("task_role_arn", "taskRoleArn"),
    ] {
        match def[field].as_str() {
            Some(role) => {
                let _ = writeln!(e, "      {key}: {}", scalar(role));
            }
            None => {
                let _ = writeln!(
                    e,
                    "{}",
                    commented(
                        &format!("      {key}: arn:aws:iam::{account}:role/none"),
                        "the task definition has none; its template does not use this"
                    )
                );
            }
        }
    }
    let vpc = &settings["networkConfiguration"]["awsvpcConfiguration"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let _ = writeln!(e, "      network:");
    let _ = writeln!(e, "        subnets: {}", flow(&strings(&vpc["subnets"])));
    let _ = writeln!(
        e,
        "        security_groups: {}",
        flow(&strings(&vpc["securityGroups"]))
    );
    if vpc["assignPublicIp"] == "ENABLED" {
        let _ = writeln!(e, "        assign_public_ip: true");
    }
    if let Some(tg) = settings["loadBalancers"][0]["targetGroupArn"].as_str() {
        let _ = writeln!(e, "      load_balancer:");
        let _ = writeln!(e, "        target_group_arn: {}", scalar(tg));
        let _ = writeln!(
            e,
            "        health_check_grace_period: {}s",
            settings["healthCheckGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(0)
        );
    }
    if let Some(g) = &log_group {
        let _ = writeln!(e, "      log_group: {}", scalar(g));
    }
    if let Some(s) = &live.scaling {
        let _ = writeln!(
            e,
            "      scaling:\n        min: {}\n        max: {}",
            s.min, s.max
        );
        for (metric, key) in [
            ("ECSServiceAverageCPUUtilization", "cpu_target"),
            ("ECSServiceAverageMemoryUtilization", "memory_target"),
        ] {
            if let Some(t) = s.policies.iter().find_map(|p| {
                let c = &p["TargetTrackingScalingPolicyConfiguration"];
                (c["PredefinedMetricSpecification"]["PredefinedMetricType"] == metric)
                    .then(|| c["TargetValue"].as_f64())
                    .flatten()
            }) {
                let _ = writeln!(e, "        {key}: {}", t.round());
            }
        }
    }
    let d = &settings["deploymentConfiguration"];
    let max_percent = d["maximumPercent"].as_u64().unwrap_or(200);
    let min_healthy = d["minimumHealthyPercent"].as_u64().unwrap_or(100);
    let _ = writeln!(
        e,
        "    strategy:\n{}",
        commented(
            "      rolling:",
            "or blue-green, or canary with analysis: see the README"
        )
    );
    let _ = writeln!(
        e,
        "{}",
        commented(
            &format!("        max_surge: {}%", max_percent.saturating_sub(100)),
            &format!("the service's maximumPercent: {max_percent}")
        )
    );
    let _ = writeln!(
        e,
        "{}",
        commented(
            &format!(
                "        max_unavailable: {}%",
                100u64.saturating_sub(min_healthy)
            ),
            &format!("its minimumHealthyPercent: {min_healthy}")
        )
    );
    if !env_vars.is_empty() {
        let _ = writeln!(e, "    env:");
        for (k, v) in &env_vars {
            let _ = writeln!(e, "      {k}: {}", scalar(v));
        }
    }
    if !secrets.is_empty() {
        let _ = writeln!(
            e,
            "{}",
            commented("    secrets:", "by reference, never by value")
        );
        for (k, v) in &secrets {
            let _ = writeln!(e, "      {k}: {}", scalar(v));
        }
    }
    Ok(Draft {
        app,
        env: env.to_owned(),
        image,
        templates,
        notes,
        head,
        environment: e,
        why: "# The live service differs from the built-in templates here: these reproduce it.\n# Remove one to use the built-in template (`plan --live` shows what would change).",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_into_registry_and_repository() {
        assert_eq!(
            split_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/shop/web:1.4"),
            (
                Some("123456789012.dkr.ecr.us-east-1.amazonaws.com".into()),
                "shop/web".into()
            )
        );
        assert_eq!(
            split_image("localhost:5000/shop@sha256:ab"),
            (Some("localhost:5000".into()), "shop".into())
        );
        assert_eq!(split_image("nginx:1.27"), (None, "nginx".into()));
        assert_eq!(
            split_image("envoyproxy/envoy"),
            (None, "envoyproxy/envoy".into())
        );
    }

    #[test]
    fn scalars_are_quoted_only_when_they_would_read_otherwise() {
        assert_eq!(scalar("info"), "info");
        assert_eq!(scalar("arn:aws:iam::1:role/x"), "arn:aws:iam::1:role/x");
        for s in [
            "true", "0755", "1.5", "", "a b", "x: y", "-x", "{a}", "#c", "no",
        ] {
            assert!(scalar(s).starts_with('"'), "{s}");
        }
    }
}
