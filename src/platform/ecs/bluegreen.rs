//! A blue/green deployment on ECS as whoever waits on it sees it, whichever controller
//! switches the traffic: `CodeDeploy` ([`super::codedeploy`]) or ECS native
//! ([`super::native`]). Each turns its API's answer into an [`Observed`]; [`judge`] (pure)
//! says what it means.

/// A deployment's status, in `CodeDeploy`'s words (ECS native's are mapped onto them by
/// [`super::native`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Created,
    Queued,
    InProgress,
    Baking,
    /// Green is up and takes test traffic; production waits for `ContinueDeployment`.
    Ready,
    Succeeded,
    Failed,
    Stopped,
    /// A status this release does not know.
    Unknown,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "Created",
            Status::Queued => "Queued",
            Status::InProgress => "InProgress",
            Status::Baking => "Baking",
            Status::Ready => "Ready",
            Status::Succeeded => "Succeeded",
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
            Status::Unknown => "unknown",
        }
    }

    /// The statuses of a deployment still in flight (`ListDeployments`' filter).
    pub const IN_FLIGHT: [Status; 5] = [
        Status::Created,
        Status::Queued,
        Status::InProgress,
        Status::Baking,
        Status::Ready,
    ];
}

/// One deployment as read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    pub id: String,
    pub status: Status,
    /// What the controller itself says, when its words differ from [`Status`] (ECS native:
    /// `IN_PROGRESS (POST_TEST_TRAFFIC_SHIFT)`), for the progress lines.
    pub shown: Option<String>,
    /// ECS native: the PAUSE hook awaiting an answer (`ContinueServiceDeployment`), by id.
    pub hook: Option<String>,
    /// `errorInformation`: its code and message.
    pub error: Option<(String, String)>,
    /// The deployment `CodeDeploy` started to roll this one back, when it did.
    pub rolled_back_by: Option<String>,
    /// `rollbackInfo.rollbackMessage`.
    pub rollback_message: Option<String>,
    /// This is a rollback deployment: the deployment it rolled back
    /// (`rollbackInfo.rollbackTriggeringDeploymentId`).
    pub rollback_of: Option<String>,
}

impl Observed {
    /// How it stands, in words: `d-1 Succeeded`, `d-2 Stopped (MANUAL_STOP: …), rolled back by
    /// d-2-rb`.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut text = format!(
            "{} {}",
            self.id,
            self.shown.as_deref().unwrap_or(self.status.name())
        );
        if let Some((code, message)) = &self.error {
            let _ = write!(text, " ({code}: {message})");
        }
        if let Some(by) = &self.rolled_back_by {
            let _ = write!(text, ", rolled back by {by}");
        }
        text
    }
}

/// What an observed deployment means for whoever waits on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still moving: the status, to show.
    Waiting(Status),
    /// Waiting for `ContinueDeployment` (the gate).
    Ready,
    Succeeded,
    /// Failed or stopped: what `CodeDeploy` says, and the deployment that rolls it back.
    Ended {
        status: Status,
        reason: String,
        rolled_back_by: Option<String>,
    },
}

/// What `o` means (pure).
pub fn judge(o: &Observed) -> Verdict {
    match o.status {
        Status::Succeeded => Verdict::Succeeded,
        Status::Ready => Verdict::Ready,
        s @ (Status::Failed | Status::Stopped) => {
            let mut reason = match &o.error {
                Some((code, message)) => format!("{code}: {message}"),
                None => format!("the deployment is {}", s.name()),
            };
            if let Some(m) = &o.rollback_message {
                reason = format!("{reason} ({m})");
            }
            Verdict::Ended {
                status: s,
                reason,
                rolled_back_by: o.rolled_back_by.clone(),
            }
        }
        s => Verdict::Waiting(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(status: Status) -> Observed {
        Observed {
            id: "d-1".into(),
            status,
            ..Observed::default()
        }
    }

    #[test]
    fn statuses_mean_what_the_waiter_does() {
        for (status, verdict) in [
            (Status::Created, Verdict::Waiting(Status::Created)),
            (Status::Queued, Verdict::Waiting(Status::Queued)),
            (Status::InProgress, Verdict::Waiting(Status::InProgress)),
            (Status::Baking, Verdict::Waiting(Status::Baking)),
            (Status::Unknown, Verdict::Waiting(Status::Unknown)),
            (Status::Ready, Verdict::Ready),
            (Status::Succeeded, Verdict::Succeeded),
        ] {
            assert_eq!(judge(&observed(status)), verdict, "{status:?}");
        }
        let mut failed = observed(Status::Failed);
        failed.error = Some(("ALARM_ACTIVE".into(), "alarm movieverse-5xx fired".into()));
        failed.rolled_back_by = Some("d-2".into());
        failed.rollback_message = Some("rolled back by d-2".into());
        assert_eq!(
            judge(&failed),
            Verdict::Ended {
                status: Status::Failed,
                reason: "ALARM_ACTIVE: alarm movieverse-5xx fired (rolled back by d-2)".into(),
                rolled_back_by: Some("d-2".into()),
            }
        );
        assert_eq!(
            judge(&observed(Status::Stopped)),
            Verdict::Ended {
                status: Status::Stopped,
                reason: "the deployment is Stopped".into(),
                rolled_back_by: None,
            }
        );
    }
}
