//! Semantic checks: values that parse but cannot work. Every check reports with the location
//! of the value in deploy.yml and advice, and all of them run, so one pass lists everything.

// `path!` builds a Vec so that paths compose the same way everywhere.
#![allow(clippy::useless_vec)]

use super::model::{
    BlueGreen, Canary, Config, Ecs, Environment, IntOrPercent, Kubernetes, ProviderKind, Scaling,
    Strategy, Target,
};
use super::tree::Seg;
use super::{Source, closest};
use crate::diag::Diagnostic;
use crate::path;
use crate::render::templates::TEMPLATE_IDS;

/// Fargate's valid task CPU units and, for each, the valid memory sizes in MiB.
pub fn fargate_memory_options(cpu: u32) -> Option<Vec<u32>> {
    let range = |from: u32, to: u32, step: u32| (from..=to).step_by(step as usize).collect();
    Some(match cpu {
        256 => vec![512, 1024, 2048],
        512 => range(1024, 4096, 1024),
        1024 => range(2048, 8192, 1024),
        2048 => range(4096, 16384, 1024),
        4096 => range(8192, 30720, 1024),
        8192 => range(16384, 61440, 4096),
        16384 => range(32768, 122_880, 8192),
        _ => return None,
    })
}

/// Names whose values are secrets by convention. A plain environment variable named like this
/// is flagged: it belongs in `secrets:`.
pub fn looks_like_secret(name: &str) -> bool {
    const MARKERS: [&str; 9] = [
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
        "ACCESS_KEY",
    ];
    let upper = name.to_ascii_uppercase();
    MARKERS.iter().any(|m| upper.contains(m))
}

/// RFC 1123 label: lowercase alphanumerics and `-`, starting and ending alphanumeric.
pub fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|l| is_dns_label(l, 63))
}

struct Checker<'a> {
    source: &'a Source,
    problems: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn err(&mut self, path: &[Seg], message: impl Into<String>, help: impl Into<String>) {
        self.problems
            .push(self.source.diag(path, message).help(help));
    }

    fn err_key(&mut self, path: &[Seg], message: impl Into<String>, help: impl Into<String>) {
        self.problems
            .push(self.source.diag_key(path, message).help(help));
    }

    /// Like `err`, for values that may be secrets: no snippet of the line, so the value is
    /// never printed.
    fn err_secret(&mut self, path: &[Seg], message: impl Into<String>, help: impl Into<String>) {
        self.problems
            .push(self.source.diag(path, message).help(help).redacted());
    }

    fn check(&mut self, ok: bool, path: &[Seg], message: impl FnOnce() -> String, help: &str) {
        if !ok {
            self.err(path, message(), help);
        }
    }
}

pub fn validate(config: &Config, source: &Source) -> Vec<Diagnostic> {
    let mut c = Checker {
        source,
        problems: Vec::new(),
    };
    top_level(&mut c, config);
    providers(&mut c, config);
    if config.environments.is_empty() {
        c.err(
            &path!["environments"],
            "no environments are defined",
            "add at least one, for example `staging:` with `target: ecs`",
        );
    }
    for (name, env) in &config.environments {
        environment(&mut c, config, name, env);
    }
    c.problems
}

fn top_level(c: &mut Checker<'_>, config: &Config) {
    if config.image.tag_mutability == crate::config::TagMutability::Immutable {
        for (i, rule) in config.image.tags.iter().enumerate() {
            let moving = match rule {
                crate::config::TagRule::Branch => Some("branch"),
                crate::config::TagRule::Pr => Some("pr"),
                _ => None,
            };
            if let Some(name) = moving {
                c.err(
                    &path!["image", "tags", i],
                    format!("`{name}` tags move to each new commit, and the repository's tags are IMMUTABLE: the second build would be refused"),
                    "with IMMUTABLE keep tags that name one image (`sha`, `semver`, a template with the commit), or set `tag_mutability: MUTABLE` (deploys reference the image by digest either way)",
                );
            }
        }
    }
    c.check(
        is_dns_label(&config.app, 40),
        &path!["app"],
        || format!("`{}` is not a valid app name", config.app),
        "use at most 40 lowercase letters, digits and `-`, starting and ending with a letter or digit (it names ECS families and Kubernetes objects)",
    );
    let region_ok = {
        let parts: Vec<&str> = config.region.split('-').collect();
        parts.len() >= 3
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
            && parts
                .last()
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
    };
    c.check(
        region_ok,
        &path!["region"],
        || format!("`{}` is not an AWS region", config.region),
        "write a region code such as `us-east-1`",
    );
    c.check(
        config.account_id.len() == 12 && config.account_id.bytes().all(|b| b.is_ascii_digit()),
        &path!["account_id"],
        || format!("`{}` is not a 12-digit AWS account id", config.account_id),
        "write the account id as a quoted string of 12 digits, for example \"123456789012\"",
    );
    let repo = &config.image.repository;
    let repo_ok = repo.len() >= 2
        && repo.len() <= 256
        && repo.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        });
    c.check(
        repo_ok,
        &path!["image", "repository"],
        || format!("`{repo}` is not a valid ECR repository name"),
        "use lowercase letters, digits, `.`, `_`, `-` and `/` between parts, for example `movieverse/app`",
    );
    for (i, platform) in config.image.platforms.iter().enumerate() {
        let parts: Vec<&str> = platform.split('/').collect();
        c.check(
            (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty()),
            &path!["image", "platforms", i],
            || format!("`{platform}` is not a platform"),
            "write OS/ARCH, for example `linux/amd64` or `linux/arm64`",
        );
    }
    if config.image.platforms.is_empty() {
        c.err(
            &path!["image", "platforms"],
            "no platform to build for",
            "list at least one, for example `[linux/amd64]`",
        );
    }
    if config.image.tags.is_empty() {
        c.err(
            &path!["image", "tags"],
            "no tag rule",
            "list at least one, for example `[sha]`",
        );
    }
    c.check(
        config.container.port != 0,
        &path!["container", "port"],
        || "port 0 is not a port".into(),
        "write the port the app listens on, for example 5000",
    );
    let hc = &config.container.health_check;
    c.check(
        hc.path.starts_with('/'),
        &path!["container", "health_check", "path"],
        || {
            format!(
                "the health check path `{}` does not start with `/`",
                hc.path
            )
        },
        "write an absolute HTTP path such as `/health`",
    );
    for (key, v) in [
        ("healthy_threshold", hc.healthy_threshold),
        ("unhealthy_threshold", hc.unhealthy_threshold),
    ] {
        c.check(
            (2..=10).contains(&v),
            &path!["container", "health_check", key],
            || format!("{key} is {v}; load balancers accept 2 to 10"),
            "use a value from 2 to 10",
        );
    }
    c.check(
        hc.timeout < hc.interval,
        &path!["container", "health_check", "timeout"],
        || {
            format!(
                "the health check timeout ({}) is not shorter than its interval ({})",
                hc.timeout, hc.interval
            )
        },
        "make the timeout shorter than the interval",
    );
    for id in config.templates.keys() {
        if !TEMPLATE_IDS.contains(&id.as_str()) {
            let help = match closest(id, TEMPLATE_IDS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? Templates: {}", TEMPLATE_IDS.join(", ")),
                None => format!(
                    "templates that can be overridden: {}",
                    TEMPLATE_IDS.join(", ")
                ),
            };
            c.err_key(
                &path!["templates", id],
                format!("unknown template `{id}`"),
                help,
            );
        }
    }
    for (id, file) in &config.templates {
        if TEMPLATE_IDS.contains(&id.as_str()) && !c.source.resolve(file).is_file() {
            c.err(
                &path!["templates", id],
                format!("the template file `{file}` does not exist"),
                "paths are relative to the directory of deploy.yml",
            );
        }
    }
}

