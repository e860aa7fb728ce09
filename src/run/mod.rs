//! The edge: turns a parsed command line into effects (reading files, writing artifacts,
//! printing). Everything it calls underneath is pure.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::Path;

use crate::cli::{Cli, ColorChoice, Command, OutputFormat, RenderFormat, Selection};
use crate::config::{self, LoadError, Loaded};
use crate::diag::{Diagnostics, display_path};
use crate::git::GitInfo;
use crate::plan::{self, Style};
use crate::render::{self, Rendered, Renderer};

mod analyze;
mod bluegreen;
mod deploy;
mod ecs_canary;
mod github;
mod image;
mod init;
mod live;
mod lock;
mod rollout;
mod simulate;
mod verify;

/// Why a command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid input: config, template or rendered output. Exit 2.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The config could not be read. Exit 2.
    #[error(transparent)]
    Load(LoadError),
    /// A wrong argument, with advice. Exit 2.
    #[error("error: {message}\n  = help: {help}")]
    Usage { message: String, help: String },
    /// The machine or a service failed us (writing files, a service unreachable). Exit 3.
    #[error("error: {0:#}")]
    Environment(anyhow::Error),
    /// A deployment ended badly; the report was printed. Exit code from the outcome.
    #[error("{message}")]
    Deployment { code: u8, message: String },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) | Error::Load(_) | Error::Usage { .. } => 2,
            Error::Environment(_) => 3,
            Error::Deployment { code, .. } => *code,
        }
    }

    /// GitHub Actions annotations for the problems, so they show on the diff.
    pub fn annotations(&self) -> Option<String> {
        match self {
            Error::Invalid(d) | Error::Load(LoadError::Invalid(d)) => Some(d.to_annotations()),
            _ => None,
        }
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Invalid(d) => Error::Invalid(d),
            read @ LoadError::Read { .. } => Error::Load(read),
        }
    }
}

