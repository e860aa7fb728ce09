//! The bad-input corpus: each case breaks the `MovieVerse` example in one way (or several) and
//! asserts exit code 2, a location, and a message with advice, none of it a panic. The whole
//! error output is snapshotted so a reviewer reads exactly what a user would.

mod common;

use std::path::Path;

use common::{Run, run};

/// One case: edits to the example (each `old` must occur exactly once), extra files next to
/// deploy.yml, extra arguments, and what the error must point at.
struct Case {
    name: &'static str,
    edits: &'static [(&'static str, &'static str)],
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    /// A `file:line:col` or `file` that must appear in the output.
    location: &'static str,
    /// Words the message must contain.
    message: &'static str,
}

const fn case(
    name: &'static str,
    edits: &'static [(&'static str, &'static str)],
    location: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        edits,
        files: &[],
        args: &[],
        location,
        message,
    }
}

/// The built-in task definition with a twist, for template-override cases.
fn builtin(id: &str) -> String {
    std::fs::read_to_string(common::root().join(format!("templates/{id}.j2"))).unwrap()
}

const STAGING_ROLLING: &str = "    strategy:\n      rolling:\n        max_surge: 1\n        max_unavailable: 0\n        progress_deadline: 600s\n        revision_history: 10\n    env:\n      LOG_LEVEL: info";
const STEPS: &str = "steps: [10, 25, 50, 75, 100]";

/// The example's production blue-green through `CodeDeploy`, and the same as ECS native
/// blue/green (`controller: ecs`).
const CODEDEPLOY_BG: &str = "        application: movieverse\n        deployment_group: movieverse-production\n        green_target_group: movieverse-green\n        prod_listener_arn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/movieverse/0123456789abcdef/1111111111111111\n        test_listener_arn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/movieverse/0123456789abcdef/8080808080808080\n";
const NATIVE_BG: &str = "        controller: ecs\n        green_target_group: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-green/fedcba9876543210\n        prod_listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/1111111111111111/aaaaaaaaaaaaaaaa\n        test_listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/8080808080808080/bbbbbbbbbbbbbbbb\n        infrastructure_role: arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers\n";
const NATIVE_TEST_RULE: &str = "        test_listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/8080808080808080/bbbbbbbbbbbbbbbb\n";

