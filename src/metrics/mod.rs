//! Metric providers: a query over a window returns a value or no data (an edge: HTTP and
//! the AWS SDK).
//!
//! - [`prometheus`]: an instant query over the HTTP API at the window's end;
//! - [`datadog`]: the metrics query API over the window, keys from the environment;
//! - [`cloudwatch`]: `GetMetricData` with metric math, the window as one period.
//!
//! [`Providers`] holds the ones a rollout uses and runs a [`QueryRef`] on the right one.
//! Queries in deploy.yml are templates with the rollout's variables ([`QueryVars`]), checked
//! when the config loads ([`check_query`]) and rendered before each check ([`render_query`]).

pub mod cloudwatch;
pub mod datadog;
pub mod probe;
pub mod prometheus;

use std::time::Duration;

use indexmap::IndexMap;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::config::{CloudWatchSeries, Config, ProviderKind};
use crate::rollout::analysis::Sample;

/// How a provider call failed: the class decides the exit code before a rollout (the
/// environment's: 3; the query's: 2) and is a failed check during one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    /// Missing or refused credentials.
    Auth,
    /// The provider cannot be reached, or answered with a server error.
    Unreachable,
    /// The provider refused or could not run the query.
    Query,
    /// Rate limited past the caller's deadline.
    RateLimited,
    /// A server error, a rate limit with no time to wait for, or a connection dropped
    /// mid-answer: worth asking again ([`Providers::run`] does, three times).
    Transient,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    pub message: String,
}

impl ProviderError {
    /// The exit code when this ends a command: 2 for a query to fix in deploy.yml, 3 for the
    /// environment.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ProviderErrorKind::Query => 2,
            _ => 3,
        }
    }
}

/// A query to run: its provider, its template, and (`CloudWatch`) the series it names.
#[derive(Debug, Clone, Copy)]
pub struct QueryRef<'a> {
    pub provider: ProviderKind,
    pub template: &'a str,
    pub series: &'a IndexMap<String, CloudWatchSeries>,
}

impl<'a> QueryRef<'a> {
    /// A metric's canary query.
    pub fn canary(m: &'a crate::config::Metric) -> Self {
        Self {
            provider: m.provider,
            template: &m.query,
            series: &m.series,
        }
    }

    /// A metric's stable query, when it has one.
    pub fn stable(m: &'a crate::config::Metric) -> Option<Self> {
        m.stable_query.as_deref().map(|template| Self {
            provider: m.provider,
            template,
            series: &m.series,
        })
    }

    /// The request-count query.
    pub fn requests(q: &'a crate::config::Query) -> Self {
        Self {
            provider: q.provider,
            template: &q.query,
            series: &q.series,
        }
    }
}

/// The providers one rollout uses, connected.
#[derive(Default)]
pub struct Providers {
    prometheus: Option<prometheus::Prometheus>,
    /// A missing key is kept as the error, told when Datadog is first asked: commands that
    /// never query (`rollout status`) do not need the keys.
    datadog: Option<Result<datadog::Datadog, ProviderError>>,
    cloudwatch: Option<cloudwatch::CloudWatch>,
}

/// `call`, asked again after 1, 2, 4 s ([`crate::driver::backoff`]; each said on stderr) while
/// it fails with a [`ProviderErrorKind::Transient`] error, never past `not_after`.
async fn again<T, F, Fut>(
    provider: impl std::fmt::Display,
    not_after: tokio::time::Instant,
    call: F,
) -> Result<T, ProviderError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    const RETRIES: u32 = 3;
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if e.kind == ProviderErrorKind::Transient && attempt < RETRIES => {
                let wait = crate::driver::backoff(attempt);
                if tokio::time::Instant::now() + wait > not_after {
                    return Err(e);
                }
                attempt += 1;
                eprintln!(
                    "  {provider}: {}: asking again in {} ({attempt}/{RETRIES})",
                    crate::report::scrub(&e.message),
                    crate::report::terminal::wait(wait)
                );
                tokio::time::sleep(wait).await;
            }
            r => return r,
        }
    }
}

/// Every call to a provider gives up after this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How long the pre-flight asks a provider again (its key check, then its queries): a call
/// that timed out and the back-off after it fit.
const PREFLIGHT: Duration = Duration::from_secs(30);

