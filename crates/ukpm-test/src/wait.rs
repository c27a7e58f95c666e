//! Waiting for something to happen, with a deadline, instead of sleeping and hoping.
//!
//! A test that sleeps "long enough" for a server to listen or a process to start writing
//! passes or fails with the machine's load, and when it passes it proves nothing about the
//! moment it claims to test. Every wait in the harness and the tests polls the condition it is
//! really waiting for, through [`poll_until`], and a wait that times out says what it waited for.

use std::time::{Duration, Instant};

/// How often a condition is polled: short enough that a wait costs little more than the event
/// itself, long enough that polling does not load a busy machine.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Polls `ready` until it returns `Some` (and returns that) or `timeout` passes (`None`). It is
/// always asked at least once, and once more at the deadline, so a slow poll cannot miss it.
/// For waits whose timeout is an outcome rather than a failure (a process that hangs is killed
/// and counted); otherwise use [`wait_until`] or [`wait_for`].
pub fn poll_until<T>(timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// Waits until `ready` returns `Some` and returns that; panics, naming `what` was awaited, when
/// `timeout` passes first. `ready` may panic itself to fail early (the process it waits on
/// exited), with a better message than the timeout's.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, ready: impl FnMut() -> Option<T>) -> T {
    match poll_until(timeout, ready) {
        Some(value) => value,
        None => panic!("waited {timeout:?} for {what}, in vain"),
    }
}

/// Waits until `condition` holds; panics, naming `what` was awaited, when `timeout` passes
/// first. See [`wait_for`].
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, || condition().then_some(()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_comes_true_ends_the_wait() {
        let mut polls = 0;
        wait_until("the third poll", Duration::from_secs(5), || {
            polls += 1;
            polls == 3
        });
        assert_eq!(polls, 3);
    }

    #[test]
    #[should_panic(expected = "for the impossible, in vain")]
    fn a_timeout_names_what_was_awaited() {
        wait_until("the impossible", Duration::from_millis(30), || false);
    }

    #[test]
    fn the_condition_is_asked_even_with_no_time_at_all() {
        assert_eq!(poll_until(Duration::ZERO, || Some(7)), Some(7));
    }
}