fn cases() -> Vec<Case> {
    vec![
        case(
            "native_blue_green_with_a_codedeploy_setting",
            &[
                (CODEDEPLOY_BG, NATIVE_BG),
                (
                    "        controller: ecs\n",
                    "        controller: ecs\n        deployment_group: movieverse-production\n",
                ),
            ],
            "deploy.yml:102:9",
            "`deployment_group` is a CodeDeploy setting; `controller: ecs` is ECS native blue/green",
        ),
        case(
            "native_blue_green_checks_without_a_test_listener_rule",
            &[(CODEDEPLOY_BG, NATIVE_BG), (NATIVE_TEST_RULE, "")],
            "deploy.yml:100:7",
            "a gate or checks of green need test traffic, and there is no `test_listener_rule`",
        ),
        case(
            "native_blue_green_bake_time_out_of_range",
            &[
                (CODEDEPLOY_BG, NATIVE_BG),
                (
                    "        termination_wait: 5m\n",
                    "        termination_wait: 30h\n",
                ),
            ],
            "deploy.yml:108:27",
            "is not a whole number of minutes from 0 to 24h (ECS's bakeTimeInMinutes)",
        ),
        case(
            "native_blue_green_one_rule_for_production_and_test",
            &[
                (CODEDEPLOY_BG, NATIVE_BG),
                (
                    NATIVE_TEST_RULE,
                    "        test_listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/1111111111111111/aaaaaaaaaaaaaaaa\n",
                ),
            ],
            "deploy.yml:104:29",
            "the test listener rule is the production listener rule",
        ),
        case(
            "native_blue_green_green_target_group_by_name",
            &[
                (CODEDEPLOY_BG, NATIVE_BG),
                (
                    "        green_target_group: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-green/fedcba9876543210\n",
                    "        green_target_group: movieverse-green\n",
                ),
            ],
            "deploy.yml:102:29",
            "`movieverse-green` is not a target group ARN (ECS native blue/green names green's target group by ARN)",
        ),
        case(
            "immutable_repository_with_a_branch_tag",
            &[("  tags: [sha, semver]\n", "  tags: [sha, branch, semver]\n")],
            "deploy.yml:",
            "`branch` tags move to each new commit",
        ),
        case(
            "canary_deadline_shorter_than_its_schedule",
            &[("        deadline: 60m\n", "        deadline: 5m\n")],
            "deploy.yml:163:19",
            "deadline 5m is shorter than the canary's schedule: the earliest promotion is at 6m",
        ),
        case(
            "pause_before_promotion_neither_manual_nor_a_duration",
            &[(
                "        deadline: 60m\n",
                "        deadline: 60m\n        pause_before_promotion: later\n",
            )],
            "deploy.yml:164:",
            "`later` is not a duration",
        ),
        case(
            "metric_query_with_an_undefined_variable",
            &[(
                "service=\"movieverse-canary\",status!~\"5..\"",
                "service=\"{{ canary }}\",status!~\"5..\"",
            )],
            "deploy.yml:",
            "metric `success-rate`: undefined variable `canary` in the query",
        ),
        case(
            "unknown_metric_provider",
            &[(
                "            - name: p99-latency-ms\n              provider: prometheus\n",
                "            - name: p99-latency-ms\n              provider: newrelic\n",
            )],
            "deploy.yml:",
            "newrelic",
        ),
        case(
            "relative_bound_without_a_stable_query",
            &[(
                "              max: 500\n",
                "              max: 500\n              max_ratio: 1.2\n",
            )],
            "deploy.yml:",
            "`max_ratio` compares with the stable track, and the metric has no `stable_query`",
        ),
        case(
            "min_requests_without_a_request_query",
            &[(
                "          requests:\n            provider: prometheus\n            query: |\n              sum(increase(nginx_ingress_controller_requests{namespace=\"movieverse\",service=\"movieverse-canary\"}[{{ window }}]))\n",
                "",
            )],
            "deploy.yml:",
            "min_requests is 100, and there is no `requests` query",
        ),
        case(
            "datadog_site_that_does_not_exist",
            &[(
                "providers:\n",
                "providers:\n  datadog:\n    site: datadoghq.co\n",
            )],
            "deploy.yml:",
            "`datadoghq.co` is not a Datadog site",
        ),
        case(
            "datadog_key_written_where_its_variable_name_goes",
            &[(
                "providers:\n",
                "providers:\n  datadog:\n    api_key_env: 0123456789abcdef0123456789abcdef\n",
            )],
            "deploy.yml:",
            "`api_key_env` is not an environment variable name",
        ),
        case(
            "cloudwatch_query_without_series",
            &[(
                "            - name: p99-latency-ms\n              provider: prometheus\n",
                "            - name: p99-latency-ms\n              provider: cloudwatch\n",
            )],
            "deploy.yml:",
            "a CloudWatch query needs `series`",
        ),
        case(
            "cloudwatch_query_naming_a_series_it_lacks",
            &[(
                "            - name: p99-latency-ms\n              provider: prometheus\n              query: |\n                1000 * histogram_quantile(0.99, sum by (le) (rate(nginx_ingress_controller_request_duration_seconds_bucket{namespace=\"movieverse\",service=\"movieverse-canary\"}[1m])))\n",
                "            - name: p99-latency-ms\n              provider: cloudwatch\n              query: latency\n              series:\n                p99: {namespace: AWS/ApplicationELB, metric: TargetResponseTime, stat: P99th, dimensions: {TargetGroup: \"{{ tg }}\"}}\n",
            )],
            "deploy.yml:",
            "the query names `latency`, which is not one of its series (p99)",
        ),
        case(
            "webhook_without_a_url",
            &[(
                "          metrics:\n            - name: success-rate\n",
                "          webhooks:\n            - name: smoke-tests\n              at: [pre-rollout]\n          metrics:\n            - name: success-rate\n",
            )],
            "deploy.yml:",
            "url",
        ),
        case(
            "http_check_url_that_is_not_a_url",
            &[(
                "          metrics:\n            - name: success-rate\n",
                "          http:\n            - name: health\n              url: \"{{ canary_service }}/health\"\n              count: 0\n          metrics:\n            - name: success-rate\n",
            )],
            "deploy.yml:",
            "HTTP check `health`: `{{ canary_service }}/health` is not an http(s) URL",
        ),
        case(
            "blue_green_gate_without_checks",
            &[(
                "        analysis:\n          initial_delay: 30s\n          interval: 30s\n          threshold: 3\n          http:\n            - name: health\n              url: \"{{ test_url }}/health\"\n              count: 5\n              max_latency: 500ms\n",
                "        gate: 10m\n",
            )],
            "deploy.yml:",
            "a gate of 10m without checks only delays the switch",
        ),
        case(
            "unknown_router",
            &[(
                "      pdb_max_unavailable: 1\n",
                "      pdb_max_unavailable: 1\n      router: traefik\n",
            )],
            "deploy.yml:",
            "unknown value `traefik`",
        ),
        case(
            "gateway_api_router_without_a_gateway",
            &[(
                "      pdb_max_unavailable: 1\n",
                "      pdb_max_unavailable: 1\n      router: gateway-api\n",
            )],
            "deploy.yml:",
            "`router: gateway-api` needs the Gateway the HTTPRoute attaches to",
        ),
        case(
            "gateway_with_the_nginx_router",
            &[(
                "      pdb_max_unavailable: 1\n",
                "      pdb_max_unavailable: 1\n      gateway: {name: shop}\n",
            )],
            "deploy.yml:",
            "`gateway` is set, but the router is NGINX",
        ),
        case(
            "blue_green_termination_wait_beyond_codedeploys_range",
            &[(
                "        termination_wait: 5m\n",
                "        termination_wait: 72h\n",
            )],
            "deploy.yml:108:27",
            "termination_wait 3days is not a whole number of minutes from 0 to 48h",
        ),
        case(
            "blue_green_on_ecs_without_its_codedeploy_application",
            &[("        application: movieverse\n", "")],
            "deploy.yml:100:7",
            "a blue-green on ECS needs `application`",
        ),
        case(
            "blue_green_on_kubernetes_with_codedeploy_settings",
            &[(
                "      canary:\n        steps: [10, 25, 50, 75, 100]\n        deadline: 60m\n",
                "      blue-green:\n        deployment_group: movieverse-k8s\n        termination_wait: 2m\n",
            )],
            "deploy.yml:162:9",
            "`deployment_group` is an ECS (CodeDeploy) setting: a blue-green on Kubernetes switches the Service's selector",
        ),
        case(
            "blue_green_green_target_group_is_the_blue_one",
            &[(
                "        green_target_group: movieverse-green\n",
                "        green_target_group: movieverse-blue\n",
            )],
            "deploy.yml:103:29",
            "the green target group `movieverse-blue` is the blue one",
        ),
        case(
            "blue_green_gate_that_is_neither_manual_nor_a_duration",
            &[(
                "        termination_wait: 5m\n",
                "        termination_wait: 5m\n        gate: later\n",
            )],
            "deploy.yml:109:15",
            "or `manual` to wait for `rollout promote`",
        ),
        case(
            "pause_before_the_first_weight",
            &[(STEPS, "steps: [{pause: manual}, 10, 25, 50, 75, 100]")],
            "deploy.yml:162:17",
            "a pause before the first weight",
        ),
        case(
            "two_pauses_in_a_row",
            &[(STEPS, "steps: [10, {pause: 5m}, {pause: manual}, 50]")],
            "deploy.yml:162:",
            "two pauses in a row",
        ),
        case(
            "canary_step_neither_weight_nor_pause",
            &[(STEPS, "steps: [10, {wait: 5m}, 50]")],
            "deploy.yml:162:",
            "a canary step is a weight (a number from 1 to 100) or a pause",
        ),
        case(
            "strategy_named_without_its_settings",
            &[(
                STAGING_ROLLING,
                "    strategy: blue-green\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:",
            "`strategy: blue-green` names the strategy without its settings",
        ),
        case(
            "account_id_as_a_number",
            &[("account_id: \"123456789012\"", "account_id: 123456789012")],
            "deploy.yml:7:13",
            "quote it: `\"123456789012\"`",
        ),
        case(
            "duplicate_key",
            &[(
                "region: us-east-1\n",
                "region: us-east-1\nregion: us-east-2\n",
            )],
            "deploy.yml:",
            "the key `region` appears twice in the same mapping",
        ),
        case(
            "yaml_bomb",
            &[(
                "region: us-east-1\n",
                "region: us-east-1\nx0: &a0 [x, x, x, x, x, x, x, x, x, x]\nx1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\nx2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\nx3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\nx4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\nx5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\nx6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]\n",
            )],
            "deploy.yml:",
            "the document is too large for a config",
        ),
        case(
            "yaml_syntax_unclosed_bracket",
            &[("region: us-east-1", "region: [us-east-1")],
            "deploy.yml:",
            "invalid YAML",
        ),
        case(
            "yaml_syntax_bad_indentation",
            &[(
                "  repository: movieverse\n",
                "  repository: movieverse\n    context: .\n",
            )],
            "deploy.yml:",
            "invalid YAML",
        ),
        case(
            "unknown_top_level_key",
            &[(
                "region: us-east-1\n",
                "region: us-east-1\nregoin: us-east-2\n",
            )],
            "deploy.yml:7:1",
            "unknown key `regoin`",
        ),
        case(
            "unknown_nested_key_typo",
            &[(
                "        progress_deadline: 600s\n        revision_history: 10\n    env:\n      LOG_LEVEL: info",
                "        progres_deadline: 600s\n        revision_history: 10\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:",
            "did you mean `progress_deadline`",
        ),
        case(
            "wrong_type_word_for_number",
            &[("      desired_count: 2\n", "      desired_count: two\n")],
            "deploy.yml:",
            "wrong type",
        ),
        case(
            "wrong_type_list_for_map",
            &[("  platforms: [linux/amd64]\n", "  platforms: linux/amd64\n")],
            "deploy.yml:",
            "expected a list",
        ),
        case(
            "missing_required_key",
            &[("      cluster: movieverse-staging\n", "")],
            "deploy.yml:",
            "missing required key `cluster`",
        ),
        case(
            "both_canary_forms",
            &[(
                STEPS,
                "steps: [10, 25, 50, 75, 100]\n        step_weight: 10\n        max_weight: 50",
            )],
            "deploy.yml:",
            "both canary schedule forms",
        ),
        case(
            "falling_weights",
            &[(STEPS, "steps: [10, 50, 25, 75, 100]")],
            "deploy.yml:",
            "does not rise",
        ),
        case(
            "weight_zero",
            &[(STEPS, "steps: [0, 25, 50, 75, 100]")],
            "deploy.yml:",
            "weight 0 is outside 1..=100",
        ),
        case(
            "weight_over_100",
            &[(STEPS, "steps: [10, 25, 50, 75, 150]")],
            "deploy.yml:",
            "weight 150 is outside",
        ),
        case(
            "weight_not_a_byte",
            &[(STEPS, "steps: [10, 25, 50, 75, 300]")],
            "deploy.yml:162:33",
            "a canary step is a weight (a number from 1 to 100)",
        ),
        case(
            "step_weight_without_max",
            &[(STEPS, "step_weight: 10")],
            "deploy.yml:",
            "step_weight without max_weight",
        ),
        case(
            "step_weight_above_max",
            &[(STEPS, "step_weight: 60\n        max_weight: 50")],
            "deploy.yml:",
            "above max_weight",
        ),
        case(
            "invalid_fargate_memory",
            &[(
                "      memory: 1024\n      desired_count: 2\n",
                "      memory: 512\n      desired_count: 2\n",
            )],
            "deploy.yml:",
            "512 MiB of memory is not valid with 512 CPU units",
        ),
        case(
            "invalid_fargate_cpu",
            &[(
                "      cpu: 512\n      memory: 1024\n      desired_count: 2\n",
                "      cpu: 300\n      memory: 1024\n      desired_count: 2\n",
            )],
            "deploy.yml:",
            "300 is not a Fargate CPU size",
        ),
        case(
            "secret_in_plain_env",
            &[(
                "      LOG_LEVEL: info\n",
                "      LOG_LEVEL: info\n      DB_PASSWORD: hunter2-planted-secret\n",
            )],
            "deploy.yml:",
            "looks like a secret",
        ),
        case(
            "secret_value_instead_of_arn",
            &[(
                "      DATABASE_URL: arn:aws:secretsmanager:us-east-1:123456789012:secret:movieverse/staging/database-url\n",
                "      DATABASE_URL: postgres://admin:hunter2-planted-secret@db/movies\n",
            )],
            "deploy.yml:",
            "not a Secrets Manager",
        ),
        case(
            "k8s_secret_bad_reference",
            &[(
                "      DATABASE_URL: movieverse-secrets/database-url\n",
                "      DATABASE_URL: hunter2-planted-secret\n",
            )],
            "deploy.yml:",
            "not a `secret-name/key` reference",
        ),
        case(
            "invalid_k8s_namespace",
            &[(
                "      namespace: movieverse\n",
                "      namespace: MovieVerse\n",
            )],
            "deploy.yml:",
            "not a valid Kubernetes namespace name",
        ),
        case(
            "invalid_ingress_host",
            &[(
                "        host: k8s.movie-verse.com\n",
                "        host: K8s_Movie!\n",
            )],
            "deploy.yml:",
            "not a valid host name",
        ),
        case(
            "invalid_environment_name",
            &[("  staging:\n", "  Staging_1:\n")],
            "deploy.yml:",
            "not a valid environment name",
        ),
        case(
            "unknown_strategy",
            &[(
                STAGING_ROLLING,
                "    strategy:\n      rollin:\n        max_surge: 1\n        max_unavailable: 0\n        progress_deadline: 600s\n        revision_history: 10\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:",
            "unknown value `rollin`",
        ),
        case(
            "ecs_canary_without_its_target_group",
            &[(
                STAGING_ROLLING,
                "    strategy:\n      canary:\n        step_weight: 10\n        max_weight: 50\n        listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse-staging/0123456789abcdef/1111111111111111/2222222222222222\n        analysis:\n          metrics: []\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:66:7",
            "a canary on ECS needs `canary_target_group`",
        ),
        case(
            "ecs_canary_on_a_rule_and_a_listener",
            &[(
                STAGING_ROLLING,
                "    strategy:\n      canary:\n        steps: [10, 25, 50, 75, 100]\n        canary_target_group: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-staging-canary/0123456789abcdef\n        listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse-staging/0123456789abcdef/1111111111111111/2222222222222222\n        listener_arn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/movieverse-staging/0123456789abcdef/1111111111111111\n        analysis:\n          metrics: []\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:70:9",
            "both `listener_rule` and `listener_arn` are set",
        ),
        case(
            "ecs_canary_listener_rule_that_is_not_an_arn",
            &[(
                STAGING_ROLLING,
                "    strategy:\n      canary:\n        steps: [10, 50]\n        canary_target_group: movieverse-staging-canary\n        listener_rule: movieverse-rule\n        analysis:\n          metrics: []\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:69:24",
            "`movieverse-rule` is not an Application Load Balancer listener rule ARN",
        ),
        case(
            "native_linear_canary_with_a_step_under_3_percent",
            &[(
                STAGING_ROLLING,
                "    strategy:\n      canary:\n        step_weight: 2\n        max_weight: 98\n        router: ecs\n        infrastructure_role: arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers\n        canary_target_group: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-staging-canary/0123456789abcdef\n        listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse-staging/0123456789abcdef/1111111111111111/2222222222222222\n        analysis:\n          metrics: []\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:67:22",
            "ECS native LINEAR steps 2%: ECS takes steps of 3% to 100%",
        ),
        case(
            "native_canary_with_a_schedule_only_the_alb_plays",
            &[(
                STAGING_ROLLING,
                "    strategy:\n      canary:\n        steps: [10, 25, 50, 75, 100]\n        router: ecs\n        infrastructure_role: arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers\n        canary_target_group: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-staging-canary/0123456789abcdef\n        listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse-staging/0123456789abcdef/1111111111111111/2222222222222222\n        analysis:\n          metrics: []\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:67:16",
            "this schedule needs the ALB router",
        ),
        case(
            "native_linear_canary_that_stops_short_of_its_last_step",
            &[(
                STAGING_ROLLING,
                "    strategy:\n      canary:\n        step_weight: 10\n        max_weight: 50\n        router: ecs\n        infrastructure_role: arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers\n        canary_target_group: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-staging-canary/0123456789abcdef\n        listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse-staging/0123456789abcdef/1111111111111111/2222222222222222\n        analysis:\n          metrics: []\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:68:21",
            "the last step before promotion is 90%, not 50%",
        ),
        case(
            "native_canary_without_its_role",
            &[(
                STAGING_ROLLING,
                "    strategy:\n      canary:\n        steps: [10]\n        router: ecs\n        canary_service: movieverse-app-canary\n        canary_target_group: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-staging-canary/0123456789abcdef\n        listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse-staging/0123456789abcdef/1111111111111111/2222222222222222\n        analysis:\n          metrics: []\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:66:7",
            "ECS native CANARY and LINEAR need `infrastructure_role`",
        ),
        case(
            "ecs_setting_on_a_kubernetes_canary",
            &[(
                "        steps: [10, 25, 50, 75, 100]\n",
                "        steps: [10, 25, 50, 75, 100]\n        listener_rule: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/1111111111111111/2222222222222222\n",
            )],
            "deploy.yml:",
            "`listener_rule` is an ECS setting",
        ),
        case(
            "metric_without_bounds",
            &[("              min: 99\n", "")],
            "deploy.yml:",
            "has no success condition",
        ),
        case(
            "metric_provider_not_configured",
            &[(
                "            - name: error-rate\n              provider: prometheus\n",
                "            - name: error-rate\n              provider: datadog\n",
            )],
            "deploy.yml:",
            "datadog provider, which is not configured",
        ),
        case(
            "bad_duration",
            &[("          interval: 1m\n", "          interval: soon\n")],
            "deploy.yml:",
            "not a duration",
        ),
        case(
            "invalid_account_id",
            &[("account_id: \"123456789012\"", "account_id: \"1234\"")],
            "deploy.yml:7:13",
            "not a 12-digit AWS account id",
        ),
        case(
            "invalid_region",
            &[("region: us-east-1", "region: useast1")],
            "deploy.yml:6:9",
            "not an AWS region",
        ),
        case(
            "scaling_min_above_max",
            &[(
                "      scaling:\n        min: 2\n        max: 10\n        cpu_target: 70\n        memory_target: 80\n        scale_in_cooldown: 300s\n        scale_out_cooldown: 60s\n    strategy:\n      rolling:",
                "      scaling:\n        min: 12\n        max: 10\n        cpu_target: 70\n        memory_target: 80\n        scale_in_cooldown: 300s\n        scale_out_cooldown: 60s\n    strategy:\n      rolling:",
            )],
            "deploy.yml:",
            "below scaling.min",
        ),
        case(
            "target_block_mismatch",
            &[(
                "  staging:\n    target: ecs\n",
                "  staging:\n    target: kubernetes\n",
            )],
            "deploy.yml:",
            "`target: kubernetes` needs a `kubernetes:` block",
        ),
        case(
            "unknown_template_id",
            &[(
                "providers:\n",
                "templates:\n  ecs/task-definiton.json: td.json.j2\n\nproviders:\n",
            )],
            "deploy.yml:",
            "did you mean `ecs/task-definition.json`",
        ),
        case(
            "template_file_missing",
            &[(
                "providers:\n",
                "templates:\n  ecs/task-definition.json: nowhere.json.j2\n\nproviders:\n",
            )],
            "deploy.yml:",
            "does not exist",
        ),
        case(
            "rolling_that_cannot_move",
            &[(
                "        max_surge: 1\n        max_unavailable: 0\n        progress_deadline: 600s\n        revision_history: 10\n    env:\n      LOG_LEVEL: info",
                "        max_surge: 0\n        max_unavailable: 0\n        progress_deadline: 600s\n        revision_history: 10\n    env:\n      LOG_LEVEL: info",
            )],
            "deploy.yml:",
            "both 0",
        ),
        case(
            "extra_service_listed_twice",
            &[(
                "      service: movieverse-app\n      cpu: 512\n      memory: 1024\n      desired_count: 2\n",
                "      service: movieverse-app\n      services:\n        - name: worker\n        - name: worker\n      cpu: 512\n      memory: 1024\n      desired_count: 2\n",
            )],
            "deploy.yml:",
            "service `worker` is listed twice",
        ),
        case(
            "extra_services_with_blue_green",
            &[(
                "      service: movieverse-app\n      cpu: 512\n      memory: 1024\n      desired_count: 5\n",
                "      service: movieverse-app\n      services:\n        - name: worker\n      cpu: 512\n      memory: 1024\n      desired_count: 5\n",
            )],
            "deploy.yml:",
            "blue-green deploys one service per environment",
        ),
        case(
            "many_problems_at_once",
            &[
                ("region: us-east-1\n", "region: us-east-1\nregoin: x\n"),
                ("      desired_count: 2\n", "      desired_count: two\n"),
                (STEPS, "steps: [10, 50, 25, 75, 100]"),
                (
                    "      namespace: movieverse\n",
                    "      namespace: MovieVerse\n",
                ),
            ],
            "deploy.yml:",
            "problems found",
        ),
    ]
}

/// Cases that need template overrides or arguments.
fn template_cases() -> Vec<(Case, String)> {
    let td = builtin("ecs/task-definition.json");
    let override_td = (
        "providers:\n",
        "templates:\n  ecs/task-definition.json: td.json.j2\n\nproviders:\n",
    );
    let override_dep = (
        "providers:\n",
        "templates:\n  kubernetes/deployment.yaml: dep.yaml.j2\n\nproviders:\n",
    );
    let dep = builtin("kubernetes/deployment.yaml");
    let leak = |s: &str| Box::leak(s.to_owned().into_boxed_str()) as &'static str;
    vec![
        (Case { name: "template_syntax_error", edits: &[], files: &[], args: &[], location: "td.json.j2:", message: "template syntax error" }, td.replacen("{% if container.command %}", "{% if container.command %%}", 1)),
        (Case { name: "template_undefined_variable", edits: &[], files: &[], args: &[], location: "td.json.j2:", message: "undefined variable `vars.missing_thing`" }, td.replacen("\"family\": {{ ecs.family | tojson }}", "\"family\": {{ vars.missing_thing | tojson }}", 1)),
        (Case { name: "template_undefined_bare_variable", edits: &[], files: &[], args: &[], location: "td.json.j2:", message: "undefined variable `nope`" }, td.replacen("\"family\": {{ ecs.family | tojson }}", "\"family\": {{ nope }}", 1)),
        (Case { name: "template_undefined_vars_member", edits: &[], files: &[], args: &[], location: "td.json.j2:", message: "undefined variable `vars.nope`" }, td.replacen("\"family\": {{ ecs.family | tojson }}", "\"family\": {{ vars.nope }}", 1)),
        (Case { name: "template_undefined_in_a_filter_chain", edits: &[], files: &[], args: &[], location: "td.json.j2:", message: "undefined variable `vars.nope`" }, td.replacen("\"family\": {{ ecs.family | tojson }}", "\"family\": {{ vars.nope | upper | tojson }}", 1)),
        (Case { name: "no_essential_container", edits: &[], files: &[], args: &[], location: "td.json.j2", message: "no container is essential" }, td.replacen("\"essential\": true", "\"essential\": false", 1)),
        (Case { name: "rendered_invalid_json", edits: &[], files: &[], args: &[], location: "td.json.j2", message: "rendered invalid output" }, td.replacen("\"networkMode\": \"awsvpc\",", "\"networkMode\": \"awsvpc\"", 1)),
        (Case { name: "awsvpc_host_port_mismatch", edits: &[], files: &[], args: &[], location: "td.json.j2", message: "hostPort 80 differs from containerPort 5000" }, td.replacen("\"containerPort\": {{ container.port }},", "\"containerPort\": {{ container.port }}, \"hostPort\": 80,", 1)),
        (Case { name: "plain_secret_in_rendered_env", edits: &[], files: &[], args: &[], location: "td.json.j2", message: "`API_TOKEN` looks like a secret" }, td.replacen("{\"name\": \"APP_ENV\", \"value\": {{ env | tojson }}},", "{\"name\": \"APP_ENV\", \"value\": {{ env | tojson }}}, {\"name\": \"API_TOKEN\", \"value\": \"hunter2-planted-secret\"},", 1)),
        (Case { name: "invalid_fargate_pair_in_template", edits: &[], files: &[], args: &[], location: "td.json.j2", message: "4096 MiB is not valid with 256 CPU" }, td.replacen("\"cpu\": \"{{ ecs.cpu }}\"", "\"cpu\": \"256\"", 1).replacen("\"memory\": \"{{ ecs.memory }}\"", "\"memory\": \"4096\"", 1)),
        (Case { name: "k8s_unknown_field", edits: &[], files: &[], args: &[], location: "dep.yaml.j2", message: "unknown field `replica`" }, dep.replacen("  replicas: {{ replicas }}", "  replica: {{ replicas }}", 1)),
        (Case { name: "k8s_selector_mismatch", edits: &[], files: &[], args: &[], location: "dep.yaml.j2", message: "selector does not match the pod template labels" }, dep.replacen("      movieverse.dev/track: {{ track }}\n  template:", "      movieverse.dev/track: other\n  template:", 1)),
        (Case { name: "k8s_invalid_name", edits: &[], files: &[], args: &[], location: "dep.yaml.j2", message: "is not a valid Kubernetes name" }, dep.replacen("  name: {{ app }}{{ \"-canary\" if track == \"canary\" else \"\" }}", "  name: Movie_Verse{{ \"-canary\" if track == \"canary\" else \"\" }}", 1)),
    ]
    .into_iter()
    .map(|(mut c, content)| {
        let (edit, file) = if c.location.starts_with("dep") { (override_dep, "dep.yaml.j2") } else { (override_td, "td.json.j2") };
        c.edits = Box::leak(vec![edit].into_boxed_slice());
        c.files = Box::leak(vec![(file, leak(&content))].into_boxed_slice());
        (c, String::new())
    })
    .collect()
}

fn check(c: &Case) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(common::example()).unwrap();
    for (old, new) in c.edits {
        assert_eq!(
            text.matches(old).count(),
            1,
            "case {}: `{old}` must occur exactly once in the example",
            c.name
        );
        text = text.replacen(old, new, 1);
    }
    std::fs::write(dir.path().join("deploy.yml"), &text).unwrap();
    for (name, content) in c.files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let mut args = vec!["--config", "deploy.yml"];
    if c.args.is_empty() {
        args.extend(["plan", "--env", "all"]);
    } else {
        args.extend(c.args);
    }
    let r = run(&args, dir.path());
    assert_case(c, &r, dir.path());
    r
}

fn assert_case(c: &Case, r: &Run, _dir: &Path) {
    assert_eq!(r.code, 2, "case {}: exit code\n{}", c.name, r.dump());
    assert!(
        !r.stderr.contains("panicked"),
        "case {} panicked\n{}",
        c.name,
        r.dump()
    );
    assert!(
        r.stderr.contains(c.location),
        "case {}: location `{}` missing\n{}",
        c.name,
        c.location,
        r.dump()
    );
    assert!(
        r.stderr.contains(c.message),
        "case {}: message `{}` missing\n{}",
        c.name,
        c.message,
        r.dump()
    );
    assert!(
        r.stderr.contains("help:"),
        "case {}: no advice\n{}",
        c.name,
        r.dump()
    );
    assert!(
        !r.stderr.contains("hunter2-planted-secret")
            && !r.stdout.contains("hunter2-planted-secret"),
        "case {}: a planted secret was printed\n{}",
        c.name,
        r.dump()
    );
    assert!(
        r.stdout.is_empty(),
        "case {}: nothing goes to stdout on invalid input\n{}",
        c.name,
        r.dump()
    );
    // Messages speak the file's language: no library type, option or variant names.
    for word in [
        "Options",
        "Policy",
        "budget breached",
        "newtype variant",
        "unit variant",
        "Nodes {",
    ] {
        assert!(
            !r.stderr.contains(word),
            "case {}: a library's word `{word}` in the message\n{}",
            c.name,
            r.dump()
        );
    }
}

#[test]
fn a_file_that_is_not_utf8_gets_a_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(common::example()).unwrap();
    let at = bytes
        .windows(b"region: us-east-1".len())
        .position(|w| w == b"region: us-east-1")
        .unwrap();
    bytes[at + 8] = 0xff;
    std::fs::write(dir.path().join("deploy.yml"), bytes).unwrap();
    let r = run(&["plan", "--env", "all"], dir.path());
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stderr.contains("deploy.yml:6:9")
            && r.stderr
                .contains("byte 0xff at line 6, column 9 is not valid UTF-8")
            && r.stderr.contains("help: save the file as UTF-8"),
        "{}",
        r.dump()
    );
}

#[test]
fn corpus() {
    let mut all: Vec<Case> = cases();
    all.extend(template_cases().into_iter().map(|(c, _)| c));
    assert!(all.len() >= 30, "the corpus has {} cases", all.len());
    let mut names = std::collections::HashSet::new();
    for c in &all {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
        let r = check(c);
        insta::with_settings!({ snapshot_suffix => c.name, prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!("bad_input", r.stderr);
        });
    }
}

#[test]
fn many_problems_are_reported_in_one_run() {
    let c = cases()
        .into_iter()
        .find(|c| c.name == "many_problems_at_once")
        .unwrap();
    let r = check(&c);
    assert!(r.stderr.contains("4 problems found"), "{}", r.dump());
}

#[test]
fn unknown_environment_suggests_the_closest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::example(), dir.path().join("deploy.yml")).unwrap();
    let r = run(&["plan", "--env", "prod"], dir.path());
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stderr
            .contains("unknown environment `prod` in deploy.yml"),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr.contains("did you mean `--env production`?"),
        "{}",
        r.dump()
    );
}

#[test]
fn missing_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&["plan", "--env", "all"], dir.path());
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stderr.contains("cannot read the config file deploy.yml"),
        "{}",
        r.dump()
    );
    assert!(r.stderr.contains("--config PATH"), "{}", r.dump());
}

#[test]
fn empty_and_non_mapping_configs() {
    for (text, message) in [
        ("", "the config file is empty"),
        ("- a\n- b\n", "must be a mapping"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("deploy.yml"), text).unwrap();
        let r = run(&["plan", "--env", "all"], dir.path());
        assert_eq!(r.code, 2, "{}", r.dump());
        assert!(
            r.stderr.contains(message) && r.stderr.contains("deploy.yml:1:1"),
            "{}",
            r.dump()
        );
    }
}

#[test]
fn annotations_in_github_actions() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::example())
        .unwrap()
        .replacen("region: us-east-1", "region: useast1", 1);
    std::fs::write(dir.path().join("deploy.yml"), text).unwrap();
    let out = common::bin()
        .current_dir(dir.path())
        .env("GITHUB_ACTIONS", "true")
        .args(["plan", "--env", "all"])
        .output()
        .unwrap();
    let r = Run::from(&out);
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stdout
            .starts_with("::error file=deploy.yml,line=6,col=9::`useast1` is not an AWS region"),
        "{}",
        r.dump()
    );
}

/// `plan --env all` in a copy of the example with `variable` set to `value`.
fn plan_with(variable: &str, value: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::example(), dir.path().join("deploy.yml")).unwrap();
    let out = common::bin()
        .current_dir(dir.path())
        .env(variable, value)
        .args(["plan", "--env", "all"])
        .output()
        .unwrap();
    Run::from(&out)
}

/// Each of `values` for `variable` is refused with exit 2 before anything is read or changed,
/// and exactly `said(value)` on stderr, nothing on stdout.
fn refused(variable: &str, values: &[&str], said: impl Fn(&str) -> String) {
    for value in values {
        let r = plan_with(variable, value);
        assert_eq!(r.code, 2, "{value:?}: {}", r.dump());
        assert_eq!(r.stderr, said(value), "{value:?}");
        assert!(r.stdout.is_empty(), "{}", r.dump());
    }
}

/// `MVD_AWS_CALL_TIMEOUT` that is not whole seconds from 1 to 3600: exit 2 before anything
/// is read or changed, the variable and its value named, and what to set instead.
#[test]
fn a_call_timeout_that_is_not_seconds_is_refused() {
    refused(
        "MVD_AWS_CALL_TIMEOUT",
        &["30s", "0", "99999", ""],
        |value| {
            format!(
                "error: MVD_AWS_CALL_TIMEOUT={value:?} is not a number of seconds from 1 to 3600\n  = help: set it to whole seconds (`MVD_AWS_CALL_TIMEOUT=60`), or unset it for the default of 30 s\n"
            )
        },
    );
}

/// `MVD_RETRY_BASE` that is not a duration from 10 ms to 60 s: exit 2 before anything is read
/// or changed, the variable and its value named, and what to set instead.
#[test]
fn a_retry_base_that_is_not_a_duration_is_refused() {
    refused("MVD_RETRY_BASE", &["1", "5ms", "2m", "soon", ""], |value| {
        format!(
            "error: MVD_RETRY_BASE={value:?} is not a duration from 10ms to 60s\n  = help: set it to a duration (`MVD_RETRY_BASE=500ms`), or unset it for the default of 1 s\n"
        )
    });
    let r = plan_with("MVD_RETRY_BASE", "250ms");
    assert_eq!(r.code, 0, "250ms is a back-off: {}", r.dump());
}
