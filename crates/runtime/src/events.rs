//! What the runtime does, told as it happens to whoever counts it.
//!
//! A model's executor reports every step of every request to one [`Observer`]: queued, shed
//! (queue full), taken off the queue to run or dropped because nobody waits any more, and each
//! engine call with its rows and duration; the model reports its plan's build. [`Activity`] is the observer every executor has
//! (plain counters, which tests and logs read); a server that keeps metrics passes its own
//! ([`crate::executor::Executor::start_observed`]) and the runtime needs no change for it.
//! Observers are called on the runner's task or the requester's, so they must be cheap: an
//! atomic add, not a lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why a queued request was dropped before it reached the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// Its client went away (the request's future was dropped before its deadline).
    ClientGone,
    /// It ran out of its `--request-timeout` while it waited.
    TimedOut,
}

/// One engine call (or, row by row, one run of calls) answering one or more requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// The requests it answers (more than one when requests were merged).
    pub requests: usize,
    /// Their rows together: the batch the model saw.
    pub rows: usize,
    /// Engine calls made: one, or one per row when the rows ran one by one; none when the
    /// requests were refused after they left the queue and before the model ran (a batch the
    /// plan cannot take, inputs that cannot be stacked), with `rows` 0 and `ok` false.
    pub calls: usize,
    /// Time inside the engine, stacking the inputs included.
    pub took: Duration,
    /// Whether it succeeded.
    pub ok: bool,
}

/// Whoever counts what a model's executor does. Every method has a default that ignores
/// the event.
pub trait Observer: Send + Sync {
    /// A request joined the queue.
    fn queued(&self) {}
    /// A request was refused because the queue was full (`--max-queue`).
    fn shed(&self) {}
    /// A request left the queue to run, after waiting `waited`.
    fn started(&self, waited: Duration) {
        let _ = waited;
    }
    /// A request left the queue without running, after waiting `waited`.
    fn cancelled(&self, why: Cancelled, waited: Duration) {
        let _ = (why, waited);
    }
    /// A call ran.
    fn call(&self, call: &Call) {
        let _ = call;
    }
    /// The model's plan was built, in `took` (once per process that builds it: a worker on
    /// its first request, or the master with `--preload`).
    fn loaded(&self, took: Duration) {
        let _ = took;
    }
}

/// The counters every executor keeps (tests and logs read them).
#[derive(Debug, Default)]
pub struct Activity {
    /// Engine calls made (fewer than requests when batching works).
    pub calls: AtomicU64,
    /// Rows run through the model.
    pub rows: AtomicU64,
    /// Queued requests dropped before they reached the model because nobody waited for
    /// the answer any more: the client disconnected, or the request timed out.
    pub cancelled: AtomicU64,
    /// Requests refused because the queue was full.
    pub shed: AtomicU64,
}

impl Observer for Activity {
    fn shed(&self) {
        self.shed.fetch_add(1, Relaxed);
    }

    fn cancelled(&self, _: Cancelled, _: Duration) {
        self.cancelled.fetch_add(1, Relaxed);
    }

    fn call(&self, call: &Call) {
        self.calls.fetch_add(call.calls as u64, Relaxed);
        self.rows.fetch_add(call.rows as u64, Relaxed);
    }
}
