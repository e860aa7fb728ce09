//! `init`: deploy.yml for one environment.
//!
//! Without `--from`: a commented skeleton from flags or defaults, that passes `plan` as
//! written. The text is made by a pure function ([`skeleton`]) and checked with the same
//! loader `plan` uses before it is written: a skeleton that did not load would be this tool's
//! bug, and is never written.
//!
//! With `--from ecs:CLUSTER/SERVICE`: the live service is read ([`Ecs::read_service`]), a
//! draft made of it ([`ecs::draft`], pure), rendered in a scratch directory with the renderer
//! a deploy uses and compared with the live objects by the functions a deploy compares with;
//! only the templates whose built-in rendering differs are kept, and the result is compared
//! again before anything is written.

mod ecs;
mod k8s;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::platform::ecs::Ecs;
use crate::platform::ecs::convert::{hide_plain_secrets, normalize};
use crate::platform::ecs::import::LiveService;
use crate::platform::kubernetes::Kubernetes;
use crate::render::templates::{ECS_SCALING, ECS_SERVICE, ECS_TASK_DEFINITION};

use super::{Error, print_out};
use crate::cli::{InitArgs, InitTarget};

/// The head of every skeleton: the app, its image and container.
const HEAD: &str = r#"# deploy.yml for @APP@, written by `movieverse-deploy init`.
# `movieverse-deploy plan --env @ENV@` shows what a deploy would do, and
# `movieverse-deploy schema` describes every key. Values marked `# replace` are
# placeholders: put yours in before the first deploy.
app: @APP@
region: @REGION@
account_id: "@ACCOUNT@"          # replace: your 12-digit AWS account id

image:
  repository: @APP@               # the ECR repository `build` pushes to
  # create_repository: true       # let `build` create it when it is missing

container:
  port: 8080                      # the port the application listens on
  health_check:
    path: /health                 # answers 200 once the application is ready

environments:
  @ENV@:
"#;

/// The environment on ECS.
const ECS: &str = r"    target: ecs
    ecs:
      cluster: @APP@-@ENV@          # replace: the ECS cluster
      service: @APP@                # replace: the service (this tool updates it; create it first)
      cpu: 256                      # Fargate CPU units, and a memory that pairs with them
      memory: 512
      desired_count: 2
      execution_role_arn: arn:aws:iam::@ACCOUNT@:role/@APP@-task-execution   # replace
      task_role_arn: arn:aws:iam::@ACCOUNT@:role/@APP@-task                  # replace
      network:
        subnets: [subnet-0000000000000000a, subnet-0000000000000000b]       # replace
        security_groups: [sg-0000000000000000a]                             # replace
      # load_balancer:              # when the service sits behind a target group
      #   target_group_arn: arn:aws:elasticloadbalancing:@REGION@:@ACCOUNT@:targetgroup/@APP@/0123456789abcdef
      # scaling: {min: 2, max: 10}  # target tracking on CPU and memory
";

/// The environment on Kubernetes.
const KUBERNETES: &str = r"    target: kubernetes
    kubernetes:
      namespace: @APP@              # in the current kubeconfig context's cluster
      # context: my-cluster         # or a context of your kubeconfig
      replicas: 2
      ingress:
        host: @APP@.example.com     # replace: the host the Ingress answers
";

/// The strategy and the container's variables, for either target.
const REST: &str = r"    strategy:
      rolling:                      # or blue-green, or canary with analysis: see the README
        max_surge: 1
        max_unavailable: 0
        progress_deadline: 10m
    env:                            # plain variables of the container
      LOG_LEVEL: info
    # secrets:                      # by reference, never by value
";

/// The deploy.yml `init` writes for `args`, with `app` resolved. Pure.
pub fn skeleton(args: &InitArgs, app: &str) -> String {
    let (target, secret) = match args.target {
        InitTarget::Ecs => (
            ECS,
            "    #   DATABASE_URL: arn:aws:secretsmanager:@REGION@:@ACCOUNT@:secret:@APP@/@ENV@/database-url\n",
        ),
        InitTarget::Kubernetes => (
            KUBERNETES,
            "    #   DATABASE_URL: database/url  # the Secret `database`, its key `url`\n",
        ),
    };
    [HEAD, target, REST, secret]
        .concat()
        .replace("@APP@", app)
        .replace("@ENV@", &args.env)
        .replace("@REGION@", &args.region)
        .replace("@ACCOUNT@", &args.account_id)
}

