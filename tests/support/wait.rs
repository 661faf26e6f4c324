//! Waiting for something to happen: a condition checked again and again until it holds or a
//! deadline passes, never a fixed sleep that hopes the simulator, a run or a child process got
//! there in time. The deadline is generous (the machine may be loaded); a condition that holds
//! early ends the wait early, so a passing test costs no more than the thing it waits for.
//!
//! Also compiled into the library's own tests (`src/sim/tests.rs` includes this file), so it
//! uses nothing but `std` and `tokio`.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// First pause between two checks; it doubles up to [`SLOWEST`], so that a quick condition is
/// seen at once and a slow one does not keep a loaded machine (or the simulator's rate
/// limiter, when the check is an API call) busy.
const QUICKEST: Duration = Duration::from_millis(5);
const SLOWEST: Duration = Duration::from_millis(100);

/// What a check found: the awaited value, or not yet (with what it saw instead, if it says).
pub trait Condition {
    type Value;
    fn check(self) -> Result<Self::Value, Option<String>>;
}

impl Condition for bool {
    type Value = ();
    fn check(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T> Condition for Option<T> {
    type Value = T;
    fn check(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Err(seen)`: not yet, and `seen` is what the failure message shows if it never comes.
impl<T, E: Display> Condition for Result<T, E> {
    type Value = T;
    fn check(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Checks `check` until it holds, and returns what it found; panics after `within`, naming
/// `what` was awaited and the last thing seen instead.
pub async fn eventually<C: Condition>(
    within: Duration,
    what: impl Display,
    mut check: impl AsyncFnMut() -> C,
) -> C::Value {
    let mut patience = Patience::new(within);
    loop {
        match check().await.check() {
            Ok(value) => return value,
            Err(seen) => tokio::time::sleep(patience.after(&what, seen)).await,
        }
    }
}

/// [`eventually`] on a thread of its own (a test without a runtime, a child process).
pub fn eventually_blocking<C: Condition>(
    within: Duration,
    what: impl Display,
    mut check: impl FnMut() -> C,
) -> C::Value {
    let mut patience = Patience::new(within);
    loop {
        match check().check() {
            Ok(value) => return value,
            Err(seen) => std::thread::sleep(patience.after(&what, seen)),
        }
    }
}

/// `Ok` when nothing is `left`, else what is, as a condition's "not yet".
pub fn none_left<T: std::fmt::Debug>(left: &[T]) -> Result<(), String> {
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("left: {left:?}"))
    }
}

/// The deadline of one wait, and the pause before its next check.
struct Patience {
    within: Duration,
    deadline: Instant,
    pause: Duration,
}

impl Patience {
    fn new(within: Duration) -> Patience {
        Patience {
            within,
            deadline: Instant::now() + within,
            pause: QUICKEST,
        }
    }

    /// After a check that did not hold: how long to pause before the next one. Panics once the
    /// deadline has passed, naming `what` was awaited and what was `seen` instead.
    fn after(&mut self, what: &dyn Display, seen: Option<String>) -> Duration {
        if Instant::now() >= self.deadline {
            let within = self.within;
            match seen {
                Some(seen) => panic!("waited {within:?} for {what}; last seen: {seen}"),
                None => panic!("waited {within:?} for {what}"),
            }
        }
        let pause = self.pause;
        self.pause = (pause * 2).min(SLOWEST);
        pause
    }
}
