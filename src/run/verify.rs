//! `verify --env NAME|all`: a read-only pre-flight of what a deploy depends on. Every check
//! reads one thing (describe, get, list: nothing is changed, and no secret's value is read)
//! and says where deploy.yml names it; each missing piece is a diagnostic with its line and
//! what to do, and any of them makes the exit code 3.

use std::fmt::Write as _;

use super::{Error, print_out, select};
use crate::config::tree::Seg;
use crate::config::{Loaded, Strategy, Target};
use crate::diag::Diagnostics;
use crate::platform::ServiceSpec;
use crate::platform::ecs::alb::{Alb, Forwarder};
use crate::platform::ecs::{Ecs, classify};
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
    let (out, result) = report(loaded, env, false)?;
    print_out(&out)?;
    result
}

/// The checks of the environments `env` selects, as text, and exit 3 when any failed. With
/// `only_where_credentials` (`plan --verify`, the Action's dry run), an environment this
/// machine has no credentials for (no AWS credentials; no kubeconfig) is said as not
/// verified instead of failing.
pub(super) fn report(
    loaded: &Loaded,
    env: &str,
    only_where_credentials: bool,
) -> Result<(String, Result<(), Error>), Error> {
    let names = select(loaded, env)?;
    let rt = super::deploy::runtime()?;
    let started = std::time::Instant::now();
    let mut problems = Vec::new();
    let mut out = String::new();
    let mut checked = 0;
    for name in &names {
        let e = &loaded.config.environments[name];
        if only_where_credentials {
            let missing = match (&e.target, &e.kubernetes) {
                (Target::Kubernetes, Some(k)) => rt
                    .block_on(crate::platform::kubernetes::Kubernetes::connect(
                        k.context.as_deref(),
                        &k.namespace,
                        false,
                    ))
                    .is_err()
                    .then_some("no Kubernetes configuration (KUBECONFIG) here"),
                _ => (!rt.block_on(crate::aws::has_credentials(&loaded.config.region))).then_some(
                    "no AWS credentials here (set role-to-assume, or the standard AWS variables)",
                ),
            };
            if let Some(why) = missing {
                let _ = writeln!(out, "{name}: not verified: {why}");
                continue;
            }
        }
        let checks = match e.target {
            Target::Ecs => rt.block_on(ecs_checks(loaded, name)),
            Target::Kubernetes => rt.block_on(k8s_checks(loaded, name)),
        };
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
    if problems.is_empty() {
        return Ok((out, Ok(())));
    }
    Ok((
        out,
        Err(Error::Deployment {
            code: 3,
            message: Diagnostics(problems).sorted().to_string(),
        }),
    ))
}

/// The checks of Kubernetes environment `name`, in order: the cluster, the namespace, what
/// the router needs, the Secrets referenced, and every permission a deploy uses.
async fn k8s_checks(loaded: &Loaded, name: &str) -> Vec<Check> {
    use crate::platform::kubernetes::Kubernetes;
    use crate::platform::kubernetes::preflight::needed;
    let config = &loaded.config;
    let env = &config.environments[name];
    let k = env.kubernetes.as_ref().expect("a Kubernetes environment");
    let base = vec![Seg::Key("environments".into()), Seg::Key(name.to_owned())];
    let ns_at = key(&base, &["kubernetes", "namespace"]);
    let mut checks = Vec::new();
    let cluster =
        match Kubernetes::connect(k.context.as_deref(), &k.namespace, k.create_namespace).await {
            Ok(c) => c,
            Err(e) => {
                checks.push(Check {
                    what: "Kubernetes cluster".into(),
                    at: key(&base, &["kubernetes"]),
                    found: Err((
                        format!("{e:#}"),
                        "set KUBECONFIG or `kubernetes.context`".into(),
                    )),
                });
                return checks;
            }
        };
    // A cluster that does not answer ends the checks; a read this user may not make does not.
    let (namespace, reachable) = match cluster.namespace_present().await {
        Ok(true) => (Ok("exists".to_owned()), true),
        Ok(false) if k.create_namespace => (
            Ok("missing; the deploy creates it (kubernetes.create_namespace)".to_owned()),
            true,
        ),
        Ok(false) => (
            Err((
                "does not exist".to_owned(),
                "create it (`kubectl create namespace`), or set `kubernetes.create_namespace: true`"
                    .to_owned(),
            )),
            true,
        ),
        Err(e) => (Err(unreadable(&e)), e.kind == ErrorKind::Permission),
    };
    // Unknown (a read this user may not make) counts as there: the Secrets are asked anyway.
    let namespace_there = !matches!(&namespace, Ok(s) if s.starts_with("missing"))
        && !matches!(&namespace, Err((p, _)) if p == "does not exist");
    checks.push(Check {
        what: format!("namespace {}", k.namespace),
        at: ns_at.clone(),
        found: namespace,
    });
    if !reachable {
        return checks;
    }

    let specs = match super::deploy::specs(loaded, name, None) {
        Ok(specs) => specs,
        Err(e) => {
            checks.push(Check {
                what: "manifests".into(),
                at: base.clone(),
                found: Err((
                    format!("could not be rendered: {e}"),
                    "fix deploy.yml or the templates (`movieverse-deploy render` shows the problem)".into(),
                )),
            });
            return checks;
        }
    };
    let manifests: Vec<&serde_json::Value> = specs
        .iter()
        .flat_map(|s| {
            std::iter::once(&s.definition)
                .chain(s.manifests.iter())
                .chain(s.scaling.iter())
        })
        .collect();

    // What the router needs.
    let router_at = key(&base, &["kubernetes", "router"]);
    for m in &manifests {
        match m["kind"].as_str() {
            Some("Ingress") => {
                let class = m["spec"]["ingressClassName"]
                    .as_str()
                    .unwrap_or(&k.ingress.class);
                let found = match cluster.ingress_class_exists(class).await {
                    Ok(true) => Ok("exists".into()),
                    Ok(false) => Err((
                        "does not exist: no ingress controller serves this class".into(),
                        "install the ingress controller (NGINX for a canary's weights), or set `kubernetes.ingress.class` to a class the cluster has".into(),
                    )),
                    Err(e) => Err(unreadable(&e)),
                };
                if !checks
                    .iter()
                    .any(|c| c.what == format!("IngressClass {class}"))
                {
                    checks.push(Check {
                        what: format!("IngressClass {class}"),
                        at: key(&base, &["kubernetes", "ingress", "class"]),
                        found,
                    });
                }
            }
            Some("HTTPRoute") => {
                const CRD: &str = "httproutes.gateway.networking.k8s.io";
                let crd = match cluster.crd_exists(CRD).await {
                    Ok(true) => Ok("installed".into()),
                    Ok(false) => Err((
                        "is not installed: the API server does not serve HTTPRoute".into(),
                        "install the Gateway API CRDs (standard channel) and a Gateway controller, or use `router: nginx`".into(),
                    )),
                    Err(e) => Err(unreadable(&e)),
                };
                let installed = crd.is_ok();
                if !checks.iter().any(|c| c.what == format!("CRD {CRD}")) {
                    checks.push(Check {
                        what: format!("CRD {CRD}"),
                        at: router_at.clone(),
                        found: crd,
                    });
                }
                if let (true, Some(g)) = (installed, &k.gateway)
                    && !checks.iter().any(|c| c.what.starts_with("Gateway "))
                {
                    let ns = g.namespace.as_deref().unwrap_or(&k.namespace);
                    let found = match cluster.gateway_exists(&g.name, Some(ns)).await {
                        Ok(true) => Ok("exists".into()),
                        Ok(false) => Err((
                            format!("does not exist in namespace {ns}"),
                            "create the Gateway, or fix `kubernetes.gateway`".into(),
                        )),
                        Err(e) => Err(unreadable(&e)),
                    };
                    checks.push(Check {
                        what: format!("Gateway {}", g.name),
                        at: key(&base, &["kubernetes", "gateway", "name"]),
                        found,
                    });
                }
            }
            _ => {}
        }
    }

    // The Secrets referenced, by name (their data is never read).
    let datadog = config
        .datadog
        .enabled
        .then(|| env.datadog_secret(config))
        .flatten();
    let mut seen: Vec<&str> = Vec::new();
    for (reference, at) in env
        .secrets
        .iter()
        .map(|(k, v)| (v.as_str(), key(&base, &["secrets", k])))
        .chain(datadog.map(|d| (d, key(&base, &["datadog_api_key_secret"]))))
        .chain(
            k.ingress
                .tls_secret
                .as_deref()
                .map(|t| (t, key(&base, &["kubernetes", "ingress", "tls_secret"]))),
        )
    {
        let secret = reference.split_once('/').map_or(reference, |(n, _)| n);
        if seen.contains(&secret) {
            continue;
        }
        seen.push(secret);
        let found = if namespace_there {
            match cluster.secret_exists(secret).await {
                Ok(true) => Ok("exists".into()),
                Ok(false) => Err((
                    format!("does not exist in namespace {}", k.namespace),
                    "create the Secret (`kubectl create secret generic`), or fix the reference"
                        .into(),
                )),
                Err(e) => Err(unreadable(&e)),
            }
        } else {
            Err((
                format!("cannot exist yet: namespace {} does not", k.namespace),
                "create the namespace and the Secret before the first deploy".into(),
            ))
        };
        checks.push(Check {
            what: format!("Secret {secret}"),
            at,
            found,
        });
    }

    // Every permission a deploy uses, asked of the API server for the current user.
    let mut resources = Vec::new();
    for m in &manifests {
        // A kind the server does not serve was said above (its CRD).
        if let Ok(r) = cluster.resource_of(m).await
            && !resources.contains(&r)
        {
            resources.push(r);
        }
    }
    let mut denied: Vec<(String, Vec<&str>)> = Vec::new();
    let mut asked = 0;
    let mut failure = None;
    for p in needed(&resources, k.create_namespace) {
        asked += 1;
        match cluster.may(&p).await {
            Ok(true) => {}
            Ok(false) => {
                let what = match p.subresource {
                    Some(sub) => format!("{}/{sub}", p.resource.display()),
                    None => p.resource.display(),
                };
                match denied.iter_mut().find(|(w, _)| *w == what) {
                    Some((_, verbs)) => verbs.push(p.verb),
                    None => denied.push((what, vec![p.verb])),
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let found = match (failure, denied.is_empty()) {
        (Some(e), _) => Err(unreadable(&e)),
        (None, true) => Ok(format!("all {asked} allowed (SelfSubjectAccessReview)")),
        (None, false) => Err((
            format!(
                "the current user may not: {}",
                denied
                    .iter()
                    .map(|(what, verbs)| format!("{} {what}", verbs.join("/")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            format!(
                "grant them in namespace {} (a Role and RoleBinding for the deploy's user or service account; `kubectl auth can-i VERB RESOURCE -n {}` checks one)",
                k.namespace, k.namespace
            ),
        )),
    };
    checks.push(Check {
        what: "permissions a deploy uses".into(),
        at: ns_at,
        found,
    });
    checks
}

/// The IAM role named by a role ARN (its last path segment).
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The secret a `valueFrom` names: a Secrets Manager ARN without a JSON key, version stage or
/// version id after it (`arn:aws:secretsmanager:R:A:secret:NAME:KEY:STAGE:ID`), or an SSM
/// parameter's name.
enum SecretRef<'a> {
    SecretsManager(String),
    Parameter(&'a str),
}

fn secret_ref(value_from: &str) -> SecretRef<'_> {
    if value_from.starts_with("arn:aws:secretsmanager:") {
        SecretRef::SecretsManager(value_from.split(':').take(7).collect::<Vec<_>>().join(":"))
    } else {
        // arn:aws:ssm:R:A:parameter/NAME names `/NAME` (a name without a slash: `NAME`).
        let name = value_from
            .split_once(":parameter")
            .map_or(value_from, |(_, n)| n);
        SecretRef::Parameter(name)
    }
}

/// Roles, secrets and log groups of ECS environment `name`, from the task definitions a
/// deploy would register (so a template's own references are checked too).
async fn identity_checks(loaded: &Loaded, name: &str, base: &[Seg]) -> Vec<Check> {
    let config = &loaded.config;
    let env = &config.environments[name];
    let ecs = env.ecs.as_ref().expect("an ECS environment");
    let shared = crate::aws::sdk_config(&config.region, false).await;
    let iam = aws_sdk_iam::Client::new(&shared);
    let secrets = aws_sdk_secretsmanager::Client::new(&shared);
    let ssm = aws_sdk_ssm::Client::new(&shared);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&shared);
    let mut checks = Vec::new();

    for (field, arn) in [
        ("execution_role_arn", &ecs.execution_role_arn),
        ("task_role_arn", &ecs.task_role_arn),
    ] {
        let found = match iam.get_role().role_name(role_name(arn)).send().await {
            Ok(_) => Ok("exists".into()),
            Err(e)
                if e.as_service_error().is_some_and(
                    aws_sdk_iam::operation::get_role::GetRoleError::is_no_such_entity_exception,
                ) =>
            {
                Err((
                    "does not exist".into(),
                    "create the role (with the ECS tasks trust policy), or fix its ARN".into(),
                ))
            }
            Err(e) => Err(unreadable(&classify("GetRole", &e))),
        };
        checks.push(Check {
            what: format!("IAM role {}", role_name(arn)),
            at: key(base, &["ecs", field]),
            found,
        });
    }

    // What the task definitions reference: rendered as a deploy renders them.
    let specs = match super::deploy::specs(loaded, name, None) {
        Ok(specs) => specs,
        Err(e) => {
            checks.push(Check {
                what: "task definitions".into(),
                at: base.to_vec(),
                found: Err((
                    format!("could not be rendered: {e}"),
                    "fix deploy.yml or the templates (`movieverse-deploy render` shows the problem)".into(),
                )),
            });
            return checks;
        }
    };
    let mut references: Vec<(String, String)> = Vec::new();
    let mut groups: Vec<(String, bool)> = Vec::new();
    for spec in &specs {
        for c in spec.definition["containerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let container = c["name"].as_str().unwrap_or("?").to_owned();
            for s in c["secrets"].as_array().into_iter().flatten() {
                if let Some(v) = s["valueFrom"].as_str()
                    && !references.iter().any(|(r, _)| r == v)
                {
                    references.push((v.to_owned(), container.clone()));
                }
            }
            let options = &c["logConfiguration"]["options"];
            if c["logConfiguration"]["logDriver"] == "awslogs"
                && let Some(g) = options["awslogs-group"].as_str()
            {
                let creates = options["awslogs-create-group"] == "true";
                match groups.iter_mut().find(|(n, _)| n == g) {
                    Some((_, c)) => *c |= creates,
                    None => groups.push((g.to_owned(), creates)),
                }
            }
        }
    }
    for (reference, container) in references {
        let at = env
            .secrets
            .iter()
            .find(|(_, v)| **v == reference)
            .map(|(k, _)| key(base, &["secrets", k]))
            .or_else(|| {
                (env.datadog_secret(config) == Some(reference.as_str())).then(|| {
                    if env.datadog_api_key_secret.is_some() {
                        key(base, &["datadog_api_key_secret"])
                    } else {
                        vec![
                            Seg::Key("datadog".into()),
                            Seg::Key("api_key_secret".into()),
                        ]
                    }
                })
            })
            .unwrap_or_else(|| vec![Seg::Key("templates".into())]);
        let (what, found) = match secret_ref(&reference) {
            SecretRef::SecretsManager(id) => {
                let found = match secrets.describe_secret().secret_id(&id).send().await {
                    Ok(_) => Ok(format!("exists (container {container})")),
                    Err(e) if e.as_service_error().is_some_and(aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretError::is_resource_not_found_exception) => Err((
                        format!("does not exist (container {container} reads it)"),
                        "create the secret in Secrets Manager, or fix its ARN".into(),
                    )),
                    Err(e) => Err(unreadable(&classify("DescribeSecret", &e))),
                };
                (format!("secret {id}"), found)
            }
            SecretRef::Parameter(parameter) => {
                let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
                    .key("Name")
                    .option("Equals")
                    .values(parameter)
                    .build();
                let found = match filter {
                    Err(e) => Err((e.to_string(), "fix the parameter's ARN".into())),
                    Ok(filter) => match ssm
                        .describe_parameters()
                        .parameter_filters(filter)
                        .send()
                        .await
                    {
                        Ok(out) if !out.parameters().is_empty() => {
                            Ok(format!("exists (container {container})"))
                        }
                        Ok(_) => Err((
                            format!("does not exist (container {container} reads it)"),
                            "create the SSM parameter (SecureString), or fix its ARN".into(),
                        )),
                        Err(e) => Err(unreadable(&classify("DescribeParameters", &e))),
                    },
                };
                (format!("SSM parameter {parameter}"), found)
            }
        };
        checks.push(Check { what, at, found });
    }
    for (group, creates) in groups {
        let at = if ecs.log_group.as_deref() == Some(group.as_str()) {
            key(base, &["ecs", "log_group"])
        } else {
            key(base, &["ecs"])
        };
        let found = match logs
            .describe_log_groups()
            .log_group_name_prefix(&group)
            .send()
            .await
        {
            Ok(out)
                if out
                    .log_groups()
                    .iter()
                    .any(|g| g.log_group_name() == Some(group.as_str())) =>
            {
                Ok("exists".into())
            }
            Ok(_) if creates => Ok(
                "missing; the first task creates it (awslogs-create-group), with logs:CreateLogGroup on the execution role"
                    .into(),
            ),
            Ok(_) => Err((
                "does not exist, and the task definition does not create it".into(),
                "create the log group, or set `\"awslogs-create-group\": \"true\"` in the container's log options".into(),
            )),
            Err(e) => Err(unreadable(&classify("DescribeLogGroups", &e))),
        };
        checks.push(Check {
            what: format!("log group {group}"),
            at,
            found,
        });
    }
    checks
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

    // The lease table, when deploy.yml names one.
    if let Some(table) = &env.lock.table {
        let dynamo = aws_sdk_dynamodb::Client::new(
            &crate::aws::sdk_config(&super::deploy::region_of(loaded), true).await,
        );
        let found = match crate::platform::lease::table_key(&dynamo, table).await {
            Ok(Some((k, t))) if k == "lock" && t == "S" => {
                Ok("exists, partition key `lock` (string)".into())
            }
            Ok(Some((k, t))) => Err((
                format!("has the partition key `{k}` ({t}), not `lock` (a string)"),
                "create a table for the leases with the partition key `lock`, type String".into(),
            )),
            Ok(None) => Err((
                "does not exist".into(),
                format!(
                    "create it: aws dynamodb create-table --table-name {table} --attribute-definitions AttributeName=lock,AttributeType=S --key-schema AttributeName=lock,KeyType=HASH --billing-mode PAY_PER_REQUEST"
                ),
            )),
            Err(e) => Err(unreadable(&e)),
        };
        checks.push(Check {
            what: format!("DynamoDB lease table {table}"),
            at: key(&base, &["lock", "table"]),
            found,
        });
    }

    // The roles, the secrets and the log groups the task definitions name.
    checks.extend(identity_checks(loaded, name, &base).await);

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
