//! Kubernetes through kube-rs: server-side apply of the rendered manifests and a Deployment
//! rollout read the way `kubectl rollout status` reads it.
//!
//! How the rolling vocabulary maps onto Kubernetes:
//!
//! | command | here |
//! |---|---|
//! | prepare | server-side apply **dry run** of every manifest, compared with the live objects (what `kubectl diff` does): the server's defaults and admission make the comparison exact, and a manifest the API server rejects fails here, before anything changed |
//! | register | names the revision: the digest of the Deployment's pod template as the server would store it (creating the namespace first when allowed and missing) |
//! | update | server-side apply of every manifest but the HPA, the Deployment last; to an older revision: the template of that revision's `ReplicaSet` (what `kubectl rollout undo` does) |
//! | apply scaling | server-side apply of the `HorizontalPodAutoscaler` |
//! | observe | the Deployment, its `ReplicaSet`s, pods and events |
//! | diagnose | the pods of the failing `ReplicaSet`: waiting reasons, exit codes, warning events |
//! | clean up | nothing: `revisionHistoryLimit` prunes old `ReplicaSet`s |
//!
//! A revision is `name@<digest>`: the SHA-256 of the pod template with the
//! `pod-template-hash` label removed, so that a Deployment's template and the `ReplicaSet`
//! created from it name the same revision.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Service};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use serde_json::{Value, json};

pub mod auth;
pub mod import;
pub mod preflight;

use super::{Platform, Prepared, ServiceSpec, Wake};
use crate::platform::observation::{
    DeploymentView, ErrorKind, PlatformError, Rollout, ServiceEvent, ServiceView, StoppedTask,
};

/// Our field manager for server-side apply.
pub const FIELD_MANAGER: &str = "movieverse-deploy";
const TEMPLATE_HASH: &str = "pod-template-hash";
const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Container waiting reasons that mean a pod will not become ready by waiting.
const BAD_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

pub struct Kubernetes {
    client: kube::Client,
    namespace: String,
    create_namespace: bool,
    /// Discovered resources by `apiVersion/kind`.
    kinds: Mutex<HashMap<String, (ApiResource, Scope)>>,
    /// The rendered revision of each Deployment, from the dry run in `prepare`/`register`.
    rendered: Mutex<HashMap<String, String>>,
    /// The resourceVersion of each Deployment as last observed: a watch starts there.
    seen: Mutex<HashMap<String, String>>,
    /// The open watches, kept across waits (one request per Deployment per deploy, not one
    /// per wake-up), and what they delivered.
    watching: tokio::sync::Mutex<Watching>,
}

type DeploymentEvents = std::pin::Pin<
    Box<
        dyn futures_util::Stream<Item = Result<kube::api::WatchEvent<Deployment>, kube::Error>>
            + Send,
    >,
>;

#[derive(Default)]
struct Watching {
    streams: HashMap<String, DeploymentEvents>,
    /// The newest Deployment each watch delivered: the next observation uses it instead of a
    /// GET when a watch event woke it.
    latest: HashMap<String, Deployment>,
    /// Deployments whose watch woke the driver since their last observation.
    woken: std::collections::HashSet<String>,
    /// The resourceVersion of our last write to each Deployment (its template): an object
    /// older than that is not the Deployment as it stands, whatever the watch replays first.
    floor: HashMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    Object,
    Nothing,
    Gone,
}

impl Watching {
    /// Takes in what the watch of `name` delivered.
    fn take(
        &mut self,
        name: &str,
        event: Option<Result<kube::api::WatchEvent<Deployment>, kube::Error>>,
    ) -> Taken {
        match event {
            Some(Ok(kube::api::WatchEvent::Added(d) | kube::api::WatchEvent::Modified(d))) => {
                self.latest.insert(name.to_owned(), d);
                Taken::Object
            }
            Some(Ok(kube::api::WatchEvent::Bookmark(_))) => Taken::Nothing,
            // Deleted, an error (a 410 Gone: the version is too old) or the end of the
            // stream (its timeout): drop it; the next observation reads the Deployment and
            // a new watch starts from there.
            _ => {
                self.streams.remove(name);
                self.latest.remove(name);
                Taken::Gone
            }
        }
    }

    /// The newest object the watch of `name` delivered, unless it is older than our last
    /// write to it.
    fn fresh(&self, name: &str) -> Option<&Deployment> {
        let d = self.latest.get(name)?;
        let rv = d
            .metadata
            .resource_version
            .as_deref()?
            .parse::<u64>()
            .ok()?;
        (rv >= self.floor.get(name).copied().unwrap_or(0)).then_some(d)
    }

    /// Takes in every event already received (without waiting), so the newest object is
    /// the one an observation uses.
    fn drain(&mut self, name: &str) {
        loop {
            let Some(stream) = self.streams.get_mut(name) else {
                return;
            };
            let Some(event) =
                futures_util::FutureExt::now_or_never(futures_util::StreamExt::next(stream))
            else {
                return;
            };
            if self.take(name, event) == Taken::Gone {
                return;
            }
        }
    }
}