fn environment(c: &mut Checker<'_>, config: &Config, name: &str, env: &Environment) {
    let base = path!["environments", name];
    let at =
        |rest: &[Seg]| -> Vec<Seg> { base.iter().cloned().chain(rest.iter().cloned()).collect() };
    if !is_dns_label(name, 20) {
        c.err_key(
            &base,
            format!("`{name}` is not a valid environment name"),
            "use at most 20 lowercase letters, digits and `-` (it becomes part of resource names)",
        );
    }
    match env.target {
        Target::Ecs => {
            if env.kubernetes.is_some() {
                c.err_key(
                    &at(&path!["kubernetes"]),
                    "a `kubernetes:` block in an environment with `target: ecs`",
                    "remove it, or set `target: kubernetes`",
                );
            }
            match &env.ecs {
                Some(ecs) => ecs_settings(c, &at(&path!["ecs"]), ecs),
                None => c.err(&base, "`target: ecs` needs an `ecs:` block", "add `ecs:` with at least cluster, service, execution_role_arn, task_role_arn and network"),
            }
        }
        Target::Kubernetes => {
            if env.ecs.is_some() {
                c.err_key(
                    &at(&path!["ecs"]),
                    "an `ecs:` block in an environment with `target: kubernetes`",
                    "remove it, or set `target: ecs`",
                );
            }
            match &env.kubernetes {
                Some(k) => kubernetes_settings(c, &at(&path!["kubernetes"]), k),
                None => c.err(
                    &base,
                    "`target: kubernetes` needs a `kubernetes:` block",
                    "add `kubernetes:` with at least namespace and ingress",
                ),
            }
        }
    }
    strategy(c, config, env, &at(&path!["strategy"]));
    for (var, _) in &env.env {
        if !is_env_name(var) {
            c.err_key(
                &at(&path!["env", var]),
                format!("`{var}` is not a valid environment variable name"),
                "use letters, digits and `_`, not starting with a digit",
            );
        }
        if looks_like_secret(var) && !env.not_secrets.contains(var) {
            c.err_secret(
                &at(&path!["env", var]),
                format!("`{var}` looks like a secret but is set as a plain environment variable"),
                "move it to `secrets:` as a Secrets Manager ARN (ECS) or `secret-name/key` (Kubernetes); if it is not a secret, list it in `not_secrets:`",
            );
        }
        if env.secrets.contains_key(var) {
            c.err_key(
                &at(&path!["env", var]),
                format!("`{var}` is set both in `env:` and in `secrets:`"),
                "keep one of them",
            );
        }
    }
    for (var, reference) in &env.secrets {
        if !is_env_name(var) {
            c.err_key(
                &at(&path!["secrets", var]),
                format!("`{var}` is not a valid environment variable name"),
                "use letters, digits and `_`, not starting with a digit",
            );
        }
        secret_reference(c, env.target, &at(&path!["secrets", var]), reference);
    }
    if config.datadog.enabled {
        match (&env.datadog_api_key_secret, &config.datadog.api_key_secret) {
            (Some(reference), _) => secret_reference(c, env.target, &at(&path!["datadog_api_key_secret"]), reference),
            (None, Some(reference)) => {
                let before = c.problems.len();
                secret_reference(c, env.target, &path!["datadog", "api_key_secret"], reference);
                for d in &mut c.problems[before..] {
                    d.message = format!("{} (for environment `{name}`, target {})", d.message, env.target);
                    d.help = Some(format!(
                        "set `datadog_api_key_secret` in environment `{name}` to a reference its target can read; {}",
                        d.help.take().unwrap_or_default()
                    ));
                }
            }
            (None, None) => c.err(
                &base,
                format!("the Datadog agent is enabled but environment `{name}` has no API key secret"),
                "set `datadog.api_key_secret` (or `datadog_api_key_secret` in the environment), or `datadog.enabled: false`",
            ),
        }
    }
    lock(c, env, &at(&path!["lock"]));
    if let Some(url) = &env.url {
        c.check(
            url.starts_with("https://") || url.starts_with("http://"),
            &at(&path!["url"]),
            || format!("`{url}` is not an http(s) URL"),
            "write the full URL, for example https://staging.movie-verse.com",
        );
    }
}

