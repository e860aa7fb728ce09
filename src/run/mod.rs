//! The edge: turns a parsed command line into effects (reading files, writing artifacts,
//! printing). Everything it calls underneath is pure.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::Path;

use crate::cli::{Cli, ColorChoice, Command, OutputFormat, Selection};
use crate::config::{self, LoadError, Loaded};
use crate::diag::{Diagnostics, display_path};
use crate::git::GitInfo;
use crate::plan::{self, Style};
use crate::render::{self, Rendered, Renderer};

mod deploy;
mod github;
mod image;

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
            let live = if args.server_dry_run {
                Some(deploy::server_dry_run(&loaded, &args.selection)?)
            } else {
                None
            };
            let text = match args.output {
                OutputFormat::Text => {
                    let mut text = plan::to_text(&plan, style);
                    if let Some(live) = &live {
                        text.push_str(&deploy::server_dry_run_text(live));
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
                    format!(
                        "{}\n",
                        serde_json::to_string_pretty(&value).expect("the plan serializes")
                    )
                }
            };
            print_out(&text)
        }
    }
}

/// With a role to assume, exchanges the job's OIDC token for its credentials before any AWS
/// call. Input is validated first (the config is loaded), so a refusal changes nothing.
fn aws_login(loaded: &Loaded, role: Option<&str>) -> Result<(), Error> {
    let Some(role) = role.filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    deploy::runtime()?
        .block_on(crate::aws::assume_role_from_github(
            role,
            &loaded.config.region,
        ))
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

fn write_out(dir: &Path, rendered: &[Rendered]) -> Result<(), Error> {
    use anyhow::Context as _;
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
