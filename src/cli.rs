//! The command line: clap types only. Parsing turns arguments into these; `run` acts on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes:
  0    success
  1    the deployment failed or was rolled back, or the image build failed
  2    invalid input: config, template, rendered output, a missing image or an immutable tag
       conflict (nothing was changed)
  3    environment error: a service unreachable, permission denied
  130  cancelled (SIGINT/SIGTERM)

Examples:
  movieverse-deploy --config examples/movieverse/deploy.yml plan --env all
  movieverse-deploy render --env staging --out build/
  movieverse-deploy schema > deploy.schema.json

Set NO_COLOR=1 to turn colours off.";

/// The version and the commit the binary was built from (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MVD_BUILD_COMMIT"),
    ")"
);

/// Takes a `MovieVerse` release from commit to traffic: build and push the image, render ECS
/// task definitions and Kubernetes manifests, run a rolling, blue-green or canary rollout, and
/// report back to the pull request.
#[derive(Debug, Parser)]
#[command(name = "movieverse-deploy", version = VERSION, about, after_help = AFTER_HELP)]
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

    /// In GitHub Actions: assume this IAM role with the job's OIDC token (needs
    /// `permissions: id-token: write`) instead of reading AWS credentials.
    #[arg(long, global = true, value_name = "ARN", env = "MVD_ROLE_TO_ASSUME")]
    pub role_to_assume: Option<String>,

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
        after_help = "Examples:\n  movieverse-deploy render --env staging\n  movieverse-deploy render --env all --out build/\n  movieverse-deploy render --env production-k8s --output yaml \\\n      | kubectl apply -f -\n\nWith --out, writes DIR/ENV/task-definition.json, service.json, appspec.yaml,\nscaling.json and k8s/<kind>-<name>.yaml, as apply to the environment."
    )]
    Render(RenderArgs),

    /// The dry run: the image that would be built, each artifact in one line, and the
    /// strategy timeline with its rollback triggers. Changes nothing; makes no network call
    /// (with --server-dry-run, asks the Kubernetes API server for a dry run).
    #[command(
        after_help = "Examples:\n  movieverse-deploy plan --env all\n  movieverse-deploy plan --env production --output json"
    )]
    Plan(PlanArgs),

    /// Deploy an environment: on ECS, register the task definition if it changed, update the
    /// service, apply auto scaling; on Kubernetes, server-side apply the manifests; then wait
    /// for this deployment to complete or fail.
    #[command(
        after_help = "Examples:\n  movieverse-deploy deploy --env staging\n  movieverse-deploy deploy --env production-k8s --simulate --scenario failing\n  movieverse-deploy deploy --env staging \\\n      --image 123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:…\n  movieverse-deploy deploy --env staging --no-wait\n\nA rerun with the same input registers nothing and starts no deployment.\nOn SIGINT/SIGTERM the service is put back on its previous revision\n(strategy `on_cancel: rollback`, the default) and the exit code is 130."
    )]
    Deploy(DeployArgs),

    /// Build the image and push it to ECR; skipped when this commit's image is already
    /// there. Prints `image=` (by digest), `digest=` and `tags=`, also as step outputs.
    #[command(
        after_help = "Examples:\n  movieverse-deploy build\n  movieverse-deploy build --no-push --builder buildah\n\nBuilders: docker buildx where a Docker daemon answers, otherwise buildah,\notherwise podman. Credentials come from ecr:GetAuthorizationToken and reach the\nbuilder through a temporary auth file, never a command line.\n\nExit codes: 0 built (or already there), 1 the build failed, 2 invalid input or a tag\nconflict (nothing uploaded), 3 the registry, AWS or the builder failed us."
    )]
    Build(BuildArgs),

    /// Point new tags at an existing image, or copy it to another repository or registry,
    /// by digest and without rebuilding.
    #[command(
        after_help = "Examples:\n  movieverse-deploy promote --image movieverse:sha-4f2b9c1 \\\n      --to-tag production\n  movieverse-deploy promote \\\n      --image 123456789012.dkr.ecr.us-east-1.amazonaws.com/movieverse@sha256:… \\\n      --to-repository movieverse-prod --to-tag v1.4.0\n\nWithin a repository no layer moves (one manifest read and write per tag). To another\nrepository of the same registry, blobs are mounted; to another registry, the missing\nones are uploaded, several at once. Image indexes are copied with every platform."
    )]
    Promote(PromoteArgs),

    /// Replay an environment's canary analysis against a past window: would this canary have
    /// passed, and at which check would it have failed? Every value against its bound.
    /// Read-only: only the metric providers are asked. Exit 1 when it would have rolled back.
    #[command(
        after_help = "Examples:\n  movieverse-deploy analyze --env production-k8s --from now-2h --to now-1h\n  movieverse-deploy analyze --env production-k8s --from 2026-11-30T10:00:00Z --to 2026-11-30T11:00:00Z --step-every 5m\n  movieverse-deploy analyze --env production-k8s --from now-30m --output json\n\nThe environment's canary script plays on the rollout engine from --from, on virtual\ntime: each check runs the real queries over the window it would have covered; a manual\ngate is taken as promoted. Tune thresholds here before trusting them in a deploy."
    )]
    Analyze(AnalyzeArgs),

    /// A progressive rollout (canary) that outlives one process: where it stands, and
    /// promote, abort or resume it, from a laptop or a later `workflow_dispatch` run.
    #[command(
        after_help = "Examples:\n  movieverse-deploy rollout status --env production-k8s\n  movieverse-deploy rollout promote --env production-k8s\n  movieverse-deploy rollout promote --env production-k8s --full\n  movieverse-deploy rollout abort --env production-k8s\n  movieverse-deploy rollout resume --env production-k8s\n\n`promote` continues a paused rollout (or passes the current analysis); with --full it\nskips every step left before promotion. `abort` takes traffic back to stable, then\nscales the canary down. Each is accepted in every state and may be repeated."
    )]
    Rollout(RolloutArgs),

    /// Show an environment's services: revision, deployments and their rollout state.
    #[command(after_help = "Example:\n  movieverse-deploy status --env staging")]
    Status(EnvArgs),

    /// Put an environment's services back on the previous task definition revision (or the
    /// Deployment on the previous `ReplicaSet`'s template) and wait.
    #[command(
        after_help = "Examples:\n  movieverse-deploy rollback --env staging\n  movieverse-deploy rollback --env production --no-wait\n\nRolling: the previous revision. Canary: the stable Deployment's previous template.\nBlue-green on ECS: a deployment in flight is stopped with rollback, otherwise the\nprevious task definition is deployed as a new blue-green (CodeDeploy or ECS native)."
    )]
    Rollback(WaitArgs),

    /// Check, read-only, what a deploy of an environment depends on (ECS: the image
    /// repository, cluster, services and their deployment controllers, target groups,
    /// listeners and rules, the `CodeDeploy` group, alarms, metric providers); exit 3 when
    /// anything is missing, each problem with its deploy.yml line.
    #[command(
        after_help = "Examples:\n  movieverse-deploy verify --env production\n  movieverse-deploy verify --env all\n\nNot checked yet: IAM roles, secrets, the log group; Kubernetes environments are\nchecked by `plan --server-dry-run`."
    )]
    Verify(EnvArgs),

    /// Write a commented deploy.yml for one environment (to --config, ./deploy.yml by
    /// default) that passes `plan` as written.
    #[command(
        after_help = "Examples:\n  movieverse-deploy init --app movieverse --env staging\n  movieverse-deploy init --env production --target kubernetes\n\nValues marked `# replace` are placeholders (account, roles, subnets, security groups,\nhost): put yours in before the first deploy. Nothing is written over an existing file\nwithout --force."
    )]
    Init(InitArgs),

    /// Print the JSON Schema of deploy.yml (for editors and linters).
    #[command(
        after_help = "Example:\n  movieverse-deploy schema > deploy.schema.json\n  # then in deploy.yml: # yaml-language-server: $schema=./deploy.schema.json"
    )]
    Schema,

    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  movieverse-deploy completions bash \\\n      > ~/.local/share/bash-completion/completions/movieverse-deploy"
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

    /// Write the artifacts under DIR/ENV/ instead of printing them; DIR/ENV then holds
    /// exactly what was rendered (files from an earlier render are removed).
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub out: Option<PathBuf>,

    /// How to print: `text`, each artifact under a `==> ENV/FILE <==` header; `yaml`, the
    /// Kubernetes manifests as one `---`-separated stream, for `kubectl apply -f -`.
    #[arg(long, value_enum, default_value_t = RenderFormat::Text)]
    pub output: RenderFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    Text,
    Yaml,
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

    /// For ECS environments: read (never change) the live services and say with the plan what
    /// a deploy would change: the task definition (registered anew or not) and the service
    /// settings, as diffs. For blue-green, also what the deploy relies on: whether the
    /// `CodeDeploy` deployment group stops at Ready and watches deploy.yml's alarms, or the
    /// service has the ECS controller (ECS native); and a deployment in flight. Needs AWS
    /// credentials.
    #[arg(long)]
    pub live: bool,

    /// Run `verify`'s read-only checks of what a deploy depends on (roles, secrets, log
    /// groups, target groups, listeners, the namespace, permissions...) after the plan, for
    /// each environment this machine has credentials for; exit 3 when one is missing. The
    /// Action's dry run passes it.
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub env: EnvArgs,

    /// The window's start: an RFC 3339 time (`2026-11-30T10:00:00Z`), or `now-2h`.
    #[arg(long, value_name = "TIME")]
    pub from: String,

    /// The window's end: an RFC 3339 time, `now-1h`, or `now`.
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub to: String,

    /// Check at this interval instead of the analysis' own (`1m`, `5m`).
    #[arg(long, value_name = "DURATION")]
    pub step_every: Option<String>,

    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
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

    /// When another run holds the environment's lease (one rollout per service at a time),
    /// wait this long for it before giving up with exit 3 (for example `15m`); `0s`, the
    /// default, gives up at once, naming the holder.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = crate::config::parse_duration)]
    pub lock_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub wait: WaitArgs,

    /// The image to deploy (`repo@sha256:…` from `build`); default: the commit's first tag.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,

    /// Also write the pull request report (the comment's Markdown) to FILE: what the PR
    /// would show, from a laptop.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Play the rollout on the simulator on virtual time instead of deploying: the real
    /// engine, scripted metrics, nothing contacted. Prints each step, weight and check, then
    /// the pull request comment the run would post.
    #[arg(long)]
    pub simulate: bool,

    /// With --simulate: how the canary's metrics behave.
    #[arg(long, value_enum, default_value_t = SimScenario::Healthy, requires = "simulate")]
    pub scenario: SimScenario,

    /// Blue-green on ECS: return (exit 0, `result=returned`) at STAGE instead of holding the
    /// runner; `CodeDeploy` or ECS carries the deployment on, and `rollout status|resume|abort`
    /// pick it up later. `bake`: once production traffic is on green, before the bake
    /// (`termination_wait`).
    #[arg(long, value_enum, value_name = "STAGE")]
    pub return_at: Option<ReturnAt>,
}