pub fn run(cli: Cli) -> Result<(), Error> {
    if let Err(message) = crate::aws::call_timeout() {
        return Err(Error::Usage {
            message,
            help: format!(
                "set it to whole seconds (`{}=60`), or unset it for the default of {} s",
                crate::aws::CALL_TIMEOUT_VAR,
                crate::aws::CALL_TIMEOUT.as_secs()
            ),
        });
    }
    if let Err(message) = crate::driver::retry_base() {
        return Err(Error::Usage {
            message,
            help: format!(
                "set it to a duration (`{}=500ms`), or unset it for the default of {} s",
                crate::driver::RETRY_BASE_VAR,
                crate::driver::RETRY_BASE.as_secs()
            ),
        });
    }
    let style = Style {
        color: match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        },
    };
    match cli.command {
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&config::json_schema())
                .expect("the schema serializes");
            print_out(&format!("{schema}\n"))
        }
        Command::Init(args) => {
            if args.from.as_deref().is_some_and(|f| f.starts_with("ecs:")) {
                aws_login_in(&args.region, cli.role_to_assume.as_deref())?;
            }
            init::init(&cli.config, &args)
        }
        Command::Verify(args) => {
            let loaded = config::load(&cli.config)?;
            aws_login(&loaded, cli.role_to_assume.as_deref())?;
            verify::verify(&loaded, &args.env)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "movieverse-deploy", &mut buf);
            print_out(&String::from_utf8_lossy(&buf))
        }
        Command::Render(args) => {
            let loaded = config::load(&cli.config)?;
            let (_, rendered) = render_selection(&loaded, &args.selection)?;
            if let Some(dir) = args.out {
                write_out(&dir, &rendered)
            } else if args.output == RenderFormat::Yaml {
                print_out(&yaml_stream(&rendered, &args.selection.env)?)
            } else {
                let mut text = String::new();
                for r in &rendered {
                    for a in &r.artifacts {
                        let _ = write!(text, "==> {}/{} <==\n{}", r.env, a.name, a.content);
                        if !a.content.ends_with('\n') {
                            text.push('\n');
                        }
                    }
                }
                print_out(&text)
            }
        }
        Command::Deploy(args) if args.simulate => {
            let loaded = config::load(&cli.config)?;
            let name = select(&loaded, &args.wait.env.env)?;
            if name.len() != 1 {
                return Err(Error::Usage {
                    message: "`--env all` with --simulate: simulate one environment at a time"
                        .into(),
                    help: "name the environment, for example `--env production-k8s`".into(),
                });
            }
            simulate::simulate(&loaded, &name[0], &args)
        }
        Command::Deploy(args) => {
            let loaded = config::load(&cli.config)?;
            aws_login(&loaded, cli.role_to_assume.as_deref())?;
            deploy::deploy(&loaded, &args)
        }
        Command::Build(args) => {
            let loaded = config::load(&cli.config)?;
            aws_login(&loaded, cli.role_to_assume.as_deref())?;
            image::build(&loaded, &args)
        }
        Command::Promote(args) => {
            let loaded = config::load(&cli.config)?;
            aws_login(&loaded, cli.role_to_assume.as_deref())?;
            image::promote(&loaded, &args)
        }
        Command::Analyze(args) => {
            let loaded = config::load(&cli.config)?;
            aws_login(&loaded, cli.role_to_assume.as_deref())?;
            analyze::analyze(&loaded, &args)
        }
        Command::Rollout(args) => {
            let loaded = config::load(&cli.config)?;
            rollout::rollout(&loaded, &args)
        }
        Command::Status(args) => {
            let loaded = config::load(&cli.config)?;
            aws_login(&loaded, cli.role_to_assume.as_deref())?;
            deploy::status(&loaded, &args)
        }
        Command::Rollback(args) => {
            let loaded = config::load(&cli.config)?;
            aws_login(&loaded, cli.role_to_assume.as_deref())?;
            deploy::rollback(&loaded, &args)
        }
        Command::Plan(args) => {
            let loaded = config::load(&cli.config)?;
            let (git, rendered) = render_selection(&loaded, &args.selection)?;
            let image = rendered
                .first()
                .map(|r| r.image.clone())
                .unwrap_or_default();
            let mut plan = plan::build(&loaded.config, &git, &image, &rendered);
            plan.asked_server = args.server_dry_run;
            plan.warnings.splice(0..0, local_warnings(&loaded, &git));
            let live = if args.server_dry_run {
                Some(deploy::server_dry_run(&loaded, &args.selection)?)
            } else {
                None
            };
            let facts = if args.live {
                aws_login(&loaded, cli.role_to_assume.as_deref())?;
                Some(live::live(&loaded, &args.selection)?)
            } else {
                None
            };
            let verified = if args.verify {
                aws_login(&loaded, cli.role_to_assume.as_deref())?;
                Some(verify::report(&loaded, &args.selection.env, true)?)
            } else {
                None
            };
            publish_plan(&plan, live.as_deref())?;
            let text = match args.output {
                OutputFormat::Text => {
                    let mut text = plan::to_text(&plan, style);
                    if let Some(live) = &live {
                        text.push_str(&deploy::server_dry_run_text(live));
                    }
                    if let Some(facts) = &facts {
                        text.push_str(&live::live_text(facts));
                    }
                    if let Some((report, _)) = &verified {
                        text.push_str("\nVerify (read-only checks of what a deploy depends on)\n");
                        text.push_str(report);
                    }
                    text
                }
                OutputFormat::Json => {
                    let mut value = serde_json::to_value(&plan).expect("the plan serializes");
                    if let (Some(live), Some(obj)) = (&live, value.as_object_mut()) {
                        obj.insert(
                            "server_dry_run".into(),
                            serde_json::to_value(live).expect("diffs serialize"),
                        );
                    }
                    if let (Some(facts), Some(obj)) = (&facts, value.as_object_mut()) {
                        obj.insert(
                            "live".into(),
                            serde_json::to_value(facts).expect("facts serialize"),
                        );
                    }
                    if let (Some((report, _)), Some(obj)) = (&verified, value.as_object_mut()) {
                        obj.insert("verify".into(), report.clone().into());
                    }
                    format!(
                        "{}\n",
                        serde_json::to_string_pretty(&value).expect("the plan serializes")
                    )
                }
            };
            print_out(&text)?;
            match verified {
                Some((_, result)) => result,
                None => Ok(()),
            }
        }
    }
}

