//! Rendering: the minijinja environment, the template context of an environment, and the
//! artifacts it produces, each validated before it is shown as valid.
//!
//! Templates render text; the text is parsed (JSON or YAML), validated against the platform's
//! rules ([`ecs`], [`k8s`]) and re-emitted canonically, so an artifact is always well formed
//! and byte-stable for the same input.

pub mod ecs;
pub mod k8s;
pub mod templates;

use std::path::PathBuf;

use minijinja::{AutoEscape, Environment as Jinja, UndefinedBehavior};
use serde_json::{Value, json};

use crate::config::{Config, Environment, Loaded, Strategy, Target};
use crate::diag::{Diagnostic, Diagnostics, Position, position_of_offset};
use crate::git::GitInfo;
use templates::{
    ECS_APPSPEC, ECS_SCALING, ECS_SERVICE, ECS_TASK_DEFINITION, K8S_CONFIGMAP, K8S_DEPLOYMENT,
    K8S_HPA, K8S_HTTPROUTE, K8S_INGRESS, K8S_PDB, K8S_RBAC, K8S_SERVICE,
};

/// One rendered, validated file.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Path relative to the environment's output directory (`task-definition.json`,
    /// `k8s/deployment-movieverse.yaml`).
    pub name: String,
    /// The template id it came from.
    pub template: &'static str,
    /// The parsed document.
    pub value: Value,
    /// The canonical text written to disk.
    pub content: String,
    /// One line for `plan`.
    pub summary: String,
    /// The ECS service it belongs to (`None` for Kubernetes manifests).
    pub service: Option<String>,
}

/// Everything rendered for one environment.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub env: String,
    pub image: String,
    pub artifacts: Vec<Artifact>,
}

/// YAML as we write it: long single-line strings (an image by digest, an ARN) stay on one
/// line instead of being folded into a block scalar.
pub fn to_yaml(value: &Value) -> Result<String, serde_saphyr::SerializeError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, options)
}

/// What the image reference of a render is, when no digest is given: the first tag.
pub fn default_image(config: &Config, git: &GitInfo) -> String {
    let tag = crate::image::tags(config, git)
        .into_iter()
        .next()
        .unwrap_or_else(|| "latest".into());
    format!("{}/{}:{tag}", registry(config), config.image.repository)
}

pub fn registry(config: &Config) -> String {
    config.image.registry.clone().unwrap_or_else(|| {
        format!(
            "{}.dkr.ecr.{}.amazonaws.com",
            config.account_id, config.region
        )
    })
}

/// The templates an environment renders, in order (for ECS, those of its main service; see
/// [`ecs_template_ids`] for each service).
pub fn template_ids(env: &Environment) -> Vec<&'static str> {
    match env.target {
        Target::Ecs => ecs_template_ids(
            env,
            true,
            env.ecs.as_ref().is_some_and(|e| e.scaling.enabled),
        ),
        Target::Kubernetes => {
            let gateway = env
                .kubernetes
                .as_ref()
                .is_some_and(|k| k.router == crate::config::Router::GatewayApi);
            let mut ids = vec![
                K8S_RBAC,
                K8S_CONFIGMAP,
                K8S_DEPLOYMENT,
                K8S_SERVICE,
                if gateway { K8S_HTTPROUTE } else { K8S_INGRESS },
            ];
            if env.kubernetes.as_ref().is_some_and(|k| k.scaling.enabled) {
                ids.push(K8S_HPA);
            }
            ids.push(K8S_PDB);
            ids
        }
    }
}

/// The templates one ECS service renders: the `AppSpec` only for the main service of a
/// blue-green environment through `CodeDeploy`, scaling only when the service scales.
pub fn ecs_template_ids(env: &Environment, main: bool, scaling: bool) -> Vec<&'static str> {
    let mut ids = vec![ECS_TASK_DEFINITION, ECS_SERVICE];
    if main && matches!(&env.strategy, Strategy::BlueGreen(b) if !b.native()) {
        ids.push(ECS_APPSPEC);
    }
    if scaling {
        ids.push(ECS_SCALING);
    }
    ids
}

/// Where a canary's own ECS service renders: `canary/service.json`, …
pub const CANARY_DIR: &str = "canary/";