fn lock(c: &mut Checker<'_>, env: &Environment, p: &[Seg]) {
    if let Some(table) = &env.lock.table {
        if env.target == Target::Kubernetes {
            c.err_key(
                &[p, &path!["table"]].concat(),
                "`lock.table` in a Kubernetes environment",
                "remove it: a Kubernetes deploy holds a `Lease` in its namespace; a DynamoDB table is for ECS",
            );
        }
        c.check(
            (3..=255).contains(&table.len())
                && table
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)),
            &[p, &path!["table"]].concat(),
            || format!("`{table}` is not a DynamoDB table name"),
            "use 3 to 255 letters, digits, `_`, `-` and `.`",
        );
    }
    let secs = env.lock.duration.as_secs();
    c.check(
        (2..=3600).contains(&secs),
        &[p, &path!["duration"]].concat(),
        || format!("lock.duration is {}", env.lock.duration),
        "use 2s to 1h (default 60s): a holder that died is taken over this long after its last renewal",
    );
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn secret_reference(c: &mut Checker<'_>, target: Target, path: &[Seg], reference: &str) {
    match target {
        Target::Ecs => {
            // arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME, or
            // arn:aws:ssm:REGION:ACCOUNT:parameter/NAME (one colon fewer).
            let parts: Vec<&str> = reference.split(':').collect();
            let ok = (reference.starts_with("arn:aws:secretsmanager:") && parts.len() >= 7)
                || (reference.starts_with("arn:aws:ssm:")
                    && parts.get(5).is_some_and(|p| p.starts_with("parameter/")));
            if !ok {
                c.err_secret(
                    path,
                    "this secret is not a Secrets Manager or SSM parameter ARN (the value is not shown, in case it is the secret itself)",
                    "write the secret's ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), never the secret value itself",
                );
            }
        }
        Target::Kubernetes => {
            let ok = reference.split_once('/').is_some_and(|(name, key)| {
                is_dns_subdomain(name)
                    && !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
            if !ok {
                c.err_secret(
                    path,
                    "this secret is not a `secret-name/key` reference (the value is not shown, in case it is the secret itself)",
                    "write the Kubernetes Secret and key, for example `movieverse-secrets/database-url`, never the secret value itself",
                );
            }
        }
    }
}

fn is_arn(s: &str, service: &str, resource_prefix: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == service
        && parts[5].starts_with(resource_prefix)
        && parts[5].len() > resource_prefix.len()
}

fn ecs_settings(c: &mut Checker<'_>, base: &[Seg], ecs: &Ecs) {
    let at =
        |key: &str| -> Vec<Seg> { base.iter().cloned().chain([Seg::Key(key.into())]).collect() };
    match fargate_memory_options(ecs.cpu) {
        None => c.err(
            &at("cpu"),
            format!("{} is not a Fargate CPU size", ecs.cpu),
            "use 256, 512, 1024, 2048, 4096, 8192 or 16384 CPU units",
        ),
        Some(options) if !options.contains(&ecs.memory) => c.err(
            &at("memory"),
            format!(
                "{} MiB of memory is not valid with {} CPU units on Fargate",
                ecs.memory, ecs.cpu
            ),
            format!(
                "with cpu {} use one of: {} MiB",
                ecs.cpu,
                options
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(_) => {}
    }
    c.check(
        ecs.desired_count >= 1,
        &at("desired_count"),
        || "desired_count is 0".into(),
        "run at least 1 task",
    );
    for (key, arn) in [
        ("execution_role_arn", &ecs.execution_role_arn),
        ("task_role_arn", &ecs.task_role_arn),
    ] {
        c.check(
            is_arn(arn, "iam", "role/"),
            &at(key),
            || format!("`{arn}` is not an IAM role ARN"),
            "write arn:aws:iam::ACCOUNT:role/NAME",
        );
    }
    let net: Vec<Seg> = at("network");
    let net_at = |key: &str, i: usize| -> Vec<Seg> {
        net.iter()
            .cloned()
            .chain([Seg::Key(key.into()), Seg::Index(i)])
            .collect()
    };
    if ecs.network.subnets.is_empty() {
        c.err(
            &net,
            "no subnets",
            "awsvpc tasks need at least one subnet id (subnet-…)",
        );
    }
    for (i, s) in ecs.network.subnets.iter().enumerate() {
        c.check(
            s.starts_with("subnet-"),
            &net_at("subnets", i),
            || format!("`{s}` is not a subnet id"),
            "write subnet-…",
        );
    }
    for (i, s) in ecs.network.security_groups.iter().enumerate() {
        c.check(
            s.starts_with("sg-"),
            &net_at("security_groups", i),
            || format!("`{s}` is not a security group id"),
            "write sg-…",
        );
    }
    if let Some(lb) = &ecs.load_balancer {
        c.check(
            is_arn(&lb.target_group_arn, "elasticloadbalancing", "targetgroup/"),
            &[base, &path!["load_balancer", "target_group_arn"]].concat(),
            || format!("`{}` is not a target group ARN", lb.target_group_arn),
            "write arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID",
        );
    }
    scaling(c, &at("scaling"), &ecs.scaling);
    let mut names = vec![ecs.service.as_str()];
    for (i, extra) in ecs.services.iter().enumerate() {
        let p = |key: &str| -> Vec<Seg> {
            base.iter()
                .cloned()
                .chain([
                    Seg::Key("services".into()),
                    Seg::Index(i),
                    Seg::Key(key.into()),
                ])
                .collect()
        };
        let valid = !extra.name.is_empty()
            && extra.name.len() <= 255
            && extra
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && is_dns_label(&extra.name.to_ascii_lowercase().replace('_', "-"), 40);
        c.check(valid, &p("name"), || format!("`{}` is not a valid service name", extra.name), "use at most 40 letters, digits, `-` and `_` (it also names the task definition family)");
        if names.contains(&extra.name.as_str()) {
            c.err(
                &p("name"),
                format!("service `{}` is listed twice", extra.name),
                "give each service of the environment its own name",
            );
        }
        names.push(&extra.name);
        if extra.desired_count == Some(0) {
            c.err(
                &p("desired_count"),
                "desired_count is 0",
                "run at least 1 task",
            );
        }
        if let Some(lb) = &extra.load_balancer {
            c.check(
                is_arn(&lb.target_group_arn, "elasticloadbalancing", "targetgroup/"),
                &[p("load_balancer"), path!["target_group_arn"]].concat(),
                || format!("`{}` is not a target group ARN", lb.target_group_arn),
                "write arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID",
            );
        }
        if let Some(sc) = &extra.scaling {
            scaling(c, &p("scaling"), sc);
            let desired = extra.desired_count.unwrap_or(ecs.desired_count);
            if sc.enabled && !(sc.min..=sc.max).contains(&desired) {
                c.err(
                    &p("desired_count"),
                    format!(
                        "desired_count {desired} is outside the auto-scaling range {}..{}",
                        sc.min, sc.max
                    ),
                    "auto scaling would move it at once; set desired_count within the range",
                );
            }
        }
    }
    if ecs.scaling.enabled && !(ecs.scaling.min..=ecs.scaling.max).contains(&ecs.desired_count) {
        c.err(
            &at("desired_count"),
            format!(
                "desired_count {} is outside the auto-scaling range {}..{}",
                ecs.desired_count, ecs.scaling.min, ecs.scaling.max
            ),
            "auto scaling would move it at once; set desired_count within the range",
        );
    }
}

fn scaling(c: &mut Checker<'_>, base: &[Seg], s: &Scaling) {
    if !s.enabled {
        return;
    }
    let at =
        |key: &str| -> Vec<Seg> { base.iter().cloned().chain([Seg::Key(key.into())]).collect() };
    c.check(
        s.min >= 1,
        &at("min"),
        || "scaling.min is 0".into(),
        "keep at least 1 running",
    );
    c.check(
        s.min <= s.max,
        &at("max"),
        || format!("scaling.max ({}) is below scaling.min ({})", s.max, s.min),
        "make max at least min",
    );
    for (key, v) in [
        ("cpu_target", s.cpu_target),
        ("memory_target", s.memory_target),
    ] {
        c.check(
            (1..=100).contains(&v),
            &at(key),
            || format!("{key} is {v}%"),
            "use a utilisation target from 1 to 100 percent",
        );
    }
}

fn kubernetes_settings(c: &mut Checker<'_>, base: &[Seg], k: &Kubernetes) {
    let at = |rest: &[&str]| -> Vec<Seg> {
        base.iter()
            .cloned()
            .chain(rest.iter().map(|s| Seg::Key((*s).into())))
            .collect()
    };
    c.check(
        is_dns_label(&k.namespace, 63),
        &at(&["namespace"]),
        || format!("`{}` is not a valid Kubernetes namespace name", k.namespace),
        "use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit",
    );
    c.check(
        k.replicas >= 1,
        &at(&["replicas"]),
        || "replicas is 0".into(),
        "run at least 1 replica",
    );
    for (key, q) in [("cpu", &k.resources.cpu), ("memory", &k.resources.memory)] {
        c.check(
            is_quantity(q),
            &at(&["resources", key]),
            || format!("`{q}` is not a Kubernetes quantity"),
            "write for example `500m` for CPU or `1Gi` for memory",
        );
    }
    c.check(
        is_dns_subdomain(&k.ingress.host),
        &at(&["ingress", "host"]),
        || format!("`{}` is not a valid host name", k.ingress.host),
        "write a lowercase DNS name such as api.movie-verse.com",
    );
    c.check(
        k.ingress.path.starts_with('/'),
        &at(&["ingress", "path"]),
        || "the ingress path does not start with `/`".into(),
        "write an absolute path such as `/`",
    );
    if let Some(secret) = &k.ingress.tls_secret {
        c.check(
            is_dns_subdomain(secret),
            &at(&["ingress", "tls_secret"]),
            || format!("`{secret}` is not a valid Secret name"),
            "use lowercase letters, digits, `-` and `.`",
        );
    }
    match (k.router, &k.gateway) {
        (crate::config::Router::GatewayApi, None) => c.err(
            &at(&["router"]),
            "`router: gateway-api` needs the Gateway the HTTPRoute attaches to, and no `gateway` is named",
            "add `gateway: {name: NAME, namespace: NS}` beside `router` (the Gateway of your Gateway API implementation)",
        ),
        (crate::config::Router::Nginx, Some(_)) => c.err(
            &at(&["gateway"]),
            "`gateway` is set, but the router is NGINX (the default), which does not use it",
            "add `router: gateway-api` to route through the Gateway with an HTTPRoute, or remove `gateway`",
        ),
        (_, Some(g)) => {
            c.check(
                is_dns_subdomain(&g.name),
                &at(&["gateway", "name"]),
                || format!("`{}` is not a valid Gateway name", g.name),
                "use lowercase letters, digits, `-` and `.`",
            );
            if let Some(ns) = &g.namespace {
                c.check(
                    is_dns_label(ns, 63),
                    &at(&["gateway", "namespace"]),
                    || format!("`{ns}` is not a valid namespace name"),
                    "use at most 63 lowercase letters, digits and `-`",
                );
            }
        }
        (crate::config::Router::Nginx, None) => {}
    }
    scaling(c, &at(&["scaling"]), &k.scaling);
    for key in k.config.keys() {
        c.check(
            !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            &at(&["config", key]),
            || format!("`{key}` is not a valid ConfigMap key"),
            "use letters, digits, `-`, `_` and `.`",
        );
    }
}

fn is_quantity(q: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E",
    ];
    let number = SUFFIXES.iter().find_map(|s| q.strip_suffix(s)).unwrap_or(q);
    !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|b| *b == b'.').count() <= 1
        && number.bytes().any(|b| b.is_ascii_digit())
}

fn strategy(c: &mut Checker<'_>, config: &Config, env: &Environment, base: &[Seg]) {
    let at =
        |rest: &[Seg]| -> Vec<Seg> { base.iter().cloned().chain(rest.iter().cloned()).collect() };
    match &env.strategy {
        Strategy::Rolling(r) => {
            let p = at(&path!["rolling"]);
            let zero =
                |v: IntOrPercent| matches!(v, IntOrPercent::Int(0) | IntOrPercent::Percent(0));
            if zero(r.max_surge) && zero(r.max_unavailable) {
                c.err(
                    &[p.clone(), path!["max_surge"]].concat(),
                    "max_surge and max_unavailable are both 0: the rollout could never replace a task",
                    "set max_surge to at least 1 (the spec's default) or allow max_unavailable",
                );
            }
            c.check(
                r.revision_history >= 1,
                &[p.clone(), path!["revision_history"]].concat(),
                || "revision_history is 0".into(),
                "keep at least 1 revision to roll back to",
            );
            c.check(
                r.progress_deadline.as_secs() > 0,
                &[p, path!["progress_deadline"]].concat(),
                || "progress_deadline is 0".into(),
                "give the rollout time, for example 600s",
            );
        }
        Strategy::BlueGreen(bg) => {
            let p = at(&path!["blue-green"]);
            if env.target == Target::Kubernetes {
                for key in bg.ecs_settings() {
                    c.err_key(
                        &[p.clone(), path![key]].concat(),
                        format!("`{key}` is an ECS (CodeDeploy) setting: a blue-green on Kubernetes switches the Service's selector"),
                        "remove it; green is checked through the preview Service `<app>-preview` (`{{ test_url }}` in checks)",
                    );
                }
            } else if bg.native() {
                native_blue_green(c, env, bg, &p);
            } else {
                for key in [
                    "prod_listener_rule",
                    "test_listener_rule",
                    "infrastructure_role",
                ] {
                    if bg.ecs_settings().contains(&key) {
                        c.err_key(
                            &[p.clone(), path![key]].concat(),
                            format!("`{key}` is a setting of ECS native blue/green; this blue-green goes through CodeDeploy"),
                            "add `controller: ecs` for ECS native blue/green, or remove it (CodeDeploy takes the listeners from the deployment group)",
                        );
                    }
                }
                for (key, set, help) in [
                    (
                        "application",
                        bg.application.is_some(),
                        "name the CodeDeploy application, for example `movieverse`",
                    ),
                    (
                        "deployment_group",
                        bg.deployment_group.is_some(),
                        "name the CodeDeploy deployment group of the service, for example `movieverse-production`",
                    ),
                    (
                        "green_target_group",
                        bg.green_target_group.is_some(),
                        "name green's target group, behind the same listeners as blue, for example `movieverse-green`",
                    ),
                    (
                        "prod_listener_arn",
                        bg.prod_listener_arn.is_some(),
                        "write the production listener's ARN: arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/LB/ID/ID",
                    ),
                    (
                        "test_listener_arn",
                        bg.test_listener_arn.is_some(),
                        "write the test listener's ARN (port 8080 in the spec): arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/LB/ID/ID",
                    ),
                ] {
                    if !set {
                        c.err_key(&p, format!("a blue-green on ECS needs `{key}`"), help);
                    }
                }
            }
            if env.ecs.as_ref().is_some_and(|e| e.load_balancer.is_none()) {
                c.err(
                    &p,
                    "blue-green needs the service's load balancer",
                    "add `ecs.load_balancer.target_group_arn` (the blue target group)",
                );
            }
            if env.ecs.as_ref().is_some_and(|e| !e.services.is_empty()) {
                c.err_key(
                    &p,
                    "blue-green deploys one service per environment (one CodeDeploy deployment group)",
                    "move the other services to an environment with the rolling strategy, or remove `ecs.services`",
                );
            }
            c.check(
                bg.test_port != 0,
                &[p.clone(), path!["test_port"]].concat(),
                || "test_port is 0".into(),
                "use the test listener's port, for example 8080",
            );
            for (key, arn) in [
                ("prod_listener_arn", &bg.prod_listener_arn),
                ("test_listener_arn", &bg.test_listener_arn),
            ] {
                let Some(arn) = arn else { continue };
                c.check(
                    is_arn(arn, "elasticloadbalancing", "listener/"),
                    &[p.clone(), path![key]].concat(),
                    || format!("`{arn}` is not a listener ARN"),
                    "write arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/LB/ID/ID",
                );
            }
            if bg.prod_listener_arn.is_some() && bg.prod_listener_arn == bg.test_listener_arn {
                c.err(
                    &[p.clone(), path!["test_listener_arn"]].concat(),
                    "the test listener is the production listener",
                    "test traffic needs its own listener (port 8080 in the spec)",
                );
            }
            // CodeDeploy keeps blue for 0 to 2880 minutes
            // (`terminateBlueInstancesOnDeploymentSuccess.terminationWaitTimeInMinutes`); ECS
            // native's bake time is checked with its settings.
            let wait = bg.termination_wait.as_secs();
            c.check(
                env.target == Target::Kubernetes
                    || bg.native()
                    || (wait <= 2880 * 60 && wait % 60 == 0),
                &[p.clone(), path!["termination_wait"]].concat(),
                || {
                    format!(
                        "termination_wait {} is not a whole number of minutes from 0 to 48h (CodeDeploy's range)",
                        bg.termination_wait
                    )
                },
                "write minutes, for example 5m; at most 48h (2880 minutes)",
            );
            if let Some(blue) = env
                .ecs
                .as_ref()
                .and_then(|e| e.load_balancer.as_ref())
                .and_then(|lb| lb.target_group_arn.split('/').nth(1))
                && Some(blue) == bg.green_target_group.as_deref()
            {
                c.err(
                    &[p.clone(), path!["green_target_group"]].concat(),
                    format!(
                        "the green target group `{blue}` is the blue one (ecs.load_balancer.target_group_arn)"
                    ),
                    "green needs a target group of its own behind the same listeners, for example `movieverse-green`",
                );
            }
            if let Some(crate::config::PauseGate::Timed(d)) = &bg.gate {
                c.check(
                    d.as_secs() > 0,
                    &[p.clone(), path!["gate"]].concat(),
                    || "gate is 0s".into(),
                    "write `manual`, or how long to hold green at Ready, for example 10m",
                );
                if bg.analysis.is_none() {
                    c.err(
                        &[p.clone(), path!["gate"]].concat(),
                        format!("a gate of {d} without checks only delays the switch: nothing judges green on the test listener"),
                        "add `analysis:` with the checks of green at Ready (for example `http: [{name: health, url: \"{{ test_url }}/health\"}]`), or `gate: manual` for a person to check",
                    );
                }
            }
            if let Some(a) = &bg.analysis {
                analysis(
                    c,
                    config,
                    a,
                    &[p.clone(), path!["analysis"]].concat(),
                    "blue-green",
                );
            }
            for hook in bg.hooks.keys() {
                const EVENTS: [&str; 5] = [
                    "BeforeInstall",
                    "AfterInstall",
                    "AfterAllowTestTraffic",
                    "BeforeAllowTraffic",
                    "AfterAllowTraffic",
                ];
                if !EVENTS.contains(&hook.as_str()) {
                    c.err_key(
                        &[p.clone(), path!["hooks", hook]].concat(),
                        format!("`{hook}` is not a CodeDeploy ECS lifecycle event"),
                        format!("use one of: {}", EVENTS.join(", ")),
                    );
                }
            }
        }
        Strategy::Canary(canary) => {
            let p = at(&path!["canary"]);
            if env.target == Target::Kubernetes {
                for key in canary.ecs_settings() {
                    c.err_key(
                        &[p.clone(), path![key]].concat(),
                        format!("`{key}` is an ECS setting: a canary on Kubernetes weighs its Ingress or HTTPRoute"),
                        "remove it; `kubernetes.router` says what carries the canary's weight",
                    );
                }
            } else if let Some(ecs) = &env.ecs {
                ecs_canary(c, ecs, canary, &p);
            }
            canary_settings(c, config, canary, &p);
            let weights = canary.weights();
            if !weights.is_empty() && canary.analysis.interval.as_secs() > 0 {
                let (promote, healthy, delay, n, interval) =
                    crate::strategy::timeline::earliest_promotion(config, canary);
                let deadline = canary.deadline.as_secs();
                let f = crate::plan::fmt_secs;
                if deadline < promote {
                    c.err(
                        &[p.clone(), path!["deadline"]].concat(),
                        format!(
                            "deadline {} is shorter than the canary's schedule: the earliest promotion is at {} (healthy after {} + initial delay {} + {} more step(s) of one {} interval each)",
                            f(deadline), f(promote), f(healthy), f(delay), n.saturating_sub(1), f(interval)
                        ),
                        format!("set `deadline` to at least {} (with room for failed checks), or shorten the schedule", f(promote)),
                    );
                }
            }
        }
    }
}

/// A canary on ECS, at `p`: two services (stable and canary), each in its own target group,
/// weighed on one ALB listener rule or listener.
fn ecs_canary(c: &mut Checker<'_>, ecs: &Ecs, canary: &Canary, p: &[Seg]) {
    let key = |k: &str| -> Vec<Seg> { p.iter().cloned().chain([Seg::Key(k.into())]).collect() };
    let stable_tg = ecs
        .load_balancer
        .as_ref()
        .map(|lb| lb.target_group_arn.as_str());
    if stable_tg.is_none() {
        c.err_key(
            p,
            "a canary on ECS needs the service's load balancer: the stable service's target group takes the stable share of traffic",
            "add `ecs.load_balancer.target_group_arn` (the stable target group)",
        );
    }
    match &canary.canary_target_group {
        None => c.err_key(
            p,
            "a canary on ECS needs `canary_target_group`: the canary service registers in it, and the listener weighs it against the stable one",
            "write the canary target group's ARN, behind the same listener as the stable one: arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID",
        ),
        Some(tg) => {
            c.check(
                is_arn(tg, "elasticloadbalancing", "targetgroup/"),
                &key("canary_target_group"),
                || format!("`{tg}` is not a target group ARN"),
                "write arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID",
            );
            if stable_tg == Some(tg.as_str()) {
                c.err(
                    &key("canary_target_group"),
                    "the canary target group is the stable one (ecs.load_balancer.target_group_arn)",
                    "the canary needs a target group of its own, behind the same listener",
                );
            }
        }
    }
    match (&canary.listener_rule, &canary.listener_arn) {
        (None, None) => c.err_key(
            p,
            "a canary on ECS needs `listener_rule` (or `listener_arn`): its forward action carries the two weights",
            "write the ARN of the listener rule that forwards to the stable target group: arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener-rule/app/LB/ID/ID/ID (or `listener_arn` for the listener's default action)",
        ),
        (Some(_), Some(_)) => c.err_key(
            &key("listener_arn"),
            "both `listener_rule` and `listener_arn` are set: the weights go on one of them",
            "keep `listener_rule` for a rule, or `listener_arn` for the listener's default action",
        ),
        (Some(rule), None) => c.check(
            is_arn(rule, "elasticloadbalancing", "listener-rule/app/"),
            &key("listener_rule"),
            || format!("`{rule}` is not an Application Load Balancer listener rule ARN"),
            "write arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener-rule/app/LB/ID/ID/ID",
        ),
        (None, Some(listener)) => c.check(
            is_arn(listener, "elasticloadbalancing", "listener/app/"),
            &key("listener_arn"),
            || format!("`{listener}` is not an Application Load Balancer listener ARN"),
            "write arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/LB/ID/ID",
        ),
    }
    if canary.native() {
        native_canary(c, canary, p);
        return;
    }
    if canary.infrastructure_role.is_some() {
        c.err_key(
            &key("infrastructure_role"),
            "`infrastructure_role` is a setting of ECS native CANARY and LINEAR (`router: ecs`); this canary's weights are set by this tool (`router: alb`)",
            "remove it, or add `router: ecs` for ECS native",
        );
    }
    let name = canary.canary_service_name(ecs);
    if name == ecs.service || ecs.services.iter().any(|s| s.name == name) {
        c.err(
            &key("canary_service"),
            format!("the canary service `{name}` is already a service of this environment"),
            "name a service of its own for the canary, for example `<service>-canary`",
        );
    }
}

/// A canary on ECS with `router: ecs` (ECS native `CANARY` or `LINEAR`), at `p`: one service,
/// the listener rule ECS moves, its role, and a schedule ECS can play.
fn native_canary(c: &mut Checker<'_>, canary: &Canary, p: &[Seg]) {
    let key = |k: &str| -> Vec<Seg> { p.iter().cloned().chain([Seg::Key(k.into())]).collect() };
    for (k, set, why) in [
        (
            "canary_service",
            canary.canary_service.is_some(),
            "ECS native runs the canary inside the one service: there is no canary service",
        ),
        (
            "listener_arn",
            canary.listener_arn.is_some(),
            "ECS native moves a listener rule: write `listener_rule` (its ARN) instead",
        ),
    ] {
        if set {
            c.err_key(
                &key(k),
                format!("`{k}` does not apply to ECS native (`router: ecs`)"),
                why,
            );
        }
    }
    match &canary.infrastructure_role {
        None => c.err_key(
            p,
            "ECS native CANARY and LINEAR need `infrastructure_role`: the role ECS assumes to change the listener rule",
            "write its ARN, for example arn:aws:iam::ACCOUNT:role/ecsInfrastructureRoleForLoadBalancers",
        ),
        Some(role) => c.check(
            is_arn(role, "iam", "role/"),
            &key("infrastructure_role"),
            || format!("`{role}` is not an IAM role ARN"),
            "write arn:aws:iam::ACCOUNT:role/NAME",
        ),
    }
    match canary.native_shape() {
        None if canary.steps.is_some() => c.err(
            &key("steps"),
            "ECS native CANARY shifts one weight and then all the traffic: this schedule needs the ALB router",
            "use `router: alb` (two services; this tool sets each weight, any schedule), or write one weight, `steps: [10]`, or `step_weight` for LINEAR",
        ),
        Some(crate::config::NativeShape::Canary { percent }) => c.check(
            (1..100).contains(&percent),
            &key("steps"),
            || format!("ECS native CANARY at {percent}%: the canary's share must be below 100 (then ECS shifts the rest)"),
            "write a weight from 1 to 99, for example `steps: [10]`",
        ),
        Some(crate::config::NativeShape::Linear { step }) => {
            if step < NATIVE_MIN_LINEAR_STEP {
                c.err(
                    &key("step_weight"),
                    format!("ECS native LINEAR steps {step}%: ECS takes steps of {NATIVE_MIN_LINEAR_STEP}% to 100%"),
                    format!("use a step_weight of at least {NATIVE_MIN_LINEAR_STEP}, or `router: alb` for smaller steps"),
                );
            } else if step < 100 {
                let last = 99 / step * step;
                c.check(
                    canary.max_weight == Some(last),
                    &key("max_weight"),
                    || format!(
                        "ECS native LINEAR goes {step}% at a time up to 100%, so the last step before promotion is {last}%, not {}%",
                        canary.max_weight.unwrap_or(0)
                    ),
                    &format!("set `max_weight: {last}`, or use `router: alb` to stop at another weight"),
                );
            }
        }
        None => {}
    }
    if canary
        .steps
        .iter()
        .flatten()
        .any(|s| matches!(s, crate::config::CanaryStep::Pause { .. }))
    {
        c.err(
            &key("steps"),
            "ECS native CANARY cannot pause between its steps",
            "use `pause_before_promotion` (ECS holds at the PAUSE hook before the last shift), or `router: alb`",
        );
    }
}

/// ECS native LINEAR's smallest `stepPercent`.
const NATIVE_MIN_LINEAR_STEP: u8 = 3;

/// `blue-green` with `controller: ecs` on ECS, at `p`: ECS native blue/green's settings
/// present and well formed, `CodeDeploy`'s absent.
fn native_blue_green(c: &mut Checker<'_>, env: &Environment, bg: &BlueGreen, p: &[Seg]) {
    let key = |k: &str| -> Vec<Seg> { p.iter().cloned().chain([Seg::Key(k.into())]).collect() };
    for (k, set) in [
        ("application", bg.application.is_some()),
        ("deployment_group", bg.deployment_group.is_some()),
        ("prod_listener_arn", bg.prod_listener_arn.is_some()),
        ("test_listener_arn", bg.test_listener_arn.is_some()),
        ("hooks", !bg.hooks.is_empty()),
        (
            "deployment_config",
            bg.deployment_config != crate::config::defaults::deployment_config(),
        ),
    ] {
        if set {
            let help = match k {
                "prod_listener_arn" => {
                    "ECS native blue/green moves a listener rule: write `prod_listener_rule` (its ARN) instead"
                }
                "test_listener_arn" => {
                    "ECS native blue/green moves a listener rule: write `test_listener_rule` (its ARN) instead"
                }
                "hooks" => {
                    "ECS native blue/green's gate is the PAUSE hook this tool sets; remove the Lambda hooks (or use `controller: codedeploy`)"
                }
                _ => {
                    "remove it, or use `controller: codedeploy` for a blue-green through CodeDeploy"
                }
            };
            c.err_key(
                &key(k),
                format!(
                    "`{k}` is a CodeDeploy setting; `controller: ecs` is ECS native blue/green"
                ),
                help,
            );
        }
    }
    for (k, value, help) in [
        (
            "green_target_group",
            &bg.green_target_group,
            "write green's target group ARN (alternateTargetGroupArn): arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID",
        ),
        (
            "prod_listener_rule",
            &bg.prod_listener_rule,
            "write the production listener rule's ARN: arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener-rule/app/LB/ID/ID/ID",
        ),
        (
            "infrastructure_role",
            &bg.infrastructure_role,
            "write the ARN of the role ECS assumes to change the listener rules, for example arn:aws:iam::ACCOUNT:role/ecsInfrastructureRoleForLoadBalancers",
        ),
    ] {
        if value.is_none() {
            c.err_key(p, format!("ECS native blue/green needs `{k}`"), help);
        }
    }
    let checked = bg.gate.is_some() || bg.analysis.is_some();
    if checked && bg.test_listener_rule.is_none() {
        c.err_key(
            p,
            "a gate or checks of green need test traffic, and there is no `test_listener_rule`",
            "write the test listener rule's ARN (the listener on port 8080 in the spec): arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener-rule/app/LB/ID/ID/ID",
        );
    }
    if let Some(tg) = &bg.green_target_group {
        c.check(
            is_arn(tg, "elasticloadbalancing", "targetgroup/"),
            &key("green_target_group"),
            || format!("`{tg}` is not a target group ARN (ECS native blue/green names green's target group by ARN)"),
            "write arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID",
        );
        if env
            .ecs
            .as_ref()
            .and_then(|e| e.load_balancer.as_ref())
            .is_some_and(|lb| lb.target_group_arn == *tg)
        {
            c.err(
                &key("green_target_group"),
                "the green target group is the blue one (ecs.load_balancer.target_group_arn)",
                "green needs a target group of its own behind the same listener rules",
            );
        }
    }
    for (k, arn) in [
        ("prod_listener_rule", &bg.prod_listener_rule),
        ("test_listener_rule", &bg.test_listener_rule),
    ] {
        let Some(arn) = arn else { continue };
        c.check(
            is_arn(arn, "elasticloadbalancing", "listener-rule/")
                || is_arn(arn, "elasticloadbalancing", "listener/net/"),
            &key(k),
            || format!("`{arn}` is not a listener rule ARN"),
            "write arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener-rule/app/LB/ID/ID/ID (for a Network Load Balancer, its listener's ARN)",
        );
    }
    if bg.prod_listener_rule.is_some() && bg.prod_listener_rule == bg.test_listener_rule {
        c.err(
            &key("test_listener_rule"),
            "the test listener rule is the production listener rule",
            "test traffic needs a rule of its own, on the test listener (port 8080 in the spec)",
        );
    }
    if let Some(role) = &bg.infrastructure_role {
        c.check(
            is_arn(role, "iam", "role/"),
            &key("infrastructure_role"),
            || format!("`{role}` is not an IAM role ARN"),
            "write arn:aws:iam::ACCOUNT:role/NAME",
        );
    }
    // `bakeTimeInMinutes`: whole minutes, 0 to 1440.
    let bake = bg.termination_wait.as_secs();
    c.check(
        bake <= NATIVE_MAX_BAKE_MINUTES * 60 && bake.is_multiple_of(60),
        &key("termination_wait"),
        || {
            format!(
                "termination_wait {} is not a whole number of minutes from 0 to 24h (ECS's bakeTimeInMinutes)",
                bg.termination_wait
            )
        },
        "write minutes, for example 5m; at most 24h (1440 minutes)",
    );
}

/// The longest bake time of ECS native blue/green, in minutes (`bakeTimeInMinutes`).
pub const NATIVE_MAX_BAKE_MINUTES: u64 = 1440;

fn canary_settings(c: &mut Checker<'_>, config: &Config, canary: &Canary, base: &[Seg]) {
    let at =
        |rest: &[Seg]| -> Vec<Seg> { base.iter().cloned().chain(rest.iter().cloned()).collect() };
    match (&canary.steps, canary.step_weight, canary.max_weight) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => c.err(
            &at(&path!["steps"]),
            "both canary schedule forms are set: `steps` and `step_weight`/`max_weight`",
            "keep one: explicit `steps: [10, 25, 50, 75, 100]`, or `step_weight: 10` with `max_weight: 50`",
        ),
        (None, None, None) => c.err(
            base,
            "no canary schedule",
            "add `steps: [10, 25, 50, 75, 100]`, or `step_weight: 10` with `max_weight: 50`",
        ),
        (None, Some(_), None) => c.err(&at(&path!["step_weight"]), "step_weight without max_weight", "add `max_weight`, the weight after which the canary is promoted"),
        (None, None, Some(_)) => c.err(&at(&path!["max_weight"]), "max_weight without step_weight", "add `step_weight`, the weight added after each passed check"),
        (Some(steps), None, None) => {
            if steps.is_empty() {
                c.err(&at(&path!["steps"]), "the canary has no steps", "list rising weights, for example [10, 25, 50, 75, 100]");
            }
            let mut previous: Option<u8> = None;
            let mut paused = false;
            for (i, step) in steps.iter().enumerate() {
                let w = match step {
                    crate::config::CanaryStep::Pause { .. } => {
                        if i == 0 {
                            c.err(&at(&path!["steps", i]), "a pause before the first weight: the canary takes no traffic yet, there is nothing to wait on", "put the pause after a weight, for example [10, {pause: manual}, 50]");
                        } else if paused {
                            c.err(&at(&path!["steps", i]), "two pauses in a row", "keep one pause between two weights");
                        }
                        paused = true;
                        continue;
                    }
                    crate::config::CanaryStep::Weight(w) => *w,
                };
                paused = false;
                if !(1..=100).contains(&w) {
                    c.err(&at(&path!["steps", i]), format!("weight {w} is outside 1..=100"), "each step is the percentage of traffic sent to the canary, from 1 to 100");
                } else if let Some(p) = previous.filter(|p| w <= *p) {
                    c.err(
                        &at(&path!["steps", i]),
                        format!("weight {w} does not rise after {p}"),
                        "weights must rise strictly, for example [10, 25, 50, 75, 100]",
                    );
                }
                previous = Some(w);
            }
            if paused && canary.pause_before_promotion.is_some() {
                c.err(&at(&path!["steps", steps.len() - 1]), "the last step is a pause, and `pause_before_promotion` pauses again at the same place", "keep one of the two");
            }
            if steps.iter().all(|s| matches!(s, crate::config::CanaryStep::Pause { .. })) && !steps.is_empty() {
                c.err(&at(&path!["steps"]), "the canary has no weight, only pauses", "list rising weights, for example [10, 25, 50, 75, 100]");
            }
        }
        (None, Some(step), Some(max)) => {
            for (key, v) in [("step_weight", step), ("max_weight", max)] {
                c.check((1..=100).contains(&v), &at(&path![key]), || format!("{key} {v} is outside 1..=100"), "use a percentage from 1 to 100");
            }
            if step > max && (1..=100).contains(&max) {
                c.err(&at(&path!["step_weight"]), format!("step_weight {step} is above max_weight {max}"), "make step_weight at most max_weight");
            }
        }
    }
    analysis(
        c,
        config,
        &canary.analysis,
        &at(&path!["analysis"]),
        "canary",
    );
}

/// An analysis block (a canary's, or a blue-green's checks at Ready) at `ap`.
fn analysis(
    c: &mut Checker<'_>,
    config: &Config,
    a: &crate::config::Analysis,
    ap: &[Seg],
    whose: &str,
) {
    let aat =
        |rest: &[Seg]| -> Vec<Seg> { ap.iter().cloned().chain(rest.iter().cloned()).collect() };
    c.check(
        a.interval.as_secs() > 0,
        &aat(&path!["interval"]),
        || "the analysis interval is 0".into(),
        "check at an interval such as 1m",
    );
    c.check(
        a.threshold >= 1,
        &aat(&path!["threshold"]),
        || "threshold is 0: every rollout would roll back at once".into(),
        "roll back after a number of failed checks, 5 in the spec",
    );
    let step_hooks = a.webhooks.iter().any(|w| {
        w.at.iter()
            .any(|p| *p != crate::config::HookPoint::PreRollout)
    });
    if a.metrics.is_empty() && a.http.is_empty() && !step_hooks {
        c.err(
            ap,
            format!("the {whose} analysis has no metrics, HTTP checks or step webhooks"),
            "add the checks that decide promotion under `metrics:` or `http:`, for example a success rate of at least 99 %",
        );
    }
    probes(c, ap, &a.http, &a.webhooks);
    if let Some(n) = a.min_requests
        && n > 0
        && a.requests.is_none()
    {
        c.err(
            &aat(&path!["min_requests"]),
            format!("min_requests is {n}, and there is no `requests` query to count the canary's requests"),
            "add `requests: {provider: …, query: …}` (the canary's request count over `{{ window }}`), or remove min_requests",
        );
    }
    if let Some(r) = &a.requests {
        query_checks(
            c,
            config,
            &aat(&path!["requests"]),
            "the request count",
            r.provider,
            &r.query,
            &r.series,
        );
    }
    let mut seen = Vec::new();
    for (i, m) in a.metrics.iter().enumerate() {
        let mp = aat(&path!["metrics", i]);
        let mat =
            |rest: &[Seg]| -> Vec<Seg> { mp.iter().cloned().chain(rest.iter().cloned()).collect() };
        if seen.contains(&&m.name) {
            c.err(
                &mat(&path!["name"]),
                format!("metric `{}` is defined twice", m.name),
                "give each metric its own name",
            );
        }
        seen.push(&m.name);
        if m.min.is_none() && m.max.is_none() && !m.is_relative() {
            c.err(
                &mp,
                format!("metric `{}` has no success condition", m.name),
                "add `min:` (passes at or above) and/or `max:` (passes at or below), or a bound relative to stable (`max_ratio`, `max_delta`, `min_ratio`, `min_delta`)",
            );
        }
        if let (Some(min), Some(max)) = (m.min, m.max)
            && min > max
        {
            c.err(
                &mat(&path!["min"]),
                format!(
                    "metric `{}`: min {min} is above max {max}, no value can pass",
                    m.name
                ),
                "make min at most max",
            );
        }
        for (key, ratio) in [("max_ratio", m.max_ratio), ("min_ratio", m.min_ratio)] {
            if let Some(r) = ratio
                && !(r.is_finite() && r > 0.0)
            {
                c.err(
                    &mat(&path![key]),
                    format!("metric `{}`: {key} {r} is not a positive factor", m.name),
                    "write the factor of the stable value, for example 1.2 (at most 20 % above stable)",
                );
            }
        }
        if m.is_relative() && m.stable_query.is_none() {
            let key = [
                ("max_ratio", m.max_ratio),
                ("min_ratio", m.min_ratio),
                ("max_delta", m.max_delta),
                ("min_delta", m.min_delta),
            ]
            .into_iter()
            .find(|(_, v)| v.is_some())
            .map_or("max_ratio", |(k, _)| k);
            c.err_key(
                &mat(&path![key]),
                format!("metric `{}`: `{key}` compares with the stable track, and the metric has no `stable_query`", m.name),
                "add `stable_query:`, the same measure for the stable track (for example with {{ stable_service }} where the query has {{ canary_service }})",
            );
        }
        query_checks(
            c,
            config,
            &mp,
            &format!("metric `{}`", m.name),
            m.provider,
            &m.query,
            &m.series,
        );
        if let Some(q) = &m.stable_query {
            if q.trim().is_empty() {
                c.err(
                    &mat(&path!["stable_query"]),
                    format!("metric `{}` has an empty stable_query", m.name),
                    "write the stable track's query, or remove stable_query",
                );
            } else {
                query_text_checks(
                    c,
                    &mat(&path!["stable_query"]),
                    &format!("metric `{}`, stable_query", m.name),
                    m.provider,
                    q,
                    &m.series,
                );
            }
        }
    }
}

/// HTTP checks and webhooks: names, URLs, counts, timeouts, secrets by variable name.
fn probes(
    c: &mut Checker<'_>,
    at: &[Seg],
    http: &[crate::config::HttpCheck],
    webhooks: &[crate::config::Webhook],
) {
    let within =
        |rest: &[Seg]| -> Vec<Seg> { at.iter().cloned().chain(rest.iter().cloned()).collect() };
    let mut names: Vec<&str> = Vec::new();
    for (i, h) in http.iter().enumerate() {
        let hp = within(&path!["http", i]);
        let hat =
            |rest: &[Seg]| -> Vec<Seg> { hp.iter().cloned().chain(rest.iter().cloned()).collect() };
        if names.contains(&h.name.as_str()) {
            c.err(
                &hat(&path!["name"]),
                format!("the check name `{}` is used twice", h.name),
                "give each HTTP check and webhook its own name",
            );
        }
        names.push(&h.name);
        // The URL as it renders with example values: `{{ test_url }}/health` is a URL.
        match crate::metrics::render_query(&h.url, &crate::metrics::QueryVars::example()) {
            Err(e) => c.err(
                &hat(&path!["url"]),
                format!("HTTP check `{}`: {e}", h.name),
                "fix the variable's name, or write the URL itself",
            ),
            Ok(url) if !(url.starts_with("http://") || url.starts_with("https://")) => c.err(
                &hat(&path!["url"]),
                format!("HTTP check `{}`: `{}` is not an http(s) URL", h.name, h.url),
                "write the URL to GET, for example http://{{ canary_service }}.{{ namespace }}.svc/health, or {{ test_url }}/health on a blue-green's test listener",
            ),
            Ok(_) => {}
        }
        c.check(
            (100..=599).contains(&h.status),
            &hat(&path!["status"]),
            || {
                format!(
                    "HTTP check `{}`: status {} is not an HTTP status",
                    h.name, h.status
                )
            },
            "expect a status from 100 to 599, 200 by default",
        );
        c.check(
            (1..=100).contains(&h.count),
            &hat(&path!["count"]),
            || {
                format!(
                    "HTTP check `{}`: count {} is outside 1..=100",
                    h.name, h.count
                )
            },
            "run each check 1 to 100 times",
        );
        c.check(
            h.timeout.as_secs() > 0 || h.timeout.0.as_millis() > 0,
            &hat(&path!["timeout"]),
            || format!("HTTP check `{}`: the timeout is 0", h.name),
            "give each request time to answer, 5s by default",
        );
    }
    for (i, w) in webhooks.iter().enumerate() {
        let wp = within(&path!["webhooks", i]);
        let wat =
            |rest: &[Seg]| -> Vec<Seg> { wp.iter().cloned().chain(rest.iter().cloned()).collect() };
        if names.contains(&w.name.as_str()) {
            c.err(
                &wat(&path!["name"]),
                format!("the check name `{}` is used twice", w.name),
                "give each HTTP check and webhook its own name",
            );
        }
        names.push(&w.name);
        if w.url.trim().is_empty() {
            c.err(
                &wat(&path!["url"]),
                format!("webhook `{}` has no URL", w.name),
                "write the URL to POST the rollout's facts to",
            );
        } else if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            c.err(&wat(&path!["url"]), format!("webhook `{}`: `{}` is not an http(s) URL", w.name, w.url), "write the URL to POST the rollout's facts to, for example https://ci.example.com/hooks/canary");
        }
        if w.at.is_empty() {
            c.err(
                &wat(&path!["at"]),
                format!("webhook `{}` is called at no point", w.name),
                "list when: pre-rollout, step, pre-promotion (step by default)",
            );
        }
        c.check(
            w.timeout.0.as_millis() > 0,
            &wat(&path!["timeout"]),
            || format!("webhook `{}`: the timeout is 0", w.name),
            "give the webhook time to answer, 10s by default",
        );
        if let Some(name) = &w.secret_env {
            let valid = name
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if !valid {
                c.err_secret(
                    &wat(&path!["secret_env"]),
                    format!(
                        "webhook `{}`: `secret_env` is not an environment variable name",
                        w.name
                    ),
                    "name the variable that holds the signing secret, never the secret itself",
                );
            }
        }
    }
}