impl Kubernetes {
    pub fn new(client: kube::Client, namespace: &str, create_namespace: bool) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
            create_namespace,
            kinds: Mutex::new(HashMap::new()),
            rendered: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            watching: tokio::sync::Mutex::new(Watching::default()),
        }
    }

    /// A client from the standard places (`KUBECONFIG`, `~/.kube/config`, in-cluster), with
    /// `context` when deploy.yml names one.
    pub async fn connect(
        context: Option<&str>,
        namespace: &str,
        create_namespace: bool,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let config = match context {
            Some(c) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                context: Some(c.to_owned()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot load the kubeconfig context `{c}` (set KUBECONFIG, or fix `kubernetes.context` in deploy.yml)"))?,
            None => kube::Config::infer().await.context(
                "no Kubernetes configuration found: set KUBECONFIG, write ~/.kube/config, or run in a cluster",
            )?,
        };
        let client =
            auth::client(config).context("cannot build a Kubernetes client from the kubeconfig")?;
        Ok(Self::new(client, namespace, create_namespace))
    }

    /// The client, for what lives beside the rollout (the lease).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The resource of a kind (its plural, group and version) and its scope, discovered once
    /// per kind.
    async fn discover(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, Scope), PlatformError> {
        let key = format!("{api_version}/{kind}");
        let known = self.kinds.lock().expect("not poisoned").get(&key).cloned();
        if let Some(k) = known {
            return Ok(k);
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| classify(&format!("discover {key}"), &e))?;
        let entry = (resource, caps.scope);
        self.kinds
            .lock()
            .expect("not poisoned")
            .insert(key, entry.clone());
        Ok(entry)
    }

    /// The API of a manifest's kind, discovered once per kind.
    async fn dynamic(
        &self,
        manifest: &Value,
    ) -> Result<(Api<DynamicObject>, String), PlatformError> {
        let api_version = manifest["apiVersion"].as_str().unwrap_or_default();
        let kind = manifest["kind"].as_str().unwrap_or_default();
        let name = manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (resource, scope) = self.discover(api_version, kind).await?;
        let api = match scope {
            Scope::Namespaced => {
                Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        };
        Ok((api, name))
    }

    /// Server-side apply of one manifest (forced: we own what we render).
    async fn apply(&self, manifest: &Value, dry_run: bool) -> Result<Value, PlatformError> {
        let (api, name) = self.dynamic(manifest).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = dry_run;
        params.field_validation = Some(kube::api::ValidationDirective::Strict);
        let op = format!(
            "apply {} {name}{}",
            manifest["kind"].as_str().unwrap_or("object"),
            if dry_run { " (server dry run)" } else { "" }
        );
        let out = api
            .patch(&name, &params, &Patch::Apply(manifest))
            .await
            .map_err(|e| classify(&op, &e))?;
        Ok(serde_json::to_value(out).expect("objects serialize"))
    }

    async fn live(&self, manifest: &Value) -> Result<Option<Value>, PlatformError> {
        let (api, name) = self.dynamic(manifest).await?;
        let op = format!(
            "read {} {name}",
            manifest["kind"].as_str().unwrap_or("object")
        );
        let got = api.get_opt(&name).await.map_err(|e| classify(&op, &e))?;
        Ok(got.map(|o| serde_json::to_value(o).expect("objects serialize")))
    }

    /// The server's dry run of a manifest and the live object, both without what the server
    /// maintains, so that equal means applying changes nothing.
    async fn compare(&self, manifest: &Value) -> Result<(Value, Option<Value>), PlatformError> {
        let would = strip_volatile(self.apply(manifest, true).await?);
        let live = self.live(manifest).await?.map(strip_volatile);
        Ok((would, live))
    }

    async fn namespace_exists(&self) -> Result<bool, PlatformError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        Ok(api
            .get_opt(&self.namespace)
            .await
            .map_err(|e| classify(&format!("read namespace {}", self.namespace), &e))?
            .is_some())
    }

    async fn ensure_namespace(&self) -> Result<(), PlatformError> {
        if self.namespace_exists().await? {
            return Ok(());
        }
        if !self.create_namespace {
            return Err(missing_namespace(&self.namespace));
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": self.namespace, "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}}
        }))
        .expect("a namespace");
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(classify(
                &format!("create namespace {}", self.namespace),
                &e,
            )),
        }
    }

    async fn deployment(&self, name: &str) -> Result<Option<Deployment>, PlatformError> {
        self.api::<Deployment>()
            .get_opt(name)
            .await
            .map_err(|e| classify(&format!("read Deployment {name}"), &e))
    }

    /// The Deployment's `ReplicaSet`s (owned by it), newest revision first.
    async fn replica_sets(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, PlatformError> {
        let name = d.metadata.name.clone().unwrap_or_default();
        let uid = d.metadata.uid.clone();
        let mut sets: Vec<ReplicaSet> = self
            .api::<ReplicaSet>()
            .list(&ListParams::default().labels(&selector(d)))
            .await
            .map_err(|e| classify(&format!("list ReplicaSets of {name}"), &e))?
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "Deployment" && Some(&o.uid) == uid.as_ref())
            })
            .collect();
        sets.sort_by_key(|rs| std::cmp::Reverse(rs_revision(rs)));
        Ok(sets)
    }

    async fn pods(&self, d: &Deployment) -> Result<Vec<Pod>, PlatformError> {
        let name = d.metadata.name.clone().unwrap_or_default();
        Ok(self
            .api::<Pod>()
            .list(&ListParams::default().labels(&selector(d)))
            .await
            .map_err(|e| classify(&format!("list pods of {name}"), &e))?
            .items)
    }

    async fn events(
        &self,
        kind: &str,
        name: Option<&str>,
        warnings: bool,
    ) -> Result<Vec<Event>, PlatformError> {
        let mut fields = format!("involvedObject.kind={kind}");
        if let Some(n) = name {
            let _ = write!(fields, ",involvedObject.name={n}");
        }
        if warnings {
            fields.push_str(",type=Warning");
        }
        Ok(self
            .api::<Event>()
            .list(&ListParams::default().fields(&fields))
            .await
            .map_err(|e| {
                classify(
                    &format!("list events of {kind} {}", name.unwrap_or("*")),
                    &e,
                )
            })?
            .items)
    }

    /// Observes one Deployment.
    async fn view(&self, spec: &ServiceSpec) -> Result<ServiceView, PlatformError> {
        // Woken by its watch: the watch's newest object is the Deployment as it stands (every
        // event received is taken in first). Otherwise (a fallback poll, no watch) a GET.
        let watched = {
            let mut w = self.watching.lock().await;
            if w.woken.remove(&spec.name) {
                w.drain(&spec.name);
                w.fresh(&spec.name).cloned()
            } else {
                None
            }
        };
        let live = match watched {
            Some(d) => Some(d),
            None => self.deployment(&spec.name).await?,
        };
        self.view_of(spec, live).await
    }

    /// The view of a Deployment already read (`None`: it does not exist yet).
    async fn view_of(
        &self,
        spec: &ServiceSpec,
        live: Option<Deployment>,
    ) -> Result<ServiceView, PlatformError> {
        if let Some(rv) = live
            .as_ref()
            .and_then(|d| d.metadata.resource_version.clone())
        {
            self.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(spec.name.clone(), rv);
        }
        let Some(d) = live else {
            return Ok(ServiceView {
                name: spec.name.clone(),
                revision: String::new(),
                deployments: vec![],
                events: vec![],
            });
        };
        let sets = self.replica_sets(&d).await?;
        // Pods are read for the count of failing ones. When every active pod is available
        // none is failing: the list would say nothing new.
        let all_available = d
            .status
            .as_ref()
            .is_some_and(|st| st.replicas.unwrap_or(0) == st.available_replicas.unwrap_or(0));
        let pods = if all_available {
            Vec::new()
        } else {
            self.pods(&d).await?
        };
        let events = self.events("Deployment", Some(&spec.name), false).await?;
        Ok(service_view(&d, &sets, &pods, &events))
    }

    /// Dry-runs every manifest; returns the rendered revision and whether the template and
    /// anything else differ from the live objects.
    async fn dry_run(
        &self,
        spec: &ServiceSpec,
        live_deployment: Option<&Deployment>,
    ) -> Result<(String, bool, bool), PlatformError> {
        let mut settings_changed = false;
        let deployment = Self::deployment_body(spec, live_deployment);
        let would = self.apply(&deployment, true).await?;
        let revision = revision_of(&spec.name, &would["spec"]["template"]);
        let definition_changed = match live_deployment {
            None => true,
            Some(live) => {
                let live = serde_json::to_value(live).expect("objects serialize");
                let changed = revision_of(&spec.name, &live["spec"]["template"]) != revision;
                settings_changed |= !changed && strip_volatile(would) != strip_volatile(live);
                changed
            }
        };
        for m in spec.manifests.iter().chain(spec.scaling.iter()) {
            let (would, live) = self.compare(m).await?;
            settings_changed |= live.is_none_or(|l| l != would);
        }
        self.rendered
            .lock()
            .expect("not poisoned")
            .insert(spec.name.clone(), revision.clone());
        Ok((revision, definition_changed, settings_changed))
    }

    /// The revision the dry run named for this Deployment's rendered template.
    fn rendered_revision(&self, name: &str) -> Option<String> {
        self.rendered
            .lock()
            .expect("not poisoned")
            .get(name)
            .cloned()
    }

    /// The Deployment to apply. With an HPA, an existing Deployment keeps its live replica
    /// count (the HPA owns it); leaving the field out would hand it back to the default of 1.
    fn deployment_body(spec: &ServiceSpec, live: Option<&Deployment>) -> Value {
        let mut body = spec.definition.clone();
        if spec.scaling.is_some()
            && let Some(replicas) = live.and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas)
        {
            body["spec"]["replicas"] = json!(replicas);
        }
        body
    }

    /// Puts the Deployment back on the template of the `ReplicaSet` with `revision`.
    async fn undo_to(&self, spec: &ServiceSpec, revision: &str) -> Result<(), PlatformError> {
        let op = format!("roll Deployment {} back to {revision}", spec.name);
        let Some(d) = self.deployment(&spec.name).await? else {
            return Err(PlatformError::new(
                ErrorKind::NotFound,
                op,
                format!(
                    "Deployment {} does not exist in namespace {}",
                    spec.name, self.namespace
                ),
            ));
        };
        let sets = self.replica_sets(&d).await?;
        let Some(mut template) = sets
            .iter()
            .map(rs_template)
            .find(|t| revision_of(&spec.name, t) == revision)
        else {
            return Err(PlatformError::new(
                ErrorKind::NotFound,
                op,
                format!(
                    "no ReplicaSet of Deployment {} has revision {revision} (revisionHistoryLimit may have pruned it)",
                    spec.name
                ),
            ));
        };
        without_hash_label(&mut template);
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "replace", "path": "/spec/template", "value": template}
        ]))
        .expect("a JSON patch");
        let reversed = self
            .api::<Deployment>()
            .patch(
                &spec.name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::<()>::Json(patch),
            )
            .await
            .map_err(|e| classify(&op, &e))?;
        self.wrote(&spec.name, reversed.metadata.resource_version.as_deref())
            .await;
        Ok(())
    }

    /// Records a write of ours to a Deployment: an observation older than it is stale.
    async fn wrote(&self, name: &str, resource_version: Option<&str>) {
        if let Some(rv) = resource_version.and_then(|v| v.parse::<u64>().ok()) {
            self.watching.lock().await.floor.insert(name.to_owned(), rv);
        }
    }
}

