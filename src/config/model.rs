//! The deploy.yml model. Every struct denies unknown keys; defaults are the `MovieVerse`
//! production numbers (`shared/spec/movieverse-deployment-architecture.md`).

use std::fmt;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole deploy.yml.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "movieverse-deploy configuration (deploy.yml)")]
pub struct Config {
    /// The application name: a DNS-1123 label (lowercase letters, digits and `-`). Used to
    /// name the task definition family, Kubernetes objects and log groups.
    pub app: String,
    /// The AWS region, for example `us-east-1`.
    pub region: String,
    /// The 12-digit AWS account id; used to build ECR registry and role ARNs.
    pub account_id: String,
    /// How the container image is built and where it is pushed.
    pub image: Image,
    /// The application container, shared by every environment.
    #[serde(default)]
    pub container: Container,
    /// The Datadog agent sidecar.
    #[serde(default)]
    pub datadog: Datadog,
    /// Metric providers used by canary analysis.
    #[serde(default)]
    pub providers: Providers,
    /// Template overrides: template id to a path relative to this file.
    #[serde(default)]
    pub templates: IndexMap<String, String>,
    /// Variables available to every template as `vars.NAME`.
    #[serde(default)]
    pub variables: IndexMap<String, serde_json::Value>,
    /// The environments, by name (a DNS-1123 label).
    pub environments: IndexMap<String, Environment>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// The ECR repository name, for example `movieverse`.
    pub repository: String,
    /// The registry host. Defaults to `ACCOUNT.dkr.ecr.REGION.amazonaws.com`.
    #[serde(default)]
    pub registry: Option<String>,
    /// The build context directory, relative to deploy.yml.
    #[serde(default = "defaults::context")]
    pub context: String,
    /// The Containerfile (or Dockerfile), relative to the context.
    #[serde(default = "defaults::containerfile")]
    pub containerfile: String,
    /// The build stage to stop at.
    #[serde(default)]
    pub target: Option<String>,
    /// Build arguments.
    #[serde(default)]
    pub build_args: IndexMap<String, String>,
    /// Target platforms, for example `linux/amd64`.
    #[serde(default = "defaults::platforms")]
    pub platforms: Vec<String>,
    /// Tag rules, applied in order. The first tag is the one deployments name.
    #[serde(default = "defaults::tags")]
    pub tags: Vec<TagRule>,
    /// Create the ECR repository when it is missing.
    #[serde(default)]
    pub create_repository: bool,
    /// ECR tag mutability for a repository this tool creates.
    #[serde(default)]
    pub tag_mutability: TagMutability,
}

