//! Slow clients give way when a worker is full: the connections that have not sent a
//! request yet (still in a TLS handshake or a head), oldest first.
//!
//! `--min-rate` cuts a trickle after its first second or so; until then, enough trickling
//! connections can fill every `--worker-connections` slot, and an ordinary client waits in
//! the kernel's queue behind them. So when a worker has no slot left and a connection is
//! waiting, the connection that has waited longest for its first request (at least
//! [`MIN_AGE`]: an ordinary client sends its head at once) is closed to make room, and
//! logged at debug. A connection that has started a request is never chosen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a connection must have gone without a request before it may be chosen.
pub(crate) const MIN_AGE: Duration = Duration::from_millis(250);

/// The connections of a worker that have not started a request.
#[derive(Default)]
pub(crate) struct Pending {
    next: AtomicU64,
    /// By arrival order: when each came, and what tells it to go.
    open: Mutex<BTreeMap<u64, (Instant, Arc<Notify>)>>,
}

/// A connection's place in [`Pending`]; it leaves when this drops (its first request, or
/// its end).
pub(crate) struct Place {
    pending: Arc<Pending>,
    id: u64,
    /// Notified when the connection must give way.
    pub(crate) evicted: Arc<Notify>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Ok(mut open) = self.pending.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl Pending {
    /// A new connection, waiting for its first request.
    pub(crate) fn enter(self: &Arc<Self>) -> Place {
        let id = self.next.fetch_add(1, Relaxed);
        let evicted = Arc::new(Notify::new());
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, (Instant::now(), evicted.clone()));
        }
        Place {
            pending: Arc::clone(self),
            id,
            evicted,
        }
    }

    /// Tells the oldest connection without a request, if it is at least [`MIN_AGE`] old, to
    /// give way; whether one was.
    pub(crate) fn evict_oldest(&self) -> bool {
        let Ok(mut open) = self.open.lock() else {
            return false;
        };
        let Some((&id, (since, _))) = open.first_key_value() else {
            return false;
        };
        if since.elapsed() < MIN_AGE {
            return false;
        }
        if let Some((_, notify)) = open.remove(&id) {
            // A permit stored: the connection sees it even if it is not waiting right now.
            notify.notify_one();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_oldest_without_a_request_gives_way_once_old_enough() {
        let p = Arc::new(Pending::default());
        let first = p.enter();
        tokio::time::advance(Duration::from_millis(100)).await;
        let second = p.enter();
        assert!(!p.evict_oldest(), "too young");
        tokio::time::advance(MIN_AGE).await;
        assert!(p.evict_oldest());
        first.evicted.notified().await;
        drop(first);
        assert!(p.evict_oldest(), "the second is old enough too");
        second.evicted.notified().await;
        assert!(!p.evict_oldest(), "nobody left");
        // A connection that started its request left: never chosen.
        let third = p.enter();
        drop(third);
        tokio::time::advance(MIN_AGE).await;
        assert!(!p.evict_oldest());
    }
}