/// Where `deploy --return-at` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReturnAt {
    /// Production traffic is on green; blue is kept for the bake (`termination_wait`).
    Bake,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimScenario {
    /// Every metric well within its bounds: promoted.
    Healthy,
    /// Every metric outside its bounds: rolled back at the threshold.
    Failing,
    /// No traffic reaches the canary: no data, judged as the metrics' policy says.
    NoData,
}

/// Durations on the command line follow deploy.yml's rules (`90s`, `5m`, `1h`, or a number
/// of seconds), and a wait of zero is refused as deploy.yml refuses a zero interval.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::config::parse_duration(s)?;
    if d.is_zero() {
        return Err(format!(
            "`{s}` is zero; give a duration above zero, for example 5s"
        ));
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub action: RolloutAction,
}

#[derive(Debug, Subcommand)]
pub enum RolloutAction {
    /// Where the rollout stands: step, weight, failed checks, a gate and how to continue.
    Status(EnvArgs),
    /// Continue a paused rollout, or pass the current analysis; --full skips to promotion.
    Promote {
        #[command(flatten)]
        wait: WaitArgs,
        /// Skip every step left before promotion.
        #[arg(long)]
        full: bool,
    },
    /// Take traffic back to stable and scale the canary down.
    Abort(WaitArgs),
    /// Carry a rollout on from where it stands (after a killed runner).
    Resume(WaitArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Check that this environment exists (the image is the same for every environment).
    #[arg(long = "env", value_name = "NAME")]
    pub env: Option<String>,

    /// Push to ECR (the default).
    #[arg(long, overrides_with = "no_push")]
    pub push: bool,

    /// Build locally only: no AWS call, no push.
    #[arg(long)]
    pub no_push: bool,

    /// The builder to use instead of the first that works of docker buildx, buildah, podman.
    #[arg(long, value_enum)]
    pub builder: Option<crate::image::builder::BuilderKind>,

    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The image: `repo:tag`, `repo@sha256:…`, or with its registry `host/repo…`.
    #[arg(long, value_name = "REF")]
    pub image: String,

    /// A tag to point at the image (repeatable).
    #[arg(long = "to-tag", value_name = "TAG", required = true)]
    pub to_tags: Vec<String>,

    /// Copy to this repository (`name` in the same registry, or `host/name` elsewhere).
    #[arg(long, value_name = "REPO")]
    pub to_repository: Option<String>,

    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Import a live service instead of writing a skeleton: `ecs:CLUSTER/SERVICE` (its task
    /// definition and auto scaling) or `k8s:NAMESPACE/DEPLOYMENT` (with its Service,
    /// Ingress, HPA and PDB). deploy.yml is written with templates only where the live
    /// objects differ from the built-in ones, so that a deploy of the image it runs changes
    /// nothing.
    #[arg(long, value_name = "SOURCE")]
    pub from: Option<String>,
    /// The environment's name (a DNS-1123 label).
    #[arg(long, default_value = "staging", value_name = "NAME")]
    pub env: String,
    /// Where the environment runs.
    #[arg(long, value_enum, default_value_t = InitTarget::Ecs)]
    pub target: InitTarget,
    /// The application name (a DNS-1123 label); by default the directory's name.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// The AWS region (with `--from ecs:`, where the service is read).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The 12-digit AWS account id (with `--from`, read from the service).
    #[arg(long, default_value = "123456789012", value_name = "ID")]
    pub account_id: String,
    /// Write over an existing file.
    #[arg(long)]
    pub force: bool,
}

/// Where `init`'s environment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitTarget {
    Ecs,
    Kubernetes,
}
