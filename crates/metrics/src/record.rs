//! Where this process records, and the labels a response carries.
//!
//! The region is process-wide by nature: the master maps it once and every process forked
//! from it inherits it. What differs per process is the table it writes, and that is only
//! known after the fork, while the app that records may have been built before it (`--preload`
//! builds the models in the master, and the workers inherit them copy-on-write). So the target
//! is a process-global set by the forking code ([`record_into`]), read at each event: the
//! model's observer asks [`recorder`] then, not when it was built. A process with no region
//! (unit tests, tools) records nothing.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use crate::region::{
    self, CONNECTIONS, Cause, DURATION_BUCKETS, HIST_WORDS, LOAD_BUCKETS, M_CALLS, M_CANCELLED,
    M_DURATION, M_IN_FLIGHT, M_INFERENCE, M_LOAD, M_QUEUE, M_QUEUE_DEPTH, M_ROWS, META_DRAIN,
    META_LOADED, MODEL_WORDS, MODELS, ModelId, Protocol, ROW_BUCKETS, Region, S_EXECUTIONS, S_FAIL,
    S_INFER, S_INFERENCES, S_INPUT, S_LAST_MS, S_OUTPUT, S_QUEUE, S_SUCCESS, STAT_WORDS, STATS,
    VersionId,
};

static REGION: OnceLock<Region> = OnceLock::new();
static TARGET: AtomicUsize = AtomicUsize::new(NOWHERE);
const NOWHERE: usize = usize::MAX;
const MASTER: usize = usize::MAX - 1;

/// The table a process writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Nothing (a reload's proof: its model builds are not the server's).
    Nowhere,
    /// The master: models it builds before forking (`--preload`) count as preloaded.
    Master,
    /// A worker's slot.
    Slot(usize),
}

/// Installs the region (the master, once, before anything forks). A second call is ignored.
pub fn install(region: Region) {
    let _ = REGION.set(region);
}

/// The installed region.
pub fn region() -> Option<Region> {
    REGION.get().copied()
}

/// Sets what this process records into (the forking code, right after the fork).
pub fn record_into(target: Target) {
    let raw = match target {
        Target::Nowhere => NOWHERE,
        Target::Master => MASTER,
        Target::Slot(i) => i,
    };
    TARGET.store(raw, Relaxed);
}

/// This process's recorder, when it records.
pub fn recorder() -> Option<Recorder> {
    let region = *REGION.get()?;
    match TARGET.load(Relaxed) {
        NOWHERE => None,
        MASTER => Some(Recorder {
            region,
            table: region.retired(),
            master: true,
        }),
        i if i < region.slots() => Some(Recorder::for_slot(region, i)),
        _ => None,
    }
}

/// The index of a model name, to resolve once when an app is built (a custom app passes it in
/// its responses' [`Observed`]). Names the master did not register, and every name when no
/// region is installed, are `_overflow` and `""` respectively.
pub fn model_id(name: &str) -> ModelId {
    match REGION.get() {
        Some(region) => region.find_model(name).unwrap_or(ModelId::OVERFLOW),
        None => ModelId::NONE,
    }
}

/// The statistics index of a model version (registered by the master), `None` when the
/// region keeps none for it (no region, or past its bounds).
pub fn version_id(model: ModelId, version: &str) -> Option<VersionId> {
    REGION.get()?.find_version(model, version)
}

/// How one inference request went, for its model version's statistics.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestStats {
    /// Whether it was answered (else it failed).
    pub ok: bool,
    /// Its rows.
    pub rows: usize,
    /// From its body to its answer.
    pub total: Duration,
    /// Decoding its inputs.
    pub input: Duration,
    /// Its model call (a merged call's whole time).
    pub infer: Duration,
    /// Encoding its outputs.
    pub output: Duration,
}

/// The labels the worker counts a request under, given by the app with `serve_app::observe`
/// while it answers. A request the app did not label counts as `protocol="other"`, no model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The model the request was for ([`model_id`]), or [`ModelId::NONE`].
    pub model: ModelId,
    /// The protocol it spoke.
    pub protocol: Protocol,
}

/// Records into one table.
#[derive(Clone, Copy)]
pub struct Recorder {
    region: Region,
    table: &'static [AtomicU64],
    master: bool,
}

impl Recorder {
    /// Records into slot `i` (tests; a worker uses [`recorder`]).
    pub fn for_slot(region: Region, i: usize) -> Recorder {
        Recorder {
            region,
            table: region.table(i),
            master: false,
        }
    }

    fn model(&self, model: ModelId, offset: usize) -> &AtomicU64 {
        &self.table[MODELS + model.index() * MODEL_WORDS + offset]
    }

    fn observe(&self, model: ModelId, offset: usize, bounds: &[u64], value: u64, n: u64) {
        let bucket = bounds.partition_point(|&b| b < value);
        debug_assert!(bucket < HIST_WORDS - 1);
        self.model(model, offset + bucket).fetch_add(n, Relaxed);
        self.model(model, offset + HIST_WORDS - 1)
            .fetch_add(value.saturating_mul(n), Relaxed);
    }

