//! What `verify` reads of a cluster before a deploy: the namespace, the objects the router
//! needs (an `IngressClass`, or the Gateway API's CRD and a Gateway), the Secrets referenced
//! (their metadata only, never their data), and whether the current user may do each thing
//! a deploy does (`SelfSubjectAccessReview`). Reads only; which permissions a deploy needs
//! is pure ([`needed`]).

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::discovery::Scope;
use serde_json::Value;

use super::{Kubernetes, classify};
use crate::platform::observation::PlatformError;

/// A resource a deploy touches: its API group, plural name and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub plural: String,
    pub namespaced: bool,
}

impl Resource {
    fn new(group: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_owned(),
            plural: plural.to_owned(),
            namespaced,
        }
    }

    /// `deployments.apps`, `services`: as `kubectl auth can-i` names it.
    pub fn display(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// One thing a deploy does: a verb on a resource (or one of its subresources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub verb: &'static str,
    pub resource: Resource,
    pub subresource: Option<&'static str>,
}

/// Every permission a deploy of these rendered resources needs, in order, each once: to read,
/// create and server-side apply each of them; to watch its Deployments roll (their
/// `ReplicaSets`, Pods and Events); to scale and delete Deployments (a canary's, the colour a
/// blue-green left); and to create the namespace when deploy.yml lets it. Pure.
pub fn needed(rendered: &[Resource], create_namespace: bool) -> Vec<Permission> {
    let mut out: Vec<Permission> = Vec::new();
    let mut add = |verb: &'static str, resource: Resource, subresource: Option<&'static str>| {
        let p = Permission {
            verb,
            resource,
            subresource,
        };
        if !out.contains(&p) {
            out.push(p);
        }
    };
    if create_namespace {
        add("create", Resource::new("", "namespaces", false), None);
    }
    add("get", Resource::new("", "namespaces", false), None);
    for r in rendered {
        for verb in ["get", "create", "patch"] {
            add(verb, r.clone(), None);
        }
    }
    let deployments = Resource::new("apps", "deployments", true);
    for verb in ["list", "watch", "delete"] {
        add(verb, deployments.clone(), None);
    }
    add("patch", deployments, Some("scale"));
    for r in [
        Resource::new("apps", "replicasets", true),
        Resource::new("", "pods", true),
    ] {
        for verb in ["get", "list", "watch"] {
            add(verb, r.clone(), None);
        }
    }
    add("list", Resource::new("", "events", true), None);
    // The deploy's lease (`platform::lease`).
    for verb in ["get", "create", "update", "delete"] {
        add(
            verb,
            Resource::new("coordination.k8s.io", "leases", true),
            None,
        );
    }
    out
}

impl Kubernetes {
    /// Whether the environment's namespace exists.
    pub async fn namespace_present(&self) -> Result<bool, PlatformError> {
        self.namespace_exists().await
    }

    /// The resource of a rendered manifest's kind, discovered as `apply` discovers it.
    pub async fn resource_of(&self, manifest: &Value) -> Result<Resource, PlatformError> {
        let (resource, scope) = self
            .discover(
                manifest["apiVersion"].as_str().unwrap_or_default(),
                manifest["kind"].as_str().unwrap_or_default(),
            )
            .await?;
        Ok(Resource::new(
            &resource.group,
            &resource.plural,
            matches!(scope, Scope::Namespaced),
        ))
    }

    pub async fn ingress_class_exists(&self, name: &str) -> Result<bool, PlatformError> {
        let api: Api<IngressClass> = Api::all(self.client.clone());
        Ok(api
            .get_opt(name)
            .await
            .map_err(|e| classify(&format!("read IngressClass {name}"), &e))?
            .is_some())
    }

    pub async fn crd_exists(&self, name: &str) -> Result<bool, PlatformError> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        Ok(api
            .get_opt(name)
            .await
            .map_err(|e| classify(&format!("read CustomResourceDefinition {name}"), &e))?
            .is_some())
    }

    /// Whether Secret `name` exists in the namespace: its metadata is read, never its data.
    pub async fn secret_exists(&self, name: &str) -> Result<bool, PlatformError> {
        let api: Api<Secret> = self.api();
        Ok(api
            .get_metadata_opt(name)
            .await
            .map_err(|e| classify(&format!("read Secret {name}"), &e))?
            .is_some())
    }

    /// Whether the current user may do `p` in the namespace (`SelfSubjectAccessReview`).
    pub async fn may(&self, p: &Permission) -> Result<bool, PlatformError> {
        // Reading the app's own namespace is asked by name: RBAC grants it to a RoleBinding
        // in that namespace (`view`, `edit`), where `get namespaces` cluster-wide is denied.
        let own_namespace =
            p.resource.group.is_empty() && p.resource.plural == "namespaces" && p.verb != "create";
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(p.resource.group.clone()),
                    resource: Some(p.resource.plural.clone()),
                    subresource: p.subresource.map(str::to_owned),
                    verb: Some(p.verb.to_owned()),
                    namespace: (p.resource.namespaced || own_namespace)
                        .then(|| self.namespace.clone()),
                    name: own_namespace.then(|| self.namespace.clone()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| classify("create SelfSubjectAccessReview", &e))?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_needs_to_apply_what_it_renders_and_watch_its_deployments() {
        let rendered = [
            Resource::new("apps", "deployments", true),
            Resource::new("", "services", true),
        ];
        let needed = needed(&rendered, true);
        let has = |verb: &str, plural: &str, sub: Option<&str>| {
            needed
                .iter()
                .any(|p| p.verb == verb && p.resource.plural == plural && p.subresource == sub)
        };
        assert!(has("create", "namespaces", None));
        assert!(has("patch", "services", None));
        assert!(has("patch", "deployments", Some("scale")));
        assert!(has("watch", "pods", None));
        let deployments_get = needed
            .iter()
            .filter(|p| p.verb == "get" && p.resource.plural == "deployments")
            .count();
        assert_eq!(deployments_get, 1);
        assert!(
            !super::needed(&rendered, false)
                .iter()
                .any(|p| p.verb == "create" && p.resource.plural == "namespaces")
        );
    }
}
