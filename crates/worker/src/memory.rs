//! `--max-worker-memory`: a worker whose own memory passes the limit retires itself, as after
//! `--max-requests` (it finishes its requests, the master replaces it and counts the restart
//! under `memory`).
//!
//! "Own memory" is `RssAnon` from /proc/self/status: the anonymous pages resident for this
//! process. File pages (the binary, a mapped model) are not in it; pages inherited from the
//! master (`--preload`) are counted only once this worker has written to them, as a worker's
//! share of the machine grows then. It is read on the heartbeat tick (one small read a
//! second), never per request.
//!
//! A limit that a worker passes as soon as it has served (its app and models built) would
//! replace every worker after its first requests, for ever: the first reading after the
//! first request is the worker's floor, and a floor above the limit is logged once and the
//! limit is not applied to that worker.

/// The worker's own memory in bytes, `None` where /proc cannot say.
pub(crate) fn own_memory() -> Option<u64> {
    rss_anon(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// `RssAnon` of a /proc/PID/status text, in bytes.
fn rss_anon(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("RssAnon:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// Bytes as MiB for a log line.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// The limit, and what the worker learnt about its own memory.
pub(crate) struct Watch {
    limit: u64,
    floor: Option<u64>,
}

impl Watch {
    /// A watch for `--max-worker-memory` (0: off).
    pub(crate) fn new(limit: u64) -> Watch {
        Watch { limit, floor: None }
    }

    /// On a heartbeat tick, after `served` requests: the worker's own memory when it is
    /// past the limit and the worker should retire.
    pub(crate) fn past_limit(&mut self, served: u64) -> Option<u64> {
        self.judge(served, own_memory)
    }

    fn judge(&mut self, served: u64, read: impl FnOnce() -> Option<u64>) -> Option<u64> {
        if self.limit == 0 || served == 0 || self.floor.is_some_and(|f| f > self.limit) {
            return None;
        }
        let own = read()?;
        match self.floor {
            Some(_) => (own > self.limit).then_some(own),
            None => {
                self.floor = Some(own);
                if own > self.limit {
                    tracing::warn!(
                        "This worker's own memory is {} once it has served, more than \
                         --max-worker-memory ({}): the limit cannot be met, so it is not \
                         applied to this worker; raise it above what a worker takes with its \
                         models loaded",
                        mib(own),
                        mib(self.limit)
                    );
                } else {
                    tracing::debug!(
                        "memory floor: {} once served (--max-worker-memory {})",
                        mib(own),
                        mib(self.limit)
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_anon_in_bytes() {
        let status =
            "Name:\tserve\nVmRSS:\t   20000 kB\nRssAnon:\t    5120 kB\nRssFile:\t 14880 kB\n";
        assert_eq!(rss_anon(status), Some(5 << 20));
        assert_eq!(rss_anon("Name:\tx\n"), None);
        assert!(own_memory().is_some_and(|b| b > 0));
    }

    #[test]
    fn retires_past_the_limit_but_never_for_a_floor_above_it() {
        let mib = |n: u64| Some(n << 20);
        let mut w = Watch::new(100 << 20);
        assert_eq!(w.judge(0, || mib(500)), None, "nothing served yet");
        assert_eq!(w.judge(1, || mib(60)), None, "the floor");
        assert_eq!(w.judge(5, || mib(90)), None);
        assert_eq!(w.judge(9, || mib(120)), mib(120));

        let mut w = Watch::new(100 << 20);
        assert_eq!(w.judge(1, || mib(150)), None, "a floor above the limit");
        assert_eq!(w.judge(50, || mib(400)), None, "is never applied");

        let mut off = Watch::new(0);
        assert_eq!(off.judge(10, || mib(1 << 20)), None);
    }
}