/// What the plan checks on this machine: uncommitted changes (the image is built from the
/// working tree but tagged with the commit), and the Containerfile.
fn local_warnings(loaded: &Loaded, git: &GitInfo) -> Vec<String> {
    let mut out = Vec::new();
    if git.origin == "git"
        && let Some(changed) = crate::git::uncommitted(&loaded.source.dir)
        && changed > 0
    {
        out.push(format!(
            "the working tree has {changed} uncommitted change(s): `build` would tag what is on disk as sha-{}, which is not that commit; commit or stash them first",
            git.sha7
        ));
    }
    let image = &loaded.config.image;
    let context = loaded.source.resolve(&image.context);
    if !context.join(&image.containerfile).is_file() {
        let path = crate::diag::display_path(&context.join(&image.containerfile));
        let alternative = ["Containerfile", "Dockerfile"]
            .into_iter()
            .find(|f| *f != image.containerfile && context.join(f).is_file());
        out.push(match alternative {
            Some(f) => format!(
                "{} does not exist, but a {f} is there: set `image.containerfile: {f}` in deploy.yml",
                path.display()
            ),
            None => format!(
                "{} does not exist: `build` will fail; set `image.containerfile` (relative to `image.context`)",
                path.display()
            ),
        });
    }
    out
}

/// In GitHub Actions: the plan as Markdown in the `plan` step output and the job summary, so
/// a pull request workflow can post it. Does nothing elsewhere.
fn publish_plan(plan: &plan::Plan, live: Option<&[deploy::LiveDiff]>) -> Result<(), Error> {
    use anyhow::Context as _;
    let output = std::env::var_os("GITHUB_OUTPUT");
    let summary = std::env::var_os("GITHUB_STEP_SUMMARY");
    if output.is_none() && summary.is_none() {
        return Ok(());
    }
    let mut text = plan::to_text(plan, Style { color: false });
    if let Some(live) = live {
        text.push_str(&deploy::server_dry_run_text(live));
    }
    let markdown = plan::to_markdown(&text);
    crate::report::set_output("plan", &markdown)
        .context("cannot write the `plan` output to $GITHUB_OUTPUT")
        .map_err(Error::Environment)?;
    if let Some(path) = summary {
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{markdown}\n").as_bytes()))
            .context("cannot append the plan to $GITHUB_STEP_SUMMARY")
            .map_err(Error::Environment)?;
    }
    Ok(())
}

/// With a role to assume, exchanges the job's OIDC token for its credentials before any AWS
/// call. Input is validated first (the config is loaded), so a refusal changes nothing.
fn aws_login(loaded: &Loaded, role: Option<&str>) -> Result<(), Error> {
    aws_login_in(&loaded.config.region, role)
}

/// [`aws_login`] before there is a deploy.yml (`init --from ecs:`).
fn aws_login_in(region: &str, role: Option<&str>) -> Result<(), Error> {
    let Some(role) = role.filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    deploy::runtime()?
        .block_on(crate::aws::assume_role_from_github(role, region))
        .map_err(|e| Error::Deployment {
            code: 3,
            message: e.to_string(),
        })
}

/// Renders the selected environments; every problem of every environment is reported at once.
pub(crate) fn render_selection(
    loaded: &Loaded,
    selection: &Selection,
) -> Result<(GitInfo, Vec<Rendered>), Error> {
    let names = select(loaded, &selection.env)?;
    if let Some(image) = &selection.image {
        check_image_arg(image)?;
    }
    let git = GitInfo::discover(&loaded.source.dir);
    let image = selection
        .image
        .clone()
        .unwrap_or_else(|| render::default_image(&loaded.config, &git));
    let renderer = Renderer::new(loaded).map_err(Error::Invalid)?;
    let mut done = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        match renderer.render(&name, &image, &git) {
            Ok(r) => done.push(r),
            Err(d) => problems.extend(d.0),
        }
    }
    if problems.is_empty() {
        Ok((git, done))
    } else {
        Err(Error::Invalid(Diagnostics(problems).sorted()))
    }
}

/// `--image` must be an image reference; the error says what is wrong and what to write.
pub(crate) fn check_image_arg(image: &str) -> Result<bool, Error> {
    crate::image::check_reference(image).map_err(|why| Error::Usage {
        message: format!("--image `{image}` is not an image reference: {why}"),
        help: "write REGISTRY/REPOSITORY@sha256:DIGEST (the `image` output of `build`), or REPOSITORY:TAG; names are lowercase".into(),
    })
}

pub(crate) fn select(loaded: &Loaded, env: &str) -> Result<Vec<String>, Error> {
    let names: Vec<String> = loaded.config.environments.keys().cloned().collect();
    if env == "all" {
        return Ok(names);
    }
    if names.iter().any(|n| n == env) {
        return Ok(vec![env.to_owned()]);
    }
    let known = names.join(", ");
    let help = match config::closest(env, names.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `--env {s}`? Environments: {known}, or `all`"),
        None => format!("use one of: {known}, or `all`"),
    };
    Err(Error::Usage {
        message: format!(
            "unknown environment `{env}` in {}",
            display_path(&loaded.source.file).display()
        ),
        help,
    })
}