/// One rendering pass: the context, the templates, and for ECS the service (name, output
/// directory prefix) the artifacts belong to.
type Job = (Value, Vec<&'static str>, Option<(String, String)>);

/// The renderer for one deploy.yml: templates loaded once, rendered per environment.
pub struct Renderer<'a> {
    loaded: &'a Loaded,
    jinja: Jinja<'static>,
}

/// Where a template's source came from, for messages.
fn template_display(loaded: &Loaded, id: &str) -> PathBuf {
    match loaded.config.templates.get(id) {
        Some(path) => crate::diag::display_path(&loaded.source.resolve(path)),
        None => PathBuf::from(templates::builtin(id).map_or(id, |b| b.path)),
    }
}

impl<'a> Renderer<'a> {
    /// Loads every template (built-in or overridden) and checks its syntax. All syntax errors
    /// are reported at once.
    pub fn new(loaded: &'a Loaded) -> Result<Self, Diagnostics> {
        let mut jinja = Jinja::new();
        jinja.set_undefined_behavior(UndefinedBehavior::Strict);
        // minijinja's debug mode follows the build profile (on in debug builds): fixed off, so
        // errors carry the same information in the tests' debug build as in the release.
        jinja.set_debug(false);
        jinja.set_auto_escape_callback(|_| AutoEscape::None);
        jinja.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .keep_trailing_newline(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        jinja.add_filter("tojson", tojson);
        let mut problems = Vec::new();
        for builtin in templates::BUILTINS {
            let source = match loaded.config.templates.get(builtin.id) {
                Some(path) => {
                    let full = loaded.source.resolve(path);
                    match std::fs::read_to_string(&full) {
                        Ok(s) => s,
                        Err(e) => {
                            problems.push(
                                Diagnostic::new(crate::diag::display_path(&full), format!("cannot read the template: {e}"))
                                    .help(format!("fix `templates.{}` in deploy.yml, or remove it to use the built-in template", builtin.id)),
                            );
                            continue;
                        }
                    }
                }
                None => builtin.source.to_owned(),
            };
            if let Err(e) = jinja.add_template_owned(builtin.id, source.clone()) {
                problems.push(template_error(loaded, builtin.id, &source, &e, None));
            }
        }
        if problems.is_empty() {
            Ok(Self { loaded, jinja })
        } else {
            Err(Diagnostics(problems).sorted())
        }
    }

    /// Renders and validates every artifact of `env_name`.
    pub fn render(
        &self,
        env_name: &str,
        image: &str,
        git: &GitInfo,
    ) -> Result<Rendered, Diagnostics> {
        let config = &self.loaded.config;
        let env = &config.environments[env_name];
        let base = context(config, env_name, env, image, git);
        // What to render: for ECS, each service with its own context; otherwise the manifests.
        let mut jobs: Vec<Job> = Vec::new();
        match &env.ecs {
            Some(ecs) if env.target == Target::Ecs => {
                for (i, svc) in ecs.all_services(&config.app, env_name).iter().enumerate() {
                    let mut ctx = base.clone();
                    ctx["ecs"] = ecs_context(config, env_name, env, ecs, svc);
                    if let Some(command) = svc.command {
                        ctx["container"]["command"] = json!(command);
                    }
                    let ids = ecs_template_ids(env, i == 0, svc.scaling.is_some());
                    jobs.push((ctx, ids, Some((svc.name.to_owned(), svc.dir.clone()))));
                }
                // A canary's own service (ALB router): the main one's templates, its target
                // group. ECS native runs the canary inside the one service.
                if let Strategy::Canary(c) = &env.strategy
                    && !c.native()
                {
                    let main = &ecs.all_services(&config.app, env_name)[0];
                    let lb = main.load_balancer.map(|lb| crate::config::EcsLoadBalancer {
                        target_group_arn: c.canary_target_group.clone().unwrap_or_default(),
                        health_check_grace_period: lb.health_check_grace_period,
                    });
                    let name = c.canary_service_name(ecs);
                    let svc = crate::config::EcsService {
                        name: &name,
                        dir: CANARY_DIR.into(),
                        load_balancer: lb.as_ref(),
                        ..main.clone()
                    };
                    let mut ctx = base.clone();
                    ctx["ecs"] = ecs_context(config, env_name, env, ecs, &svc);
                    let ids = ecs_template_ids(env, false, svc.scaling.is_some());
                    jobs.push((ctx, ids, Some((name.clone(), svc.dir.clone()))));
                }
            }
            _ => jobs.push((base, template_ids(env), None)),
        }
        let mut problems = Vec::new();
        let mut artifacts = Vec::new();
        for (ctx, ids, service) in &jobs {
            for id in ids {
                let id = *id;
                let file = template_display(self.loaded, id);
                let text =
                    match self.jinja.get_template(id).and_then(|t| {
                        t.render(minijinja::Value::from(minijinja::value::Serde(ctx)))
                    }) {
                        Ok(text) => text,
                        Err(e) => {
                            let source = self
                                .jinja
                                .get_template(id)
                                .map(|t| t.source().to_owned())
                                .unwrap_or_default();
                            problems.push(template_error(self.loaded, id, &source, &e, Some(ctx)));
                            continue;
                        }
                    };
                match parse_output(id, &file, &text) {
                    Ok(docs) => {
                        for doc in docs {
                            match artifact(id, doc) {
                                Ok(mut a) => {
                                    if let Some((name, dir)) = service {
                                        a.name = format!("{dir}{}", a.name);
                                        a.service = Some(name.clone());
                                    }
                                    artifacts.push(a);
                                }
                                Err(d) => problems.push(d.file_if_unset(&file)),
                            }
                        }
                    }
                    Err(d) => problems.push(d),
                }
            }
        }
        if problems.is_empty() {
            problems.extend(self.validate(env_name, env, &artifacts));
        }
        if problems.is_empty() {
            Ok(Rendered {
                env: env_name.to_owned(),
                image: image.to_owned(),
                artifacts,
            })
        } else {
            Err(Diagnostics(problems).sorted())
        }
    }

    fn validate(
        &self,
        env_name: &str,
        env: &Environment,
        artifacts: &[Artifact],
    ) -> Vec<Diagnostic> {
        let file_of = |id: &str| template_display(self.loaded, id);
        let problems = match env.target {
            Target::Ecs => {
                let mut services: Vec<&Option<String>> =
                    artifacts.iter().map(|a| &a.service).collect();
                services.dedup();
                services
                    .into_iter()
                    .flat_map(|svc| {
                        let group: Vec<Artifact> = artifacts
                            .iter()
                            .filter(|a| &a.service == svc)
                            .cloned()
                            .collect();
                        ecs::validate(env_name, env, &group, &file_of)
                    })
                    .collect()
            }
            Target::Kubernetes => k8s::validate(
                artifacts,
                &file_of,
                matches!(env.strategy, Strategy::BlueGreen(_)),
            ),
        };
        // Point each problem at the template line that writes the offending key.
        problems
            .into_iter()
            .map(|d| {
                let id = templates::TEMPLATE_IDS
                    .iter()
                    .find(|id| file_of(id) == d.file);
                let source = id
                    .and_then(|id| self.jinja.get_template(id).ok())
                    .map(|t| t.source().to_owned());
                match (source, d.position, d.path.clone()) {
                    (Some(source), None, Some(path)) => {
                        let pos = locate_key_path(&source, &path);
                        d.at(pos).with_source(&source)
                    }
                    _ => d,
                }
            })
            .collect()
    }
}

/// Finds where a template writes the key path `a.b[0].c`: each key is searched for in turn,
/// after the previous one, as `"key"` (JSON) or `key:` (YAML). A heuristic, since output lines
/// do not map back to template lines in general; `None` when a key is not written literally.
fn locate_key_path(source: &str, path: &str) -> Option<Position> {
    let mut from = 0;
    let mut found = None;
    for key in path
        .split('.')
        .map(|k| k.split('[').next().unwrap_or(k))
        .filter(|k| !k.is_empty())
    {
        let json = format!("\"{key}\"");
        let yaml = format!("{key}:");
        let hit = [source[from..].find(&json), source[from..].find(&yaml)]
            .into_iter()
            .flatten()
            .min()?;
        from += hit;
        found = Some(from + usize::from(source[from..].starts_with('"')));
        from += key.len();
    }
    found.map(|offset| position_of_offset(source, offset))
}

/// `tojson` that refuses undefined values (minijinja's accepts them even in strict mode, which
/// would render a misspelt variable as `null`), and escapes nothing: the output is parsed, not
/// embedded in HTML.
fn tojson(value: &minijinja::Value) -> Result<minijinja::Value, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "the value passed to tojson is undefined",
        ));
    }
    serde_json::to_string(value)
        .map(minijinja::Value::from_safe_string)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string()))
}