/// An HTTP client for a provider: each call bounded by `timeout`, connecting within 5 s.
pub(crate) fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .expect("a reqwest client builds")
}

impl Providers {
    /// Connects the providers in `used` from deploy.yml. Datadog's keys are read from the
    /// environment (and masked) here; a missing one is told by [`Self::ready`], before
    /// anything changes.
    pub async fn connect(config: &Config, used: &[ProviderKind]) -> Result<Self, ProviderError> {
        let mut p = Self::default();
        let not_configured = |kind: ProviderKind| ProviderError {
            kind: ProviderErrorKind::Query,
            message: format!(
                "the {kind} provider is used but not configured: add `providers: {{{kind}: …}}` to deploy.yml"
            ),
        };
        for kind in used {
            match kind {
                ProviderKind::Prometheus if p.prometheus.is_none() => {
                    let c = config
                        .providers
                        .prometheus
                        .as_ref()
                        .ok_or_else(|| not_configured(*kind))?;
                    p.prometheus = Some(prometheus::Prometheus::new(&c.address, TIMEOUT));
                }
                ProviderKind::Datadog if p.datadog.is_none() => {
                    let c = config
                        .providers
                        .datadog
                        .as_ref()
                        .ok_or_else(|| not_configured(*kind))?;
                    p.datadog = Some(datadog::Datadog::from_env(
                        &c.base_url(),
                        &c.api_key_env,
                        &c.app_key_env,
                        TIMEOUT,
                    ));
                }
                ProviderKind::Cloudwatch if p.cloudwatch.is_none() => {
                    let region = config
                        .providers
                        .cloudwatch
                        .as_ref()
                        .and_then(|c| c.region.clone())
                        .unwrap_or_else(|| config.region.clone());
                    p.cloudwatch = Some(cloudwatch::CloudWatch::from_env(&region).await);
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// Whether each connected provider answers (Prometheus' `/-/ready`, Datadog's key
    /// validation; `CloudWatch` is proven by running the queries).
    pub async fn ready(&self) -> Result<(), ProviderError> {
        if let Some(p) = &self.prometheus {
            p.ready().await.map_err(|message| ProviderError {
                kind: ProviderErrorKind::Unreachable,
                message,
            })?;
        }
        if let Some(d) = &self.datadog {
            let d = d.as_ref().map_err(Clone::clone)?;
            let not_after = tokio::time::Instant::now() + PREFLIGHT;
            again(ProviderKind::Datadog, not_after, || d.ready()).await?;
        }
        Ok(())
    }

    /// Runs `q` over the window `[from_ms, to_ms]`; a rate limit is waited out only until
    /// `not_after`. A [`ProviderErrorKind::Transient`] failure is asked again after 1, 2, 4 s
    /// ([`crate::driver::backoff`]; each said on stderr), never past `not_after`.
    pub async fn run(
        &self,
        q: &QueryRef<'_>,
        vars: &QueryVars,
        from_ms: u64,
        to_ms: u64,
        not_after: tokio::time::Instant,
    ) -> Result<Sample, ProviderError> {
        again(q.provider, not_after, || {
            self.run_once(q, vars, from_ms, to_ms, not_after)
        })
        .await
    }

    async fn run_once(
        &self,
        q: &QueryRef<'_>,
        vars: &QueryVars,
        from_ms: u64,
        to_ms: u64,
        not_after: tokio::time::Instant,
    ) -> Result<Sample, ProviderError> {
        let query_error = |message: String| ProviderError {
            kind: ProviderErrorKind::Query,
            message,
        };
        let text = render_query(q.template, vars).map_err(query_error)?;
        let missing = || ProviderError {
            kind: ProviderErrorKind::Query,
            message: format!("the {} provider is not connected", q.provider),
        };
        match q.provider {
            ProviderKind::Prometheus => {
                let p = self.prometheus.as_ref().ok_or_else(missing)?;
                #[allow(clippy::cast_precision_loss)] // milliseconds since 1970 fit in 2^52
                p.query_result(&text, to_ms as f64 / 1000.0).await
            }
            ProviderKind::Datadog => {
                let d = self
                    .datadog
                    .as_ref()
                    .ok_or_else(missing)?
                    .as_ref()
                    .map_err(Clone::clone)?;
                d.query(&text, from_ms / 1000, to_ms / 1000, not_after)
                    .await
            }
            ProviderKind::Cloudwatch => {
                let c = self.cloudwatch.as_ref().ok_or_else(missing)?;
                let mut series = Vec::new();
                for (id, s) in q.series {
                    let mut dimensions = Vec::new();
                    for (name, value) in &s.dimensions {
                        dimensions.push((
                            name.clone(),
                            render_query(value, vars).map_err(|e| {
                                query_error(format!("series `{id}`, dimension `{name}`: {e}"))
                            })?,
                        ));
                    }
                    series.push(cloudwatch::Series {
                        id: id.clone(),
                        namespace: s.namespace.clone(),
                        metric: s.metric.clone(),
                        stat: s.stat.clone(),
                        dimensions,
                    });
                }
                c.query(&text, &series, from_ms / 1000, to_ms / 1000).await
            }
        }
    }

    /// [`Self::run`], an error read as the sample of a failed query.
    pub async fn sample(
        &self,
        q: QueryRef<'_>,
        vars: &QueryVars,
        from_ms: u64,
        to_ms: u64,
        not_after: tokio::time::Instant,
    ) -> Sample {
        self.run(&q, vars, from_ms, to_ms, not_after)
            .await
            .unwrap_or_else(|e| Sample::Error(e.message))
    }
}

/// An analysis' queries on their providers: every metric (canary, and stable for a
/// relative bound) and the request count, run together for one check, with the HTTP checks
/// and webhooks.
pub struct Measurer {
    providers: Providers,
    metrics: Vec<crate::config::Metric>,
    requests: Option<crate::config::Query>,
    http: Vec<crate::config::HttpCheck>,
    /// Each webhook with its secret (a missing variable is told by the pre-flight).
    webhooks: Vec<(
        crate::config::Webhook,
        Result<Option<secrecy::SecretString>, ProviderError>,
    )>,
    client: reqwest::Client,
}

/// One check's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub readings: Vec<crate::rollout::analysis::Reading>,
    pub requests: Option<Sample>,
    pub probes: Vec<crate::rollout::analysis::ProbeResult>,
}

/// What a webhook is told: the rollout's facts at the moment it is called.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub app: String,
    pub environment: String,
    pub revision: String,
    pub phase: crate::config::HookPoint,
    /// The canary's share of traffic, in percent.
    pub weight: u8,
    /// The check's window, RFC 3339, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<[String; 2]>,
}

impl Measurer {
    /// No checks at all (a blue-green without `analysis:`): nothing to connect.
    pub fn none() -> Self {
        Self {
            providers: Providers::default(),
            metrics: Vec::new(),
            requests: None,
            http: Vec::new(),
            webhooks: Vec::new(),
            client: http_client(TIMEOUT),
        }
    }

    /// Connects the providers the analysis uses.
    pub async fn connect(
        config: &Config,
        analysis: &crate::config::Analysis,
    ) -> Result<Self, ProviderError> {
        let used: Vec<ProviderKind> = analysis
            .metrics
            .iter()
            .map(|m| m.provider)
            .chain(analysis.requests.iter().map(|q| q.provider))
            .collect();
        let webhooks = analysis
            .webhooks
            .iter()
            .map(|w| {
                let secret = match &w.secret_env {
                    None => Ok(None),
                    Some(name) => match std::env::var(name) {
                        Ok(v) if !v.is_empty() => {
                            crate::report::mask(&v);
                            Ok(Some(secrecy::SecretString::from(v)))
                        }
                        _ => Err(ProviderError {
                            kind: ProviderErrorKind::Auth,
                            message: format!(
                                "webhook `{}`: its secret variable `{name}` is not set; set it from a repository secret in the workflow",
                                w.name
                            ),
                        }),
                    },
                };
                (w.clone(), secret)
            })
            .collect();
        Ok(Self {
            providers: Providers::connect(config, &used).await?,
            metrics: analysis.metrics.clone(),
            requests: analysis.requests.clone(),
            http: analysis.http.clone(),
            webhooks,
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("a reqwest client builds"),
        })
    }

    /// Leaves the HTTP checks and webhooks out: a replay of a past window measures metrics
    /// only (a probe tests the present, and a webhook may act).
    #[must_use]
    pub fn without_probes(mut self) -> Self {
        self.http.clear();
        self.webhooks.clear();
        self
    }

    /// Calls the webhooks of `phase` with `facts`, and runs the HTTP checks when the phase is
    /// a step's: all at once.
    async fn probes(
        &self,
        vars: &QueryVars,
        facts: &Facts,
        last: bool,
    ) -> Vec<crate::rollout::analysis::ProbeResult> {
        use crate::config::HookPoint;
        let hooks = self.webhooks.iter().filter(|(w, _)| {
            w.at.contains(&facts.phase)
                || (last
                    && facts.phase == HookPoint::Step
                    && w.at.contains(&HookPoint::PrePromotion))
        });
        let hooks = futures_util::future::join_all(hooks.map(|(w, secret)| {
            // A hook called only before promotion is told so.
            let mut facts = facts.clone();
            if !w.at.contains(&facts.phase) {
                facts.phase = HookPoint::PrePromotion;
            }
            async move {
                let facts_json = serde_json::to_value(&facts).expect("the facts serialize");
                match secret {
                    Ok(s) => probe::webhook(&self.client, w, s.as_ref(), &facts_json).await,
                    Err(e) => crate::rollout::analysis::ProbeResult {
                        name: w.name.clone(),
                        kind: crate::rollout::analysis::ProbeKind::Webhook,
                        passed: false,
                        detail: e.message.clone(),
                    },
                }
            }
        }));
        let checks = futures_util::future::join_all(
            self.http
                .iter()
                .filter(|_| facts.phase == HookPoint::Step)
                .map(|c| async move {
                    match render_query(&c.url, vars) {
                        Ok(url) => probe::http_check(&self.client, c, &url).await,
                        Err(e) => crate::rollout::analysis::ProbeResult {
                            name: c.name.clone(),
                            kind: crate::rollout::analysis::ProbeKind::Http,
                            passed: false,
                            detail: format!("the URL: {e}"),
                        },
                    }
                }),
        );
        let (mut hooks, checks) = futures_util::future::join(hooks, checks).await;
        hooks.extend(checks);
        hooks
    }

    /// The `pre-rollout` webhooks, before anything changes: their results (any failed one
    /// ends the deploy).
    pub async fn pre_rollout(
        &self,
        vars: &QueryVars,
        facts: &Facts,
    ) -> Vec<crate::rollout::analysis::ProbeResult> {
        self.probes(vars, facts, false).await
    }

    /// Every query with what it is for (the metric's name, its stable query, the request
    /// count), in the order a check runs them.
    fn queries(&self) -> Vec<(String, QueryRef<'_>)> {
        let mut out = Vec::new();
        for m in &self.metrics {
            out.push((format!("metric `{}`", m.name), QueryRef::canary(m)));
            if let Some(q) = QueryRef::stable(m) {
                out.push((format!("metric `{}` (stable_query)", m.name), q));
            }
        }
        if let Some(r) = &self.requests {
            out.push((
                "the request count (`analysis.requests`)".into(),
                QueryRef::requests(r),
            ));
        }
        out
    }

    /// How many provider calls one check makes (HTTP checks and webhooks not counted).
    pub fn queries_per_check(&self) -> usize {
        self.queries().len()
    }

    /// Whether any webhook is called at `phase`.
    pub fn has_hooks(&self, phase: crate::config::HookPoint) -> bool {
        self.webhooks.iter().any(|(w, _)| w.at.contains(&phase))
    }

    /// Before anything changes: every webhook's secret is set, every HTTP check's URL
    /// renders, each provider answers and every query runs once over the last minute. The
    /// error names what failed.
    pub async fn preflight(
        &self,
        vars: &QueryVars,
        now_ms: u64,
    ) -> Result<(), (String, ProviderError)> {
        for (w, secret) in &self.webhooks {
            if let Err(e) = secret {
                return Err((format!("webhook `{}`", w.name), e.clone()));
            }
        }
        for c in &self.http {
            render_query(&c.url, vars).map_err(|message| {
                (
                    format!("HTTP check `{}`", c.name),
                    ProviderError {
                        kind: ProviderErrorKind::Query,
                        message: format!("its URL: {message}"),
                    },
                )
            })?;
        }
        self.providers
            .ready()
            .await
            .map_err(|e| ("the metric provider".to_owned(), e))?;
        let not_after = tokio::time::Instant::now() + PREFLIGHT;
        for (what, q) in self.queries() {
            self.providers
                .run(&q, vars, now_ms.saturating_sub(60_000), now_ms, not_after)
                .await
                .map_err(|e| (what, e))?;
        }
        Ok(())
    }

    /// One check over `[from_ms, to_ms]`: a reading per metric, in order, the request count
    /// when `requests` is set, and the HTTP checks and step webhooks (with the pre-promotion
    /// ones when `last`). Everything runs at once.
    pub async fn measure(
        &self,
        vars: &QueryVars,
        from_ms: u64,
        to_ms: u64,
        not_after: tokio::time::Instant,
        facts: &Facts,
        last: bool,
    ) -> Measurement {
        let run = |q| self.providers.sample(q, vars, from_ms, to_ms, not_after);
        let readings = futures_util::future::join_all(self.metrics.iter().map(|m| async move {
            let canary = run(QueryRef::canary(m));
            match QueryRef::stable(m) {
                Some(s) => {
                    let (canary, stable) = futures_util::future::join(canary, run(s)).await;
                    crate::rollout::analysis::Reading {
                        canary,
                        stable: Some(stable),
                    }
                }
                None => canary.await.into(),
            }
        }));
        let requests = async {
            match &self.requests {
                Some(r) => Some(run(QueryRef::requests(r)).await),
                None => None,
            }
        };
        let probes = self.probes(vars, facts, last);
        let (readings, requests, probes) =
            futures_util::future::join3(readings, requests, probes).await;
        Measurement {
            readings,
            requests,
            probes,
        }
    }
}

/// A link to a metric's canary query at its provider, over `[from_ms, to_ms]`, for the PR
/// comment: the Prometheus graph of the query, or the Datadog metrics explorer of its
/// metric; `CloudWatch` has none.
pub fn link(
    config: &Config,
    metric: &crate::config::Metric,
    vars: &QueryVars,
    from_ms: u64,
    to_ms: u64,
) -> Option<String> {
    let query = render_query(&metric.query, vars).ok()?;
    let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match metric.provider {
        ProviderKind::Prometheus => {
            let p = config.providers.prometheus.as_ref()?;
            let range = to_ms.saturating_sub(from_ms).div_ceil(60_000).max(1);
            let end = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_millis(to_ms),
            );
            reqwest::Url::parse_with_params(
                &format!("{}/graph", p.address.trim_end_matches('/')),
                &[
                    ("g0.expr", query.as_str()),
                    ("g0.tab", "0"),
                    ("g0.range_input", &format!("{range}m")),
                    ("g0.end_input", &end.to_string()),
                ],
            )
            .ok()
            .map(String::from)
        }
        ProviderKind::Datadog => {
            let d = config.providers.datadog.as_ref()?;
            // `avg:trace.http.request.duration{…}`: the metric between the aggregator and
            // the scope.
            let name = query
                .split(['{', '(', ' '])
                .find_map(|part| part.split_once(':').map(|(_, m)| m.trim()))
                .filter(|m| !m.is_empty())?;
            reqwest::Url::parse_with_params(
                &format!("https://app.{}/metric/explorer", d.site),
                &[
                    ("exp_metric", name),
                    ("from_ts", &from_ms.to_string()),
                    ("to_ts", &to_ms.to_string()),
                    ("live", "false"),
                ],
            )
            .ok()
            .map(String::from)
        }
        ProviderKind::Cloudwatch => None,
    }
}

/// The variables a metric query may use, as `{{ name }}`.
#[derive(Debug, Clone, Serialize)]
pub struct QueryVars {
    pub app: String,
    pub env: String,
    pub namespace: String,
    /// The Service that fronts the canary / the stable pods.
    pub canary_service: String,
    pub stable_service: String,
    /// The window the check covers, as `PromQL` writes a range (`90s`).
    pub window: String,
    /// The window in seconds (`90`), for Datadog's `.rollup(sum, {{ window_seconds }})`.
    pub window_seconds: u64,
    /// A blue-green's test listener: the environment's URL on the test port. Undefined
    /// elsewhere, so a template that uses it outside blue-green is an error that says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_url: Option<String>,
    /// On ECS, the `CloudWatch` dimensions of the ALB: the canary's target group (a
    /// blue-green's green one, looked up by name), the stable (blue) one, and the load
    /// balancer, as `targetgroup/NAME/ID` and `app/NAME/ID`. Undefined elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_target_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_target_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<String>,
}

impl QueryVars {
    /// The names templates may use, for messages.
    pub const NAMES: &'static [&'static str] = &[
        "app",
        "env",
        "namespace",
        "canary_service",
        "stable_service",
        "window",
        "window_seconds",
        "test_url",
        "canary_target_group",
        "stable_target_group",
        "load_balancer",
    ];