/// The application name from a directory's name: a DNS-1123 label (lowercase letters, digits
/// and `-`, at most 63), `app` when nothing is left.
pub fn app_from_dir(dir: &Path) -> String {
    ecs::dns_label(
        &dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

/// deploy.yml for a live service or app, and the templates it may need: made by
/// [`ecs::draft`] or [`k8s::draft`] (pure); which templates are kept is decided here.
#[derive(Debug, Clone)]
pub struct Draft {
    pub app: String,
    pub env: String,
    /// The app container's image as it runs: what the first deploy (and `plan --live
    /// --image`, `plan --server-dry-run --image`) names to change nothing.
    pub image: String,
    /// Templates that reproduce the live objects: (template id, path relative to deploy.yml,
    /// text).
    pub templates: Vec<(&'static str, String, String)>,
    /// What the user has to do (secrets to create) or should know (what was not imported).
    pub notes: Vec<String>,
    /// deploy.yml before its `templates:` section, and after it.
    head: String,
    environment: String,
    /// The comment over `templates:`.
    why: &'static str,
}

impl Draft {
    /// deploy.yml's text, with `templates` (id, path) overriding the built-in ones.
    pub fn config(&self, templates: &[(&str, &str)]) -> String {
        let mut out = self.head.clone();
        if !templates.is_empty() {
            let _ = writeln!(out, "\n{}\ntemplates:", self.why);
            for (id, path) in templates {
                let _ = writeln!(out, "  {id}: {path}");
            }
        }
        out.push_str(&self.environment);
        out
    }
}

/// The directory of deploy.yml at `path`.
fn parent_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A scratch directory with every template of `draft` written in it, where drafts are
/// rendered and compared before anything is written beside deploy.yml.
fn scratch(draft: &Draft) -> Result<tempfile::TempDir, Error> {
    let dir = tempfile::tempdir().map_err(|e| {
        Error::Environment(anyhow::Error::new(e).context("cannot make a scratch directory"))
    })?;
    for (_, file, text) in &draft.templates {
        write(&dir.path().join(file), text)?;
    }
    Ok(dir)
}

/// A file `init` would write exists and `--force` was not given.
fn refuse_existing(path: &Path, force: bool) -> Result<(), Error> {
    if path.exists() && !force {
        return Err(Error::Usage {
            message: format!(
                "{} exists; `init` does not write over it",
                crate::diag::display_path(path).display()
            ),
            help: "pass --force to replace it, or --config PATH to write another file".into(),
        });
    }
    Ok(())
}

/// `init`: writes deploy.yml (and with `--from`, templates) at `path`, never over an existing
/// file without `--force`.
pub fn init(path: &Path, args: &InitArgs) -> Result<(), Error> {
    match args.from.as_deref() {
        None => {}
        Some(from) => {
            return match from.split_once(':') {
                Some(("ecs", rest)) => match rest.split_once('/') {
                    Some((cluster, service)) if !cluster.is_empty() && !service.is_empty() => {
                        from_ecs(path, args, cluster, service)
                    }
                    _ => Err(bad_from(from)),
                },
                Some(("k8s", rest)) => match rest.split_once('/') {
                    Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
                        from_k8s(path, args, namespace, name)
                    }
                    _ => Err(bad_from(from)),
                },
                _ => Err(bad_from(from)),
            };
        }
    }
    refuse_existing(path, args.force)?;
    let dir = parent_dir(path);
    let app = match &args.app {
        Some(app) => app.clone(),
        None => app_from_dir(&std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone())),
    };
    let text = skeleton(args, &app);
    // The file must load as `plan` loads it: the flags' values are checked here (a bad app
    // name or region is said with its line), and nothing is written when they fail.
    crate::config::load_str(path.to_path_buf(), dir, text.clone())?;
    std::fs::write(path, &text).map_err(|e| {
        Error::Environment(anyhow::Error::new(e).context(format!(
            "cannot write {}",
            crate::diag::display_path(path).display()
        )))
    })?;
    print_out(&format!(
        "wrote {} (app {app}, environment {} on {}); next: `movieverse-deploy plan --env {}`, then replace the values marked `# replace`\n",
        crate::diag::display_path(path).display(),
        args.env,
        match args.target {
            InitTarget::Ecs => "ECS",
            InitTarget::Kubernetes => "Kubernetes",
        },
        args.env
    ))
}

fn bad_from(from: &str) -> Error {
    Error::Usage {
        message: format!("--from `{from}` names no live service"),
        help: "write `--from ecs:CLUSTER/SERVICE` or `--from k8s:NAMESPACE/DEPLOYMENT`".into(),
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Environment(anyhow::Error::new(e).context(format!(
                "cannot create {}",
                crate::diag::display_path(dir).display()
            )))
        })?;
    }
    std::fs::write(path, text).map_err(|e| {
        Error::Environment(anyhow::Error::new(e).context(format!(
            "cannot write {}",
            crate::diag::display_path(path).display()
        )))
    })
}