    /// One answered request: `serve_requests_total` and `serve_request_duration_seconds`.
    pub fn request(&self, model: ModelId, protocol: Protocol, code: u16, took: Duration) {
        region::add_request(self.table, region::request_key(model, protocol, code), 1);
        let offset = M_DURATION + protocol as usize * HIST_WORDS;
        self.observe(model, offset, &DURATION_BUCKETS, nanos(took), 1);
    }

    /// A request joined a model's queue.
    pub fn queued(&self, model: ModelId) {
        self.model(model, M_IN_FLIGHT).fetch_add(1, Relaxed);
        self.model(model, M_QUEUE_DEPTH).fetch_add(1, Relaxed);
    }

    /// A request left the queue to run after `waited`.
    pub fn started(&self, model: ModelId, waited: Duration) {
        self.model(model, M_QUEUE_DEPTH).fetch_sub(1, Relaxed);
        self.observe(model, M_QUEUE, &DURATION_BUCKETS, nanos(waited), 1);
    }

    /// A request left the queue without running: its client left (`timed_out` false) or its
    /// time ran out.
    pub fn cancelled(&self, model: ModelId, timed_out: bool) {
        self.model(model, M_QUEUE_DEPTH).fetch_sub(1, Relaxed);
        self.model(model, M_IN_FLIGHT).fetch_sub(1, Relaxed);
        self.model(model, M_CANCELLED + usize::from(timed_out))
            .fetch_add(1, Relaxed);
    }

    /// A run of `calls` tract calls (1 for a merged batch, one per row when rows run one by
    /// one) answering `requests` requests of `rows` rows in `took`: each call is observed
    /// once, so the histograms' counts are the calls. No call (0) ends the requests only.
    pub fn call(&self, model: ModelId, requests: usize, rows: usize, calls: usize, took: Duration) {
        self.model(model, M_IN_FLIGHT)
            .fetch_sub(requests as u64, Relaxed);
        if calls == 0 {
            // Refused before the model ran: the requests are over, no call was made.
            return;
        }
        let calls = calls as u64;
        self.model(model, M_CALLS).fetch_add(calls, Relaxed);
        let per_call = nanos(took) / calls;
        self.observe(model, M_INFERENCE, &DURATION_BUCKETS, per_call, calls);
        self.observe(model, M_ROWS, &ROW_BUCKETS, rows as u64 / calls, calls);
    }

    fn stat(&self, version: VersionId, offset: usize) -> &AtomicU64 {
        &self.table[STATS + version.0 as usize * STAT_WORDS + offset]
    }

    fn timed(&self, version: VersionId, offset: usize, took: Duration) {
        self.stat(version, offset).fetch_add(1, Relaxed);
        self.stat(version, offset + 1)
            .fetch_add(nanos(took), Relaxed);
    }

    /// One inference request of a model version ended (Triton's statistics).
    pub fn inference(&self, version: VersionId, request: &RequestStats) {
        self.stat(version, S_LAST_MS)
            .fetch_max(region::unix_ms(), Relaxed);
        if !request.ok {
            self.timed(version, S_FAIL, request.total);
            return;
        }
        self.stat(version, S_INFERENCES)
            .fetch_add(request.rows as u64, Relaxed);
        self.timed(version, S_SUCCESS, request.total);
        self.timed(version, S_INPUT, request.input);
        self.timed(version, S_INFER, request.infer);
        self.timed(version, S_OUTPUT, request.output);
    }

    /// A request of a model version left its queue after `waited`.
    pub fn version_started(&self, version: VersionId, waited: Duration) {
        self.timed(version, S_QUEUE, waited);
    }

    /// A model version's run of `calls` calls of `rows` rows in all took `took`.
    pub fn version_call(&self, version: VersionId, rows: usize, calls: usize, took: Duration) {
        if calls == 0 {
            return;
        }
        self.stat(version, S_EXECUTIONS)
            .fetch_add(calls as u64, Relaxed);
        let key = region::batch_key(version, rows / calls);
        region::add_batch(self.table, key, calls as u64, nanos(took));
    }

    /// A model was built in `took`.
    pub fn loaded(&self, model: ModelId, took: Duration) {
        self.observe(model, M_LOAD, &LOAD_BUCKETS, nanos(took), 1);
        if self.master {
            self.region.mark_preloaded(model);
        } else {
            self.table[META_LOADED].fetch_or(1 << model.index(), Relaxed);
        }
    }

    /// A connection was accepted (`serve_connections_total`).
    pub fn connection_accepted(&self) {
        self.table[CONNECTIONS].fetch_add(1, Relaxed);
    }

    /// A connection past `--max-connection-age` was told to close
    /// (`serve_connections_recycled_total`).
    pub fn connection_recycled(&self) {
        self.table[CONNECTIONS + 1].fetch_add(1, Relaxed);
    }

    /// A connection was dropped before it sent a request
    /// (`serve_connections_dropped_total{reason}`).
    pub fn connection_dropped(&self, why: crate::region::Dropped) {
        self.table[CONNECTIONS + 2 + why as usize].fetch_add(1, Relaxed);
    }

    /// This worker retires itself, after `--max-requests` or past `--max-worker-memory`
    /// (the master reads it when it reaps the worker, to count the restart under its cause).
    pub fn retiring(&self, cause: Cause) {
        self.table[META_DRAIN].store(cause as u64 + 1, Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