    /// The variables of environment `env` for a window of `window_secs`.
    pub fn for_environment(config: &Config, env: &str, window_secs: u64) -> Self {
        let environment = config.environments.get(env);
        let namespace = environment
            .and_then(|e| e.kubernetes.as_ref())
            .map(|k| k.namespace.clone())
            .unwrap_or_default();
        Self {
            app: config.app.clone(),
            env: env.to_owned(),
            namespace,
            // A blue-green's green on Kubernetes: the preview Service.
            canary_service: match environment.map(|e| (&e.strategy, e.kubernetes.is_some())) {
                Some((crate::config::Strategy::BlueGreen(_), true)) => {
                    format!("{}-preview", config.app)
                }
                // A canary on ECS: its own ECS service.
                Some((crate::config::Strategy::Canary(c), false)) => {
                    environment.and_then(|e| e.ecs.as_ref()).map_or_else(
                        || format!("{}-canary", config.app),
                        |ecs| c.canary_service_name(ecs),
                    )
                }
                _ => format!("{}-canary", config.app),
            },
            stable_service: match environment.map(|e| (&e.strategy, e.ecs.as_ref())) {
                Some((crate::config::Strategy::Canary(_), Some(ecs))) => ecs.service.clone(),
                _ => config.app.clone(),
            },
            window: promql_window(window_secs),
            window_seconds: window_secs.max(1),
            test_url: environment.and_then(|e| match (&e.strategy, &e.kubernetes) {
                // The preview Service selects green.
                (crate::config::Strategy::BlueGreen(_), Some(k)) => {
                    Some(format!("http://{}-preview.{}.svc", config.app, k.namespace))
                }
                (crate::config::Strategy::BlueGreen(b), None) => e.url_on_port(b.test_port),
                _ => None,
            }),
            // A canary's target group is an ARN in deploy.yml; green's is known by name only:
            // the edge looks it up.
            canary_target_group: environment.and_then(|e| match (&e.strategy, e.target) {
                (crate::config::Strategy::Canary(c), crate::config::Target::Ecs) => c
                    .canary_target_group
                    .as_deref()
                    .and_then(crate::platform::ecs::alb::target_group_dimension),
                _ => None,
            }),
            stable_target_group: environment
                .and_then(|e| e.ecs.as_ref())
                .and_then(|e| e.load_balancer.as_ref())
                .and_then(|lb| {
                    crate::platform::ecs::alb::target_group_dimension(&lb.target_group_arn)
                }),
            load_balancer: environment.and_then(|e| match &e.strategy {
                crate::config::Strategy::BlueGreen(b) => {
                    crate::platform::ecs::alb::load_balancer_dimension(
                        b.prod_listener_arn
                            .as_deref()
                            .or(b.prod_listener_rule.as_deref())?,
                    )
                }
                crate::config::Strategy::Canary(c) if e.target == crate::config::Target::Ecs => {
                    crate::platform::ecs::alb::load_balancer_dimension(c.listener())
                }
                _ => None,
            }),
        }
    }

