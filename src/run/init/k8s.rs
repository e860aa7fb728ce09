//! `init --from k8s:NAMESPACE/DEPLOYMENT`, the pure part: a live app, read ([`LiveApp`]),
//! becomes deploy.yml's text and the templates that reproduce it. Which templates are kept
//! is decided at the edge, by the API server's dry run of the draft's rendering.
//!
//! The templates keep the live objects as they are (without what the server fills in),
//! except what deploy.yml says: the namespace, the app container's image and (when their
//! order allows) its variables and secrets, and the replicas.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::Draft;
use super::ecs::{dns_label, scalar, split_image};
use crate::config::validate::looks_like_secret;
use crate::platform::kubernetes::import::LiveApp;
use crate::platform::kubernetes::strip_volatile;
use crate::render::templates::{
    K8S_CONFIGMAP, K8S_DEPLOYMENT, K8S_HPA, K8S_HTTPROUTE, K8S_INGRESS, K8S_PDB, K8S_RBAC,
    K8S_SERVICE,
};

/// The template id each kind renders from.
pub fn template_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Deployment" => K8S_DEPLOYMENT,
        "Service" => K8S_SERVICE,
        "Ingress" => K8S_INGRESS,
        "HTTPRoute" => K8S_HTTPROUTE,
        "HorizontalPodAutoscaler" => K8S_HPA,
        "PodDisruptionBudget" => K8S_PDB,
        "ConfigMap" => K8S_CONFIGMAP,
        "ServiceAccount" | "Role" | "RoleBinding" => K8S_RBAC,
        _ => return None,
    })
}

/// An object without what the server fills in or keeps for itself: status, the metadata it
/// writes, a Service's cluster IPs, the annotations of `kubectl apply` and of the Deployment
/// controller, and nulls.
pub fn clean(object: &Value) -> Value {
    fn drop_nulls(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.retain(|_, x| !x.is_null());
                o.values_mut().for_each(drop_nulls);
            }
            Value::Array(a) => a.iter_mut().for_each(drop_nulls),
            _ => {}
        }
    }
    let mut v = strip_volatile(object.clone());
    if let Some(meta) = v["metadata"].as_object_mut()
        && let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut)
    {
        a.shift_remove("kubectl.kubernetes.io/last-applied-configuration");
        a.shift_remove("deployment.kubernetes.io/revision");
        if a.is_empty() {
            meta.shift_remove("annotations");
        }
    }
    if let Some(spec) = v["spec"].as_object_mut()
        && object["kind"] == "Service"
    {
        for k in ["clusterIP", "clusterIPs"] {
            spec.shift_remove(k);
        }
    }
    drop_nulls(&mut v);
    v
}

/// YAML of `objects` as one template: template syntax escaped, the `@@NAME@@` placeholders
/// replaced by their expressions.
fn template_text(head: &str, objects: &[Value], exprs: &[(&str, &str)]) -> String {
    let mut out = format!("{head}\n");
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let yaml = crate::render::to_yaml(o).expect("JSON is YAML");
        let mut yaml = yaml
            .replace("{{", "{{ '{{' }}")
            .replace("{%", "{{ '{%' }}")
            .replace("{#", "{{ '{#' }}");
        for (name, expr) in exprs {
            let placeholder = format!("@@{name}@@");
            for form in [
                format!("'{placeholder}'"),
                format!("\"{placeholder}\""),
                placeholder.clone(),
            ] {
                yaml = yaml.replace(&form, expr);
            }
        }
        out.push_str(&yaml);
    }
    out
}

/// The container a deploy puts its image in: the one named like the Deployment, or the
/// first.
fn app_container(deployment: &Value) -> usize {
    let name = deployment["metadata"]["name"].as_str();
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().position(|c| c["name"].as_str() == name))
        .unwrap_or(0)
}

const ENV_LOOP: &str = r#"[{% for e in environment %}{"name": {{ e.name | tojson }}, "value": {{ e.value | tojson }}}{{ ", " if not loop.last or secrets }}{% endfor %}{% for s in secrets %}{"name": {{ s.name | tojson }}, "valueFrom": {"secretKeyRef": {"name": {{ s.secret | tojson }}, "key": {{ s.key | tojson }}}}}{{ ", " if not loop.last }}{% endfor %}]"#;

