//! Kubernetes rules for rendered manifests. Each document deserializes into the official typed
//! API object (k8s-openapi); a field the typed object does not know is an error (the API server
//! would drop or reject it); names, labels and cross-references are checked across the set.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Artifact;
use crate::config::validate::{is_dns_label, is_dns_subdomain};
use crate::diag::Diagnostic;

/// A rendered manifest, typed.
#[derive(Debug, Clone)]
pub enum Object {
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    Ingress(Box<Ingress>),
    Hpa(Box<HorizontalPodAutoscaler>),
    Pdb(Box<PodDisruptionBudget>),
    ConfigMap(Box<ConfigMap>),
    ServiceAccount(Box<ServiceAccount>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
    Namespace(Box<Namespace>),
    /// Gateway API: no typed object here; its CRD's schema is the API server's to check.
    HttpRoute(Box<Value>),
}

/// The kinds a template may render (apiVersion, kind).
pub const KINDS: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "Namespace"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
];

/// Deserializes `value` as `T` and reports fields the typed object dropped (unknown fields).
fn typed<T: DeserializeOwned + serde::Serialize>(value: &Value) -> Result<T, (String, String)> {
    let obj: T = serde_path_to_error::deserialize(value)
        .map_err(|e| (e.path().to_string(), e.inner().to_string()))?;
    let round = serde_json::to_value(&obj).map_err(|e| (String::new(), e.to_string()))?;
    if let Some(path) = dropped(value, &round, "") {
        return Err((
            path.clone(),
            format!(
                "unknown field `{}`",
                path.rsplit('.').next().unwrap_or(&path)
            ),
        ));
    }
    Ok(obj)
}

/// The first path present in `original` but absent from `round` (a field the type ignored).
fn dropped(original: &Value, round: &Value, at: &str) -> Option<String> {
    match (original, round) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| {
            let p = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match b.get(k) {
                Some(w) => dropped(v, w, &p),
                // An empty value the typed object leaves out is not a loss.
                None if v.is_null() || v.as_object().is_some_and(serde_json::Map::is_empty) => None,
                None => Some(p),
            }
        }),
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| dropped(v, w, &format!("{at}[{i}]"))),
        _ => None,
    }
}

pub fn parse(value: &Value) -> Result<Object, (String, String)> {
    let api = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    if !KINDS.contains(&(api, kind)) {
        return Err((
            "kind".into(),
            format!(
                "`{api}` `{kind}` is not a kind this tool renders; supported: {}",
                KINDS
                    .iter()
                    .map(|(a, k)| format!("{a} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(match kind {
        "Deployment" => Object::Deployment(Box::new(typed(value)?)),
        "Service" => Object::Service(Box::new(typed(value)?)),
        "Ingress" => Object::Ingress(Box::new(typed(value)?)),
        "HorizontalPodAutoscaler" => Object::Hpa(Box::new(typed(value)?)),
        "PodDisruptionBudget" => Object::Pdb(Box::new(typed(value)?)),
        "ConfigMap" => Object::ConfigMap(Box::new(typed(value)?)),
        "ServiceAccount" => Object::ServiceAccount(Box::new(typed(value)?)),
        "Role" => Object::Role(Box::new(typed(value)?)),
        "RoleBinding" => Object::RoleBinding(Box::new(typed(value)?)),
        "HTTPRoute" => {
            if value["spec"]["parentRefs"]
                .as_array()
                .is_none_or(Vec::is_empty)
            {
                return Err((
                    "spec.parentRefs".into(),
                    "the HTTPRoute attaches to no Gateway (`spec.parentRefs` is empty)".into(),
                ));
            }
            Object::HttpRoute(Box::new(value.clone()))
        }
        _ => Object::Namespace(Box::new(typed(value)?)),
    })
}

/// Label keys: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = key
        .rsplit_once('/')
        .map_or((None, key), |(p, n)| (Some(p), n));
    prefix.is_none_or(is_dns_subdomain) && is_label_value(name) && !name.is_empty()
}

/// Label values: at most 63 characters, alphanumerics with `-`, `_`, `.` inside.
pub fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && v.as_bytes()[0].is_ascii_alphanumeric()
            && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric())
}

fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `router_selects`: the Services' selectors are the rollout router's (a blue-green), so a
/// Service without one fronts the rendered Deployment.
pub fn validate(
    artifacts: &[Artifact],
    file_of: &dyn Fn(&str) -> PathBuf,
    router_selects: bool,
) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut objects = Vec::new();
    for a in artifacts {
        let err = |path: &str, msg: String, help: &str| {
            Diagnostic::new(file_of(a.template), format!("{}: {msg}", a.name))
                .path(path)
                .help(help)
        };
        match parse(&a.value) {
            Ok(obj) => {
                let meta = &a.value["metadata"];
                let name = meta["name"].as_str().unwrap_or_default();
                let ok = match a.value["kind"].as_str() {
                    Some("Service" | "Namespace") => is_dns_label(name, 63) && name.as_bytes()[0].is_ascii_lowercase(),
                    _ => is_dns_subdomain(name),
                };
                if !ok {
                    problems.push(err("metadata.name", format!("`{name}` is not a valid Kubernetes name"), "use lowercase letters, digits and `-` (Services: at most 63, starting with a letter)"));
                }
                for (k, v) in meta["labels"].as_object().into_iter().flatten() {
                    if !is_label_key(k) || !v.as_str().is_some_and(is_label_value) {
                        problems.push(err(&format!("metadata.labels.{k}"), format!("label `{k}: {v}` is not valid"), "label keys are [prefix/]name and values at most 63 alphanumerics, `-`, `_`, `.`"));
                    }
                }
                objects.push((a, obj));
            }
            Err((path, msg)) => problems.push(err(&path, msg, "fix the manifest so it is a valid object of its kind (see the Kubernetes API reference)")),
        }
    }
    if problems.is_empty() {
        problems.extend(cross_references(&objects, file_of, router_selects));
    }
    problems
}