/// A query's checks: not empty, a template that renders, its provider configured, and
/// `CloudWatch`'s series.
#[allow(clippy::too_many_arguments)]
fn query_checks(
    c: &mut Checker<'_>,
    config: &Config,
    at: &[Seg],
    what: &str,
    provider: ProviderKind,
    query: &str,
    series: &indexmap::IndexMap<String, crate::config::CloudWatchSeries>,
) {
    let qat =
        |rest: &[Seg]| -> Vec<Seg> { at.iter().cloned().chain(rest.iter().cloned()).collect() };
    if query.trim().is_empty() {
        c.err(
            &qat(&path!["query"]),
            format!("{what} has an empty query"),
            "write the provider's query",
        );
    } else {
        query_text_checks(c, &qat(&path!["query"]), what, provider, query, series);
    }
    let configured = match provider {
        ProviderKind::Prometheus => config.providers.prometheus.is_some(),
        ProviderKind::Datadog => config.providers.datadog.is_some(),
        ProviderKind::Cloudwatch => true,
    };
    if !configured {
        let example = match provider {
            ProviderKind::Datadog => "{datadog: {site: datadoghq.com}}",
            _ => "{prometheus: {address: http://prometheus.monitoring.svc:9090}}",
        };
        c.err(
            &qat(&path!["provider"]),
            format!("{what} uses the {provider} provider, which is not configured"),
            format!("add `providers: {example}` at the top level"),
        );
    }
    match provider {
        ProviderKind::Cloudwatch => {
            if series.is_empty() {
                c.err_key(
                    &qat(&path!["provider"]),
                    format!("{what}: a CloudWatch query needs `series`, the metrics its expression names"),
                    "add `series: {requests: {namespace: AWS/ApplicationELB, metric: RequestCount, stat: Sum, dimensions: {…}}}` and write `query: requests` (or an expression over the ids)",
                );
            }
            for (id, s) in series {
                let sat = qat(&path!["series", id.as_str()]);
                if !is_cloudwatch_id(id) {
                    c.err_key(
                        &sat,
                        format!("{what}: series id `{id}` is not a CloudWatch id"),
                        "start with a lowercase letter; use letters, digits and `_`",
                    );
                }
                if !is_statistic(&s.stat) {
                    c.err(
                        &[sat.clone(), path!["stat"]].concat(),
                        format!("{what}: `{}` is not a CloudWatch statistic", s.stat),
                        "use Sum, Average, Minimum, Maximum, SampleCount, or a percentile such as p99",
                    );
                }
                for (name, value) in &s.dimensions {
                    if let Err(e) = crate::metrics::check_query(value) {
                        c.err(
                            &[sat.clone(), path!["dimensions", name.as_str()]].concat(),
                            format!("{what}: dimension `{name}`: {e}"),
                            "fix the variable's name, or write the value itself",
                        );
                    }
                }
            }
        }
        _ if !series.is_empty() => {
            c.err_key(
                &qat(&path!["series"]),
                format!("{what}: `series` is for CloudWatch queries, and this one uses {provider}"),
                "remove `series`, or set `provider: cloudwatch`",
            );
        }
        _ => {}
    }
}