trait FileIfUnset {
    fn file_if_unset(self, file: &std::path::Path) -> Self;
}

impl FileIfUnset for Diagnostic {
    fn file_if_unset(mut self, file: &std::path::Path) -> Self {
        if self.file.as_os_str().is_empty() {
            self.file = file.to_path_buf();
        }
        self
    }
}

/// A minijinja error as a diagnostic at the template's <file:line:column>, naming the undefined
/// variable when that is the problem.
///
/// `source` is the template's text as we loaded it. minijinja keeps a copy in its errors only
/// in debug mode (on by default in debug builds, off in release builds), so the error is read
/// against our own copy: the message is the same in every build profile. A range that does
/// not fit the source (which would be a minijinja bug) degrades to a line, never a panic.
fn template_error(
    loaded: &Loaded,
    id: &str,
    source: &str,
    e: &minijinja::Error,
    ctx: Option<&Value>,
) -> Diagnostic {
    let file = template_display(loaded, id);
    let mut range = e.range().filter(|r| source.get(r.clone()).is_some());
    // For an undefined value piped into a filter, minijinja points at the filter: point at
    // the value instead (`{{ vars.x | tojson }}` names `vars.x`).
    if let (minijinja::ErrorKind::UndefinedError, Some(r)) = (e.kind(), range.clone()) {
        let before = &source[..r.start];
        if before.trim_end().ends_with('|') {
            let pipe = before.trim_end().len() - 1;
            let open = before[..pipe].rfind("{{").map_or(0, |i| i + 2);
            let expr = &source[open..pipe];
            let lead = expr.len() - expr.trim_start().len();
            range = Some(open + lead..open + expr.trim_end().len());
        }
    }
    let position = match (range.clone(), e.line()) {
        (Some(range), _) => Some(position_of_offset(source, range.start)),
        (None, Some(line)) => Some(Position { line, column: 1 }),
        _ => None,
    };
    let expr = range
        .and_then(|r| source.get(r))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let (message, help) = match e.kind() {
        minijinja::ErrorKind::UndefinedError => {
            let what = expr.map_or_else(|| "a variable".to_owned(), |x| format!("`{x}`"));
            let known = ctx
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            (
                format!("undefined variable {what} in template `{id}`"),
                format!(
                    "define it under `variables:` in deploy.yml (templates see it as `vars.NAME`), or fix the name; the context has: {known}"
                ),
            )
        }
        minijinja::ErrorKind::SyntaxError => (
            format!(
                "template syntax error in `{id}`: {}",
                e.detail().unwrap_or("invalid syntax")
            ),
            "fix the template syntax (minijinja, Jinja2-compatible)".to_owned(),
        ),
        _ => (
            format!(
                "cannot render template `{id}`: {}",
                e.detail().unwrap_or(&e.to_string())
            ),
            "check the expression at this position".to_owned(),
        ),
    };
    Diagnostic::new(file, message)
        .at(position)
        .help(help)
        .with_source(source)
}

