//! The Application Load Balancer: the canary's router on ECS (a listener rule's or a
//! listener's forward action weighed between the stable and the canary target groups), and
//! what the analysis needs: the `CloudWatch` dimension values of a target group and of its
//! load balancer (the ends of their ARNs), and a target group's ARN from its name.

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

/// Where a canary's weights live: a listener rule's actions, or a listener's default actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarder<'a> {
    Rule(&'a str),
    Listener(&'a str),
}

impl Forwarder<'_> {
    /// The ARN, for messages.
    pub fn arn(&self) -> &str {
        match self {
            Forwarder::Rule(a) | Forwarder::Listener(a) => a,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Forwarder::Rule(_) => "listener rule",
            Forwarder::Listener(_) => "listener's default action",
        }
    }
}

/// The canary's share of a forward action: the stable and canary target groups and their
/// weights out of 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    pub stable: i32,
    pub canary: i32,
}

impl Weights {
    /// The canary at `canary` % of the traffic, stable at the rest.
    pub fn canary_at(canary: u8) -> Self {
        let canary = i32::from(canary.min(100));
        Self {
            stable: 100 - canary,
            canary,
        }
    }

    /// The canary's share in percent of what the two weights carry (0 when both are 0).
    pub fn canary_percent(&self) -> u8 {
        let total = self.stable + self.canary;
        if total <= 0 {
            return 0;
        }
        u8::try_from((self.canary * 100 + total / 2) / total).unwrap_or(100)
    }
}

impl Alb {
    /// The listener's port; `None` when there is no such listener.
    pub async fn listener_port(&self, arn: &str) -> Result<Option<i32>, PlatformError> {
        match self
            .client
            .describe_listeners()
            .listener_arns(arn)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .listeners()
                .first()
                .and_then(aws_sdk_elasticloadbalancingv2::types::Listener::port)),
            Err(e) if e.code() == Some("ListenerNotFound") => Ok(None),
            Err(e) => Err(classify("DescribeListeners", &e)),
        }
    }

    /// The forward action's target groups and weights, as the load balancer says them now.
    pub async fn forward(&self, at: Forwarder<'_>) -> Result<Vec<(String, i32)>, PlatformError> {
        let actions = self.actions(at).await?;
        Ok(forwarded(&actions))
    }

    async fn actions(
        &self,
        at: Forwarder<'_>,
    ) -> Result<Vec<aws_sdk_elasticloadbalancingv2::types::Action>, PlatformError> {
        let not_found = |op: &'static str| {
            PlatformError::new(
                crate::platform::observation::ErrorKind::NotFound,
                op,
                format!("the {} {} does not exist", at.what(), at.arn()),
            )
        };
        match at {
            Forwarder::Rule(arn) => {
                let out = self
                    .client
                    .describe_rules()
                    .rule_arns(arn)
                    .send()
                    .await
                    .map_err(|e| match e.code() {
                        Some("RuleNotFound") => not_found("DescribeRules"),
                        _ => classify("DescribeRules", &e),
                    })?;
                let rule = out
                    .rules()
                    .first()
                    .ok_or_else(|| not_found("DescribeRules"))?;
                Ok(rule.actions().to_vec())
            }
            Forwarder::Listener(arn) => {
                let out = self
                    .client
                    .describe_listeners()
                    .listener_arns(arn)
                    .send()
                    .await
                    .map_err(|e| match e.code() {
                        Some("ListenerNotFound") => not_found("DescribeListeners"),
                        _ => classify("DescribeListeners", &e),
                    })?;
                let listener = out
                    .listeners()
                    .first()
                    .ok_or_else(|| not_found("DescribeListeners"))?;
                Ok(listener.default_actions().to_vec())
            }
        }
    }

    /// Sets the forward action's weights to `w` on the two target groups, every other
    /// action and the stickiness kept; the weights as the load balancer answers them.
    pub async fn set_weights(
        &self,
        at: Forwarder<'_>,
        stable_tg: &str,
        canary_tg: &str,
        w: Weights,
    ) -> Result<Vec<(String, i32)>, PlatformError> {
        use aws_sdk_elasticloadbalancingv2::types::{
            Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
        };
        let actions = self.actions(at).await?;
        let tuple = |arn: &str, weight: i32| {
            TargetGroupTuple::builder()
                .target_group_arn(arn)
                .weight(weight)
                .build()
        };
        let mut replaced = false;
        let actions: Vec<Action> = actions
            .into_iter()
            .map(|a| {
                if a.r#type() != Some(&ActionTypeEnum::Forward) || replaced {
                    return a;
                }
                replaced = true;
                let stickiness = a
                    .forward_config()
                    .and_then(|f| f.target_group_stickiness_config())
                    .cloned();
                let config = ForwardActionConfig::builder()
                    .target_groups(tuple(stable_tg, w.stable))
                    .target_groups(tuple(canary_tg, w.canary))
                    .set_target_group_stickiness_config(stickiness)
                    .build();
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .set_order(a.order())
                    .forward_config(config)
                    .build()
            })
            .collect();
        let answered = match at {
            Forwarder::Rule(arn) => self
                .client
                .modify_rule()
                .rule_arn(arn)
                .set_actions(Some(actions))
                .send()
                .await
                .map_err(|e| classify("ModifyRule", &e))?
                .rules()
                .first()
                .map(|r| r.actions().to_vec())
                .unwrap_or_default(),
            Forwarder::Listener(arn) => self
                .client
                .modify_listener()
                .listener_arn(arn)
                .set_default_actions(Some(actions))
                .send()
                .await
                .map_err(|e| classify("ModifyListener", &e))?
                .listeners()
                .first()
                .map(|l| l.default_actions().to_vec())
                .unwrap_or_default(),
        };
        Ok(forwarded(&answered))
    }
}

