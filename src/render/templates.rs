//! The default templates, embedded in the binary. Each has a stable id (what deploy.yml's
//! `templates:` overrides by) and the path of its source in the repository.

/// One built-in template.
pub struct Builtin {
    pub id: &'static str,
    /// The source path in this repository, shown in messages about built-in templates.
    pub path: &'static str,
    pub source: &'static str,
}

macro_rules! builtin {
    ($id:literal) => {
        Builtin {
            id: $id,
            path: concat!("templates/", $id, ".j2"),
            source: include_str!(concat!("../../templates/", $id, ".j2")),
        }
    };
}

pub const ECS_TASK_DEFINITION: &str = "ecs/task-definition.json";
pub const ECS_SERVICE: &str = "ecs/service.json";
pub const ECS_APPSPEC: &str = "ecs/appspec.yaml";
pub const ECS_SCALING: &str = "ecs/scaling.json";
pub const K8S_RBAC: &str = "kubernetes/rbac.yaml";
pub const K8S_CONFIGMAP: &str = "kubernetes/configmap.yaml";
pub const K8S_DEPLOYMENT: &str = "kubernetes/deployment.yaml";
pub const K8S_SERVICE: &str = "kubernetes/service.yaml";
pub const K8S_INGRESS: &str = "kubernetes/ingress.yaml";
pub const K8S_HTTPROUTE: &str = "kubernetes/httproute.yaml";
pub const K8S_HPA: &str = "kubernetes/hpa.yaml";
pub const K8S_PDB: &str = "kubernetes/pdb.yaml";

pub const BUILTINS: &[Builtin] = &[
    builtin!("ecs/task-definition.json"),
    builtin!("ecs/service.json"),
    builtin!("ecs/appspec.yaml"),
    builtin!("ecs/scaling.json"),
    builtin!("kubernetes/rbac.yaml"),
    builtin!("kubernetes/configmap.yaml"),
    builtin!("kubernetes/deployment.yaml"),
    builtin!("kubernetes/service.yaml"),
    builtin!("kubernetes/ingress.yaml"),
    builtin!("kubernetes/httproute.yaml"),
    builtin!("kubernetes/hpa.yaml"),
    builtin!("kubernetes/pdb.yaml"),
];

/// Every template id, in rendering order.
pub const TEMPLATE_IDS: &[&str] = &[
    ECS_TASK_DEFINITION,
    ECS_SERVICE,
    ECS_APPSPEC,
    ECS_SCALING,
    K8S_RBAC,
    K8S_CONFIGMAP,
    K8S_DEPLOYMENT,
    K8S_SERVICE,
    K8S_INGRESS,
    K8S_HTTPROUTE,
    K8S_HPA,
    K8S_PDB,
];

pub fn builtin(id: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_a_builtin_and_every_builtin_parses() {
        assert_eq!(BUILTINS.len(), TEMPLATE_IDS.len());
        let mut env = minijinja::Environment::new();
        for id in TEMPLATE_IDS {
            let b = builtin(id).unwrap_or_else(|| panic!("no builtin for {id}"));
            env.add_template(b.id, b.source)
                .unwrap_or_else(|e| panic!("{}: {e:#}", b.path));
        }
    }
}