/// deploy.yml's `config` written in the scratch directory `dir` and loaded as `plan` loads it
/// (`what` the draft was made from, for the message when it does not load).
fn load_draft(dir: &Path, config: &str, what: &str) -> Result<crate::config::Loaded, Error> {
    let file = dir.join("deploy.yml");
    write(&file, config)?;
    crate::config::load(&file).map_err(|e| {
        Error::Environment(anyhow::anyhow!(
            "the deploy.yml made from {what} does not pass deploy.yml's checks (nothing was written):\n{e}"
        ))
    })
}

/// What differs between the rendering of a draft and the live service, by template id: the
/// task definition (normalized as `register` compares), the settings a deploy sends (as
/// `prepare` compares) and the auto scaling (bounds and policies).
fn differences(
    live: &LiveService,
    dir: &Path,
    config: &str,
    draft: &Draft,
) -> Result<Vec<(&'static str, String)>, Error> {
    let loaded = load_draft(dir, config, &format!("service {}", live.name))?;
    let renderer = crate::render::Renderer::new(&loaded).map_err(Error::Invalid)?;
    let output = renderer
        .render(&draft.env, &draft.image, &crate::git::GitInfo::unknown())
        .map_err(Error::Invalid)?;
    let find = |id: &str| {
        output
            .artifacts
            .iter()
            .find(|a| a.template == id && a.service.as_deref() == Some(live.name.as_str()))
            .map(|a| a.value.clone())
    };
    let mut out = Vec::new();
    let td = find(ECS_TASK_DEFINITION).unwrap_or_default();
    let (live_td, rendered_td) = (normalize(&live.definition), normalize(&td));
    if live_td != rendered_td {
        out.push((
            ECS_TASK_DEFINITION,
            crate::platform::yaml_diff(
                &hide_plain_secrets(&live_td),
                &hide_plain_secrets(&rendered_td),
                "live",
                "rendered",
            ),
        ));
    }
    let scaling = find(ECS_SCALING);
    let service = find(ECS_SERVICE).unwrap_or_default();
    let (live_settings, settings) = crate::platform::ecs::settings_pair(
        &live.settings,
        live.desired_count,
        &service,
        scaling.is_some(),
    );
    if live_settings != settings {
        out.push((
            ECS_SERVICE,
            crate::platform::yaml_diff(&live_settings, &settings, "live", "rendered"),
        ));
    }
    let scaling_of =
        |min: &serde_json::Value, max: &serde_json::Value, policies: &[serde_json::Value]| {
            let mut policies: Vec<serde_json::Value> = policies.to_vec();
            policies.sort_by_key(|p| p["PolicyName"].to_string());
            serde_json::json!({"min": min, "max": max, "policies": policies})
        };
    let live_scaling = live
        .scaling
        .as_ref()
        .map(|s| scaling_of(&s.min.into(), &s.max.into(), &s.policies));
    let rendered_scaling = scaling.as_ref().map(|s| {
        scaling_of(
            &s["scalableTarget"]["MinCapacity"],
            &s["scalableTarget"]["MaxCapacity"],
            s["policies"].as_array().map_or(&[][..], Vec::as_slice),
        )
    });
    if live_scaling != rendered_scaling {
        let null = serde_json::Value::Null;
        out.push((
            ECS_SCALING,
            crate::platform::yaml_diff(
                live_scaling.as_ref().unwrap_or(&null),
                rendered_scaling.as_ref().unwrap_or(&null),
                "live",
                "rendered",
            ),
        ));
    }
    Ok(out)
}