/// What a server-side apply of one manifest would do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "change")]
pub enum ObjectChange {
    Create,
    Unchanged,
    /// A unified diff of the live object and the server's dry-run result (YAML, without
    /// status and server-maintained metadata).
    Change {
        diff: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectDiff {
    pub kind: String,
    pub name: String,
    #[serde(flatten)]
    pub change: ObjectChange,
}

impl Kubernetes {
    /// `plan --server-dry-run`: what applying the spec would change, object by object, as the
    /// API server computes it (defaults, admission, validation). Changes nothing. `None` when
    /// the namespace does not exist (nothing can be dry-run in it).
    pub async fn diff(&self, spec: &ServiceSpec) -> Result<Option<Vec<ObjectDiff>>, PlatformError> {
        if !self.namespace_exists().await? {
            return Ok(None);
        }
        let live_deployment = self.deployment(&spec.name).await?;
        let body = Self::deployment_body(spec, live_deployment.as_ref());
        let mut out = Vec::new();
        for m in spec
            .manifests
            .iter()
            .chain(std::iter::once(&body))
            .chain(spec.scaling.iter())
        {
            let (would, live) = self.compare(m).await?;
            let change = match live {
                None => ObjectChange::Create,
                Some(live) => {
                    if live == would {
                        ObjectChange::Unchanged
                    } else {
                        ObjectChange::Change {
                            diff: super::yaml_diff(
                                &hide_plain_secrets(&live),
                                &hide_plain_secrets(&would),
                                "live",
                                "after apply",
                            ),
                        }
                    }
                }
            };
            out.push(ObjectDiff {
                kind: m["kind"].as_str().unwrap_or_default().to_owned(),
                name: m["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                change,
            });
        }
        Ok(Some(out))
    }
}

/// `object` with the value of every plain container variable whose name looks like a secret
/// replaced by a mark (a Deployment made elsewhere may hold one): what a diff may show. Each
/// hidden value is also given to [`crate::report::mask`].
pub fn hide_plain_secrets(object: &Value) -> Value {
    let mut v = object.clone();
    for c in v["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        crate::report::hide_plain_secrets(c["env"].as_array_mut());
    }
    v
}

fn missing_namespace(ns: &str) -> PlatformError {
    PlatformError::new(
        ErrorKind::NotFound,
        format!("read namespace {ns}"),
        format!(
            "namespace `{ns}` does not exist; create it, or set `kubernetes.create_namespace: true` in deploy.yml"
        ),
    )
}

impl Platform for Kubernetes {
    async fn prepare(&self, spec: &ServiceSpec) -> Result<Prepared, PlatformError> {
        if !self.namespace_exists().await? {
            if !self.create_namespace {
                return Err(missing_namespace(&self.namespace));
            }
            // Nothing to compare with, and nothing can be dry-run in a namespace that does
            // not exist: `register` creates it and has the server validate every manifest
            // before anything else is applied.
            return Ok(Prepared {
                service: self.view(spec).await?,
                definition_changed: true,
                settings_changed: true,
            });
        }
        let live = self.deployment(&spec.name).await?;
        let (_, definition_changed, settings_changed) = self.dry_run(spec, live.as_ref()).await?;
        Ok(Prepared {
            service: self.view_of(spec, live).await?,
            definition_changed,
            settings_changed,
        })
    }

    async fn register(&self, spec: &ServiceSpec) -> Result<String, PlatformError> {
        if let Some(revision) = self.rendered_revision(&spec.name) {
            return Ok(revision);
        }
        self.ensure_namespace().await?;
        let live = self.deployment(&spec.name).await?;
        Ok(self.dry_run(spec, live.as_ref()).await?.0)
    }

    async fn update(
        &self,
        spec: &ServiceSpec,
        revision: &str,
    ) -> Result<Option<String>, PlatformError> {
        if self
            .rendered_revision(&spec.name)
            .is_some_and(|r| r != revision)
        {
            // Another revision than the rendered one: `rollback`.
            self.undo_to(spec, revision).await?;
            return Ok(None);
        }
        for m in &spec.manifests {
            self.apply(m, false).await?;
        }
        let live = self.deployment(&spec.name).await?;
        let applied = self
            .apply(&Self::deployment_body(spec, live.as_ref()), false)
            .await?;
        self.wrote(&spec.name, applied["metadata"]["resourceVersion"].as_str())
            .await;
        Ok(None)
    }

    async fn apply_scaling(&self, spec: &ServiceSpec) -> Result<(), PlatformError> {
        if let Some(hpa) = &spec.scaling {
            self.apply(hpa, false).await?;
        }
        Ok(())
    }

    /// A watch on each Deployment, opened once from the version last observed and kept open
    /// across waits. A change that settles the rollout (complete, or failed) wakes the driver
    /// at once; any other change wakes it as progress, which the driver observes no more
    /// often than its poll interval. The observation then uses the watch's newest object
    /// instead of a GET. A Deployment not observed yet wakes the driver at once (to observe
    /// it); a watch that cannot start or ends leaves the work to the fallback poll.
    ///
    /// `MVD_K8S_WATCH=0` turns the watch off (polls only), for a proxy that does not pass
    /// watches, and for comparing the two.
    fn changed(&self, specs: &[&ServiceSpec]) -> impl Future<Output = Wake> + Send {
        let off = !self.watches();
        let starts: Vec<(String, Option<String>)> = {
            let seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            specs
                .iter()
                .map(|s| (s.name.clone(), seen.get(&s.name).cloned()))
                .collect()
        };
        let api = self.api::<Deployment>();
        async move {
            if off {
                return std::future::pending().await;
            }
            let mut w = self.watching.lock().await;
            for (name, rv) in &starts {
                if w.streams.contains_key(name) {
                    continue;
                }
                // Not observed yet (created by this deploy): look now, the watch starts
                // from what that observation sees.
                let Some(rv) = rv else {
                    return Wake::Settled;
                };
                let params = kube::api::WatchParams::default()
                    .fields(&format!("metadata.name={name}"))
                    .timeout(290);
                if let Ok(stream) = api.watch(&params, rv).await {
                    w.streams.insert(name.clone(), Box::pin(stream));
                }
            }
            let names: Vec<&String> = starts
                .iter()
                .map(|(n, _)| n)
                .filter(|n| w.streams.contains_key(*n))
                .collect();
            if names.is_empty() {
                return std::future::pending().await;
            }
            loop {
                let (name, event) = {
                    let next = w.streams.iter_mut().filter(|(n, _)| names.contains(n)).map(
                        |(n, stream)| {
                            Box::pin(async move {
                                (n.clone(), futures_util::StreamExt::next(stream).await)
                            })
                        },
                    );
                    futures_util::future::select_all(next).await.0
                };
                match w.take(&name, event) {
                    Taken::Nothing => {}
                    Taken::Gone => return Wake::Settled,
                    // An object from before our last write (a watch replaying what
                    // happened since an older observation) says nothing new.
                    Taken::Object => {
                        let Some(d) = w.fresh(&name) else { continue };
                        let settled =
                            matches!(rollout_of(d).0, Rollout::Completed | Rollout::Failed);
                        w.woken.insert(name.clone());
                        return if settled {
                            Wake::Settled
                        } else {
                            Wake::Progress
                        };
                    }
                }
            }
        }
    }

    fn watches(&self) -> bool {
        !std::env::var("MVD_K8S_WATCH").is_ok_and(|v| v == "0")
    }

    async fn observe(&self, specs: &[&ServiceSpec]) -> Result<Vec<ServiceView>, PlatformError> {
        let mut views = Vec::with_capacity(specs.len());
        for spec in specs {
            views.push(self.view(spec).await?);
        }
        Ok(views)
    }

    async fn diagnose(
        &self,
        spec: &ServiceSpec,
        deployment: &str,
    ) -> Result<Vec<StoppedTask>, PlatformError> {
        let Some(d) = self.deployment(&spec.name).await? else {
            return Ok(vec![]);
        };
        let sets = self.replica_sets(&d).await?;
        let pods = self.pods(&d).await?;
        let warnings = self.events("Pod", None, true).await?;
        let mut out = Vec::new();
        if let Some(rs) = sets
            .iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(deployment))
        {
            for c in rs.status.iter().flat_map(|s| s.conditions.iter().flatten()) {
                if c.type_ == "ReplicaFailure" && c.status == "True" {
                    out.push(StoppedTask {
                        what: "ReplicaSet".into(),
                        id: deployment.to_owned(),
                        reason: c
                            .message
                            .clone()
                            .unwrap_or_else(|| c.reason.clone().unwrap_or_default()),
                        stop_code: c.reason.clone(),
                        containers: vec![],
                    });
                }
            }
        }
        for pod in pods.iter().filter(|p| owned_by(p, deployment)) {
            if let Some(problem) = pod_problem(pod, &warnings) {
                out.push(problem);
            }
        }
        Ok(out)
    }

    async fn clean_up(
        &self,
        _spec: &ServiceSpec,
        _keep: u32,
    ) -> Result<Vec<String>, PlatformError> {
        // The Deployment's revisionHistoryLimit (rendered from the same setting) prunes them.
        Ok(vec![])
    }

    async fn revert(&self, spec: &ServiceSpec, revision: &str) -> Result<(), PlatformError> {
        self.undo_to(spec, revision).await
    }

    async fn previous_revision(&self, spec: &ServiceSpec) -> Result<Option<String>, PlatformError> {
        let Some(d) = self.deployment(&spec.name).await? else {
            return Ok(None);
        };
        let current = revision_of(&spec.name, &template_value(&d));
        let sets = self.replica_sets(&d).await?;
        Ok(sets
            .iter()
            .map(|rs| revision_of(&spec.name, &rs_template(rs)))
            .find(|r| *r != current))
    }
}

/// The field manager that owns what the router sets (the canary weight): a re-apply of the
/// rendered manifests by [`FIELD_MANAGER`] never resets it.
pub const ROUTER_MANAGER: &str = "movieverse-deploy-router";
/// The annotation on the stable Deployment that holds the rollout's state.
pub const ROLLOUT_ANNOTATION: &str = "movieverse.dev/rollout";
const CANARY_WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

impl Kubernetes {
    /// NGINX ingress: the canary Ingress' weight, written by server-side apply under
    /// [`ROUTER_MANAGER`] (forced: the router owns the weight). Idempotent.
    pub async fn set_canary_weight(&self, ingress: &str, weight: u8) -> Result<(), PlatformError> {
        let body = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": ingress,
                "namespace": self.namespace,
                "annotations": {CANARY_WEIGHT: weight.to_string()},
            },
        });
        self.api::<k8s_openapi::api::networking::v1::Ingress>()
            .patch(
                ingress,
                &PatchParams::apply(ROUTER_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|e| classify(&format!("set the canary weight on Ingress {ingress}"), &e))?;
        Ok(())
    }