/// Parses rendered text into documents. JSON templates give one document; YAML templates may
/// give several (`---`).
fn parse_output(id: &str, file: &std::path::Path, text: &str) -> Result<Vec<Value>, Diagnostic> {
    let rendered_error = |pos: Option<Position>, msg: String| {
        let line = pos
            .and_then(|p| text.lines().nth(p.line - 1))
            .unwrap_or_default();
        Diagnostic::new(file, format!("template `{id}` rendered invalid output: {msg}"))
            .help(format!(
                "the rendered text at line {} is `{}`; check how the template quotes values (use `| tojson` for strings)",
                pos.map_or(0, |p| p.line),
                line.trim()
            ))
    };
    if is_json(id) {
        serde_json::from_str::<Value>(text)
            .map(|v| vec![v])
            .map_err(|e| {
                rendered_error(
                    Some(Position {
                        line: e.line(),
                        column: e.column(),
                    }),
                    format!("{e}"),
                )
            })
    } else {
        serde_saphyr::from_multiple::<Value>(text)
            .map(|docs| docs.into_iter().filter(|d| !d.is_null()).collect())
            .map_err(|e| {
                let pos = e.location().map(crate::config::tree::to_position);
                let opts =
                    serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
                rendered_error(pos, e.render_with_options(opts))
            })
    }
}