/// `init --from ecs:CLUSTER/SERVICE`.
fn from_ecs(path: &Path, args: &InitArgs, cluster: &str, service: &str) -> Result<(), Error> {
    // Said before anything is read; checked again (with the templates) before writing.
    refuse_existing(path, args.force)?;
    let rt = super::deploy::runtime()?;
    let live = rt
        .block_on(async {
            Ecs::from_env(&args.region)
                .await
                .read_service(cluster, service)
                .await
        })
        .map_err(|e| {
            Error::Environment(anyhow::anyhow!(
                "cannot read service {service} in cluster {cluster} ({}): {e}; check the names, the region (--region) and the credentials",
                args.region
            ))
        })?;
    let draft =
        ecs::draft(&live, &args.env, args.app.as_deref()).map_err(|message| Error::Usage {
            message,
            help: "`init --target ecs` writes a skeleton to start from instead".into(),
        })?;
    let dir = parent_dir(path);

    // Which templates are needed: the draft without any, rendered and compared; then with
    // the needed ones, compared again. All in a scratch directory.
    let scratch = scratch(&draft)?;
    let first = differences(&live, scratch.path(), &draft.config(&[]), &draft)?;
    let kept: Vec<&(&str, String, String)> = draft
        .templates
        .iter()
        .filter(|(id, _, _)| first.iter().any(|(d, _)| d == id))
        .collect();
    let refs: Vec<(&str, &str)> = kept.iter().map(|(id, f, _)| (*id, f.as_str())).collect();
    let config = draft.config(&refs);
    let left = differences(&live, scratch.path(), &config, &draft)?;

    // Nothing is written over an existing file without --force, and nothing at all when one
    // is in the way.
    refuse_existing(path, args.force)?;
    for (_, file, _) in &kept {
        refuse_existing(&dir.join(file), args.force)?;
    }
    for (_, file, text) in &kept {
        write(&dir.join(file), text)?;
    }
    write(path, &config)?;

    let mut out = format!(
        "read service {} (cluster {}): task definition {}, {} container(s){}\nwrote {} (app {}, environment {} on ECS, rolling)\n",
        live.name,
        live.cluster,
        live.definition["taskDefinitionArn"]
            .as_str()
            .and_then(|a| a.rsplit('/').next())
            .unwrap_or("?"),
        live.definition["containerDefinitions"]
            .as_array()
            .map_or(0, Vec::len),
        if live.scaling.is_some() {
            ", auto scaling"
        } else {
            ""
        },
        crate::diag::display_path(path).display(),
        draft.app,
        draft.env,
    );
    for (id, file, _) in &kept {
        let why = first.iter().find(|(d, _)| d == id).map_or(0, |(_, diff)| {
            diff.lines()
                .filter(|l| {
                    l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++")
                })
                .count()
        });
        let _ = writeln!(
            out,
            "wrote {} (the built-in {id} template would change {why} line(s) of the live object)",
            crate::diag::display_path(&dir.join(file)).display()
        );
    }
    for (id, _, _) in draft
        .templates
        .iter()
        .filter(|t| !kept.iter().any(|k| k.0 == t.0))
    {
        let _ = writeln!(out, "the built-in {id} template reproduces the live object");
    }
    for note in &draft.notes {
        let _ = writeln!(out, "note: {note}");
    }
    // Variables moved to secrets change the task definition, and only it.
    let moved = draft
        .notes
        .iter()
        .any(|n| n.contains("looks like a secret"))
        && left.iter().all(|(id, _)| *id == ECS_TASK_DEFINITION);
    if left.is_empty() {
        let _ = writeln!(
            out,
            "a deploy of the image the service runs registers nothing and changes no setting: `movieverse-deploy plan --live --env {} --image {}` shows it",
            draft.env, draft.image
        );
    } else if moved {
        let _ = writeln!(
            out,
            "the first deploy registers a task definition that reads those variables from their secrets; nothing else changes"
        );
    } else {
        for (id, diff) in &left {
            let _ = write!(
                out,
                "warning: {id} still differs from the live object (a field `init` does not import); a deploy would change:\n{diff}"
            );
        }
    }
    print_out(&out)
}

/// What the API server's dry run of the draft's rendering would change on the live objects,
/// by template id: (id, what).
fn k8s_differences(
    rt: &tokio::runtime::Runtime,
    cluster: &Kubernetes,
    dir: &Path,
    config: &str,
    draft: &Draft,
) -> Result<Vec<(&'static str, String)>, Error> {
    use crate::platform::kubernetes::ObjectChange;
    let loaded = load_draft(dir, config, &format!("Deployment {}", draft.app))?;
    let specs = super::deploy::specs(&loaded, &draft.env, Some(draft.image.clone()))?;
    let mut out = Vec::new();
    for spec in &specs {
        let diffs = rt
            .block_on(cluster.diff(spec))
            .map_err(|e| Error::Environment(anyhow::anyhow!("the server dry run failed: {e}")))?
            .unwrap_or_default();
        for d in diffs {
            let what = match d.change {
                ObjectChange::Unchanged => continue,
                ObjectChange::Create => format!("{} {} would be created", d.kind, d.name),
                ObjectChange::Change { diff } => {
                    format!("{} {} would change:\n{diff}", d.kind, d.name)
                }
            };
            out.push((k8s::template_of(&d.kind).unwrap_or("?"), what));
        }
    }
    Ok(out)
}