/// What a Deployment's pods look like, for the selector and port checks.
struct Pods {
    labels: BTreeMap<String, String>,
    ports: Vec<u16>,
    port_names: Vec<String>,
}

/// Selectors select, references resolve, and everything lives in one namespace.
fn cross_references(
    objects: &[(&Artifact, Object)],
    file_of: &dyn Fn(&str) -> PathBuf,
    router_selects: bool,
) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut pods: Vec<Pods> = Vec::new();
    let mut services: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let mut names: Vec<(&str, String)> = Vec::new();
    let mut namespaces: Vec<(&Artifact, String)> = Vec::new();
    for (a, o) in objects {
        let kind = a.value["kind"].as_str().unwrap_or_default();
        names.push((
            kind,
            a.value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
        if kind != "Namespace" {
            namespaces.push((
                a,
                a.value["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
        match o {
            Object::Deployment(d) => {
                let spec = d.spec.as_ref();
                let selector = spec
                    .and_then(|s| s.selector.match_labels.clone())
                    .unwrap_or_default();
                let labels = spec
                    .and_then(|s| s.template.metadata.as_ref())
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                if !matches(&selector, &labels) {
                    problems.push(Diagnostic::new(file_of(a.template), format!("{}: the selector does not match the pod template labels", a.name))
                        .path("spec.selector.matchLabels")
                        .help("every selector label must be on spec.template.metadata.labels, or the Deployment owns no pods"));
                }
                let containers = spec
                    .and_then(|s| s.template.spec.as_ref())
                    .map(|p| p.containers.clone())
                    .unwrap_or_default();
                let ports = containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .filter_map(|p| u16::try_from(p.container_port).ok())
                    .collect();
                let port_names = containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .filter_map(|p| p.name.clone())
                    .collect();
                pods.push(Pods {
                    labels,
                    ports,
                    port_names,
                });
            }
            Object::Service(s) => {
                services.insert(
                    s.metadata.name.clone().unwrap_or_default(),
                    s.spec
                        .iter()
                        .flat_map(|sp| sp.ports.iter().flatten())
                        .map(|p| p.port)
                        .collect(),
                );
            }
            _ => {}
        }
    }
    let has = |kind: &str, name: &str| names.iter().any(|(k, n)| *k == kind && n == name);
    if let Some((first, ns)) = namespaces.first() {
        for (a, other) in &namespaces {
            if other != ns {
                problems.push(
                    Diagnostic::new(
                        file_of(a.template),
                        format!(
                            "{}: namespace `{other}` differs from `{ns}` of {}",
                            a.name, first.name
                        ),
                    )
                    .path("metadata.namespace")
                    .help("render every object of an environment into its namespace"),
                );
            }
        }
    }
    for (a, o) in objects {
        let err = |path: &str, msg: String, help: String| {
            Diagnostic::new(file_of(a.template), format!("{}: {msg}", a.name))
                .path(path)
                .help(help)
        };
        match o {
            Object::Service(s) => {
                let selector = s.spec.as_ref().and_then(|sp| sp.selector.clone());
                let found = match &selector {
                    None if router_selects => pods.first(),
                    _ => {
                        let selector = selector.unwrap_or_default();
                        pods.iter().find(|p| matches(&selector, &p.labels))
                    }
                };
                match found {
                    None => problems.push(err(
                        "spec.selector",
                        "the selector matches no rendered Deployment's pods".into(),
                        "use the pod template labels of the Deployment this Service fronts".into(),
                    )),
                    Some(Pods {
                        ports, port_names, ..
                    }) => {
                        for (i, p) in s
                            .spec
                            .iter()
                            .flat_map(|sp| sp.ports.iter().flatten())
                            .enumerate()
                        {
                            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
                            let ok = match &p.target_port {
                                Some(IntOrString::Int(n)) => {
                                    u16::try_from(*n).is_ok_and(|n| ports.contains(&n))
                                }
                                Some(IntOrString::String(name)) => port_names.contains(name),
                                None => u16::try_from(p.port).is_ok_and(|n| ports.contains(&n)),
                            };
                            if !ok {
                                problems.push(err(&format!("spec.ports[{i}].targetPort"), "the target port is not a port of the selected pods".into(), format!("use a containerPort of the pods: {ports:?} or a port name: {port_names:?}")));
                            }
                        }
                    }
                }
            }
            Object::Ingress(ing) => {
                for (i, rule) in ing
                    .spec
                    .iter()
                    .flat_map(|s| s.rules.iter().flatten())
                    .enumerate()
                {
                    for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                        if let Some(svc) = &path.backend.service {
                            let at = format!("spec.rules[{i}].http.paths[{j}].backend.service");
                            match services.get(&svc.name) {
                                None => problems.push(err(
                                    &at,
                                    format!("the backend Service `{}` is not rendered", svc.name),
                                    format!(
                                        "use one of: {}",
                                        services.keys().cloned().collect::<Vec<_>>().join(", ")
                                    ),
                                )),
                                Some(ports) => {
                                    let number = svc.port.as_ref().and_then(|p| p.number);
                                    if number.is_some_and(|n| !ports.contains(&n)) {
                                        problems.push(err(
                                            &at,
                                            format!(
                                                "Service `{}` has no port {}",
                                                svc.name,
                                                number.unwrap_or(0)
                                            ),
                                            format!("use one of its ports: {ports:?}"),
                                        ));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Object::Hpa(h) => {
                let target = h.spec.as_ref().map(|s| &s.scale_target_ref);
                if let Some(t) = target
                    && (t.kind != "Deployment" || !has("Deployment", &t.name))
                {
                    problems.push(err(
                        "spec.scaleTargetRef",
                        format!(
                            "the scale target {} `{}` is not a rendered Deployment",
                            t.kind, t.name
                        ),
                        "point it at the stable Deployment".into(),
                    ));
                }
            }
            Object::Pdb(p) => {
                let selector = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .and_then(|s| s.match_labels.clone())
                    .unwrap_or_default();
                if !pods.iter().any(|p| matches(&selector, &p.labels)) {
                    problems.push(err(
                        "spec.selector",
                        "the selector matches no rendered Deployment's pods".into(),
                        "use the stable Deployment's pod labels".into(),
                    ));
                }
            }
            Object::RoleBinding(rb) => {
                if rb.role_ref.kind == "Role" && !has("Role", &rb.role_ref.name) {
                    problems.push(err(
                        "roleRef",
                        format!("Role `{}` is not rendered", rb.role_ref.name),
                        "bind the Role rendered beside it".into(),
                    ));
                }
                for (i, s) in rb.subjects.iter().flatten().enumerate() {
                    if s.kind == "ServiceAccount" && !has("ServiceAccount", &s.name) {
                        problems.push(err(
                            &format!("subjects[{i}]"),
                            format!("ServiceAccount `{}` is not rendered", s.name),
                            "bind the app's ServiceAccount".into(),
                        ));
                    }
                }
            }
            Object::Deployment(d) => {
                let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
                if let Some(sa) = pod.and_then(|p| p.service_account_name.as_ref())
                    && !has("ServiceAccount", sa)
                {
                    problems.push(err(
                        "spec.template.spec.serviceAccountName",
                        format!("ServiceAccount `{sa}` is not rendered"),
                        "render it (kubernetes/rbac.yaml) or remove the reference".into(),
                    ));
                }
                for c in pod.map(|p| p.containers.clone()).unwrap_or_default() {
                    for from in c.env_from.iter().flatten() {
                        if let Some(cm) = from.config_map_ref.as_ref()
                            && !has("ConfigMap", &cm.name)
                            && cm.optional != Some(true)
                        {
                            problems.push(err(
                                "spec.template.spec.containers.envFrom",
                                format!("ConfigMap `{}` is not rendered", cm.name),
                                "render it (kubernetes/configmap.yaml)".into(),
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    problems
}

/// One line for `plan`.
pub fn summarize(v: &Value) -> String {
    let kind = v["kind"].as_str().unwrap_or("?");
    let name = v["metadata"]["name"].as_str().unwrap_or("?");
    let spec = &v["spec"];
    let detail = match kind {
        "Deployment" => {
            let image = spec["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("?");
            let strategy = &spec["strategy"]["rollingUpdate"];
            format!(
                "{} replica(s), surge {} / unavailable {}, image {image}",
                spec["replicas"], strategy["maxSurge"], strategy["maxUnavailable"]
            )
        }
        "Service" => format!(
            "port {} -> {}",
            spec["ports"][0]["port"],
            spec["ports"][0]["targetPort"]
                .as_str()
                .map_or_else(|| spec["ports"][0]["targetPort"].to_string(), str::to_owned)
        ),
        "Ingress" => {
            let ann = &v["metadata"]["annotations"];
            let canary = ann["nginx.ingress.kubernetes.io/canary"] == "true";
            let host = spec["rules"][0]["host"].as_str().unwrap_or("?");
            if canary {
                match ann["nginx.ingress.kubernetes.io/canary-weight"].as_str() {
                    Some(w) => format!(
                        "{host}, NGINX canary weight {w} (set in the template: a re-apply resets it)"
                    ),
                    None => format!(
                        "{host}, NGINX canary (the weight is the rollout's, never re-applied)"
                    ),
                }
            } else {
                format!(
                    "{host} -> {}",
                    spec["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
                        .as_str()
                        .unwrap_or("?")
                )
            }
        }
        "HorizontalPodAutoscaler" => {
            let targets: Vec<String> = spec["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    format!(
                        "{} {}%",
                        m["resource"]["name"].as_str().unwrap_or("?"),
                        m["resource"]["target"]["averageUtilization"]
                    )
                })
                .collect();
            format!(
                "{}..{} replicas; {}",
                spec["minReplicas"],
                spec["maxReplicas"],
                targets.join(", ")
            )
        }
        "PodDisruptionBudget" => format!("max unavailable {}", spec["maxUnavailable"]),
        "ConfigMap" => format!(
            "{} key(s)",
            v["data"].as_object().map_or(0, serde_json::Map::len)
        ),
        "Role" => {
            let resources: Vec<&str> = v["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| {
                    r["resources"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                })
                .collect();
            format!("read {}", resources.join(", "))
        }
        "RoleBinding" => format!(
            "{} -> {}",
            v["roleRef"]["name"].as_str().unwrap_or("?"),
            v["subjects"][0]["name"].as_str().unwrap_or("?")
        ),
        "HTTPRoute" => {
            let parent = &spec["parentRefs"][0];
            let gateway = match parent["namespace"].as_str() {
                Some(ns) => format!("{ns}/{}", parent["name"].as_str().unwrap_or("?")),
                None => parent["name"].as_str().unwrap_or("?").to_owned(),
            };
            let host = spec["hostnames"][0].as_str().unwrap_or("*");
            if spec["rules"].is_null() {
                format!("{host} via Gateway {gateway}, backends and weights set by the rollout")
            } else {
                format!("{host} via Gateway {gateway}")
            }
        }
        _ => String::new(),
    };
    if detail.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {name}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_caught() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}, "dta": {}});
        assert!(parse(&v).is_ok(), "an empty unknown map is not a loss");
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "lables": {"x": "y"}}});
        let (path, msg) = parse(&v).unwrap_err();
        assert_eq!(path, "metadata.lables");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": {"replicas": "five", "selector": {}, "template": {}}});
        let (path, _) = parse(&v).unwrap_err();
        assert_eq!(path, "spec.replicas");
    }

    #[test]
    fn labels() {
        assert!(is_label_key("app.kubernetes.io/name") && is_label_key("track"));
        assert!(!is_label_key("bad key") && !is_label_value("-x") && is_label_value(""));
    }
}