    /// Example values, for checking a template when the config loads.
    pub fn example() -> Self {
        Self {
            app: "app".into(),
            env: "env".into(),
            namespace: "namespace".into(),
            canary_service: "app-canary".into(),
            stable_service: "app".into(),
            window: "60s".into(),
            window_seconds: 60,
            test_url: Some("https://app.example.com:8080".into()),
            canary_target_group: Some("targetgroup/app-green/0123456789abcdef".into()),
            stable_target_group: Some("targetgroup/app-blue/0123456789abcdef".into()),
            load_balancer: Some("app/app/0123456789abcdef".into()),
        }
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // The same in every build profile (see render::Renderer::new).
    env.set_debug(false);
    env
}

/// Renders a query template. The error names what is wrong, in the template's words.
pub fn render_query(template: &str, vars: &QueryVars) -> Result<String, String> {
    let env = environment();
    env.render_str(
        template,
        minijinja::Value::from(minijinja::value::Serde(vars)),
    )
    .map_err(|e| {
        let detail = e.detail().map_or_else(|| e.to_string(), str::to_owned);
        match e.kind() {
            minijinja::ErrorKind::UndefinedError => {
                let name = e
                    .range()
                    .and_then(|r| template.get(r))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map_or_else(String::new, |s| format!(" `{s}`"));
                format!(
                    "undefined variable{name} in the query; a query may use {}",
                    QueryVars::NAMES
                        .iter()
                        .map(|n| format!("{{{{ {n} }}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            _ => format!("the query template is invalid: {detail}"),
        }
    })
}

/// Checks a query template when the config loads: it must render with the rollout's
/// variables.
pub fn check_query(template: &str) -> Result<(), String> {
    render_query(template, &QueryVars::example()).map(|_| ())
}

/// `90s` for a window of 90 seconds (at least 1 s).
pub fn promql_window(secs: u64) -> String {
    format!("{}s", secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_the_query_at_its_provider() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/movieverse/deploy.yml"
        ))
        .unwrap();
        let mut config: Config = serde_saphyr::from_str(&text).unwrap();
        config.providers.datadog = Some(crate::config::DatadogProvider {
            site: "datadoghq.eu".into(),
            address: None,
            api_key_env: "DD_API_KEY".into(),
            app_key_env: "DD_APP_KEY".into(),
        });
        let crate::config::Strategy::Canary(c) = &config.environments["production-k8s"].strategy
        else {
            panic!("the example's canary")
        };
        let mut m = c.analysis.metrics[0].clone();
        let vars = QueryVars::for_environment(&config, "production-k8s", 60);
        let url = link(&config, &m, &vars, 0, 600_000).unwrap();
        assert!(
            url.starts_with("http://prometheus.monitoring.svc:9090/graph?g0.expr=100+*+sum%28rate%28nginx_ingress_controller_requests")
                && url.contains("&g0.tab=0&g0.range_input=10m&g0.end_input=1970-01-01T00%3A10%3A00Z"),
            "{url}"
        );
        m.provider = ProviderKind::Datadog;
        m.query = "avg:trace.http.request.duration{service:{{ canary_service }}}".into();
        assert_eq!(
            link(&config, &m, &vars, 0, 600_000).unwrap(),
            "https://app.datadoghq.eu/metric/explorer?exp_metric=trace.http.request.duration&from_ts=0&to_ts=600000&live=false"
        );
        m.provider = ProviderKind::Cloudwatch;
        assert_eq!(link(&config, &m, &vars, 0, 600_000), None);
    }

    #[test]
    fn query_templates() {
        let vars = QueryVars::example();
        assert_eq!(
            render_query(
                "sum(rate(x{namespace=\"{{ namespace }}\",service=\"{{ canary_service }}\"}[{{ window }}]))",
                &vars
            )
            .unwrap(),
            "sum(rate(x{namespace=\"namespace\",service=\"app-canary\"}[60s]))"
        );
        // PromQL's own braces are not template syntax.
        assert_eq!(
            render_query("sum(x{a=\"b\"})", &vars).unwrap(),
            "sum(x{a=\"b\"})"
        );
        let e = render_query("x{service=\"{{ canary }}\"}", &vars).unwrap_err();
        assert!(
            e.starts_with("undefined variable `canary` in the query"),
            "{e}"
        );
        let e = render_query("x{{ namespace", &vars).unwrap_err();
        assert!(e.starts_with("the query template is invalid"), "{e}");
    }
}
