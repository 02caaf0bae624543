//! The scoreboard slot: how a worker shows itself to the master.
//!
//! The master maps one `MAP_SHARED` anonymous region before forking and gives each worker a
//! slot in it. Everything in a slot is an atomic, so the master reads it without locks while
//! the worker writes it; the memory starts zeroed, which is a valid value for every field.
//! The heartbeat is a `CLOCK_MONOTONIC` reading in milliseconds, a clock shared by every
//! process of the machine. The slots feed the master's supervision, `/status`, `/metrics`, and
//! the workers themselves: each reads the others' connection counts to decide whether to take
//! the next connection (see `accept`).

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

/// Where a worker is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    /// Nobody uses this slot.
    Free = 0,
    /// Forked, not yet accepting.
    Booting = 1,
    /// Accepting and serving.
    Ready = 2,
    /// No longer accepting; finishing what it has, then exiting.
    Draining = 3,
}

const CURRENT_WORDS: usize = 8;

/// One worker's row: two 128-byte lines, so that two workers never write the same cache line
/// (nor a pair of adjacent 64-byte lines, which x86 prefetches together). The first line is
/// written per request; the second per connection, and read by the other workers each time
/// they decide whether to accept.
#[repr(C, align(128))]
#[derive(Default)]
pub struct Slot {
    pid: AtomicI32,
    state: AtomicU32,
    generation: AtomicU64,
    heartbeat_ms: AtomicU64,
    spawned_ms: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicU64,
    current_since_ms: AtomicU64,
    current: [AtomicU64; CURRENT_WORDS],
    /// Set by the master when the server stops (TERM, INT, QUIT) or stops its workers
    /// (WINCH), as opposed to retiring this one worker (reload, max-requests, TTOU).
    server_stopping: AtomicU32,
    /// Set by the master when the server stops, bit `i` for listener `i`: the listeners that
    /// take no new connection and are destroyed when the workers let go of them, so that
    /// each worker first takes the connections their queues still hold.
    /// (32 listeners are named, so that the word fits the first line; more are rare and are
    /// not emptied.)
    closing_listeners: AtomicU32,
    /// The second line: what the other workers read to share connections.
    balance: Balance,
}

/// A slot's second line (`align(128)` starts it on a line of its own).
#[repr(C, align(128))]
#[derive(Default)]
struct Balance {
    /// Open connections on the listeners that balance (every one but `--metrics-bind`'s).
    connections: AtomicU32,
    /// Connections accepted since the worker started (wrapping): a peer that leaves
    /// connections to this worker sees from it whether this worker is taking any.
    accepted: AtomicU32,
    /// `--worker-connections` of this worker; 0 until it boots (no limit known yet).
    limit: AtomicU32,
}

impl Slot {
    /// Prepares the slot for a worker about to be forked (called by the master).
    pub fn claim(&self, generation: u64) {
        let now = now_ms();
        self.pid.store(0, Relaxed);
        self.generation.store(generation, Relaxed);
        self.heartbeat_ms.store(now, Relaxed);
        self.spawned_ms.store(now, Relaxed);
        self.requests.store(0, Relaxed);
        self.in_flight.store(0, Relaxed);
        self.current_since_ms.store(0, Relaxed);
        for w in &self.current {
            w.store(0, Relaxed);
        }
        self.server_stopping.store(0, Relaxed);
        self.closing_listeners.store(0, Relaxed);
        self.balance.connections.store(0, Relaxed);
        self.balance.accepted.store(0, Relaxed);
        self.balance.limit.store(0, Relaxed);
        self.set_state(State::Booting);
    }

    /// Frees the slot (called by the master once the worker is reaped).
    pub fn release(&self) {
        self.pid.store(0, Relaxed);
        self.set_state(State::Free);
    }

    /// The worker's pid, once the master recorded it.
    pub fn pid(&self) -> i32 {
        self.pid.load(Relaxed)
    }