    /// The canary Ingress' weight as NGINX reads it (no annotation: 0).
    pub async fn canary_weight(&self, ingress: &str) -> Result<Option<u8>, PlatformError> {
        let got = self
            .api::<k8s_openapi::api::networking::v1::Ingress>()
            .get_opt(ingress)
            .await
            .map_err(|e| classify(&format!("read Ingress {ingress}"), &e))?;
        Ok(got.map(|i| {
            i.metadata
                .annotations
                .and_then(|a| a.get(CANARY_WEIGHT).and_then(|w| w.parse().ok()))
                .unwrap_or(0)
        }))
    }

    /// Gateway API: the `HTTPRoute`'s one rule (the path, and the stable and canary Services
    /// with their weights), written by server-side apply under [`ROUTER_MANAGER`]. The rules
    /// list is atomic in the CRD, so the router owns all of it. Idempotent.
    pub async fn set_route_weight(
        &self,
        route: &str,
        path: &str,
        stable: &str,
        canary: &str,
        weight: u8,
    ) -> Result<(), PlatformError> {
        let body = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": route, "namespace": self.namespace},
            "spec": {"rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                "backendRefs": [
                    {"name": stable, "port": 80, "weight": 100 - i32::from(weight.min(100))},
                    {"name": canary, "port": 80, "weight": i32::from(weight.min(100))},
                ],
            }]},
        });
        let (api, name) = self.dynamic(&body).await?;
        api.patch(
            &name,
            &PatchParams::apply(ROUTER_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| classify(&format!("set the canary weight on HTTPRoute {route}"), &e))?;
        Ok(())
    }

    /// The `HTTPRoute`'s backend weights, by Service name.
    pub async fn route_weights(&self, route: &str) -> Result<Vec<(String, i64)>, PlatformError> {
        let probe = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": route}});
        let live = self.live(&probe).await?.unwrap_or_default();
        Ok(live["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                (
                    b["name"].as_str().unwrap_or_default().to_owned(),
                    b["weight"].as_i64().unwrap_or(1),
                )
            })
            .collect())
    }

    /// Whether the Gateway exists (in `namespace`, or the app's).
    pub async fn gateway_exists(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<bool, PlatformError> {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            "Gateway",
        ));
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            namespace.unwrap_or(&self.namespace),
            &resource,
        );
        Ok(api
            .get_opt(name)
            .await
            .map_err(|e| classify(&format!("read Gateway {name}"), &e))?
            .is_some())
    }

    /// Scales a Deployment (the canary to zero). Idempotent; a missing one is left missing.
    pub async fn scale(&self, deployment: &str, replicas: i32) -> Result<(), PlatformError> {
        match self
            .api::<Deployment>()
            .patch_scale(
                deployment,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(classify(&format!("scale Deployment {deployment}"), &e)),
        }
    }

    /// The saved rollout state on its holder (the annotation's text) and the holder's
    /// resourceVersion; `None` when the holder does not exist.
    pub async fn read_rollout(
        &self,
        holder: &Holder,
    ) -> Result<Option<(Option<String>, String)>, PlatformError> {
        let meta = match holder {
            Holder::Deployment(name) => self.deployment(name).await?.map(|d| d.metadata),
            Holder::Service(name) => self
                .api::<Service>()
                .get_opt(name)
                .await
                .map_err(|e| classify(&format!("read Service {name}"), &e))?
                .map(|s| s.metadata),
        };
        Ok(meta.map(|m| {
            (
                m.annotations
                    .and_then(|a| a.get(ROLLOUT_ANNOTATION).cloned()),
                m.resource_version.unwrap_or_default(),
            )
        }))
    }

    /// Writes the rollout state, only if the holder is still at `resource_version`: of two
    /// writers, one wins and the other gets a [`ErrorKind::Conflict`]. Returns the new
    /// resourceVersion.
    pub async fn write_rollout(
        &self,
        holder: &Holder,
        state: &str,
        resource_version: &str,
    ) -> Result<String, PlatformError> {
        let patch = json!({"metadata": {
            "resourceVersion": resource_version,
            "annotations": {ROLLOUT_ANNOTATION: state},
        }});
        let params = PatchParams::default();
        let result = match holder {
            Holder::Deployment(name) => self
                .api::<Deployment>()
                .patch(name, &params, &Patch::Merge(&patch))
                .await
                .map(|d| d.metadata.resource_version),
            Holder::Service(name) => self
                .api::<Service>()
                .patch(name, &params, &Patch::Merge(&patch))
                .await
                .map(|s| s.metadata.resource_version),
        };
        match result {
            Ok(version) => Ok(version.unwrap_or_default()),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(PlatformError::new(
                ErrorKind::Conflict,
                format!("save the rollout state on {holder}"),
                "another process changed the rollout since this one read it (a `rollout promote` or `abort`, or a second deploy)",
            )),
            Err(e) => Err(classify(&format!("save the rollout state on {holder}"), &e)),
        }
    }

    /// A Service's selector (`None`: no Service; an empty map: no selector).
    pub async fn service_selector(
        &self,
        service: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, PlatformError> {
        Ok(self
            .api::<Service>()
            .get_opt(service)
            .await
            .map_err(|e| classify(&format!("read Service {service}"), &e))?
            .map(|s| s.spec.and_then(|sp| sp.selector).unwrap_or_default()))
    }

    /// Points a Service at the pods with these labels: server-side apply of the selector
    /// alone under [`ROUTER_MANAGER`] (forced: the router owns the selector of a blue-green's
    /// Services, which the templates leave out; the map is atomic, so it is all of it).
    /// Idempotent.
    pub async fn set_selector(
        &self,
        service: &str,
        selector: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), PlatformError> {
        let body = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service, "namespace": self.namespace},
            "spec": {"selector": selector},
        });
        self.api::<Service>()
            .patch(
                service,
                &PatchParams::apply(ROUTER_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|e| classify(&format!("switch the selector of Service {service}"), &e))?;
        Ok(())
    }

    /// A Deployment's desired replicas (`None`: no such Deployment).
    pub async fn replicas(&self, deployment: &str) -> Result<Option<i32>, PlatformError> {
        Ok(self
            .deployment(deployment)
            .await?
            .map(|d| d.spec.and_then(|s| s.replicas).unwrap_or(1)))
    }

    /// Deletes the colours of `app` (Deployments labelled [`REVISION_LABEL`]) that are at 0
    /// replicas and not in `keep`: a failed green, or a blue from before the last rollout.
    /// Returns their names.
    pub async fn prune_colours(
        &self,
        app: &str,
        keep: &[&str],
    ) -> Result<Vec<String>, PlatformError> {
        let list = self
            .api::<Deployment>()
            .list(
                &ListParams::default()
                    .labels(&format!("app.kubernetes.io/name={app},{REVISION_LABEL}")),
            )
            .await
            .map_err(|e| classify("list the colours' Deployments", &e))?;
        let mut deleted = Vec::new();
        for d in list.items {
            let label = d
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL).cloned())
                .unwrap_or_default();
            let idle = d.spec.as_ref().and_then(|s| s.replicas) == Some(0);
            let name = d.metadata.name.unwrap_or_default();
            if !idle || keep.contains(&label.as_str()) {
                continue;
            }
            match self
                .api::<Deployment>()
                .delete(&name, &kube::api::DeleteParams::default())
                .await
            {
                Ok(_) => deleted.push(name),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(classify(&format!("delete Deployment {name}"), &e)),
            }
        }
        Ok(deleted)
    }

    /// The image of a Deployment's first container (`None`: no such Deployment).
    pub async fn image_of(&self, deployment: &str) -> Result<Option<String>, PlatformError> {
        Ok(self.deployment(deployment).await?.and_then(|d| {
            d.spec?
                .template
                .spec?
                .containers
                .first()
                .and_then(|c| c.image.clone())
        }))
    }

    /// Applies one manifest (server-side apply, as a deploy does).
    pub async fn apply_one(&self, manifest: &Value) -> Result<(), PlatformError> {
        self.apply(manifest, false).await.map(|_| ())
    }
}

