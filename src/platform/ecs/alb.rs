//! The Application Load Balancer as the analysis needs it: the `CloudWatch` dimension values
//! of a target group and of its load balancer (the ends of their ARNs), and the one lookup
//! the config cannot answer: a target group's ARN from its name.

use aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata as _;

use super::classify;
use crate::platform::observation::PlatformError;

pub struct Alb {
    client: aws_sdk_elasticloadbalancingv2::Client,
}

impl Alb {
    /// A client from the standard AWS configuration (the SDK's retries off, as for ECS).
    pub async fn from_env(region: &str) -> Self {
        let shared = crate::aws::sdk_config(region, false).await;
        Self {
            client: aws_sdk_elasticloadbalancingv2::Client::new(&shared),
        }
    }

    /// The ARN of the target group named `name` (a name, or an ARN to check); `None` when
    /// there is none.
    pub async fn target_group_arn(&self, name: &str) -> Result<Option<String>, PlatformError> {
        let request = self.client.describe_target_groups();
        let request = if name.starts_with("arn:") {
            request.target_group_arns(name)
        } else {
            request.names(name)
        };
        match request.send().await {
            Ok(out) => Ok(out
                .target_groups()
                .iter()
                .find_map(|t| t.target_group_arn().map(str::to_owned))),
            Err(e) if e.code() == Some("TargetGroupNotFound") => Ok(None),
            Err(e) => Err(classify("DescribeTargetGroups", &e)),
        }
    }
}

/// `targetgroup/NAME/ID`, the `TargetGroup` dimension, from a target group ARN.
pub fn target_group_dimension(arn: &str) -> Option<String> {
    let at = arn.find(":targetgroup/")?;
    Some(arn[at + 1..].to_owned())
}

/// `app/NAME/ID`, the `LoadBalancer` dimension, from a load balancer, listener or listener
/// rule ARN.
pub fn load_balancer_dimension(arn: &str) -> Option<String> {
    let rest = arn
        .split_once(":loadbalancer/")
        .or_else(|| arn.split_once(":listener/"))
        .or_else(|| arn.split_once(":listener-rule/"))?
        .1;
    let parts: Vec<&str> = rest.split('/').collect();
    (parts.len() >= 3 && !parts[..3].iter().any(|p| p.is_empty())).then(|| parts[..3].join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_from_arns() {
        assert_eq!(
            target_group_dimension(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/movieverse-blue/0123456789abcdef"
            )
            .as_deref(),
            Some("targetgroup/movieverse-blue/0123456789abcdef")
        );
        assert_eq!(
            load_balancer_dimension(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/movieverse/0123456789abcdef/1111111111111111"
            )
            .as_deref(),
            Some("app/movieverse/0123456789abcdef")
        );
        assert_eq!(
            load_balancer_dimension(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/movieverse/0123456789abcdef"
            )
            .as_deref(),
            Some("app/movieverse/0123456789abcdef")
        );
        assert_eq!(
            load_balancer_dimension(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/movieverse/0123456789abcdef/1111111111111111/0000000000000001"
            )
            .as_deref(),
            Some("app/movieverse/0123456789abcdef")
        );
        assert_eq!(target_group_dimension("not-an-arn"), None);
        assert_eq!(
            load_balancer_dimension("arn:aws:elasticloadbalancing:us-east-1:1:listener/app/x"),
            None
        );
    }
}
