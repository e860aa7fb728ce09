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

    /// Deploy an environment: register the task definition if it changed, update the service,
    /// apply auto scaling, and wait for this deployment to complete or fail.
    #[command(
        after_help = "Examples:\n  movieverse-deploy deploy --env staging\n  movieverse-deploy deploy --env staging --image 123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:…\n  movieverse-deploy deploy --env staging --no-wait\n\nA rerun with the same input registers nothing and starts no deployment.\nOn SIGINT/SIGTERM the service is put back on its previous revision\n(strategy `on_cancel: rollback`, the default) and the exit code is 130."
    )]
    Deploy(DeployArgs),

    /// Show an environment's services: revision, deployments and their rollout state.
    #[command(after_help = "Example:\n  movieverse-deploy status --env staging")]
    Status(EnvArgs),

    /// Put an environment's services back on the previous task definition revision and wait.
    #[command(after_help = "Example:\n  movieverse-deploy rollback --env staging")]
    Rollback(WaitArgs),

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

    /// For Kubernetes environments: have the API server dry-run every manifest (server-side
    /// apply, `dryRun=All`) and show, object by object, what would be created or changed, as
    /// a diff against the live object. Needs a reachable cluster (KUBECONFIG); changes nothing.
    #[arg(long)]
    pub server_dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The environment.
    #[arg(long = "env", value_name = "NAME")]
    pub env: String,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub env: EnvArgs,

    /// Give up after this long (for example `15m`); the default is the progress deadline's
    /// watch with no overall limit.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// Time between status polls.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub poll_interval: std::time::Duration,

    /// Return once the deployment has started, without waiting for it.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub wait: WaitArgs,

    /// The image to deploy (`repo@sha256:…` from `build`); default: the commit's first tag.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write for example 90s, 5m or 1h"))
}
