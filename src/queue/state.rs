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

    /// The moves a running job's step may make, `in_doubt` being the job's mark after the move.
    /// Forward one step at a time, each step's result saved before the next starts, except that
    /// a reconciled submit may go straight to `verify` (the server already has the replication).
    /// Back only where nothing can be sent twice: to resolving again while no configure call is
    /// in doubt, and to `submit` from a later step only with the in-doubt mark, so that the
    /// server is asked before anything is sent again.
    pub fn can_become(self, to: Step, in_doubt: bool) -> bool {
        use Step::*;
        self == to
            || matches!(
                (self, to),
                (ResolveVm, ResolveTarget)
                    | (ResolveTarget, Submit)
                    | (Submit, AwaitTask)
                    | (Submit, Verify)
                    | (AwaitTask, Verify)
            )
            || (!in_doubt
                && matches!(
                    (self, to),
                    (ResolveTarget | Submit, ResolveVm) | (Submit, ResolveTarget)
                ))
            || (in_doubt && matches!((self, to), (AwaitTask | Verify, Submit)))
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
    fn steps_move_forward_in_order_and_back_only_where_nothing_is_sent_twice() {
        use Step::*;
        let forward = [
            (ResolveVm, ResolveTarget),
            (ResolveTarget, Submit),
            (Submit, AwaitTask),
            (Submit, Verify),
            (AwaitTask, Verify),
        ];
        let back_to_resolve = [
            (ResolveTarget, ResolveVm),
            (Submit, ResolveVm),
            (Submit, ResolveTarget),
        ];
        let back_to_submit = [(AwaitTask, Submit), (Verify, Submit)];
        for from in Step::ALL {
            for to in Step::ALL {
                for in_doubt in [false, true] {
                    let pair = (from, to);
                    let legal = from == to
                        || forward.contains(&pair)
                        || (!in_doubt && back_to_resolve.contains(&pair))
                        || (in_doubt && back_to_submit.contains(&pair));
                    assert_eq!(
                        from.can_become(to, in_doubt),
                        legal,
                        "{from} -> {to} (in doubt: {in_doubt})"
                    );
                }
            }
        }
        // Once a configure call may have been sent, no move leads back to resolving.
        for from in [AwaitTask, Verify] {
            for to in [ResolveVm, ResolveTarget] {
                assert!(!from.can_become(to, false) && !from.can_become(to, true));
            }
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