/// One query text: a template that renders; on `CloudWatch`, an id it names exists.
fn query_text_checks(
    c: &mut Checker<'_>,
    at: &[Seg],
    what: &str,
    provider: ProviderKind,
    query: &str,
    series: &indexmap::IndexMap<String, crate::config::CloudWatchSeries>,
) {
    if let Err(e) = crate::metrics::check_query(query) {
        c.err(
            at,
            format!("{what}: {e}"),
            "fix the variable's name, or write the value itself",
        );
        return;
    }
    let text = query.trim();
    if provider == ProviderKind::Cloudwatch
        && is_cloudwatch_id(text)
        && !series.is_empty()
        && !series.contains_key(text)
    {
        c.err(
            at,
            format!(
                "{what}: the query names `{text}`, which is not one of its series ({})",
                series
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "name one of the series, or write a metric math expression over them",
        );
    }
}

/// A `GetMetricData` query id: a lowercase letter, then letters, digits and `_`.
fn is_cloudwatch_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A `CloudWatch` statistic: the five plain ones, or a percentile-style one (`p99`,
/// `p99.9`, `tm90`, `IQM`, …).
fn is_statistic(s: &str) -> bool {
    if matches!(
        s,
        "Sum" | "Average" | "Minimum" | "Maximum" | "SampleCount" | "IQM"
    ) {
        return true;
    }
    [
        "p", "tm", "wm", "tc", "ts", "pr", "TM", "WM", "TC", "TS", "PR",
    ]
    .iter()
    .any(|prefix| {
        s.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit() || c == '('))
    })
}

