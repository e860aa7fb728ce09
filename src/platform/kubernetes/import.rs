//! An app read whole, for `init --from k8s:NAMESPACE/DEPLOYMENT`: the Deployment and the
//! Services, Ingresses, `HorizontalPodAutoscalers` and `PodDisruptionBudgets` that belong to
//! it (a Service selecting its pods, an Ingress routing to such a Service, an HPA scaling it,
//! a PDB selecting its pods), as JSON. Reads only.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::{Kubernetes, classify};
use crate::platform::observation::{ErrorKind, PlatformError};

/// A live app on Kubernetes, read.
#[derive(Debug, Clone)]
pub struct LiveApp {
    pub namespace: String,
    pub deployment: Value,
    pub services: Vec<Value>,
    pub ingresses: Vec<Value>,
    pub autoscalers: Vec<Value>,
    pub budgets: Vec<Value>,
}

/// Whether every `key: value` of `selector` is among `labels` (an empty selector selects
/// nothing here: it would select every pod).
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The Service names an Ingress routes to.
fn backends(ingress: &Value) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    out.extend(ingress["spec"]["defaultBackend"]["service"]["name"].as_str());
    for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
        for path in rule["http"]["paths"].as_array().into_iter().flatten() {
            out.extend(path["backend"]["service"]["name"].as_str());
        }
    }
    out
}

fn json<T: serde::Serialize>(objects: Vec<T>) -> Vec<Value> {
    objects
        .into_iter()
        .map(|o| serde_json::to_value(o).expect("objects serialize"))
        .collect()
}

impl Kubernetes {
    /// Reads Deployment `name` of the namespace and what belongs to it.
    pub async fn read_app(&self, name: &str) -> Result<LiveApp, PlatformError> {
        let deployment = self
            .api::<Deployment>()
            .get_opt(name)
            .await
            .map_err(|e| classify(&format!("read Deployment {name}"), &e))?
            .ok_or_else(|| {
                PlatformError::new(
                    ErrorKind::NotFound,
                    format!("read Deployment {name}"),
                    format!(
                        "Deployment {name} does not exist in namespace {}",
                        self.namespace
                    ),
                )
            })?;
        let deployment = serde_json::to_value(deployment).expect("objects serialize");
        let pods = &deployment["spec"]["template"]["metadata"]["labels"];
        let all = ListParams::default();
        let list = |what: &str, e: &kube::Error| classify(&format!("list {what}"), e);
        let services: Vec<Value> = json(
            self.api::<Service>()
                .list(&all)
                .await
                .map_err(|e| list("Services", &e))?
                .items,
        )
        .into_iter()
        .filter(|s| selects(&s["spec"]["selector"], pods))
        .collect();
        let names: Vec<&str> = services
            .iter()
            .filter_map(|s| s["metadata"]["name"].as_str())
            .collect();
        let ingresses: Vec<Value> = json(
            Api::<Ingress>::namespaced(self.client.clone(), &self.namespace)
                .list(&all)
                .await
                .map_err(|e| list("Ingresses", &e))?
                .items,
        )
        .into_iter()
        .filter(|i| backends(i).iter().any(|b| names.contains(b)))
        .collect();
        let autoscalers = json(
            self.api::<HorizontalPodAutoscaler>()
                .list(&all)
                .await
                .map_err(|e| list("HorizontalPodAutoscalers", &e))?
                .items,
        )
        .into_iter()
        .filter(|h| {
            h["spec"]["scaleTargetRef"]["kind"] == "Deployment"
                && h["spec"]["scaleTargetRef"]["name"] == name
        })
        .collect();
        let budgets = json(
            self.api::<PodDisruptionBudget>()
                .list(&all)
                .await
                .map_err(|e| list("PodDisruptionBudgets", &e))?
                .items,
        )
        .into_iter()
        .filter(|p| selects(&p["spec"]["selector"]["matchLabels"], pods))
        .collect();
        Ok(LiveApp {
            namespace: self.namespace.clone(),
            deployment,
            services,
            ingresses,
            autoscalers,
            budgets,
        })
    }
}
