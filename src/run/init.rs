//! `init` without `--from`: a commented deploy.yml for one environment, from flags or
//! defaults, that passes `plan` as written (#15, first part). The text is made by a pure
//! function ([`skeleton`]) and checked with the same loader `plan` uses before it is written:
//! a skeleton that did not load would be this tool's bug, and is never written.

use std::path::Path;

use super::{Error, print_out};
use crate::cli::{InitArgs, InitTarget};

/// The head of every skeleton: the app, its image and container.
const HEAD: &str = r#"# deploy.yml for @APP@, written by `movieverse-deploy init`.
# `movieverse-deploy plan --env @ENV@` shows what a deploy would do, and
# `movieverse-deploy schema` describes every key. Values marked `# replace` are
# placeholders: put yours in before the first deploy.
app: @APP@
region: @REGION@
account_id: "@ACCOUNT@"          # replace: your 12-digit AWS account id

image:
  repository: @APP@               # the ECR repository `build` pushes to
  # create_repository: true       # let `build` create it when it is missing

container:
  port: 8080                      # the port the application listens on
  health_check:
    path: /health                 # answers 200 once the application is ready

environments:
  @ENV@:
"#;

/// The environment on ECS.
const ECS: &str = r"    target: ecs
    ecs:
      cluster: @APP@-@ENV@          # replace: the ECS cluster
      service: @APP@                # replace: the service (this tool updates it; create it first)
      cpu: 256                      # Fargate CPU units, and a memory that pairs with them
      memory: 512
      desired_count: 2
      execution_role_arn: arn:aws:iam::@ACCOUNT@:role/@APP@-task-execution   # replace
      task_role_arn: arn:aws:iam::@ACCOUNT@:role/@APP@-task                  # replace
      network:
        subnets: [subnet-0000000000000000a, subnet-0000000000000000b]       # replace
        security_groups: [sg-0000000000000000a]                             # replace
      # load_balancer:              # when the service sits behind a target group
      #   target_group_arn: arn:aws:elasticloadbalancing:@REGION@:@ACCOUNT@:targetgroup/@APP@/0123456789abcdef
      # scaling: {min: 2, max: 10}  # target tracking on CPU and memory
";

/// The environment on Kubernetes.
const KUBERNETES: &str = r"    target: kubernetes
    kubernetes:
      namespace: @APP@              # in the current kubeconfig context's cluster
      # context: my-cluster         # or a context of your kubeconfig
      replicas: 2
      ingress:
        host: @APP@.example.com     # replace: the host the Ingress answers
";

/// The strategy and the container's variables, for either target.
const REST: &str = r"    strategy:
      rolling:                      # or blue-green, or canary with analysis: see the README
        max_surge: 1
        max_unavailable: 0
        progress_deadline: 10m
    env:                            # plain variables of the container
      LOG_LEVEL: info
    # secrets:                      # by reference, never by value
";

/// The deploy.yml `init` writes for `args`, with `app` resolved. Pure.
pub fn skeleton(args: &InitArgs, app: &str) -> String {
    let (target, secret) = match args.target {
        InitTarget::Ecs => (
            ECS,
            "    #   DATABASE_URL: arn:aws:secretsmanager:@REGION@:@ACCOUNT@:secret:@APP@/@ENV@/database-url\n",
        ),
        InitTarget::Kubernetes => (
            KUBERNETES,
            "    #   DATABASE_URL: database/url  # the Secret `database`, its key `url`\n",
        ),
    };
    [HEAD, target, REST, secret]
        .concat()
        .replace("@APP@", app)
        .replace("@ENV@", &args.env)
        .replace("@REGION@", &args.region)
        .replace("@ACCOUNT@", &args.account_id)
}

/// The application name from a directory's name: a DNS-1123 label (lowercase letters, digits
/// and `-`, at most 63), `app` when nothing is left.
pub fn app_from_dir(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut label: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    label.truncate(63);
    let label = label.trim_matches('-').to_owned();
    if label.is_empty() {
        "app".into()
    } else {
        label
    }
}

/// `init`: writes the skeleton to `path`, never over an existing file without `--force`.
pub fn init(path: &Path, args: &InitArgs) -> Result<(), Error> {
    if path.exists() && !args.force {
        return Err(Error::Usage {
            message: format!(
                "{} exists; `init` does not write over it",
                crate::diag::display_path(path).display()
            ),
            help: "pass --force to replace it, or --config PATH to write another file".into(),
        });
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| std::path::PathBuf::from("."), Path::to_path_buf);
    let app = match &args.app {
        Some(app) => app.clone(),
        None => app_from_dir(&std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone())),
    };
    let text = skeleton(args, &app);
    // The file must load as `plan` loads it: the flags' values are checked here (a bad app
    // name or region is said with its line), and nothing is written when they fail.
    crate::config::load_str(path.to_path_buf(), dir, text.clone())?;
    std::fs::write(path, &text).map_err(|e| {
        Error::Environment(anyhow::Error::new(e).context(format!(
            "cannot write {}",
            crate::diag::display_path(path).display()
        )))
    })?;
    print_out(&format!(
        "wrote {} (app {app}, environment {} on {}); next: `movieverse-deploy plan --env {}`, then replace the values marked `# replace`\n",
        crate::diag::display_path(path).display(),
        args.env,
        match args.target {
            InitTarget::Ecs => "ECS",
            InitTarget::Kubernetes => "Kubernetes",
        },
        args.env
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_name_is_the_directory_as_a_dns_label() {
        assert_eq!(app_from_dir(Path::new("/src/My_Service")), "my-service");
        assert_eq!(app_from_dir(Path::new("/src/--")), "app");
        assert_eq!(app_from_dir(Path::new("/")), "app");
    }
}