/// The metric providers' own settings.
fn providers(c: &mut Checker<'_>, config: &Config) {
    if let Some(d) = &config.providers.datadog {
        if !crate::config::DatadogProvider::SITES.contains(&d.site.as_str()) {
            c.err(
                &path!["providers", "datadog", "site"],
                format!("`{}` is not a Datadog site", d.site),
                format!(
                    "use one of {}",
                    crate::config::DatadogProvider::SITES.join(", ")
                ),
            );
        }
        if let Some(a) = &d.address
            && !(a.starts_with("https://") || a.starts_with("http://"))
        {
            c.err(&path!["providers", "datadog", "address"], format!("`{a}` is not an http(s) URL"), "write the API's base URL, for example https://api.datadoghq.eu, or remove `address` to use the site's");
        }
        for (key, name) in [
            ("api_key_env", &d.api_key_env),
            ("app_key_env", &d.app_key_env),
        ] {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                c.err_secret(
                    &path!["providers", "datadog", key],
                    format!("`{key}` is not an environment variable name"),
                    "name the variable that holds the key (DD_API_KEY by default), never the key itself",
                );
            }
        }
    }
    if let Some(p) = &config.providers.prometheus
        && !(p.address.starts_with("https://") || p.address.starts_with("http://"))
    {
        c.err(&path!["providers", "prometheus", "address"], format!("`{}` is not an http(s) URL", p.address), "write the Prometheus server's base URL, for example http://prometheus.monitoring.svc:9090");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fargate_pairs() {
        assert!(fargate_memory_options(512).unwrap().contains(&1024));
        assert!(!fargate_memory_options(512).unwrap().contains(&512));
        assert!(fargate_memory_options(300).is_none());
        assert_eq!(fargate_memory_options(256).unwrap(), vec![512, 1024, 2048]);
    }

    #[test]
    fn secret_like_names() {
        for n in ["DB_PASSWORD", "api_key", "GITHUB_TOKEN", "JWT_SECRET"] {
            assert!(looks_like_secret(n), "{n}");
        }
        for n in ["LOG_LEVEL", "PORT", "FEATURE_FLAGS"] {
            assert!(!looks_like_secret(n), "{n}");
        }
    }

    #[test]
    fn quantities_and_names() {
        assert!(is_quantity("500m") && is_quantity("1Gi") && is_quantity("0.5"));
        assert!(!is_quantity("1 Gi") && !is_quantity("Gi") && !is_quantity("1.2.3"));
        assert!(
            is_dns_label("movieverse-app", 63)
                && !is_dns_label("Movie", 63)
                && !is_dns_label("-a", 63)
        );
        assert!(is_dns_subdomain("api.movie-verse.com") && !is_dns_subdomain("api..com"));
    }
}