    /// Records the worker's pid (called by the master after fork).
    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Relaxed);
    }

    /// The generation (reload count) this worker belongs to.
    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// The worker's state.
    pub fn state(&self) -> State {
        match self.state.load(Relaxed) {
            1 => State::Booting,
            2 => State::Ready,
            3 => State::Draining,
            _ => State::Free,
        }
    }

    /// Sets the state.
    pub fn set_state(&self, state: State) {
        self.state.store(state as u32, Relaxed);
    }

    /// Tells the worker the server is stopping, not only this worker (called by the master
    /// before it signals the worker).
    pub fn mark_server_stopping(&self) {
        self.server_stopping.store(1, Relaxed);
    }

    /// Whether the server is stopping: what readiness answers (a worker that retires while
    /// the server goes on serving stays ready).
    pub fn server_stopping(&self) -> bool {
        self.server_stopping.load(Relaxed) != 0
    }

    /// Names the listeners (bit `i`: listener `i`, in the order the worker got them) that close
    /// for good: nothing new enters their queues and what is in them must be taken before the
    /// last descriptor closes (called by the master before it signals the worker).
    pub fn mark_listeners_closing(&self, mask: u32) {
        self.closing_listeners.store(mask, Relaxed);
    }

    /// Whether listener `index` closes for good (see [`Slot::mark_listeners_closing`]).
    pub fn listener_closing(&self, index: usize) -> bool {
        index < 32 && self.closing_listeners.load(Relaxed) & (1 << index) != 0
    }

    /// Proves the worker's event loop is alive.
    pub fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Relaxed);
    }

    /// Milliseconds since the last heartbeat.
    pub fn silence_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.heartbeat_ms.load(Relaxed))
    }

    /// Milliseconds since the master forked this worker.
    pub fn age_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.spawned_ms.load(Relaxed))
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    /// Marks a request as started and remembers its line (truncated) for timeout reports.
    pub fn request_started(&self, method: &str, path: &str) {
        self.in_flight.fetch_add(1, Relaxed);
        self.current_since_ms.store(now_ms(), Relaxed);
        let mut buf = [0u8; CURRENT_WORDS * 8];
        let line = method.bytes().chain(Some(b' ')).chain(path.bytes());
        for (dst, src) in buf.iter_mut().zip(line) {
            *dst = src;
        }
        for (word, chunk) in self.current.iter().zip(buf.chunks_exact(8)) {
            word.store(u64::from_le_bytes(chunk.try_into().unwrap()), Relaxed);
        }
    }

    /// Marks a request as answered.
    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
    }

    /// Open connections on the balancing listeners.
    pub fn connections(&self) -> u32 {
        self.balance.connections.load(Relaxed)
    }

    /// Counts a connection this worker just accepted.
    pub(crate) fn connection_accepted(&self) {
        self.balance.connections.fetch_add(1, Relaxed);
        self.balance.accepted.fetch_add(1, Relaxed);
    }

    /// Counts a connection that ended.
    pub(crate) fn connection_closed(&self) {
        self.balance.connections.fetch_sub(1, Relaxed);
    }

    /// Connections accepted since the worker started, wrapping.
    pub(crate) fn accepted(&self) -> u32 {
        self.balance.accepted.load(Relaxed)
    }

    /// Records the worker's `--worker-connections` (called by the worker as it boots).
    pub fn set_connection_limit(&self, limit: usize) {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        self.balance.limit.store(limit, Relaxed);
    }

    /// Whether this worker can take one more connection: booting or serving, its event loop
    /// alive (a heartbeat within `stale_ms`), below its `--worker-connections`.
    pub(crate) fn takes_connections(&self, now: u64, stale_ms: u64) -> bool {
        let limit = self.balance.limit.load(Relaxed);
        matches!(self.state(), State::Booting | State::Ready)
            && self.silence_ms(now) < stale_ms
            && (limit == 0 || self.connections() < limit)
    }

    /// The most recently started request's line and how long ago it started, for the report
    /// the master writes when it kills a hung worker. Concurrent requests may tear the text;
    /// it is a diagnostic, never parsed.
    pub fn current_request(&self, now: u64) -> Option<(String, u64)> {
        let since = self.current_since_ms.load(Relaxed);
        if since == 0 {
            return None;
        }
        let mut bytes = Vec::with_capacity(CURRENT_WORDS * 8);
        for word in &self.current {
            bytes.extend_from_slice(&word.load(Relaxed).to_le_bytes());
        }
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
        Some((text, now.saturating_sub(since)))
    }
}

/// Every slot the master mapped, and how many of them were ever claimed. The master claims
/// the lowest free slot each time, so every worker's slot is below that mark, and a reader
/// (the accept policy, `/status`) looks at a handful of slots, not at the whole mapping.
#[derive(Clone, Copy)]
pub struct Board {
    slots: &'static [Slot],
    claimed: &'static AtomicU32,
}

impl Board {
    /// The board over `slots`, with `claimed` the shared high-water mark (both zeroed, shared
    /// memory the master mapped; or a process's own, in tests and tools).
    pub fn new(slots: &'static [Slot], claimed: &'static AtomicU32) -> Board {
        Board { slots, claimed }
    }

    /// A board of `n` slots of this process's own memory (tests, and tools that run workers
    /// as threads).
    pub fn private(n: usize) -> Board {
        let slots: Vec<Slot> = (0..n).map(|_| Slot::default()).collect();
        Board::new(Vec::leak(slots), Box::leak(Box::default()))
    }

    /// Every slot, claimed or not.
    pub fn all(&self) -> &'static [Slot] {
        self.slots
    }

    /// Raises the mark to cover slot `i` (called by the master as it claims the slot).
    pub fn cover(&self, i: usize) {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        self.claimed.fetch_max(n, Relaxed);
    }

    /// The slots that ever held a worker: every live worker's slot is among them.
    pub fn in_use(&self) -> &'static [Slot] {
        let n = (self.claimed.load(Relaxed) as usize).min(self.slots.len());
        &self.slots[..n]
    }
}

/// `CLOCK_MONOTONIC` in milliseconds: the same clock in every process of the machine.
pub fn now_ms() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1000 + ts.tv_nsec() as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_the_current_request_and_counts() {
        let slot = Slot::default();
        slot.claim(3);
        assert_eq!(slot.state(), State::Booting);
        assert_eq!(slot.generation(), 3);
        let now = now_ms();
        assert_eq!(slot.current_request(now), None);
        slot.request_started(
            "POST",
            "/v2/models/a-rather-long-model-name/versions/1/infer/and/then/some",
        );
        let (line, _) = slot.current_request(now_ms()).unwrap();
        assert_eq!(line.len(), 64);
        assert!(line.starts_with("POST /v2/models/a-rather-long"), "{line}");
        assert_eq!(slot.in_flight(), 1);
        slot.request_finished();
        assert_eq!((slot.in_flight(), slot.requests()), (0, 1));
    }

    #[test]
    fn a_slot_is_two_lines_and_the_balance_fields_start_the_second() {
        assert_eq!(std::mem::size_of::<Slot>(), 256);
        let slot = Slot::default();
        let base = &slot as *const Slot as usize;
        assert_eq!(&slot.balance as *const _ as usize - base, 128);
    }
}
