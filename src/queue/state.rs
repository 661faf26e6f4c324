//! The job state machine of DESIGN.md, in one place: which states exist, which moves between
//! them are legal, and the steps a running job goes through.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Retryable,
    Succeeded,
    Skipped,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Pending,
        JobState::Running,
        JobState::Retryable,
        JobState::Succeeded,
        JobState::Skipped,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Succeeded => "succeeded",
            JobState::Skipped => "skipped",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Skipped | JobState::Failed | JobState::Cancelled
        )
    }

    /// The legal moves. `failed` and `cancelled` can be requeued by the operator (`retry`);
    /// `succeeded` and `skipped` are final, so a protected VM is never configured again.
    pub fn can_become(self, to: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, to),
            (Pending, Running)
                | (Pending, Cancelled)
                | (Retryable, Running)
                | (Retryable, Cancelled)
                | (Running, Succeeded)
                | (Running, Skipped)
                | (Running, Failed)
                | (Running, Retryable)
                | (Running, Cancelled)
                | (Failed, Pending)
                | (Cancelled, Pending)
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job is in the configure workflow; saved with each checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    ResolveVm,
    ResolveTarget,
    Submit,
    AwaitTask,
    Verify,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::ResolveVm,
        Step::ResolveTarget,
        Step::Submit,
        Step::AwaitTask,
        Step::Verify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::ResolveVm => "resolve_vm",
            Step::ResolveTarget => "resolve_target",
            Step::Submit => "submit",
            Step::AwaitTask => "await_task",
            Step::Verify => "verify",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        for s in Step::ALL {
            assert_eq!(Step::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn terminal_states_only_leave_through_an_operator_requeue() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in JobState::ALL {
                let requeue = to == JobState::Pending
                    && matches!(from, JobState::Failed | JobState::Cancelled);
                assert_eq!(from.can_become(to), requeue, "{from} -> {to}");
            }
        }
    }
}
