//! The command line: clap types only. Parsing turns arguments into these; `run` acts on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes:
  0    success
  1    the deployment failed or was rolled back
  2    invalid input: config, template, or rendered output (nothing was changed)
  3    environment error: a service unreachable, permission denied
  130  cancelled (SIGINT/SIGTERM)

Examples:
  movieverse-deploy --config examples/movieverse/deploy.yml plan --env all
  movieverse-deploy render --env staging --out build/
  movieverse-deploy schema > deploy.schema.json

Set NO_COLOR=1 to turn colours off.";

/// Takes a `MovieVerse` release from commit to traffic: build and push the image, render ECS
/// task definitions and Kubernetes manifests, run a rolling, blue-green or canary rollout, and
/// report back to the pull request.
#[derive(Debug, Parser)]
#[command(name = "movieverse-deploy", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The deploy.yml to use.
    #[arg(
        long,
        global = true,
        default_value = "deploy.yml",
        value_name = "PATH",
        env = "MVD_CONFIG"
    )]
    pub config: PathBuf,

    /// When to use colours.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render every artifact of an environment (task definition, service, `AppSpec`, scaling,
    /// Kubernetes manifests), validated.
    #[command(
        after_help = "Examples:\n  movieverse-deploy render --env staging\n  movieverse-deploy render --env all --out build/\n\nWith --out, writes DIR/ENV/task-definition.json, service.json, appspec.yaml,\nscaling.json and k8s/<kind>-<name>.yaml, as apply to the environment."
    )]
    Render(RenderArgs),

    /// The dry run: the image that would be built, each artifact in one line, and the
    /// strategy timeline with its rollback triggers. Changes nothing; makes no network call.
    #[command(
        after_help = "Examples:\n  movieverse-deploy plan --env all\n  movieverse-deploy plan --env production --output json"
    )]
    Plan(PlanArgs),

    /// Print the JSON Schema of deploy.yml (for editors and linters).
    #[command(
        after_help = "Example:\n  movieverse-deploy schema > deploy.schema.json\n  # then in deploy.yml: # yaml-language-server: $schema=./deploy.schema.json"
    )]
    Schema,

    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  movieverse-deploy completions bash > ~/.local/share/bash-completion/completions/movieverse-deploy"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct Selection {
    /// The environment, or `all`.
    #[arg(long = "env", value_name = "NAME")]
    pub env: String,

    /// The image to reference instead of the one computed from the commit
    /// (`repo@sha256:…` after a build).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub selection: Selection,

    /// Write the artifacts under DIR/ENV/ instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub selection: Selection,

    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}