/// Where a rollout's state is kept: the stable Deployment (a canary), or the live Service (a
/// blue-green, whose Deployments come and go with revisions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Deployment(String),
    Service(String),
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Deployment(n) => write!(f, "Deployment {n}"),
            Holder::Service(n) => write!(f, "Service {n}"),
        }
    }
}

/// Maps a kube error to the kind the driver acts on.
pub(crate) fn classify(op: &str, e: &kube::Error) -> PlatformError {
    match e {
        kube::Error::Api(s) => {
            let kind = match s.code {
                429 => ErrorKind::Throttled,
                401 | 403 => ErrorKind::Permission,
                404 => ErrorKind::NotFound,
                c if c >= 500 => ErrorKind::Transient,
                _ => ErrorKind::Invalid,
            };
            let message = if s.message.is_empty() {
                s.reason.clone()
            } else {
                s.message.clone()
            };
            PlatformError::new(kind, op, format!("{message} (HTTP {})", s.code))
        }
        kube::Error::Auth(_) => PlatformError::new(ErrorKind::Permission, op, format!("{e:#}")),
        _ => match super::connection_failure(e) {
            Some((kind, cause)) => PlatformError::new(kind, op, cause),
            None => PlatformError::new(ErrorKind::Transient, op, crate::diag::error_chain(e)),
        },
    }
}