/// The Kubernetes manifests as one YAML stream (`---` between documents, a `# Source:`
/// comment naming each, as `helm template` prints), for `kubectl apply -f -`. ECS artifacts
/// are JSON for the AWS API, not manifests: an ECS environment named alone is an error, and
/// `--env all` streams the Kubernetes environments only (saying which were left out).
fn yaml_stream(rendered: &[Rendered], selected: &str) -> Result<String, Error> {
    let mut out = String::new();
    let mut skipped = Vec::new();
    for r in rendered {
        let manifests: Vec<_> = r
            .artifacts
            .iter()
            .filter(|a| a.template.starts_with("kubernetes/"))
            .collect();
        if manifests.is_empty() {
            skipped.push(r.env.as_str());
            continue;
        }
        for a in manifests {
            let _ = write!(out, "---\n# Source: {}/{}\n{}", r.env, a.name, a.content);
            if !a.content.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Usage {
            message: format!(
                "`--output yaml` prints Kubernetes manifests, and environment `{selected}` has none: it deploys to ECS, whose artifacts are JSON for the AWS API"
            ),
            help: "use `--out DIR` to write the ECS artifacts, or the default `--output text`"
                .into(),
        });
    }
    if !skipped.is_empty() {
        eprintln!(
            "note: left out of the YAML stream (ECS, no Kubernetes manifests): {}",
            skipped.join(", ")
        );
    }
    Ok(out)
}

/// Writes each environment's artifacts under `DIR/ENV/`, which then holds exactly what was
/// rendered: a file left from an earlier render (an HPA after `scaling.enabled: false`) is
/// removed, so `kubectl apply -f DIR/ENV/k8s` never applies a stale manifest. The folder is
/// treated as ours only while it holds nothing but what `render` writes (`.json`, `.yaml`
/// files, and folders of them); anything else there stops the command before a file changes.
fn write_out(dir: &Path, rendered: &[Rendered]) -> Result<(), Error> {
    use anyhow::Context as _;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(&path, out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    // Check every environment's folder before writing anything.
    let mut stale = Vec::new();
    for r in rendered {
        let env_dir = dir.join(&r.env);
        if !env_dir.is_dir() {
            continue;
        }
        let wanted: BTreeSet<PathBuf> = r.artifacts.iter().map(|a| env_dir.join(&a.name)).collect();
        let mut present = Vec::new();
        walk(&env_dir, &mut present)
            .with_context(|| format!("cannot read the directory {}", env_dir.display()))
            .map_err(Error::Environment)?;
        present.sort();
        for path in present {
            if wanted.contains(&path) {
                continue;
            }
            let ours = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "json" | "yaml" | "yml"));
            if !ours {
                return Err(Error::Usage {
                    message: format!(
                        "{} holds {}, which `render` did not write; the folder of an environment must hold exactly what is rendered",
                        env_dir.display(),
                        path.display()
                    ),
                    help: format!(
                        "pass an --out folder of its own (for example build/), or move that file out of {}",
                        env_dir.display()
                    ),
                });
            }
            stale.push(path);
        }
    }
    let mut count = 0;
    for r in rendered {
        for a in &r.artifacts {
            let path = dir.join(&r.env).join(&a.name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create the directory {}", parent.display()))
                    .map_err(Error::Environment)?;
            }
            std::fs::write(&path, &a.content)
                .with_context(|| format!("cannot write {}", path.display()))
                .map_err(Error::Environment)?;
            count += 1;
        }
    }
    for path in &stale {
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale file {}", path.display()))
            .map_err(Error::Environment)?;
        eprintln!("removed {} (no longer rendered)", path.display());
        // A folder the removal emptied goes too (k8s/ of an environment that became ECS).
        if let Some(parent) = path.parent()
            && std::fs::read_dir(parent).is_ok_and(|mut d| d.next().is_none())
        {
            let _ = std::fs::remove_dir(parent);
        }
    }
    eprintln!(
        "wrote {count} file(s) for {} environment(s) under {}",
        rendered.len(),
        dir.display()
    );
    Ok(())
}

/// Prints to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_out(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Environment(
            anyhow::Error::new(e).context("cannot write to standard output"),
        )),
        _ => Ok(()),
    }
}