/// The draft for `live` as environment `env` (of app `app`, by default the Deployment's
/// name), with `region` and `account_id` for deploy.yml's required keys. Pure.
pub fn draft(
    live: &LiveApp,
    env: &str,
    app: Option<&str>,
    region: &str,
    account_id: &str,
) -> Result<Draft, String> {
    let name = live.deployment["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let app = app.map_or_else(|| dns_label(&name), str::to_owned);
    let mut notes = Vec::new();
    let mut deployment = clean(&live.deployment);
    let app_i = app_container(&deployment);
    let pod = &deployment["spec"]["template"]["spec"];
    let main = pod["containers"][app_i].clone();
    if main.is_null() {
        return Err(format!("Deployment {name} has no containers"));
    }
    let container_name = main["name"].as_str().unwrap_or("app").to_owned();
    let image = main["image"].as_str().unwrap_or_default().to_owned();
    let port = main["ports"][0]["containerPort"].as_u64();
    let hpa = live.autoscalers.first();

    // The app container's variables: plain values and Secret references go to deploy.yml
    // when they come values first, then references (the order the template renders); a plain
    // value that looks like a secret becomes a reference either way.
    let mut env_vars: Vec<(String, String)> = Vec::new();
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut literal: Vec<Value> = Vec::new();
    let mut in_order = true;
    for e in main["env"].as_array().into_iter().flatten() {
        let var = e["name"].as_str().unwrap_or_default().to_owned();
        if e.get("valueFrom").is_none() {
            let value = e["value"].as_str().unwrap_or_default();
            if looks_like_secret(&var) {
                let reference = format!("{app}-secrets/{}", dns_label(&var));
                notes.push(format!(
                    "`{var}` of container `{container_name}` is a plain value that looks like a secret: deploy.yml references the Secret {reference} instead; create it (`kubectl create secret generic {app}-secrets --from-literal={}=...` in namespace {}) with the value the Deployment has now (init writes it nowhere)",
                    dns_label(&var),
                    live.namespace
                ));
                literal.push(json!({"name": var, "valueFrom": {"secretKeyRef": {"name": format!("{app}-secrets"), "key": dns_label(&var)}}}));
                secrets.push((var, reference));
                continue;
            }
            if !secrets.is_empty() {
                in_order = false;
            }
            literal.push(e.clone());
            env_vars.push((var, value.to_owned()));
        } else if let (Some(s), Some(k)) = (
            e["valueFrom"]["secretKeyRef"]["name"].as_str(),
            e["valueFrom"]["secretKeyRef"]["key"].as_str(),
        ) {
            literal.push(e.clone());
            secrets.push((var, format!("{s}/{k}")));
        } else {
            // A ConfigMap key, a field of the pod, a resource: kept as it is.
            in_order = false;
            literal.push(e.clone());
        }
    }
    let mut exprs: Vec<(&str, &str)> = vec![
        ("namespace", "{{ kubernetes.namespace }}"),
        ("image", "{{ image | tojson }}"),
        ("replicas", "{{ kubernetes.replicas }}"),
        ("env", ENV_LOOP),
    ];
    if let Some(m) = deployment["metadata"].as_object_mut() {
        m.insert("namespace".into(), json!("@@namespace@@"));
    }
    // deploy.yml's rolling numbers, port and requests drive the template where the live
    // Deployment has them.
    let spec = &mut deployment["spec"];
    for (pointer, name, expr) in [
        (
            "/strategy/rollingUpdate/maxSurge",
            "surge",
            "{{ strategy.max_surge | tojson }}",
        ),
        (
            "/strategy/rollingUpdate/maxUnavailable",
            "unavailable",
            "{{ strategy.max_unavailable | tojson }}",
        ),
        (
            "/progressDeadlineSeconds",
            "deadline",
            "{{ strategy.progress_deadline }}",
        ),
        (
            "/revisionHistoryLimit",
            "history",
            "{{ strategy.revision_history }}",
        ),
    ] {
        if let Some(v) = spec.pointer_mut(pointer) {
            *v = json!(format!("@@{name}@@"));
            exprs.push((name, expr));
        }
    }
    let c = &mut deployment["spec"]["template"]["spec"]["containers"][app_i];
    if port.is_some() {
        c["ports"][0]["containerPort"] = json!("@@port@@");
        exprs.push(("port", "{{ container.port }}"));
    }
    for (key, name, expr) in [
        ("cpu", "cpu", "{{ kubernetes.resources.cpu | tojson }}"),
        (
            "memory",
            "memory",
            "{{ kubernetes.resources.memory | tojson }}",
        ),
    ] {
        if c["resources"]["requests"][key].is_string() {
            c["resources"]["requests"][key] = json!(format!("@@{name}@@"));
            exprs.push((name, expr));
        }
    }
    c["image"] = json!("@@image@@");
    if in_order {
        if c.get("env").is_some() || !env_vars.is_empty() || !secrets.is_empty() {
            c["env"] = json!("@@env@@");
        }
    } else {
        c["env"] = Value::Array(literal);
        notes.push(format!(
            "the variables of container `{container_name}` mix values, references and other sources in an order deploy.yml cannot say: the Deployment's template keeps them as they are (edit them there)"
        ));
        env_vars.clear();
        secrets.clear();
        exprs.retain(|(n, _)| *n != "env");
    }
    // With an HPA the deploy keeps the live count; without, deploy.yml's replicas.
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
    if hpa.is_none() {
        deployment["spec"]["replicas"] = json!("@@replicas@@");
    }

    let namespaced = |o: &Value| {
        let mut o = clean(o);
        if let Some(m) = o["metadata"].as_object_mut() {
            m.insert("namespace".into(), json!("@@namespace@@"));
        }
        o
    };
    let head = |what: &str| {
        format!(
            "{{#- {what}, imported by `movieverse-deploy init` from namespace {}: as the cluster had it, without what the server fills in. -#}}",
            live.namespace
        )
    };
    let mut templates = vec![(
        K8S_DEPLOYMENT,
        "templates/kubernetes/deployment.yaml.j2".to_owned(),
        template_text(&head(&format!("Deployment {name}")), &[deployment], &exprs),
    )];
    let mut add = |id: &'static str, file: &str, what: &str, objects: &[Value]| {
        let text = if objects.is_empty() {
            format!(
                "{{#- {what}: the app has none, so this renders nothing (the built-in template would add one). -#}}\n"
            )
        } else {
            template_text(
                &head(what),
                &objects.iter().map(namespaced).collect::<Vec<_>>(),
                &[
                    ("namespace", "{{ kubernetes.namespace }}"),
                    ("min", "{{ kubernetes.scaling.min }}"),
                    ("max", "{{ kubernetes.scaling.max }}"),
                ],
            )
        };
        templates.push((id, format!("templates/kubernetes/{file}.yaml.j2"), text));
    };
    add(K8S_SERVICE, "service", "The Services", &live.services);
    add(K8S_INGRESS, "ingress", "The Ingresses", &live.ingresses);
    let autoscalers: Vec<Value> = live
        .autoscalers
        .iter()
        .map(|h| {
            let mut h = h.clone();
            h["spec"]["minReplicas"] = json!("@@min@@");
            h["spec"]["maxReplicas"] = json!("@@max@@");
            h
        })
        .collect();
    add(K8S_HPA, "hpa", "The HorizontalPodAutoscaler", &autoscalers);
    add(K8S_PDB, "pdb", "The PodDisruptionBudgets", &live.budgets);
    add(
        K8S_CONFIGMAP,
        "configmap",
        "The ConfigMap of deploy.yml's `config`",
        &[],
    );
    add(
        K8S_RBAC,
        "rbac",
        "The ServiceAccount and Role of the app",
        &[],
    );

    // deploy.yml.
    let (registry, repository) = split_image(&image);
    let ingress = live.ingresses.first();
    let rule = ingress.map(|i| &i["spec"]["rules"][0]);
    let mut head_text = format!(
        "# deploy.yml for {app}, imported by `movieverse-deploy init --from k8s:{}/{name}`.\n# `movieverse-deploy plan --server-dry-run --env {env} --image IMAGE` shows what a deploy\n# of IMAGE would change; with the image it runs now, nothing.\napp: {}\nregion: {}                 # for ECR: where `build` pushes\naccount_id: \"{account_id}\"\n\nimage:\n  repository: {}\n",
        live.namespace,
        scalar(&app),
        scalar(region),
        scalar(&repository)
    );
    if let Some(r) = registry {
        let _ = writeln!(head_text, "  registry: {}", scalar(&r));
    }
    let _ = writeln!(
        head_text,
        "\ncontainer:\n  name: {}",
        scalar(&container_name)
    );
    if let Some(p) = port {
        let _ = writeln!(head_text, "  port: {p}");
    }
    let mut e = format!(
        "\nenvironments:\n  {env}:\n    target: kubernetes\n    kubernetes:\n      namespace: {}\n      replicas: {replicas}\n",
        scalar(&live.namespace)
    );
    let requests = &main["resources"]["requests"];
    if requests["cpu"].is_string() || requests["memory"].is_string() {
        e.push_str("      resources:\n");
        for key in ["cpu", "memory"] {
            if let Some(v) = requests[key].as_str() {
                let _ = writeln!(e, "        {key}: {}", scalar(v));
            }
        }
    }
    e.push_str("      ingress:\n");
    match rule {
        Some(r) => {
            let _ = writeln!(
                e,
                "        host: {}",
                scalar(r["host"].as_str().unwrap_or("example.com"))
            );
            if let Some(c) = ingress.and_then(|i| i["spec"]["ingressClassName"].as_str()) {
                let _ = writeln!(e, "        class: {}", scalar(c));
            }
            if let Some(p) = r["http"]["paths"][0]["path"].as_str() {
                let _ = writeln!(e, "        path: {}", scalar(p));
            }
            if let Some(t) = ingress.and_then(|i| i["spec"]["tls"][0]["secretName"].as_str()) {
                let _ = writeln!(e, "        tls_secret: {}", scalar(t));
            }
        }
        None => {
            let _ = writeln!(
                e,
                "        host: {app}.example.com       # the app has no Ingress; its template renders none"
            );
        }
    }
    if let Some(h) = hpa {
        let s = &h["spec"];
        let _ = writeln!(
            e,
            "      scaling:\n        min: {}\n        max: {}",
            s["minReplicas"].as_u64().unwrap_or(1),
            s["maxReplicas"].as_u64().unwrap_or(1)
        );
        for m in s["metrics"].as_array().into_iter().flatten() {
            let (resource, target) = (
                m["resource"]["name"].as_str(),
                m["resource"]["target"]["averageUtilization"].as_u64(),
            );
            match (resource, target) {
                (Some("cpu"), Some(t)) => {
                    let _ = writeln!(e, "        cpu_target: {t}");
                }
                (Some("memory"), Some(t)) => {
                    let _ = writeln!(e, "        memory_target: {t}");
                }
                _ => {}
            }
        }
    }
    if let Some(n) = live
        .budgets
        .first()
        .and_then(|b| b["spec"]["maxUnavailable"].as_u64())
    {
        let _ = writeln!(e, "      pdb_max_unavailable: {n}");
    }
    let spec = &live.deployment["spec"];
    let rolling = &spec["strategy"]["rollingUpdate"];
    let amount = |v: &Value, default: &str| match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => default.to_owned(),
    };
    let _ = writeln!(
        e,
        "    strategy:\n      rolling:\n        max_surge: {}\n        max_unavailable: {}\n        progress_deadline: {}s\n        revision_history: {}",
        amount(&rolling["maxSurge"], "25%"),
        amount(&rolling["maxUnavailable"], "25%"),
        spec["progressDeadlineSeconds"].as_u64().unwrap_or(600),
        spec["revisionHistoryLimit"].as_u64().unwrap_or(10)
    );
    if !env_vars.is_empty() {
        e.push_str("    env:\n");
        for (k, v) in &env_vars {
            let _ = writeln!(e, "      {k}: {}", scalar(v));
        }
    }
    if !secrets.is_empty() {
        e.push_str("    secrets:                        # Secret name/key, never a value\n");
        for (k, v) in &secrets {
            let _ = writeln!(e, "      {k}: {}", scalar(v));
        }
    }
    Ok(Draft {
        app,
        env: env.to_owned(),
        image,
        templates,
        notes,
        head: head_text,
        environment: e,
        why: "# The live app differs from the built-in templates here: these reproduce it (an\n# empty one renders nothing the app does not have). Remove one to use the built-in template\n# (`plan --server-dry-run` shows what would change).",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys an imported template keeps come in the order the cluster gave them, whatever
    /// the server had filled in: a Deployment read before and after its controller wrote the
    /// revision annotation imports the same text. (A swap-removing `Map::remove` moved
    /// `labels` after `name` when the annotation was not there yet: a CI run met it.)
    #[test]
    fn what_the_server_fills_in_goes_without_moving_the_rest() {
        let read = |annotated: bool| {
            let mut meta = serde_json::Map::new();
            if annotated {
                meta.insert(
                    "annotations".into(),
                    json!({"deployment.kubernetes.io/revision": "1"}),
                );
            }
            for (k, v) in [
                ("creationTimestamp", json!("2026-12-03T14:00:00Z")),
                ("generation", json!(1)),
                ("labels", json!({"app": "web"})),
                ("managedFields", json!([])),
                ("name", json!("web")),
                ("namespace", json!("shop")),
                ("resourceVersion", json!("7")),
                ("uid", json!("u")),
            ] {
                meta.insert(k.into(), v);
            }
            let o = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                           "spec": {"replicas": 1}, "status": {"replicas": 1}});
            let cleaned = clean(&o);
            let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            (keys(&cleaned), keys(&cleaned["metadata"]))
        };
        let want = (
            vec![
                "apiVersion".to_owned(),
                "kind".into(),
                "metadata".into(),
                "spec".into(),
            ],
            vec!["labels".to_owned(), "name".into(), "namespace".into()],
        );
        assert_eq!(read(false), want);
        assert_eq!(read(true), want);
    }

    fn app(env: &Value) -> LiveApp {
        LiveApp {
            namespace: "shop".into(),
            deployment: json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                             "annotations": {"deployment.kubernetes.io/revision": "3"}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                                      "spec": {"containers": [{"name": "web", "image": "r.test/web:1", "env": env}]}}},
                "status": {"replicas": 2}
            }),
            services: vec![],
            ingresses: vec![],
            autoscalers: vec![],
            budgets: vec![],
        }
    }

    #[test]
    fn a_plain_secret_becomes_a_reference_and_its_value_is_written_nowhere() {
        let live = app(
            &json!([{"name": "LOG_LEVEL", "value": "info"}, {"name": "API_TOKEN", "value": "planted-value-123"}]),
        );
        let d = draft(&live, "production", None, "us-east-1", "123456789012").unwrap();
        let written = d.config(&[]) + &d.templates.iter().map(|t| t.2.clone()).collect::<String>();
        assert!(!written.contains("planted-value-123"), "{written}");
        assert!(
            d.config(&[])
                .contains("      API_TOKEN: web-secrets/api-token\n"),
            "{}",
            d.config(&[])
        );
        assert!(
            d.notes[0].contains(
                "`API_TOKEN` of container `web` is a plain value that looks like a secret"
            )
        );
        // The server's own fields are gone; the namespace is deploy.yml's.
        let deployment = &d.templates[0].2;
        for gone in [
            "uid",
            "resourceVersion",
            "revision",
            "status",
            "creationTimestamp",
        ] {
            assert!(!deployment.contains(gone), "{gone}\n{deployment}");
        }
        assert!(
            deployment.contains("namespace: {{ kubernetes.namespace }}"),
            "{deployment}"
        );
    }

    #[test]
    fn variables_in_an_order_deploy_yml_cannot_say_stay_in_the_template() {
        let live = app(&json!([
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
            {"name": "LOG_LEVEL", "value": "info"}
        ]));
        let d = draft(&live, "production", None, "us-east-1", "123456789012").unwrap();
        assert!(!d.config(&[]).contains("    env:"), "{}", d.config(&[]));
        assert!(
            d.templates[0].2.contains("name: LOG_LEVEL"),
            "{}",
            d.templates[0].2
        );
        assert!(
            d.notes
                .iter()
                .any(|n| n.contains("in an order deploy.yml cannot say"))
        );
    }
}