/// `init --from k8s:NAMESPACE/DEPLOYMENT`. Every object the app has is templated (the built-in
/// templates label objects with the commit, so a Deployment made elsewhere never matches
/// them), and what the built-in ones would add and the app has not is rendered empty; the
/// API server's dry run of the result must change nothing.
fn from_k8s(path: &Path, args: &InitArgs, namespace: &str, name: &str) -> Result<(), Error> {
    refuse_existing(path, args.force)?;
    let rt = super::deploy::runtime()?;
    let cluster = rt
        .block_on(Kubernetes::connect(None, namespace, false))
        .map_err(Error::Environment)?;
    let live = rt.block_on(cluster.read_app(name)).map_err(|e| {
        Error::Environment(anyhow::anyhow!(
            "cannot read Deployment {name} in namespace {namespace}: {e}; check the names and the kubeconfig's context"
        ))
    })?;
    // A plain value that looks like a secret is never printed (a diff below would show it):
    // masked, the copy dropped.
    let _ = crate::platform::kubernetes::hide_plain_secrets(&live.deployment);
    let draft = k8s::draft(
        &live,
        &args.env,
        args.app.as_deref(),
        &args.region,
        &args.account_id,
    )
    .map_err(|message| Error::Usage {
        message,
        help: "`init --target kubernetes` writes a skeleton to start from instead".into(),
    })?;
    let dir = parent_dir(path);
    let scratch = scratch(&draft)?;
    let refs: Vec<(&str, &str)> = draft
        .templates
        .iter()
        .map(|(id, f, _)| (*id, f.as_str()))
        .collect();
    let config = draft.config(&refs);
    // The client's connection lives on this runtime: the dry runs are made on it too.
    let left = k8s_differences(&rt, &cluster, scratch.path(), &config, &draft)?;

    refuse_existing(path, args.force)?;
    for (_, file, _) in &draft.templates {
        refuse_existing(&dir.join(file), args.force)?;
    }
    for (_, file, text) in &draft.templates {
        write(&dir.join(file), text)?;
    }
    write(path, &config)?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "read Deployment {name} (namespace {namespace}): {} Service(s), {} Ingress(es), {} HPA(s), {} PDB(s)",
        live.services.len(),
        live.ingresses.len(),
        live.autoscalers.len(),
        live.budgets.len()
    );
    let _ = writeln!(
        out,
        "wrote {} (app {}, environment {} on Kubernetes, rolling)",
        crate::diag::display_path(path).display(),
        draft.app,
        draft.env
    );
    for (_, file, _) in &draft.templates {
        let _ = writeln!(
            out,
            "wrote {}",
            crate::diag::display_path(&dir.join(file)).display()
        );
    }
    for note in &draft.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let moved = draft
        .notes
        .iter()
        .any(|n| n.contains("looks like a secret"));
    if left.is_empty() {
        let _ = writeln!(
            out,
            "the API server's dry run of a deploy of the image the Deployment runs changes nothing: `movieverse-deploy plan --server-dry-run --env {} --image {}` shows it",
            draft.env, draft.image
        );
    } else if moved
        && left
            .iter()
            .all(|(id, _)| *id == crate::render::templates::K8S_DEPLOYMENT)
    {
        let _ = writeln!(
            out,
            "the first deploy rolls the Deployment once, to read those variables from their Secret; nothing else changes"
        );
    } else {
        for (id, what) in &left {
            let _ = writeln!(
                out,
                "warning: {id}: {} (a field `init` does not import)",
                crate::report::scrub(what)
            );
        }
    }
    print_out(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_name_is_the_directory_as_a_dns_label() {
        assert_eq!(app_from_dir(Path::new("/src/My_Service")), "my-service");
        assert_eq!(app_from_dir(Path::new("/src/--")), "app");
        assert_eq!(app_from_dir(Path::new("/")), "app");
    }
}