/// `k=v,k2=v2` from the Deployment's `matchLabels`.
fn selector(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn rs_revision(rs: &ReplicaSet) -> u64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn owned_by(pod: &Pod, replica_set: &str) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "ReplicaSet" && o.name == replica_set)
}

/// A `ReplicaSet`'s pod template as JSON (`null` when it has none).
fn rs_template(rs: &ReplicaSet) -> Value {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map_or(Value::Null, |t| {
            serde_json::to_value(t).expect("templates serialize")
        })
}

/// Removes the label the controller adds to a `ReplicaSet`'s copy of the template.
fn without_hash_label(template: &mut Value) {
    if let Some(labels) = template
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Value::as_object_mut)
    {
        labels.shift_remove(TEMPLATE_HASH);
    }
}

fn template_value(d: &Deployment) -> Value {
    d.spec.as_ref().map_or(Value::Null, |s| {
        serde_json::to_value(&s.template).expect("templates serialize")
    })
}

/// The pod label that tells a blue-green's colours apart: its value is the revision's digest.
pub const REVISION_LABEL: &str = "movieverse.dev/revision";

/// Makes a rendered Deployment a blue-green colour, pure: named `<app>-<digest>` after its pod
/// template, and its pods (selector, template) labelled with [`REVISION_LABEL`]. Returns the
/// label's value. The same template always gives the same name, so a rerun finds its
/// Deployment.
pub fn colour(definition: &mut Value, app: &str) -> String {
    let revision = revision_of("", &definition["spec"]["template"]);
    let label = revision.trim_start_matches('@').to_owned();
    definition["metadata"]["name"] = json!(colour_name(app, &label));
    for path in [
        &["metadata", "labels"][..],
        &["spec", "selector", "matchLabels"],
        &["spec", "template", "metadata", "labels"],
    ] {
        let at = path.iter().fold(&mut *definition, |v, k| &mut v[*k]);
        if !at.is_object() {
            *at = json!({});
        }
        at[REVISION_LABEL] = json!(label);
    }
    label
}

/// The Deployment of a colour: `<app>-<revision label>`.
pub fn colour_name(app: &str, label: &str) -> String {
    format!("{app}-{label}")
}

/// The selector of a colour's pods.
pub fn colour_selector(app: &str, label: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name".to_owned(), app.to_owned()),
        (REVISION_LABEL.to_owned(), label.to_owned()),
    ]
    .into()
}

/// `name@<12 hex>`: the digest of a pod template without the `pod-template-hash` label, with
/// object keys sorted, so a Deployment's template and its `ReplicaSet`'s name one revision.
pub fn revision_of(name: &str, template: &Value) -> String {
    let mut t = template.clone();
    without_hash_label(&mut t);
    let mut text = String::new();
    canonical(&t, &mut text);
    format!("{name}@{}", &crate::sha256_hex(text.as_bytes())[..12])
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The object without what the server maintains (status, versions, managed fields), for
/// comparing a dry run with the live object.
pub fn strip_volatile(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.shift_remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "resourceVersion",
                "managedFields",
                "generation",
                "creationTimestamp",
                "uid",
                "selfLink",
            ] {
                meta.shift_remove(k);
            }
        }
    }
    v
}

