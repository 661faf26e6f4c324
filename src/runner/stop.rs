//! Ctrl-C (or the caller) asking a run to stop: nothing new starts once it has, and network work
//! under way gets a grace period to finish, so that what reached the appliance is recorded,
//! before it is abandoned.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// How long in-flight calls may finish after Ctrl-C before they are abandoned.
const GRACE: Duration = Duration::from_secs(5);

/// The stop signal as a run watches it.
#[derive(Debug, Clone)]
pub(super) struct Stop(watch::Receiver<bool>);

impl Stop {
    pub fn new(stop: watch::Receiver<bool>) -> Stop {
        Stop(stop)
    }

    pub fn stopping(&self) -> bool {
        *self.0.borrow()
    }

    /// Sleeps `d`, or until asked to stop.
    pub async fn sleep(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stopped(self.0.clone()) => {}
        }
    }

    /// Runs network work; once asked to stop it gets [`GRACE`] to finish, then is abandoned
    /// (`None`).
    pub async fn guarded<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => Some(out),
            _ = stopped(self.0.clone()) => tokio::time::timeout(GRACE, work).await.ok(),
        }
    }
}

/// Resolves once Ctrl-C (or the caller) asked to stop.
pub(super) async fn stopped(mut stop: watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await: it is not Send.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}