/// How one image tag is computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TagRule {
    /// `sha-<7 hex>` of the commit (on `pull_request`, the PR head commit).
    Sha,
    /// The branch name.
    Branch,
    /// `1.2.3`, `1.2`, `1` from a `v1.2.3` tag.
    Semver,
    /// `pr-<number>` on pull requests.
    Pr,
    /// A minijinja template, for example `{{ env }}-{{ git.sha7 }}`.
    Template(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagMutability {
    /// A pushed tag can never point at another image (for `sha` and `semver` tags).
    Immutable,
    /// ECR's default; needed for tags that move (`branch`, `pr`). Deploys reference the image
    /// by digest either way.
    #[default]
    Mutable,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// The container name (and the Kubernetes container name, and the ECS log stream
    /// prefix). Defaults to `app`.
    #[serde(default)]
    pub name: String,
    /// The port the application listens on.
    #[serde(default = "defaults::port")]
    pub port: u16,
    /// The HTTP health check.
    #[serde(default)]
    pub health_check: HealthCheck,
    /// The command, when it differs from the image's.
    #[serde(default)]
    pub command: Vec<String>,
}

impl Default for Container {
    fn default() -> Self {
        Self {
            name: String::new(),
            port: defaults::port(),
            health_check: HealthCheck::default(),
            command: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// The HTTP path that answers 200 when the app is healthy.
    #[serde(default = "defaults::health_path")]
    pub path: String,
    #[serde(default = "defaults::health_interval")]
    pub interval: Duration,
    #[serde(default = "defaults::health_timeout")]
    pub timeout: Duration,
    /// Consecutive successes before a new task or pod takes traffic.
    #[serde(default = "defaults::healthy_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures before a task or pod is replaced.
    #[serde(default = "defaults::unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    /// Grace period after start before failures count.
    #[serde(default = "defaults::start_period")]
    pub start_period: Duration,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: defaults::health_path(),
            interval: defaults::health_interval(),
            timeout: defaults::health_timeout(),
            healthy_threshold: defaults::healthy_threshold(),
            unhealthy_threshold: defaults::unhealthy_threshold(),
            start_period: defaults::start_period(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Datadog {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default = "defaults::datadog_image")]
    pub image: String,
    /// Where the agent's API key lives: a Secrets Manager ARN (ECS) or `secret-name/key`
    /// (Kubernetes). Never the key itself.
    #[serde(default)]
    pub api_key_secret: Option<String>,
    #[serde(default = "defaults::datadog_site")]
    pub site: String,
}

/// With no `datadog:` section there is no sidecar; a `datadog:` section turns it on unless
/// it says `enabled: false`.
impl Default for Datadog {
    fn default() -> Self {
        Self {
            enabled: false,
            image: defaults::datadog_image(),
            api_key_secret: None,
            site: defaults::datadog_site(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Providers {
    #[serde(default)]
    pub prometheus: Option<PrometheusProvider>,
    #[serde(default)]
    pub datadog: Option<DatadogProvider>,
    #[serde(default)]
    pub cloudwatch: Option<CloudWatchProvider>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusProvider {
    /// The Prometheus HTTP API base URL.
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatadogProvider {
    /// The Datadog site: `datadoghq.com` (US1), `us3.datadoghq.com`, `us5.datadoghq.com`,
    /// `datadoghq.eu`, `ap1.datadoghq.com`, `ap2.datadoghq.com` or `ddog-gov.com`. The API is
    /// `https://api.<site>`.
    #[serde(default = "defaults::datadog_site")]
    pub site: String,
    /// The API's base URL, instead of the site's (a proxy, or a test server).
    #[serde(default)]
    pub address: Option<String>,
    /// The environment variable that holds the API key (masked in the log, never printed).
    #[serde(default = "defaults::datadog_api_key_env")]
    pub api_key_env: String,
    /// The environment variable that holds the application key (masked, never printed).
    #[serde(default = "defaults::datadog_app_key_env")]
    pub app_key_env: String,
}

impl DatadogProvider {
    /// The Datadog sites, as the `site` setting names them.
    pub const SITES: &'static [&'static str] = &[
        "datadoghq.com",
        "us3.datadoghq.com",
        "us5.datadoghq.com",
        "datadoghq.eu",
        "ap1.datadoghq.com",
        "ap2.datadoghq.com",
        "ddog-gov.com",
    ];

    /// The API's base URL.
    pub fn base_url(&self) -> String {
        self.address
            .clone()
            .unwrap_or_else(|| format!("https://api.{}", self.site))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchProvider {
    /// The region to query; defaults to the config's region.
    #[serde(default)]
    pub region: Option<String>,
}

/// One deployment target.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Where this environment runs.
    pub target: Target,
    /// ECS settings; required when `target: ecs`.
    #[serde(default)]
    pub ecs: Option<Ecs>,
    /// Kubernetes settings; required when `target: kubernetes`.
    #[serde(default)]
    pub kubernetes: Option<Kubernetes>,
    /// How a new version reaches traffic.
    pub strategy: Strategy,
    /// Plain (non-secret) environment variables of the app container.
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// Secrets of the app container: variable name to a Secrets Manager ARN (ECS) or
    /// `secret-name/key` (Kubernetes).
    #[serde(default)]
    pub secrets: IndexMap<String, String>,
    /// Names in `env` that look like secrets but are not (so they are not flagged).
    #[serde(default)]
    pub not_secrets: Vec<String>,
    /// Variables for the templates, over the top-level ones, as `vars.NAME`.
    #[serde(default)]
    pub variables: IndexMap<String, serde_json::Value>,
    /// The environment's public URL, shown in reports.
    #[serde(default)]
    pub url: Option<String>,
    /// A short-lived preview environment: its GitHub deployments are transient.
    #[serde(default)]
    pub preview: bool,
    /// A production environment (GitHub's `production_environment`); by default, when the
    /// name starts with `prod`.
    #[serde(default)]
    pub production: Option<bool>,
    /// Where this environment's Datadog API key lives, over `datadog.api_key_secret` (a
    /// Kubernetes environment names a `secret-name/key`, an ECS one an ARN).
    #[serde(default)]
    pub datadog_api_key_secret: Option<String>,
    /// One rollout of this environment's service at a time: a Kubernetes `Lease` in the
    /// namespace, or on ECS a `DynamoDB` item when `table` is named.
    #[serde(default)]
    pub lock: Lock,
}

/// The lease a deploy holds while it changes the environment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// ECS: the `DynamoDB` table holding the leases (partition key `lock`, a string). Without
    /// one, an ECS deploy holds no lease: the rollout record and the workflow's `concurrency`
    /// group keep rollouts apart.
    #[serde(default)]
    pub table: Option<String>,
    /// How long a lease stays held without a renewal (the holder renews it every third of
    /// this): a holder that died is taken over this long after its last renewal.
    #[serde(default = "defaults::lock_duration")]
    pub duration: Duration,
}

impl Default for Lock {
    fn default() -> Self {
        Self {
            table: None,
            duration: defaults::lock_duration(),
        }
    }
}

impl Environment {
    /// The Datadog API key reference in force for this environment.
    pub fn datadog_secret<'a>(&'a self, config: &'a Config) -> Option<&'a str> {
        self.datadog_api_key_secret
            .as_deref()
            .or(config.datadog.api_key_secret.as_deref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Ecs,
    Kubernetes,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Ecs => "ecs",
            Target::Kubernetes => "kubernetes",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ecs {
    pub cluster: String,
    pub service: String,
    /// The task definition family of `service`. Defaults to `APP-ENV`; set it to keep the
    /// family a service already runs (`init --from ecs:` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Task CPU units (Fargate: 256, 512, 1024, 2048, 4096, 8192, 16384).
    #[serde(default = "defaults::cpu")]
    pub cpu: u32,
    /// Task memory in MiB; must be a valid pair with `cpu` on Fargate.
    #[serde(default = "defaults::memory")]
    pub memory: u32,
    #[serde(default = "defaults::desired_count")]
    pub desired_count: u32,
    #[serde(default = "defaults::platform_version")]
    pub platform_version: String,
    /// The role ECS uses to pull the image, write logs and read secrets.
    pub execution_role_arn: String,
    /// The role the application runs as.
    pub task_role_arn: String,
    pub network: EcsNetwork,
    /// The target group(s) the service registers with.
    #[serde(default)]
    pub load_balancer: Option<EcsLoadBalancer>,
    /// The `CloudWatch` Logs group. Defaults to `/ecs/APP-ENV`.
    #[serde(default)]
    pub log_group: Option<String>,
    #[serde(default)]
    pub scaling: Scaling,
    /// More services of the app in this environment (a worker, a scheduler): the same image,
    /// with their own command, count, load balancer and scaling. They deploy beside `service`,
    /// concurrently; their artifacts render under `NAME/`.
    #[serde(default)]
    pub services: Vec<ExtraService>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtraService {
    /// The ECS service name.
    pub name: String,
    /// The command, instead of the app container's.
    #[serde(default)]
    pub command: Vec<String>,
    /// Defaults to the main service's desired count.
    #[serde(default)]
    pub desired_count: Option<u32>,
    /// Its target group, if it takes traffic.
    #[serde(default)]
    pub load_balancer: Option<EcsLoadBalancer>,
    /// Its auto scaling; none when left out.
    #[serde(default)]
    pub scaling: Option<Scaling>,
}

/// One ECS service of an environment, resolved: the main one or an extra one.
#[derive(Debug, Clone)]
pub struct EcsService<'a> {
    pub name: &'a str,
    /// The task definition family.
    pub family: String,
    /// Where its artifacts render: `""` for the main service, `NAME/` for the others.
    pub dir: String,
    pub command: Option<&'a [String]>,
    pub desired_count: u32,
    pub load_balancer: Option<&'a EcsLoadBalancer>,
    pub scaling: Option<&'a Scaling>,
}

impl Ecs {
    /// Every service of the environment, the main one first.
    pub fn all_services<'a>(&'a self, app: &str, env: &str) -> Vec<EcsService<'a>> {
        let main = EcsService {
            name: &self.service,
            family: self
                .family
                .clone()
                .unwrap_or_else(|| format!("{app}-{env}")),
            dir: String::new(),
            command: None,
            desired_count: self.desired_count,
            load_balancer: self.load_balancer.as_ref(),
            scaling: self.scaling.enabled.then_some(&self.scaling),
        };
        std::iter::once(main)
            .chain(self.services.iter().map(|s| EcsService {
                name: &s.name,
                family: format!("{app}-{env}-{}", s.name),
                dir: format!("{}/", s.name),
                command: (!s.command.is_empty()).then_some(s.command.as_slice()),
                desired_count: s.desired_count.unwrap_or(self.desired_count),
                load_balancer: s.load_balancer.as_ref(),
                scaling: s.scaling.as_ref().filter(|sc| sc.enabled),
            }))
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcsNetwork {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub assign_public_ip: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcsLoadBalancer {
    /// The production target group ARN (blue, for blue-green).
    pub target_group_arn: String,
    /// Seconds the service ignores failing load-balancer health checks after a task starts.
    #[serde(default = "defaults::grace")]
    pub health_check_grace_period: Duration,
}

/// Target tracking auto scaling.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default = "defaults::min_capacity")]
    pub min: u32,
    #[serde(default = "defaults::max_capacity")]
    pub max: u32,
    /// Target average CPU utilisation, percent.
    #[serde(default = "defaults::cpu_target")]
    pub cpu_target: u8,
    /// Target average memory utilisation, percent.
    #[serde(default = "defaults::memory_target")]
    pub memory_target: u8,
    #[serde(default = "defaults::scale_in_cooldown")]
    pub scale_in_cooldown: Duration,
    #[serde(default = "defaults::scale_out_cooldown")]
    pub scale_out_cooldown: Duration,
}

/// With no `scaling:` section, auto scaling is off (the desired count or replicas stay as
/// written); a `scaling:` section turns it on unless it says `enabled: false`.
impl Default for Scaling {
    fn default() -> Self {
        Self {
            enabled: false,
            min: defaults::min_capacity(),
            max: defaults::max_capacity(),
            cpu_target: defaults::cpu_target(),
            memory_target: defaults::memory_target(),
            scale_in_cooldown: defaults::scale_in_cooldown(),
            scale_out_cooldown: defaults::scale_out_cooldown(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    pub namespace: String,
    /// The kubeconfig context; defaults to the current context.
    #[serde(default)]
    pub context: Option<String>,
    /// Create the namespace when it is missing.
    #[serde(default)]
    pub create_namespace: bool,
    /// Replicas of the stable Deployment.
    #[serde(default = "defaults::replicas")]
    pub replicas: u32,
    /// Replicas of the canary Deployment.
    #[serde(default = "defaults::canary_replicas")]
    pub canary_replicas: u32,
    #[serde(default)]
    pub resources: Resources,
    pub ingress: Ingress,
    #[serde(default)]
    pub scaling: Scaling,
    /// Pods of the app that may be voluntarily disrupted at once.
    #[serde(default = "defaults::pdb_max_unavailable")]
    pub pdb_max_unavailable: u32,
    /// Non-secret application configuration, mounted as a `ConfigMap`.
    #[serde(default)]
    pub config: IndexMap<String, String>,
    /// Which Secrets the app's `ServiceAccount` may read. `referenced` (the default): `get` on
    /// the Secrets this environment references (`secrets:` and the Datadog key), by name;
    /// `none`: no Secret at all (pods still receive their `secretKeyRef` values, which the
    /// kubelet reads, not the app); `all`: get/list/watch on every Secret in the namespace, an
    /// explicit choice.
    #[serde(default)]
    pub secret_access: SecretAccess,
    /// How traffic reaches the app, and so how a canary's share is set: `nginx` (an Ingress;
    /// for a canary, the NGINX canary Ingress and its weight annotation) or `gateway-api` (an
    /// `HTTPRoute` attached to `gateway`; for a canary, the weights of its two backends).
    #[serde(default)]
    pub router: Router,
    /// With `router: gateway-api`: the Gateway the `HTTPRoute` attaches to.
    #[serde(default)]
    pub gateway: Option<GatewayRef>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Router {
    #[default]
    Nginx,
    GatewayApi,
}

/// A Gateway (Gateway API) by name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayRef {
    pub name: String,
    /// Its namespace, when it is not the app's.
    #[serde(default)]
    pub namespace: Option<String>,
    /// One listener of the Gateway (`sectionName`), when the route attaches to one only.
    #[serde(default)]
    pub section_name: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SecretAccess {
    None,
    #[default]
    Referenced,
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default = "defaults::k8s_cpu")]
    pub cpu: String,
    #[serde(default = "defaults::k8s_memory")]
    pub memory: String,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu: defaults::k8s_cpu(),
            memory: defaults::k8s_memory(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    pub host: String,
    #[serde(default = "defaults::ingress_class")]
    pub class: String,
    #[serde(default = "defaults::ingress_path")]
    pub path: String,
    /// The TLS secret for `host`, when TLS terminates at the ingress.
    #[serde(default)]
    pub tls_secret: Option<String>,
}

/// How a new version reaches traffic.
///
/// Written as a map with one key, the strategy's name, as Argo Rollouts does:
/// `strategy: { canary: { steps: [10, 25, 50, 75, 100], analysis: … } }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Replace tasks or pods a batch at a time.
    Rolling(Rolling),
    /// A full replacement set; traffic switches when it is healthy (`CodeDeploy` on ECS, the
    /// Service's selector on Kubernetes).
    BlueGreen(BlueGreen),
    /// Shift traffic in weighted steps, with metric analysis and automatic rollback.
    Canary(Canary),
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Rolling(_) => "rolling",
            Strategy::BlueGreen(_) => "blue-green",
            Strategy::Canary(_) => "canary",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rolling {
    /// Extra tasks or pods above the desired count during a rollout: a count or `N%`.
    #[serde(default = "defaults::max_surge")]
    pub max_surge: IntOrPercent,
    /// Tasks or pods below the desired count allowed during a rollout: a count or `N%`.
    #[serde(default = "defaults::max_unavailable")]
    pub max_unavailable: IntOrPercent,
    /// Fail the rollout when it makes no progress for this long.
    #[serde(default = "defaults::progress_deadline")]
    pub progress_deadline: Duration,
    /// Revisions kept (task definition revisions, `ReplicaSets`).
    #[serde(default = "defaults::revision_history")]
    pub revision_history: u32,
    /// What a cancelled deploy (SIGINT, SIGTERM, a cancelled workflow) does: `rollback` puts
    /// the service back on the revision it ran before; `leave` lets the rollout go on.
    #[serde(default)]
    pub on_cancel: crate::strategy::rolling::CancelPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlueGreen {
    /// Who switches the traffic on ECS: `codedeploy` (the service's `CODE_DEPLOY` controller,
    /// a deployment group) or `ecs` (ECS native blue/green: the service's own `ECS`
    /// controller with `strategy: BLUE_GREEN`, listener rules and a bake time). Kubernetes
    /// switches the Service's selector and takes neither.
    #[serde(default)]
    pub controller: Controller,
    /// The `CodeDeploy` application (ECS; required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// The `CodeDeploy` deployment group (ECS; required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_group: Option<String>,
    /// The green target group name; the blue one is the load balancer's target group (ECS;
    /// required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub green_target_group: Option<String>,
    /// The production listener ARN (ECS; required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prod_listener_arn: Option<String>,
    /// The test listener ARN: test traffic reaches the green set here first (ECS; required
    /// there). On Kubernetes the preview Service `<app>-preview` selects green instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_listener_arn: Option<String>,
    /// ECS native: the production listener rule's ARN (`advancedConfiguration.productionListenerRule`),
    /// whose forward action ECS moves from blue's target group to green's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prod_listener_rule: Option<String>,
    /// ECS native: the test listener rule's ARN (`advancedConfiguration.testListenerRule`):
    /// green takes test traffic there before production (needed by `gate` and `analysis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_listener_rule: Option<String>,
    /// ECS native: the IAM role ECS assumes to change the listener rules
    /// (`advancedConfiguration.roleArn`, the infrastructure role for load balancers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure_role: Option<String>,
    /// The test listener's port (ECS).
    #[serde(default = "defaults::test_port")]
    pub test_port: u16,
    /// `CodeDeployDefault.ECSAllAtOnce`, `…ECSLinear10PercentEvery1Minutes`, `…ECSCanary10Percent5Minutes`, or your own.
    #[serde(default = "defaults::deployment_config")]
    pub deployment_config: String,
    /// How long the blue set stays up after the switch, for an instant rollback (ECS native:
    /// the service's `bakeTimeInMinutes`; on Kubernetes: the old Deployment stays scaled, the
    /// live Service can select it again at once; then it goes to 0).
    #[serde(default = "defaults::termination_wait")]
    pub termination_wait: Duration,
    /// Lambda hooks, by lifecycle event (`BeforeAllowTraffic`, `AfterAllowTestTraffic`, …).
    #[serde(default)]
    pub hooks: IndexMap<String, String>,
    /// `CloudWatch` alarm names that roll the deployment back when they fire.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// Fail when the deployment has not finished within this time.
    #[serde(default = "defaults::progress_deadline")]
    pub progress_deadline: Duration,
    /// Hold at Ready (green up, test traffic on the test listener) before production traffic
    /// moves: `manual` (until `rollout promote`; the deploy ends with `result=paused`) or a
    /// duration (then go on by itself). The deployment group must stop at Ready
    /// (`deploymentReadyOption.actionOnTimeout: STOP_DEPLOYMENT`); `deploy` checks it first.
    #[serde(default)]
    pub gate: Option<PauseGate>,
    /// Checks of green at Ready, against the test listener (`{{ test_url }}`), before
    /// production traffic moves: HTTP checks, metrics, webhooks, judged as a canary's step
    /// is. Passed, the deploy goes on by itself (or waits at `gate`); failed `threshold`
    /// times, the deployment is stopped with rollback (production never left blue). The
    /// deployment group must stop at Ready.
    #[serde(default)]
    pub analysis: Option<Box<Analysis>>,
}

/// Who switches a blue-green's traffic on ECS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Controller {
    /// `CodeDeploy`: the service's `CODE_DEPLOY` controller and a deployment group.
    #[default]
    Codedeploy,
    /// ECS native blue/green (`strategy: BLUE_GREEN` on the service's `ECS` controller).
    Ecs,
}

impl BlueGreen {
    /// ECS native blue/green (`controller: ecs`).
    pub fn native(&self) -> bool {
        self.controller == Controller::Ecs
    }

    /// The `CodeDeploy` application (validated present on ECS).
    pub fn application(&self) -> &str {
        self.application.as_deref().unwrap_or_default()
    }

    /// The `CodeDeploy` deployment group (validated present on ECS).
    pub fn deployment_group(&self) -> &str {
        self.deployment_group.as_deref().unwrap_or_default()
    }

    /// The green target group's name (validated present on ECS).
    pub fn green_target_group(&self) -> &str {
        self.green_target_group.as_deref().unwrap_or_default()
    }

    /// The settings only ECS (`CodeDeploy`, ECS native, the listeners) reads, with the ones
    /// written.
    pub fn ecs_settings(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (key, set) in [
            ("controller", self.controller != Controller::default()),
            ("application", self.application.is_some()),
            ("deployment_group", self.deployment_group.is_some()),
            ("green_target_group", self.green_target_group.is_some()),
            ("prod_listener_arn", self.prod_listener_arn.is_some()),
            ("test_listener_arn", self.test_listener_arn.is_some()),
            ("prod_listener_rule", self.prod_listener_rule.is_some()),
            ("test_listener_rule", self.test_listener_rule.is_some()),
            ("infrastructure_role", self.infrastructure_role.is_some()),
            ("hooks", !self.hooks.is_empty()),
            ("alarms", !self.alarms.is_empty()),
        ] {
            if set {
                out.push(key);
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// Explicit traffic weights, rising strictly, each within 1..=100. The last step is
    /// followed by promotion. Mutually exclusive with `step_weight`/`max_weight`.
    #[serde(default)]
    pub steps: Option<Vec<CanaryStep>>,
    /// Add this weight after each passed check… (Flagger's `stepWeight`).
    #[serde(default)]
    pub step_weight: Option<u8>,
    /// …up to this weight, then promote (Flagger's `maxWeight`).
    #[serde(default)]
    pub max_weight: Option<u8>,
    pub analysis: Analysis,
    /// Wait before promotion: `manual` (until `rollout promote`; the deploy ends with
    /// `result=paused`), or a duration (then promote on its own).
    #[serde(default)]
    pub pause_before_promotion: Option<PauseGate>,
    /// Roll back when the canary has not been promoted within this time.
    #[serde(default = "defaults::canary_deadline")]
    pub deadline: Duration,
    /// ECS: the canary's own service, beside the stable one (`ecs.service`) in the same
    /// cluster, rendered from the same templates with the canary's target group. Defaults
    /// to `<service>-canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    /// ECS: the canary service's target group (ARN); the stable one is
    /// `ecs.load_balancer.target_group_arn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_target_group: Option<String>,
    /// ECS: the ALB listener rule (ARN) whose forward action weighs the two target groups
    /// (`ModifyRule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_rule: Option<String>,
    /// ECS: or the listener (ARN), when its default action forwards to the two target groups
    /// (`ModifyListener`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_arn: Option<String>,
    /// ECS: who moves the traffic. `alb` (the default): two services, and this tool sets the
    /// listener rule's weights at each step; it plays any schedule. `ecs`: ECS native `CANARY`
    /// (`steps: [W]`: W %, then all) or `LINEAR` (`step_weight: S`: S % more at each step) on
    /// the one service; ECS moves the listener rule, and a PAUSE hook before each shift waits
    /// for this tool's analysis to answer CONTINUE or ROLLBACK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<EcsRouter>,
    /// ECS native (`router: ecs`): the IAM role ECS assumes to change the listener rule
    /// (`advancedConfiguration.roleArn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure_role: Option<String>,
}

/// Who moves a canary's traffic on ECS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EcsRouter {
    /// The ALB listener rule's weights between two services, set by this tool.
    #[default]
    Alb,
    /// ECS native `CANARY` or `LINEAR`, gated at each step by this tool's analysis.
    Ecs,
}

/// The ECS native shape a canary's schedule plays as (`router: ecs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NativeShape {
    /// `CANARY`: `percent` of the traffic, then all of it.
    Canary { percent: u8 },
    /// `LINEAR`: `step` % more at each step, up to all of it.
    Linear { step: u8 },
}

/// One explicit canary step: a weight (then analysed), or a pause after the step before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CanaryStep {
    /// The percentage of traffic sent to the canary, 1 to 100; the canary is analysed at it.
    Weight(u8),
    /// `{pause: manual}` (until `rollout promote`; the deploy ends with `result=paused`) or
    /// `{pause: 10m}`.
    Pause { pause: PauseGate },
}

impl Canary {
    /// The settings only ECS reads, with the ones written.
    pub fn ecs_settings(&self) -> Vec<&'static str> {
        [
            ("canary_service", self.canary_service.is_some()),
            ("canary_target_group", self.canary_target_group.is_some()),
            ("listener_rule", self.listener_rule.is_some()),
            ("listener_arn", self.listener_arn.is_some()),
            ("router", self.router.is_some()),
            ("infrastructure_role", self.infrastructure_role.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// ECS native `CANARY` or `LINEAR` (`router: ecs`).
    pub fn native(&self) -> bool {
        self.router == Some(EcsRouter::Ecs)
    }

    /// How ECS native plays the schedule: one weight is `CANARY`, `step_weight` is
    /// `LINEAR`; `None` for a schedule it cannot play. Assumes nothing about validity.
    pub fn native_shape(&self) -> Option<NativeShape> {
        match (&self.steps, self.step_weight) {
            (Some(steps), None) => match steps.as_slice() {
                [CanaryStep::Weight(w)] => Some(NativeShape::Canary { percent: *w }),
                _ => None,
            },
            (None, Some(step)) => Some(NativeShape::Linear { step }),
            _ => None,
        }
    }

    /// The canary's ECS service: `canary_service`, or `<service>-canary`.
    pub fn canary_service_name(&self, ecs: &Ecs) -> String {
        self.canary_service
            .clone()
            .unwrap_or_else(|| format!("{}-canary", ecs.service))
    }

    /// The listener rule or listener whose forward action the canary weighs (validated
    /// present on ECS).
    pub fn listener(&self) -> &str {
        self.listener_rule
            .as_deref()
            .or(self.listener_arn.as_deref())
            .unwrap_or_default()
    }

    /// The schedule as steps, whichever form was configured (`step_weight`/`max_weight`
    /// gives weights only). Assumes a validated config.
    pub fn schedule(&self) -> Vec<CanaryStep> {
        match &self.steps {
            Some(steps) => steps.clone(),
            None => self.weights().into_iter().map(CanaryStep::Weight).collect(),
        }
    }

    /// The weights of the schedule, whichever form was configured. Assumes a validated
    /// config.
    pub fn weights(&self) -> Vec<u8> {
        if let Some(steps) = &self.steps {
            return steps
                .iter()
                .filter_map(|s| match s {
                    CanaryStep::Weight(w) => Some(*w),
                    CanaryStep::Pause { .. } => None,
                })
                .collect();
        }
        let (Some(step), Some(max)) = (self.step_weight, self.max_weight) else {
            return Vec::new();
        };
        if step == 0 {
            return Vec::new();
        }
        (1..=max / step).map(|i| i * step).collect()
    }
}

/// A gate: `manual`, or a duration such as `10m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseGate {
    Manual,
    Timed(Duration),
}

impl Serialize for PauseGate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PauseGate::Manual => s.serialize_str("manual"),
            PauseGate::Timed(d) => d.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for PauseGate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "manual" {
            return Ok(PauseGate::Manual);
        }
        parse_duration(&text)
            .map(|d| PauseGate::Timed(Duration(d)))
            .map_err(|e| {
                serde::de::Error::custom(format!("{e}; or `manual` to wait for `rollout promote`"))
            })
    }
}

impl JsonSchema for PauseGate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PauseGate".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`manual` (wait for `rollout promote`) or a duration such as \"10m\".",
            "type": "string"
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// Wait this long after the canary takes traffic before the first check.
    #[serde(default = "defaults::initial_delay")]
    pub initial_delay: Duration,
    /// Time between checks; a step advances after a check passes.
    #[serde(default = "defaults::interval")]
    pub interval: Duration,
    /// Roll back when this many checks have failed in this rollout (counted cumulatively).
    #[serde(default = "defaults::threshold")]
    pub threshold: u32,
    /// A check is judged only once the canary served this many requests in the interval, as
    /// counted by `requests` (100 when `requests` is set; it needs `requests`).
    #[serde(default)]
    pub min_requests: Option<u64>,
    /// The query that counts the canary's requests in the window, for `min_requests`.
    #[serde(default)]
    pub requests: Option<Query>,
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// HTTP checks run with every check: each failure is a failed check, as a metric's.
    #[serde(default)]
    pub http: Vec<HttpCheck>,
    /// Webhooks called before the rollout, with every check, or before promotion; an answer
    /// other than 2xx fails (before the rollout: nothing changes).
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

/// An HTTP check: `GET url`, `count` times; each answer must have the status, contain the
/// body text, and come within the latency bound.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub name: String,
    /// A template, like a query: `http://{{ canary_service }}.{{ namespace }}.svc/health`.
    pub url: String,
    /// The expected status.
    #[serde(default = "defaults::http_status")]
    pub status: u16,
    /// Text the body must contain.
    #[serde(default)]
    pub body: Option<String>,
    /// Each answer must come within this.
    #[serde(default)]
    pub max_latency: Option<Duration>,
    /// How many requests make one check (all must pass).
    #[serde(default = "defaults::http_count")]
    pub count: u32,
    /// Give up on one request after this long.
    #[serde(default = "defaults::http_timeout")]
    pub timeout: Duration,
}

/// When a webhook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HookPoint {
    /// Once, before anything changes: a failure ends the deploy with nothing changed.
    PreRollout,
    /// With every analysis check.
    Step,
    /// With the checks of the last analysed step, before promotion.
    PrePromotion,
}

/// A webhook: `POST url` with the rollout's facts as JSON, signed with HMAC-SHA256
/// (`X-Movieverse-Signature: sha256=<hex>`) when `secret_env` names the key's variable.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    /// When it is called (`step` by default).
    #[serde(default = "defaults::hook_points")]
    pub at: Vec<HookPoint>,
    /// The environment variable that holds the signing secret (masked, never printed).
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default = "defaults::webhook_timeout")]
    pub timeout: Duration,
}

impl Analysis {
    /// The request count a check needs before it is judged: 0 without a `requests` query.
    pub fn min_requests(&self) -> u64 {
        if self.requests.is_some() {
            self.min_requests.unwrap_or_else(defaults::min_requests)
        } else {
            0
        }
    }
}

/// A query on one provider: `PromQL`, a Datadog metrics query, or a `CloudWatch` metric math
/// expression over `series`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub provider: ProviderKind,
    /// The query. A template: `{{ app }}`, `{{ env }}`, `{{ namespace }}`,
    /// `{{ canary_service }}`, `{{ stable_service }}`, `{{ window }}`, … are filled in.
    pub query: String,
    /// `CloudWatch` only: the metrics the expression names, by id.
    #[serde(default)]
    pub series: IndexMap<String, CloudWatchSeries>,
}

/// One `CloudWatch` metric, as `GetMetricData`'s `MetricStat` names it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchSeries {
    /// `AWS/ApplicationELB`, `ECS/ContainerInsights`, your own, …
    pub namespace: String,
    /// `RequestCount`, `HTTPCode_Target_5XX_Count`, `TargetResponseTime`, …
    pub metric: String,
    /// `Sum`, `Average`, `Minimum`, `Maximum`, `SampleCount`, or a percentile such as `p99`.
    pub stat: String,
    /// Dimension values are templates, like the query.
    #[serde(default)]
    pub dimensions: IndexMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub name: String,
    pub provider: ProviderKind,
    /// The canary's query (`PromQL`, a Datadog query, or a `CloudWatch` metric math
    /// expression over `series`).
    pub query: String,
    /// `CloudWatch` only: the metrics `query` and `stable_query` name, by id.
    #[serde(default)]
    pub series: IndexMap<String, CloudWatchSeries>,
    /// The same measure for the stable track, over the same window: needed by the relative
    /// bounds (`max_ratio`, `min_ratio`, `max_delta`, `min_delta`).
    #[serde(default)]
    pub stable_query: Option<String>,
    /// The check passes when the value is at least this.
    #[serde(default)]
    pub min: Option<f64>,
    /// The check passes when the value is at most this.
    #[serde(default)]
    pub max: Option<f64>,
    /// The check passes when the canary's value is at most this times the stable value
    /// (`1.2`: p99 at most 1.2 × stable's).
    #[serde(default)]
    pub max_ratio: Option<f64>,
    /// The check passes when the canary's value is at least this times the stable value.
    #[serde(default)]
    pub min_ratio: Option<f64>,
    /// The check passes when the canary's value is at most the stable value plus this
    /// (`0.5`: an error rate at most 0.5 points above stable's).
    #[serde(default)]
    pub max_delta: Option<f64>,
    /// The check passes when the canary's value is at least the stable value plus this
    /// (`-1`: a success rate at most 1 point below stable's).
    #[serde(default)]
    pub min_delta: Option<f64>,
    /// What a query that returns no data (an empty result, NaN) counts as. A query that
    /// errors is always a failed check.
    #[serde(default)]
    pub on_no_data: NoDataPolicy,
}

impl Environment {
    /// The environment's URL on `port` (a blue-green's test listener): its scheme, host and
    /// path, the port replaced.
    pub fn url_on_port(&self, port: u16) -> Option<String> {
        let url = self.url.as_deref()?;
        let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        Some(if path.is_empty() {
            format!("{scheme}://{host}:{port}")
        } else {
            format!("{scheme}://{host}:{port}/{path}")
        })
    }
}

impl Metric {
    /// Whether a bound compares with the stable track.
    pub fn is_relative(&self) -> bool {
        self.max_ratio.is_some()
            || self.min_ratio.is_some()
            || self.max_delta.is_some()
            || self.min_delta.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Prometheus,
    Datadog,
    Cloudwatch,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Prometheus => "prometheus",
            ProviderKind::Datadog => "datadog",
            ProviderKind::Cloudwatch => "cloudwatch",
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NoDataPolicy {
    /// A failed check (the default: no data is not good news).
    #[default]
    Fail,
    /// This metric is left out of the check; the other metrics decide it (`pass` is accepted
    /// as another name).
    #[serde(alias = "pass")]
    Skip,
    /// The check is inconclusive: it neither passes nor fails, and the step checks again
    /// after an interval, until the canary's deadline.
    Wait,
}

/// A count (`1`) or a percentage (`"25%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(u32),
    Percent(u32),
}

impl JsonSchema for IntOrPercent {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IntOrPercent".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A count (1) or a percentage (\"25%\").",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]{1,3}%$"}
            ]
        })
    }
}

impl IntOrPercent {
    /// The absolute count against `total`, rounding up like Kubernetes does for surge.
    pub fn resolve_up(self, total: u32) -> u32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => (total * p).div_ceil(100),
        }
    }

    /// The absolute count against `total`, rounding down (Kubernetes' rule for unavailable).
    pub fn resolve_down(self, total: u32) -> u32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => total * p / 100,
        }
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for IntOrPercent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrPercent::Int(n) => s.serialize_u32(*n),
            IntOrPercent::Percent(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrPercent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrPercent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number or a percentage such as \"25%\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrPercent, E> {
                u32::try_from(v)
                    .map(IntOrPercent::Int)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrPercent, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is negative; use 0 or more")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrPercent, E> {
                v.strip_suffix('%')
                    .and_then(|n| n.trim().parse::<u32>().ok())
                    .filter(|p| *p <= 100)
                    .map(IntOrPercent::Percent)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "`{v}` is not a count or a percentage from 0% to 100% (write 1 or \"25%\")"
                        ))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written the way people write it: `90s`, `1m`, `10m 30s`, `1h`. A bare number