/// The target groups a list of actions forwards to, with their weights (a plain
/// `TargetGroupArn` forward weighs 1).
fn forwarded(actions: &[aws_sdk_elasticloadbalancingv2::types::Action]) -> Vec<(String, i32)> {
    use aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum;
    let Some(a) = actions
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
    else {
        return Vec::new();
    };
    match a.forward_config() {
        Some(f) if !f.target_groups().is_empty() => f
            .target_groups()
            .iter()
            .map(|t| {
                (
                    t.target_group_arn().unwrap_or_default().to_owned(),
                    t.weight().unwrap_or(1),
                )
            })
            .collect(),
        _ => a
            .target_group_arn()
            .map(|t| vec![(t.to_owned(), 1)])
            .unwrap_or_default(),
    }
}

/// Whether a forward action found on the listener may be weighed between `stable` and
/// `canary`: it forwards, and to those two target groups only (the stable one at least).
/// The refusal says what was found.
pub fn check_forward(found: &[(String, i32)], stable: &str, canary: &str) -> Result<(), String> {
    if found.is_empty() {
        return Err(
            "it has no forward action: a canary needs one that forwards to the stable target group"
                .into(),
        );
    }
    let others: Vec<String> = found
        .iter()
        .filter(|(tg, _)| tg != stable && tg != canary)
        .map(|(tg, w)| format!("{tg} (weight {w})"))
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "it forwards to {}, which is neither the stable target group {stable} nor the canary's {canary}",
            others.join(", ")
        ));
    }
    if !found.iter().any(|(tg, _)| tg == stable) {
        return Err(format!(
            "it does not forward to the stable target group {stable}"
        ));
    }
    Ok(())
}

/// The canary's weight out of what `found` carries (0 when it is not there).
pub fn weights_of(found: &[(String, i32)], stable: &str, canary: &str) -> Weights {
    let of = |arn: &str| {
        found
            .iter()
            .filter(|(tg, _)| tg == arn)
            .map(|(_, w)| *w)
            .sum()
    };
    Weights {
        stable: of(stable),
        canary: of(canary),
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
    fn a_forward_action_is_weighed_only_between_the_two_target_groups() {
        let f = |v: &[(&str, i32)]| -> Vec<(String, i32)> {
            v.iter().map(|(a, w)| ((*a).to_owned(), *w)).collect()
        };
        assert_eq!(check_forward(&f(&[("s", 1)]), "s", "c"), Ok(()));
        assert_eq!(check_forward(&f(&[("s", 90), ("c", 10)]), "s", "c"), Ok(()));
        assert!(
            check_forward(&f(&[("s", 90), ("x", 10)]), "s", "c")
                .unwrap_err()
                .contains("x (weight 10)")
        );
        assert!(check_forward(&f(&[("c", 1)]), "s", "c").is_err());
        assert!(check_forward(&[], "s", "c").is_err());
        let w = weights_of(&f(&[("s", 75), ("c", 25)]), "s", "c");
        assert_eq!(w, Weights::canary_at(25));
        assert_eq!(w.canary_percent(), 25);
        assert_eq!(Weights::canary_at(0).canary_percent(), 0);
        assert_eq!(
            Weights {
                stable: 0,
                canary: 0
            }
            .canary_percent(),
            0
        );
    }

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
