//! Drain: the one object that tells every part of a worker to stop taking work.
//!
//! Draining is a one-way switch. The accept loops stop accepting when it flips; connections
//! then answer their next request with `Connection: close` (HTTP/1) or send GOAWAY (HTTP/2);
//! idle connections close after a short grace; the worker exits once none is left.

use std::sync::Arc;
use tokio::sync::watch;

/// Why a worker drains; logged once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// SIGTERM from the master (stop, reload, fewer workers).
    Signal,
    /// `--max-requests` reached: the worker recycles itself.
    MaxRequests,
    /// Its own memory passed `--max-worker-memory`: the worker recycles itself.
    Memory,
}

/// A cloneable handle on the worker's drain switch.
#[derive(Clone)]
pub struct Drain {
    tx: Arc<watch::Sender<Option<Reason>>>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            tx: Arc::new(watch::channel(None).0),
        }
    }
}

impl Drain {
    /// Starts draining; returns true the first time only.
    pub fn start(&self, reason: Reason) -> bool {
        self.tx.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        })
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// Resolves once draining has started.
    pub async fn started(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(Option::is_some).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_once_and_wakes_waiters() {
        let d = Drain::default();
        let waiter = tokio::spawn({
            let d = d.clone();
            async move { d.started().await }
        });
        assert!(!d.is_draining());
        assert!(d.start(Reason::Signal));
        assert!(!d.start(Reason::MaxRequests));
        waiter.await.unwrap();
        assert!(d.is_draining());
    }
}