/// is seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration such as \"90s\", \"1m\" or \"10m 30s\", or a number of seconds.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*[0-9]+\\s*[a-z]+(\\s*[0-9]+\\s*[a-z]+)*\\s*$"}
            ]
        })
    }
}

impl Duration {
    pub const fn secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A duration as deploy.yml and the command line both take it: `90s`, `1m`, `10m 30s`, or a
/// whole number of seconds (`90`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map(std::time::Duration::from_secs)
            .map_err(|_| format!("`{text}` is too large a number of seconds"));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write for example \"90s\", \"1m\" or \"10m 30s\", or a number of seconds")
    })
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a duration such as \"90s\", \"1m\" or \"10m 30s\", or a number of seconds",
                )
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::secs(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::secs)
                    .map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map(Duration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Defaults: the `MovieVerse` production architecture's numbers.
pub mod defaults {
    use super::{Duration, IntOrPercent, TagRule};

    pub fn yes() -> bool {
        true
    }
    pub fn context() -> String {
        ".".into()
    }
    pub fn containerfile() -> String {
        "Containerfile".into()
    }
    pub fn platforms() -> Vec<String> {
        vec!["linux/amd64".into()]
    }
    pub fn tags() -> Vec<TagRule> {
        vec![TagRule::Sha, TagRule::Branch, TagRule::Semver, TagRule::Pr]
    }
    pub fn port() -> u16 {
        5000
    }
    pub fn health_path() -> String {
        "/health".into()
    }
    pub fn health_interval() -> Duration {
        Duration::secs(30)
    }
    pub fn health_timeout() -> Duration {
        Duration::secs(5)
    }
    pub fn healthy_threshold() -> u32 {
        2
    }
    pub fn unhealthy_threshold() -> u32 {
        3
    }
    pub fn start_period() -> Duration {
        Duration::secs(60)
    }
    pub fn datadog_image() -> String {
        "public.ecr.aws/datadog/agent:7".into()
    }
    pub fn datadog_site() -> String {
        "datadoghq.com".into()
    }
    pub fn datadog_api_key_env() -> String {
        "DD_API_KEY".into()
    }
    pub fn datadog_app_key_env() -> String {
        "DD_APP_KEY".into()
    }
    pub fn cpu() -> u32 {
        512
    }
    pub fn memory() -> u32 {
        1024
    }
    pub fn desired_count() -> u32 {
        2
    }
    pub fn platform_version() -> String {
        "LATEST".into()
    }
    pub fn grace() -> Duration {
        Duration::secs(60)
    }
    pub fn min_capacity() -> u32 {
        2
    }
    pub fn max_capacity() -> u32 {
        10
    }
    pub fn cpu_target() -> u8 {
        70
    }
    pub fn memory_target() -> u8 {
        80
    }
    pub fn scale_in_cooldown() -> Duration {
        Duration::secs(300)
    }
    pub fn scale_out_cooldown() -> Duration {
        Duration::secs(60)
    }
    pub fn replicas() -> u32 {
        5
    }
    pub fn canary_replicas() -> u32 {
        1
    }
    pub fn k8s_cpu() -> String {
        "500m".into()
    }
    pub fn k8s_memory() -> String {
        "1Gi".into()
    }
    pub fn ingress_class() -> String {
        "nginx".into()
    }
    pub fn ingress_path() -> String {
        "/".into()
    }
    pub fn pdb_max_unavailable() -> u32 {
        1
    }
    pub fn max_surge() -> IntOrPercent {
        IntOrPercent::Int(1)
    }
    pub fn max_unavailable() -> IntOrPercent {
        IntOrPercent::Int(0)
    }
    pub fn progress_deadline() -> Duration {
        Duration::secs(600)
    }
    pub fn lock_duration() -> Duration {
        Duration::secs(60)
    }
    pub fn revision_history() -> u32 {
        10
    }
    pub fn test_port() -> u16 {
        8080
    }
    pub fn deployment_config() -> String {
        "CodeDeployDefault.ECSAllAtOnce".into()
    }
    pub fn termination_wait() -> Duration {
        Duration::secs(300)
    }
    /// ECS native blue/green: how long the PAUSE hook holds green on test traffic for the
    /// gate and the checks before ECS rolls back by itself (`timeoutInMinutes`; the API's
    /// default, 24 hours). A paused deploy must be promoted within it.
    pub const NATIVE_PAUSE_TIMEOUT_MINUTES: u64 = 1440;
    pub fn canary_deadline() -> Duration {
        Duration::secs(3600)
    }
    pub fn initial_delay() -> Duration {
        Duration::secs(60)
    }
    pub fn interval() -> Duration {
        Duration::secs(60)
    }
    pub fn threshold() -> u32 {
        5
    }
    pub fn min_requests() -> u64 {
        100
    }
    pub fn http_status() -> u16 {
        200
    }
    pub fn http_count() -> u32 {
        1
    }
    pub fn http_timeout() -> Duration {
        Duration::secs(5)
    }
    pub fn webhook_timeout() -> Duration {
        Duration::secs(10)
    }
    pub fn hook_points() -> Vec<super::HookPoint> {
        vec![super::HookPoint::Step]
    }

    /// The ALB analysis on ECS when deploy.yml names no metric: the spec's success rate
    /// (at least 99 %), p99 latency (at most 500 ms) and 5xx rate (at most 1 %), from the
    /// canary's (green's) target group in `CloudWatch`. No data (no request in the window) is
    /// left out: the other checks decide, and a check with nothing left is inconclusive.
    pub fn alb_metrics() -> Vec<super::Metric> {
        let series = |metric: &str, stat: &str| super::CloudWatchSeries {
            namespace: "AWS/ApplicationELB".into(),
            metric: metric.into(),
            stat: stat.into(),
            dimensions: [
                ("TargetGroup", "{{ canary_target_group }}"),
                ("LoadBalancer", "{{ load_balancer }}"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        let counts = || {
            [
                (
                    "errors".to_owned(),
                    series("HTTPCode_Target_5XX_Count", "Sum"),
                ),
                ("requests".to_owned(), series("RequestCount", "Sum")),
            ]
            .into_iter()
            .collect::<indexmap::IndexMap<_, _>>()
        };
        let metric = |name: &str, query: &str, series, min, max| super::Metric {
            name: name.into(),
            provider: super::ProviderKind::Cloudwatch,
            query: query.into(),
            series,
            stable_query: None,
            min,
            max,
            max_ratio: None,
            min_ratio: None,
            max_delta: None,
            min_delta: None,
            on_no_data: super::NoDataPolicy::Skip,
        };
        vec![
            metric(
                "success-rate",
                "100 - 100 * FILL(errors, 0) / requests",
                counts(),
                Some(99.0),
                None,
            ),
            metric(
                "p99-latency-ms",
                "1000 * latency",
                std::iter::once(("latency".to_owned(), series("TargetResponseTime", "p99")))
                    .collect(),
                None,
                Some(500.0),
            ),
            metric(
                "error-rate",
                "100 * FILL(errors, 0) / requests",
                counts(),
                None,
                Some(1.0),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_url_is_the_environments_on_the_test_port() {
        for (url, want) in [
            ("https://movie-verse.com", "https://movie-verse.com:8080"),
            ("https://movie-verse.com/", "https://movie-verse.com:8080"),
            (
                "https://movie-verse.com:443/app",
                "https://movie-verse.com:8080/app",
            ),
            ("movie-verse.com", "https://movie-verse.com:8080"),
        ] {
            let env: super::Environment = serde_json::from_value(serde_json::json!({
                "target": "ecs",
                "url": url,
                "strategy": {"rolling": {}},
            }))
            .unwrap();
            assert_eq!(env.url_on_port(8080).as_deref(), Some(want), "{url}");
        }
    }
}