/// Whether a template id renders JSON (its other renderings are YAML).
fn is_json(id: &str) -> bool {
    std::path::Path::new(id)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Names the artifact and summarises it.
fn artifact(id: &'static str, value: Value) -> Result<Artifact, Diagnostic> {
    let (name, content) = if id.starts_with("kubernetes/") {
        let kind = value["kind"].as_str().unwrap_or_default().to_lowercase();
        let obj = value["metadata"]["name"].as_str().unwrap_or_default();
        if kind.is_empty() || obj.is_empty() {
            return Err(Diagnostic::new(
                "",
                "a rendered Kubernetes document has no `kind` or no `metadata.name`",
            )
            .help("every document needs apiVersion, kind and metadata.name"));
        }
        let yaml =
            to_yaml(&value).map_err(|e| Diagnostic::new("", format!("cannot write YAML: {e}")))?;
        (format!("k8s/{kind}-{obj}.yaml"), yaml)
    } else if is_json(id) {
        let file = id.rsplit('/').next().unwrap_or(id).to_owned();
        let mut json = serde_json::to_string_pretty(&value).expect("a JSON value serializes");
        json.push('\n');
        (file, json)
    } else {
        let file = id.rsplit('/').next().unwrap_or(id).to_owned();
        let yaml =
            to_yaml(&value).map_err(|e| Diagnostic::new("", format!("cannot write YAML: {e}")))?;
        (file, yaml)
    };
    let summary = summarize(id, &value);
    Ok(Artifact {
        service: None,
        name,
        template: id,
        value,
        content,
        summary,
    })
}

fn summarize(id: &str, v: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    match id {
        ECS_TASK_DEFINITION => {
            let containers = v["containerDefinitions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let names: Vec<String> = containers
                .iter()
                .map(|c| {
                    let essential = c["essential"].as_bool().unwrap_or(true);
                    format!(
                        "{}{}",
                        s(&c["name"]),
                        if essential { "" } else { " (not essential)" }
                    )
                })
                .collect();
            let secrets: usize = containers
                .iter()
                .map(|c| c["secrets"].as_array().map_or(0, Vec::len))
                .sum();
            format!(
                "family {}: {} CPU / {} MiB, {}, containers {}, {secrets} secret(s) by reference",
                s(&v["family"]),
                s(&v["cpu"]),
                s(&v["memory"]),
                s(&v["networkMode"]),
                names.join(", "),
            )
        }
        ECS_SERVICE => {
            let dc = &v["deploymentConfiguration"];
            let controller = s(&v["deploymentController"]["type"]);
            let cb = dc["deploymentCircuitBreaker"]["rollback"]
                .as_bool()
                .unwrap_or(false);
            // ECS native strategies: the strategy, its bake time and its hooks' stages.
            let native = dc["strategy"]
                .as_str()
                .map_or_else(String::new, |strategy| {
                    let stages: Vec<&str> = dc["lifecycleHooks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|h| {
                            h["lifecycleStages"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                        })
                        .collect();
                    // CANARY and LINEAR: the share of each step and its bake.
                    let bake = match (&dc["canaryConfiguration"], &dc["linearConfiguration"]) {
                        (Value::Object(c), _) => format!(
                            "{}% then all, bake {} min",
                            c.get("canaryPercent").unwrap_or(&Value::Null),
                            c.get("canaryBakeTimeInMinutes").unwrap_or(&Value::Null)
                        ),
                        (_, Value::Object(l)) => format!(
                            "{}% a step, bake {} min a step",
                            l.get("stepPercent").unwrap_or(&Value::Null),
                            l.get("stepBakeTimeInMinutes").unwrap_or(&Value::Null)
                        ),
                        _ => format!("bake {} min", dc["bakeTimeInMinutes"]),
                    };
                    format!(
                        ", strategy {strategy} ({bake}{})",
                        if stages.is_empty() {
                            String::new()
                        } else {
                            format!(", hooks at {}", stages.join(", "))
                        }
                    )
                });
            format!(
                "service {} in {}: desired {}, controller {controller}{native}, max {}% / min healthy {}%{}",
                s(&v["serviceName"]),
                s(&v["cluster"]),
                v["desiredCount"],
                dc["maximumPercent"],
                dc["minimumHealthyPercent"],
                if cb {
                    ", circuit breaker with rollback"
                } else {
                    ""
                },
            )
        }
        ECS_APPSPEC => {
            let props = &v["Resources"][0]["TargetService"]["Properties"];
            format!(
                "CodeDeploy AppSpec: container {} port {}, {} hook(s)",
                s(&props["LoadBalancerInfo"]["ContainerName"]),
                props["LoadBalancerInfo"]["ContainerPort"],
                v["Hooks"].as_array().map_or(0, Vec::len)
            )
        }
        ECS_SCALING => {
            let t = &v["scalableTarget"];
            let policies: Vec<String> = v["policies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let c = &p["TargetTrackingScalingPolicyConfiguration"];
                    let metric = s(&c["PredefinedMetricSpecification"]["PredefinedMetricType"])
                        .replace("ECSServiceAverage", "")
                        .replace("Utilization", "");
                    format!(
                        "{metric} {}% (in {}s / out {}s)",
                        c["TargetValue"], c["ScaleInCooldown"], c["ScaleOutCooldown"]
                    )
                })
                .collect();
            format!(
                "{}..{} tasks; {}",
                t["MinCapacity"],
                t["MaxCapacity"],
                policies.join(", ")
            )
        }
        _ => k8s::summarize(v),
    }
}

/// Builds the template context for one environment. Templates see:
/// `app`, `env`, `region`, `account_id`, `image`, `registry`, `repository`, `container`,
/// `datadog`, `target`, `ecs` or `kubernetes`, `strategy`, `environment` (plain variables as
/// `{name, value}`), `secrets` (`{name, value_from}`), `vars`, `git`, `labels`.
pub fn context(
    config: &Config,
    env_name: &str,
    env: &Environment,
    image: &str,
    git: &GitInfo,
) -> Value {
    let mut vars = serde_json::Map::new();
    for (k, v) in config.variables.iter().chain(env.variables.iter()) {
        vars.insert(k.clone(), v.clone());
    }
    let hc = &config.container.health_check;
    let container = json!({
        "name": config.container.name,
        "port": config.container.port,
        "command": config.container.command,
        "health_check": {
            "path": hc.path,
            "interval": hc.interval.as_secs(),
            "timeout": hc.timeout.as_secs(),
            "healthy_threshold": hc.healthy_threshold,
            "unhealthy_threshold": hc.unhealthy_threshold,
            "start_period": hc.start_period.as_secs(),
        },
    });
    let environment: Vec<Value> = env
        .env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let secrets: Vec<Value> = env
        .secrets
        .iter()
        .map(|(k, v)| {
            let (secret, key) = v.split_once('/').unwrap_or((v, ""));
            json!({"name": k, "value_from": v, "secret": secret, "key": key})
        })
        .collect();
    let datadog_secret = env.datadog_secret(config).unwrap_or_default().to_owned();
    let (dd_secret, dd_key) = datadog_secret
        .split_once('/')
        .map_or((datadog_secret.as_str(), ""), |(a, b)| (a, b));
    let datadog = json!({
        "enabled": config.datadog.enabled,
        "image": config.datadog.image,
        "api_key_secret": datadog_secret,
        "secret": dd_secret,
        "key": dd_key,
        "site": config.datadog.site,
    });
    let mut ctx = json!({
        "app": config.app,
        "env": env_name,
        "region": config.region,
        "account_id": config.account_id,
        "image": image,
        "registry": registry(config),
        "repository": config.image.repository,
        "target": env.target.to_string(),
        "container": container,
        "datadog": datadog,
        "environment": environment,
        "secrets": secrets,
        "vars": vars,
        "url": env.url,
        "git": git.to_json(),
        "strategy": strategy_context(env),
        "labels": {
            "app.kubernetes.io/name": config.app,
            "app.kubernetes.io/instance": format!("{}-{env_name}", config.app),
            "app.kubernetes.io/managed-by": "movieverse-deploy",
            "app.kubernetes.io/version": git.sha7,
        },
    });
    let obj = ctx.as_object_mut().expect("an object");
    if let Some(ecs) = &env.ecs {
        let main = &ecs.all_services(&config.app, env_name)[0];
        obj.insert("ecs".into(), ecs_context(config, env_name, env, ecs, main));
    }
    if let Some(k) = &env.kubernetes {
        obj.insert(
            "kubernetes".into(),
            json!({
                "namespace": k.namespace,
                "replicas": k.replicas,
                "canary_replicas": k.canary_replicas,
                "resources": {"cpu": k.resources.cpu, "memory": k.resources.memory},
                "ingress": {"host": k.ingress.host, "class": k.ingress.class, "path": k.ingress.path, "tls_secret": k.ingress.tls_secret},
                "scaling": scaling_context(&k.scaling),
                "pdb_max_unavailable": k.pdb_max_unavailable,
                "config": k.config,
                "secret_access": k.secret_access,
                "secret_names": secret_names(config, env),
                "router": k.router,
                "gateway": k.gateway,
            }),
        );
    }
    ctx
}

/// The Secrets an environment references by `secret-name/key` (its `secrets:` and the
/// Datadog key when the sidecar is on), each name once, in order.
fn secret_names(config: &Config, env: &Environment) -> Vec<String> {
    let datadog = config
        .datadog
        .enabled
        .then(|| env.datadog_secret(config))
        .flatten();
    let mut names: Vec<String> = Vec::new();
    for reference in env.secrets.values().map(String::as_str).chain(datadog) {
        let name = reference.split_once('/').map_or(reference, |(n, _)| n);
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

/// The `ecs` object of the template context, for one service of the environment.
fn ecs_context(
    config: &Config,
    env_name: &str,
    env: &Environment,
    ecs: &crate::config::Ecs,
    svc: &crate::config::EcsService<'_>,
) -> Value {
    let arch = if config.image.platforms.iter().any(|p| p.contains("arm64")) {
        "ARM64"
    } else {
        "X86_64"
    };
    json!({
        // The environment's main service (`ecs.service`), not one of `ecs.services`.
        "main": svc.dir.is_empty(),
        "cluster": ecs.cluster,
        "service": svc.name,
        "family": svc.family,
        "cpu": ecs.cpu,
        "memory": ecs.memory,
        "desired_count": svc.desired_count,
        "platform_version": ecs.platform_version,
        "cpu_architecture": arch,
        "execution_role_arn": ecs.execution_role_arn,
        "task_role_arn": ecs.task_role_arn,
        "subnets": ecs.network.subnets,
        "security_groups": ecs.network.security_groups,
        "assign_public_ip": if ecs.network.assign_public_ip { "ENABLED" } else { "DISABLED" },
        "load_balancer": svc.load_balancer.map(|lb| json!({
            "target_group_arn": lb.target_group_arn,
            "health_check_grace_period": lb.health_check_grace_period.as_secs(),
        })),
        "log_group": ecs.log_group.clone().unwrap_or_else(|| format!("/ecs/{}-{env_name}", config.app)),
        "scaling": svc.scaling.map_or_else(|| scaling_context(&crate::config::Scaling { enabled: false, ..crate::config::Scaling::default() }), scaling_context),
        "max_percent": ecs_max_percent(env, svc.desired_count),
        "min_healthy_percent": ecs_min_healthy_percent(env, svc.desired_count),
    })
}

fn scaling_context(s: &crate::config::Scaling) -> Value {
    json!({
        "enabled": s.enabled,
        "min": s.min,
        "max": s.max,
        "cpu_target": s.cpu_target,
        "memory_target": s.memory_target,
        "scale_in_cooldown": s.scale_in_cooldown.as_secs(),
        "scale_out_cooldown": s.scale_out_cooldown.as_secs(),
    })
}

fn strategy_context(env: &Environment) -> Value {
    match &env.strategy {
        Strategy::Rolling(r) => json!({
            "type": "rolling",
            "max_surge": serde_json::to_value(r.max_surge).unwrap_or_default(),
            "max_unavailable": serde_json::to_value(r.max_unavailable).unwrap_or_default(),
            "progress_deadline": r.progress_deadline.as_secs(),
            "revision_history": r.revision_history,
        }),
        Strategy::BlueGreen(b) => json!({
            "type": "blue-green",
            "controller": b.controller,
            "prod_listener_rule": b.prod_listener_rule,
            "test_listener_rule": b.test_listener_rule,
            "infrastructure_role": b.infrastructure_role,
            // ECS native: `bakeTimeInMinutes`, and the PAUSE hook that holds green on test
            // traffic for the gate and the checks (rolled back if nobody answers in time).
            "bake_minutes": b.termination_wait.as_secs() / 60,
            "pause_hook": b.gate.is_some() || b.analysis.is_some(),
            "pause_timeout_minutes": crate::config::defaults::NATIVE_PAUSE_TIMEOUT_MINUTES,
            "application": b.application,
            "deployment_group": b.deployment_group,
            "green_target_group": b.green_target_group,
            "prod_listener_arn": b.prod_listener_arn,
            "test_listener_arn": b.test_listener_arn,
            "test_port": b.test_port,
            "deployment_config": b.deployment_config,
            "termination_wait": b.termination_wait.as_secs(),
            "hooks": b.hooks,
            "alarms": b.alarms,
            "progress_deadline": b.progress_deadline.as_secs(),
            // On Kubernetes each colour is a Deployment of its own, created at full size: its
            // rolling numbers matter only to a re-apply of the same revision.
            "max_surge": 1,
            "max_unavailable": 0,
            "revision_history": crate::config::defaults::revision_history(),
        }),
        Strategy::Canary(c) => json!({
            "type": "canary",
            "weights": c.weights(),
            "deadline": c.deadline.as_secs(),
            // ECS: `alb` (two services, weights set by this tool) or `ecs` (native CANARY or
            // LINEAR, a PAUSE hook before each shift answered by the analysis; ECS bakes each
            // step for the analysis interval, in whole minutes).
            "router": c.router.unwrap_or_default(),
            "native": c.native_shape().filter(|_| c.native()).map(|shape| match shape {
                crate::config::NativeShape::Canary { percent } => json!({"type": "CANARY", "percent": percent}),
                crate::config::NativeShape::Linear { step } => json!({"type": "LINEAR", "percent": step}),
            }),
            "bake_minutes": c.analysis.interval.as_secs() / 60,
            "pause_timeout_minutes": crate::config::defaults::NATIVE_PAUSE_TIMEOUT_MINUTES,
            "canary_target_group": c.canary_target_group,
            "listener_rule": c.listener_rule,
            "infrastructure_role": c.infrastructure_role,
            // Kubernetes rolls the stable Deployment at promotion time with the spec's
            // rolling numbers.
            "max_surge": 1,
            "max_unavailable": 0,
            "progress_deadline": crate::config::defaults::progress_deadline().as_secs(),
            "revision_history": crate::config::defaults::revision_history(),
        }),
    }
}

/// ECS `maximumPercent` from the rolling max surge: a count is converted against the desired
/// count, rounding up (surge 1 of 2 tasks is 150 %).
pub fn ecs_max_percent(env: &Environment, desired: u32) -> u32 {
    match &env.strategy {
        Strategy::Rolling(r) => match r.max_surge {
            crate::config::IntOrPercent::Int(n) => 100 + (n * 100).div_ceil(desired.max(1)),
            crate::config::IntOrPercent::Percent(p) => 100 + p,
        },
        _ => 200,
    }
}

/// ECS `minimumHealthyPercent` from the rolling max unavailable, rounding down the tasks that
/// may be missing (unavailable 0 is 100 %).
pub fn ecs_min_healthy_percent(env: &Environment, desired: u32) -> u32 {
    match &env.strategy {
        Strategy::Rolling(r) => match r.max_unavailable {
            crate::config::IntOrPercent::Int(n) => {
                100u32.saturating_sub((n * 100) / desired.max(1))
            }
            crate::config::IntOrPercent::Percent(p) => 100u32.saturating_sub(p),
        },
        _ => 100,
    }
}