/// The rollout state of a Deployment, as `kubectl rollout status` judges it.
pub fn rollout_of(d: &Deployment) -> (Rollout, Option<String>) {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = d.status.as_ref() else {
        return (
            Rollout::InProgress,
            Some("waiting for the controller to see the Deployment".into()),
        );
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return (
            Rollout::InProgress,
            Some("waiting for the controller to see the new spec".into()),
        );
    }
    if let Some(c) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return (
            Rollout::Failed,
            Some(format!(
                "ProgressDeadlineExceeded: {}",
                c.message.clone().unwrap_or_default()
            )),
        );
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return (
            Rollout::InProgress,
            Some(format!("{updated} of {desired} updated replicas")),
        );
    }
    if replicas > updated {
        return (
            Rollout::InProgress,
            Some(format!(
                "{} old replicas pending termination",
                replicas - updated
            )),
        );
    }
    if available < updated {
        return (
            Rollout::InProgress,
            Some(format!(
                "{available} of {updated} updated replicas available"
            )),
        );
    }
    (Rollout::Completed, None)
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether a pod is failing in a way waiting will not fix, and how.
fn pod_failing(p: &Pod) -> bool {
    let Some(s) = p.status.as_ref() else {
        return false;
    };
    if s.phase.as_deref() == Some("Failed") {
        return true;
    }
    s.container_statuses.iter().flatten().any(|c| {
        let st = c.state.as_ref();
        st.and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            .is_some_and(|r| BAD_WAITING.contains(&r))
            || st
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0)
    })
}

/// A pod that is not ready, with its containers' reasons and its newest warning event.
fn pod_problem(p: &Pod, warnings: &[Event]) -> Option<StoppedTask> {
    if pod_ready(p) {
        return None;
    }
    let name = p.metadata.name.clone().unwrap_or_default();
    let status = p.status.as_ref();
    let mut containers = Vec::new();
    let mut reasons = Vec::new();
    for c in status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
    {
        let state = c.state.as_ref();
        let last_exit = c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .or_else(|| state.and_then(|s| s.terminated.as_ref()));
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            let r = w.reason.clone().unwrap_or_else(|| "waiting".into());
            reasons.push(match &w.message {
                Some(m) => format!("{}: {r}: {m}", c.name),
                None => format!("{}: {r}", c.name),
            });
            containers.push((c.name.clone(), last_exit.map(|t| t.exit_code), Some(r)));
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            reasons.push(format!(
                "{}: terminated with exit code {}",
                c.name, t.exit_code
            ));
            containers.push((c.name.clone(), Some(t.exit_code), t.reason.clone()));
        } else if !c.ready {
            reasons.push(format!("{}: running, not ready (readiness probe)", c.name));
            containers.push((c.name.clone(), last_exit.map(|t| t.exit_code), None));
        }
    }
    if reasons.is_empty() {
        reasons.push(format!(
            "pod {}",
            status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into())
        ));
    }
    let newest_warning = warnings
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(&name))
        .max_by_key(|e| event_time(e));
    let mut reason = reasons.join("; ");
    if let Some(e) = newest_warning {
        let _ = write!(
            reason,
            "; event {}: {}",
            e.reason.clone().unwrap_or_default(),
            e.message.clone().unwrap_or_default()
        );
    }
    Some(StoppedTask {
        what: "pod".into(),
        id: name,
        reason,
        stop_code: None,
        containers,
    })
}

fn event_time(e: &Event) -> i64 {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.as_second()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
        })
        .unwrap_or(0)
}

/// The Deployment as the rolling machine sees it: one deployment view per `ReplicaSet`.
pub fn service_view(
    d: &Deployment,
    sets: &[ReplicaSet],
    pods: &[Pod],
    events: &[Event],
) -> ServiceView {
    let name = d.metadata.name.clone().unwrap_or_default();
    let current = revision_of(&name, &template_value(d));
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let (rollout, reason) = rollout_of(d);
    let count = |n: Option<i32>| u32::try_from(n.unwrap_or(0)).unwrap_or(0);
    let deployments = sets
        .iter()
        .map(|rs| {
            let rs_name = rs.metadata.name.clone().unwrap_or_default();
            let revision = revision_of(&name, &rs_template(rs));
            let primary = revision == current;
            let st = rs.status.as_ref();
            let available = count(st.and_then(|s| s.available_replicas));
            let replicas = count(st.map(|s| s.replicas));
            let failed = pods
                .iter()
                .filter(|p| owned_by(p, &rs_name) && pod_failing(p))
                .count();
            DeploymentView {
                id: rs_name,
                revision,
                rollout: if primary {
                    rollout
                } else if replicas == 0 {
                    Rollout::Completed
                } else {
                    Rollout::InProgress
                },
                reason: if primary { reason.clone() } else { None },
                primary,
                rolled_back: false,
                desired: if primary {
                    count(Some(desired))
                } else {
                    count(rs.spec.as_ref().and_then(|s| s.replicas))
                },
                running: available,
                pending: replicas.saturating_sub(available),
                failed: u32::try_from(failed).unwrap_or(u32::MAX),
            }
        })
        .collect();
    let mut events: Vec<ServiceEvent> = events
        .iter()
        .map(|e| ServiceEvent {
            at: event_time(e),
            message: e.message.clone().unwrap_or_default(),
        })
        .collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.at));
    ServiceView {
        name,
        revision: current,
        deployments,
        events,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::needless_pass_by_value)]

    use super::*;

    #[test]
    fn a_diff_never_shows_a_plain_value_that_looks_like_a_secret() {
        let d = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
            {"name": "web", "env": [{"name": "API_TOKEN", "value": "planted-9f8e7d"}, {"name": "LOG_LEVEL", "value": "info"}]}
        ]}}}});
        let hidden = hide_plain_secrets(&d);
        let text = hidden.to_string();
        assert!(
            !text.contains("planted-9f8e7d") && text.contains("\"info\""),
            "{text}"
        );
        assert_eq!(crate::report::scrub("x planted-9f8e7d y"), "x *** y");
    }

    fn deployment(v: Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_colour_is_named_and_labelled_after_its_pod_template() {
        let rendered = json!({
            "metadata": {"name": "web", "labels": {"a": "b"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "x:1"}]}}},
        });
        let mut one = rendered.clone();
        let label = colour(&mut one, "web");
        assert_eq!(label.len(), 12);
        assert_eq!(one["metadata"]["name"], json!(format!("web-{label}")));
        for at in [
            &one["metadata"]["labels"],
            &one["spec"]["selector"]["matchLabels"],
            &one["spec"]["template"]["metadata"]["labels"],
        ] {
            assert_eq!(at[REVISION_LABEL], json!(label));
        }
        // The same template: the same colour; another image: another.
        let mut again = rendered.clone();
        assert_eq!(colour(&mut again, "web"), label);
        let mut other = rendered;
        other["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
        assert_ne!(colour(&mut other, "web"), label);
        assert_eq!(colour_selector("web", &label)[REVISION_LABEL], label);
    }

    fn base(status: Value) -> Deployment {
        deployment(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "a"}]}}
            },
            "status": status
        }))
    }

    #[test]
    fn rollout_is_judged_as_kubectl_rollout_status_does() {
        let table: &[(&str, Value, Rollout, Option<&str>)] = &[
            (
                "not observed yet",
                json!({"observedGeneration": 1}),
                Rollout::InProgress,
                Some("waiting for the controller"),
            ),
            (
                "deadline exceeded",
                json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}]}),
                Rollout::Failed,
                Some("ProgressDeadlineExceeded: ReplicaSet \"web-1\" has timed out progressing."),
            ),
            (
                "updating",
                json!({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 4, "availableReplicas": 3}),
                Rollout::InProgress,
                Some("1 of 3 updated replicas"),
            ),
            (
                "old pods terminating",
                json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4, "availableReplicas": 3}),
                Rollout::InProgress,
                Some("1 old replicas pending termination"),
            ),
            (
                "not available yet",
                json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2}),
                Rollout::InProgress,
                Some("2 of 3 updated replicas available"),
            ),
            (
                "complete",
                json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}),
                Rollout::Completed,
                None,
            ),
        ];
        for (name, status, rollout, reason) in table {
            let (got, why) = rollout_of(&base(status.clone()));
            assert_eq!(got, *rollout, "{name}");
            match reason {
                Some(r) => assert!(
                    why.as_deref().unwrap_or_default().starts_with(r),
                    "{name}: {why:?}"
                ),
                None => assert_eq!(why, None, "{name}"),
            }
        }
    }

    #[test]
    fn a_template_and_its_replica_set_name_the_same_revision() {
        let template = json!({"metadata": {"labels": {"app": "web", "v": "1"}}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
        // The ReplicaSet's copy has the hash label and its keys in another order.
        let rs = json!({"spec": {"containers": [{"image": "a", "name": "c"}]}, "metadata": {"labels": {"v": "1", "pod-template-hash": "5d8f", "app": "web"}}});
        assert_eq!(revision_of("web", &template), revision_of("web", &rs));
        let other = json!({"metadata": {"labels": {"app": "web", "v": "1"}}, "spec": {"containers": [{"name": "c", "image": "b"}]}});
        assert_ne!(revision_of("web", &template), revision_of("web", &other));
        let r = revision_of("web", &template);
        assert!(r.starts_with("web@") && r.len() == "web@".len() + 12, "{r}");
    }

    #[test]
    fn server_maintained_fields_do_not_count_as_changes() {
        let live = json!({"metadata": {"name": "x", "resourceVersion": "7", "managedFields": [{}], "uid": "u", "generation": 3, "creationTimestamp": "t", "labels": {"a": "b"}}, "spec": {"x": 1}, "status": {"y": 2}});
        let would = json!({"metadata": {"name": "x", "resourceVersion": "8", "labels": {"a": "b"}}, "spec": {"x": 1}});
        assert_eq!(strip_volatile(live.clone()), strip_volatile(would));
        let changed = json!({"metadata": {"name": "x", "labels": {"a": "c"}}, "spec": {"x": 1}});
        assert_ne!(strip_volatile(live), strip_volatile(changed));
    }

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1-abc", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u"}]},
            "spec": {"containers": [{"name": "app", "image": "a"}]},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn a_crashing_pod_is_reported_with_its_reason_exit_code_and_warning() {
        let p = pod(json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "app", "image": "a", "imageID": "", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]
        }));
        assert!(pod_failing(&p));
        let warning: Event = serde_json::from_value(json!({
            "metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "web-1-abc"},
            "reason": "BackOff", "message": "Back-off restarting failed container", "type": "Warning",
            "lastTimestamp": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        let t = pod_problem(&p, &[warning]).unwrap();
        assert_eq!((t.what.as_str(), t.id.as_str()), ("pod", "web-1-abc"));
        assert_eq!(
            t.reason,
            "app: CrashLoopBackOff: back-off 40s; event BackOff: Back-off restarting failed container"
        );
        assert_eq!(
            t.containers,
            vec![("app".into(), Some(137), Some("CrashLoopBackOff".into()))]
        );
    }

    #[test]
    fn ready_pods_are_not_problems_and_unscheduled_ones_say_so() {
        let ready =
            pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}));
        assert!(pod_problem(&ready, &[]).is_none());
        assert!(!pod_failing(&ready));
        let pending = pod(json!({"phase": "Pending"}));
        assert_eq!(pod_problem(&pending, &[]).unwrap().reason, "pod Pending");
        assert!(
            !pod_failing(&pending),
            "pending is not failing: waiting may fix it"
        );
    }

    #[test]
    fn the_view_has_one_deployment_per_replica_set_and_the_current_one_is_primary() {
        let d = base(
            json!({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 4, "availableReplicas": 3}),
        );
        let template = serde_json::to_value(&d.spec.as_ref().unwrap().template).unwrap();
        let mut new_t = template.clone();
        new_t["metadata"]["labels"]["pod-template-hash"] = json!("new");
        let mut old_t = template.clone();
        old_t["spec"]["containers"][0]["image"] = json!("old");
        let rs = |name: &str, t: &Value, replicas: i32, available: i32, rev: &str| -> ReplicaSet {
            serde_json::from_value(json!({
                "metadata": {"name": name, "annotations": {REVISION_ANNOTATION: rev}},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": t},
                "status": {"replicas": replicas, "availableReplicas": available}
            }))
            .unwrap()
        };
        let sets = [
            rs("web-new", &new_t, 1, 0, "2"),
            rs("web-old", &old_t, 3, 3, "1"),
        ];
        let crashing = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "app", "image": "a", "imageID": "", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        );
        let mut crashing = crashing;
        crashing.metadata.owner_references.as_mut().unwrap()[0].name = "web-new".into();
        let v = service_view(&d, &sets, &[crashing], &[]);
        assert_eq!(v.revision, revision_of("web", &template));
        let new = &v.deployments[0];
        assert!(new.primary && !new.rolled_back);
        assert_eq!(
            (
                new.rollout,
                new.desired,
                new.running,
                new.pending,
                new.failed
            ),
            (Rollout::InProgress, 3, 0, 1, 1)
        );
        let old = &v.deployments[1];
        assert!(!old.primary);
        assert_eq!((old.running, old.failed), (3, 0));
    }
}
