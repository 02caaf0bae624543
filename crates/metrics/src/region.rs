//! The shared words and what lives where in them.
//!
//! ```text
//! header (HEADER_WORDS): fold sequence, tables in use, master pid and start, generation,
//!                        restarts by cause, reloads by result, the last reload, preloaded
//!                        models, model names and the engine of each, model versions
//! table × slots          one per scoreboard slot, written only by that slot's worker
//! table                  the retired figures: dead workers' tables added up by the master
//! ```
//! A table is `META` words (why the worker drains, which models it loaded), the worker's
//! connection counters (accepted, recycled by `--max-connection-age`), the request counter's
//! label sets (key and count pairs, claimed by compare-and-swap on first use), then one block
//! per model index: the request duration histogram per protocol, the queue,
//! inference, batch rows and load histograms, calls, cancellations and two gauges; then
//! Triton's statistics, one block per model version (the versions are registered in the
//! header: a model's metrics count all its versions under its name, its statistics each
//! version apart), and the executions by batch size (version, batch size and count, claimed
//! by compare-and-swap as the request counter's).
//! Everything is a `u64` atomic; zero is a valid start for each, so fresh memory needs no
//! initialisation. Gauges are stored as wrapping `u64` and read back as `i64` sums.

use std::sync::atomic::{AtomicU64, Ordering, fence};

/// Model names a region holds, the no-model `""` (index 0) and `_overflow` (the last) included.
pub const MAX_MODELS: usize = 32;
/// The longest model name that gets a label of its own, in bytes; longer ones count as
/// `_overflow`.
pub const MAX_NAME: usize = NAME_WORDS * 8;
const NAME_WORDS: usize = 16;

/// Request counter label sets per table (a worker's, or the retired figures of every worker
/// the master reaped); the last one is `_overflow`.
pub(crate) const REQUEST_KEYS: usize = 512;

/// Model versions whose statistics a region keeps apart (Triton's statistics extension).
pub const MAX_VERSIONS: usize = 64;
/// The longest version text that gets statistics, in bytes.
pub const MAX_VERSION: usize = VERSION_WORDS * 8;
const VERSION_WORDS: usize = 2;

/// Executions by (version, batch size) per table; the last entry counts those past the others.
pub(crate) const BATCH_KEYS: usize = 256;

/// A histogram is `BUCKETS` finite buckets, the `+Inf` bucket and the sum.
pub const BUCKETS: usize = 17;
pub(crate) const HIST_WORDS: usize = BUCKETS + 2;

/// Upper bounds of the duration histograms, in nanoseconds: 50 µs to 10 s.
pub const DURATION_BUCKETS: [u64; BUCKETS] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds of the model load histogram, in nanoseconds: 5 ms to 1000 s (a large model
/// takes minutes).
pub const LOAD_BUCKETS: [u64; BUCKETS] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    25_000_000_000,
    50_000_000_000,
    100_000_000_000,
    250_000_000_000,
    500_000_000_000,
    1_000_000_000_000,
];

/// Upper bounds of the batch rows histogram: 1 to 65536 rows, powers of two.
pub const ROW_BUCKETS: [u64; BUCKETS] = {
    let mut b = [0; BUCKETS];
    let mut i = 0;
    while i < BUCKETS {
        b[i] = 1 << i;
        i += 1;
    }
    b
};

/// The `protocol` label of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Protocol {
    /// KServe V2 inference and metadata.
    V2 = 0,
    /// V1 / TF Serving rows.
    V1 = 1,
    /// A manifest route (or a custom app's own route).
    Route = 2,
    /// Liveness and readiness probes.
    Health = 3,
    /// `/metrics`, `/status`, the front page and the OpenAPI document.
    Admin = 4,
    /// Anything else: unknown paths, requests refused before any app saw them.
    Other = 5,
    /// KServe V2 over gRPC (`inference.GRPCInferenceService`, reflection).
    Grpc = 6,
}

impl Protocol {
    /// Every protocol, in label order.
    pub const ALL: [Protocol; 7] = [
        Protocol::V2,
        Protocol::V1,
        Protocol::Route,
        Protocol::Health,
        Protocol::Admin,
        Protocol::Other,
        Protocol::Grpc,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        ["v2", "v1", "route", "health", "admin", "other", "grpc"][self as usize]
    }
}

/// The index of a model version in the region's statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VersionId(pub(crate) u8);

/// The index of a model name in the region (`""` is 0, `_overflow` the last).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ModelId(pub(crate) u8);

impl ModelId {
    /// Requests that concern no model (probes of the server, unknown paths).
    pub const NONE: ModelId = ModelId(0);
    /// Models whose names did not fit (more than the region holds, or too long).
    pub const OVERFLOW: ModelId = ModelId(MAX_MODELS as u8 - 1);

    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// Why the master replaced a worker (`serve_worker_restarts_total{cause}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// It died without being asked: a crash (a non-zero exit, a fatal signal), an
    /// out-of-memory kill, a `kill -9` from outside. (A worker that drains and exits 0 because
    /// someone sent it TERM directly is replaced without being counted.)
    Crash = 0,
    /// Its heartbeat stopped for `--timeout` and the master killed it.
    Timeout = 1,
    /// It retired itself after `--max-requests` (even if it then had to be killed at the end
    /// of `--graceful-timeout`).
    MaxRequests = 2,
    /// A reload (HUP) retired it in favour of the new generation.
    Reload = 3,
    /// It retired itself when its own memory passed `--max-worker-memory`.
    Memory = 4,
}

impl Cause {
    const ALL: [Cause; 5] = [
        Cause::Crash,
        Cause::Timeout,
        Cause::MaxRequests,
        Cause::Reload,
        Cause::Memory,
    ];

    fn label(self) -> &'static str {
        ["crash", "timeout", "max_requests", "reload", "memory"][self as usize]
    }
}

/// How a reload ended (`serve_reloads_total{result}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new generation serves.
    Ok = 1,
    /// It was refused or abandoned; the previous generation serves on.
    Failed = 2,
}

// The header, word by word.
const SEQ: usize = 0;
const TABLES_USED: usize = 1;
const MASTER_PID: usize = 2;
const STARTED_UNIX_MS: usize = 3;
const GENERATION: usize = 4;
const RESTARTS: usize = 5; // 5 words, by Cause
const RELOADS: usize = 10; // 2 words: ok, failed
const LAST_RELOAD: usize = 12; // ReloadResult, 0 before the first
const LAST_RELOAD_UNIX_MS: usize = 13;
const PRELOADED: usize = 14; // bit i: model i was built in the master (--preload)
const NAMES_COUNT: usize = 15;
const NAMES: usize = 16;
const ENGINES: usize = NAMES + MAX_MODELS * NAME_WORDS; // each model's engine, by index
const ENGINE_WORDS: usize = 2;
const VERSIONS_COUNT: usize = ENGINES + MAX_MODELS * ENGINE_WORDS;
const VERSIONS: usize = VERSIONS_COUNT + 1; // each: its ModelId, then its text
const VERSION_ENTRY: usize = 1 + VERSION_WORDS;
const HEADER_WORDS: usize = VERSIONS + MAX_VERSIONS * VERSION_ENTRY;

// A table, word by word.
pub(crate) const META_DRAIN: usize = 0; // the Cause it retires itself for, plus 1; 0: none
pub(crate) const META_LOADED: usize = 1; // bit i: model i built in this worker
const META_WORDS: usize = 8;
pub(crate) const CONNECTIONS: usize = META_WORDS; // accepted, recycled, dropped by Dropped
const CONNECTION_WORDS: usize = 2 + Dropped::ALL.len();
pub(crate) const REQUESTS: usize = CONNECTIONS + CONNECTION_WORDS;
pub(crate) const MODELS: usize = REQUESTS + 2 * REQUEST_KEYS;
// Within a model's block.
pub(crate) const M_DURATION: usize = 0; // one histogram per protocol
pub(crate) const M_QUEUE: usize = M_DURATION + Protocol::ALL.len() * HIST_WORDS;
pub(crate) const M_INFERENCE: usize = M_QUEUE + HIST_WORDS;
pub(crate) const M_ROWS: usize = M_INFERENCE + HIST_WORDS;
pub(crate) const M_LOAD: usize = M_ROWS + HIST_WORDS;
pub(crate) const M_CALLS: usize = M_LOAD + HIST_WORDS;
pub(crate) const M_CANCELLED: usize = M_CALLS + 1; // client_gone, timeout
pub(crate) const M_IN_FLIGHT: usize = M_CANCELLED + 2;
pub(crate) const M_QUEUE_DEPTH: usize = M_IN_FLIGHT + 1;
pub(crate) const MODEL_WORDS: usize = M_QUEUE_DEPTH + 1;
pub(crate) const STATS: usize = MODELS + MAX_MODELS * MODEL_WORDS;
// Within a version's statistics: the last inference (Unix ms, the highest wins), then
// counters, then (count, nanoseconds) pairs.
pub(crate) const S_LAST_MS: usize = 0;
pub(crate) const S_INFERENCES: usize = 1;
pub(crate) const S_EXECUTIONS: usize = 2;
pub(crate) const S_SUCCESS: usize = 3;
pub(crate) const S_FAIL: usize = 5;
pub(crate) const S_QUEUE: usize = 7;
pub(crate) const S_INPUT: usize = 9;
pub(crate) const S_INFER: usize = 11;
pub(crate) const S_OUTPUT: usize = 13;
pub(crate) const STAT_WORDS: usize = 15;
pub(crate) const BATCHES: usize = STATS + MAX_VERSIONS * STAT_WORDS; // key, count, ns
/// Words in one table.
pub const TABLE_WORDS: usize = BATCHES + 3 * BATCH_KEYS;

/// A request counter key: model, protocol and status code packed, never 0 (0 is a free entry).
pub(crate) fn request_key(model: ModelId, protocol: Protocol, code: u16) -> u64 {
    1 << 40 | (model.0 as u64) << 24 | (protocol as u64) << 16 | code as u64
}

/// The key of the overflow entry (the last), never produced by [`request_key`].
pub(crate) const OVERFLOW_KEY: u64 = u64::MAX;

/// The parts of a request key.
pub(crate) fn split_key(key: u64) -> (ModelId, Protocol, u16) {
    let protocol = Protocol::ALL
        .get((key >> 16 & 0xff) as usize)
        .copied()
        .unwrap_or(Protocol::Other);
    (ModelId((key >> 24) as u8), protocol, key as u16)
}

/// The shared region: a header and `slots + 1` tables of atomics.
#[derive(Clone, Copy)]
pub struct Region {
    words: &'static [AtomicU64],
    slots: usize,
}

impl Region {
    /// Words a region for `slots` worker slots needs (the caller maps them zeroed).
    pub fn words_for(slots: usize) -> usize {
        HEADER_WORDS + (slots + 1) * TABLE_WORDS
    }

    /// The region over `words`, zeroed memory shared by the master and every worker.
    ///
    /// # Panics
    /// When `words` is shorter than [`Region::words_for`]`(slots)`: a mapping bug.
    pub fn new(words: &'static [AtomicU64], slots: usize) -> Region {
        assert!(
            words.len() >= Self::words_for(slots),
            "metrics region too small"
        );
        Region { words, slots }
    }

    /// A region of its own, in this process's heap (tests, and a server that runs without
    /// the master: nothing is shared).
    pub fn private(slots: usize) -> Region {
        let words: Vec<AtomicU64> = (0..Self::words_for(slots))
            .map(|_| AtomicU64::new(0))
            .collect();
        Region::new(Vec::leak(words), slots)
    }

    fn word(&self, i: usize) -> &'static AtomicU64 {
        &self.words[i]
    }

    /// Worker slots (the retired table comes after them).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Slot `i`'s table; `slots()` is the retired table.
    pub(crate) fn table(&self, i: usize) -> &'static [AtomicU64] {
        let start = HEADER_WORDS + i * TABLE_WORDS;
        &self.words[start..start + TABLE_WORDS]
    }

    pub(crate) fn retired(&self) -> &'static [AtomicU64] {
        self.table(self.slots)
    }

    // The master's side.

    /// Records the master's pid and that it starts now.
    pub fn master_started(&self, pid: u32) {
        self.word(MASTER_PID).store(pid.into(), Ordering::Relaxed);
        self.word(STARTED_UNIX_MS)
            .store(unix_ms(), Ordering::Relaxed);
    }

    /// Records the generation now serving.
    pub fn set_generation(&self, generation: u64) {
        self.word(GENERATION).store(generation, Ordering::Relaxed);
    }

    /// Slot `i` is about to get a worker: scrapes read its table from now on.
    pub fn slot_claimed(&self, i: usize) {
        self.word(TABLES_USED)
            .fetch_max(i as u64 + 1, Ordering::Release);
    }

    /// Counts a worker replaced for `cause`.
    pub fn worker_restarted(&self, cause: Cause) {
        self.word(RESTARTS + cause as usize)
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a reload that ends now and remembers it as the last one.
    pub fn reloaded(&self, result: ReloadResult) {
        let i = if result == ReloadResult::Ok { 0 } else { 1 };
        self.word(RELOADS + i).fetch_add(1, Ordering::Relaxed);
        self.word(LAST_RELOAD_UNIX_MS)
            .store(unix_ms(), Ordering::Relaxed);
        self.word(LAST_RELOAD)
            .store(result as u64, Ordering::Relaxed);
    }

    /// Gives `name` an index that every process agrees on (the same name keeps its index
    /// across reloads). Called by the master before it forks anything that uses the name.
    pub fn register_model(&self, name: &str) -> ModelId {
        if name.is_empty() {
            return ModelId::NONE;
        }
        if let Some(id) = self.find_model(name) {
            return id;
        }
        let count = self.word(NAMES_COUNT).load(Ordering::Acquire) as usize;
        // Index 0 is "" and the last is the overflow: names go between.
        let index = count + 1;
        if name.len() > MAX_NAME || index >= ModelId::OVERFLOW.index() {
            return ModelId::OVERFLOW;
        }
        let mut bytes = [0u8; MAX_NAME];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        for (w, chunk) in bytes.chunks_exact(8).enumerate() {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.word(NAMES + index * NAME_WORDS + w)
                .store(word, Ordering::Relaxed);
        }
        // Publishes the name: readers load the count with Acquire.
        self.word(NAMES_COUNT)
            .store(count as u64 + 1, Ordering::Release);
        ModelId(index as u8)
    }

    /// Records the engine that runs model `id` in the generation the master starts next
    /// (`/status` shows it; at most 16 bytes).
    pub fn set_engine(&self, id: ModelId, engine: &str) {
        if matches!(id, ModelId::NONE | ModelId::OVERFLOW) {
            return;
        }
        let mut bytes = [0u8; ENGINE_WORDS * 8];
        let n = engine.len().min(bytes.len());
        bytes[..n].copy_from_slice(&engine.as_bytes()[..n]);
        for (w, chunk) in bytes.chunks_exact(8).enumerate() {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.word(ENGINES + id.index() * ENGINE_WORDS + w)
                .store(word, Ordering::Relaxed);
        }
    }

    /// The engine recorded for model `id`, empty when none was.
    pub fn engine(&self, id: ModelId) -> String {
        let mut bytes = [0u8; ENGINE_WORDS * 8];
        for (w, chunk) in bytes.chunks_exact_mut(8).enumerate() {
            let word = self
                .word(ENGINES + id.index() * ENGINE_WORDS + w)
                .load(Ordering::Relaxed);
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    }

    /// The registered models, in the order they were registered (`""` and `_overflow` not
    /// included).
    pub fn registered(&self) -> impl Iterator<Item = ModelId> + '_ {
        (1..=self.model_count()).map(|i| ModelId(i as u8))
    }

    /// The index of a registered name.
    pub fn find_model(&self, name: &str) -> Option<ModelId> {
        if name.is_empty() {
            return Some(ModelId::NONE);
        }
        (1..=self.model_count()).find_map(|i| {
            let mut buf = [0u8; MAX_NAME];
            (self.model_name_into(i, &mut buf) == name.as_bytes()).then_some(ModelId(i as u8))
        })
    }

    /// Registered names (the no-model index 0 not counted).
    pub(crate) fn model_count(&self) -> usize {
        self.word(NAMES_COUNT).load(Ordering::Acquire) as usize
    }

    fn model_name_into<'b>(&self, index: usize, buf: &'b mut [u8; MAX_NAME]) -> &'b [u8] {
        for (w, chunk) in buf.chunks_exact_mut(8).enumerate() {
            let word = self
                .word(NAMES + index * NAME_WORDS + w)
                .load(Ordering::Relaxed);
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(MAX_NAME);
        &buf[..end]
    }

    /// The label of a model index.
    pub fn model_name(&self, id: ModelId) -> String {
        match id {
            ModelId::NONE => String::new(),
            ModelId::OVERFLOW => "_overflow".to_string(),
            ModelId(i) => {
                let mut buf = [0u8; MAX_NAME];
                String::from_utf8_lossy(self.model_name_into(i as usize, &mut buf)).into_owned()
            }
        }
    }

    /// Every index in use, `""` first and `_overflow` last when anything counted under it.
    pub(crate) fn model_ids(&self) -> impl Iterator<Item = ModelId> {
        (0..=self.model_count())
            .map(|i| ModelId(i as u8))
            .chain(Some(ModelId::OVERFLOW))
    }

    /// Why slot `i`'s worker said it retires itself (`--max-requests`,
    /// `--max-worker-memory`), if it did (read by the master when it reaps the worker, before
    /// [`Region::fold`]).
    pub fn retired_itself(&self, i: usize) -> Option<Cause> {
        match self.table(i)[META_DRAIN].load(Ordering::Relaxed) {
            0 => None,
            n => Cause::ALL.get(n as usize - 1).copied(),
        }
    }

    /// Adds a reaped worker's table into the retired one and zeroes it, so that the slot can be
    /// reused and no count is lost or counted twice. Gauges (in flight, queue depth) and the
    /// meta words are dropped: a dead worker has nothing in flight.
    pub fn fold(&self, i: usize) {
        let (table, retired) = (self.table(i), self.retired());
        let seq = self.word(SEQ);
        // A seqlock: readers retry when the sequence moved or is odd.
        seq.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
        for w in CONNECTIONS..CONNECTIONS + CONNECTION_WORDS {
            let v = table[w].swap(0, Ordering::Relaxed);
            retired[w].fetch_add(v, Ordering::Relaxed);
        }
        for k in 0..REQUEST_KEYS {
            let key = table[REQUESTS + 2 * k].load(Ordering::Relaxed);
            let count = table[REQUESTS + 2 * k + 1].swap(0, Ordering::Relaxed);
            table[REQUESTS + 2 * k].store(0, Ordering::Relaxed);
            if key != 0 && count != 0 {
                add_request(retired, key, count);
            }
        }
        for m in 0..MAX_MODELS {
            let base = MODELS + m * MODEL_WORDS;
            for w in base..base + MODEL_WORDS {
                let v = table[w].swap(0, Ordering::Relaxed);
                let gauge = w == base + M_IN_FLIGHT || w == base + M_QUEUE_DEPTH;
                if v != 0 && !gauge {
                    retired[w].fetch_add(v, Ordering::Relaxed);
                }
            }
        }
        for v in 0..MAX_VERSIONS {
            let base = STATS + v * STAT_WORDS;
            for w in base..base + STAT_WORDS {
                let x = table[w].swap(0, Ordering::Relaxed);
                if w == base + S_LAST_MS {
                    retired[w].fetch_max(x, Ordering::Relaxed);
                } else if x != 0 {
                    retired[w].fetch_add(x, Ordering::Relaxed);
                }
            }
        }
        for k in 0..BATCH_KEYS {
            let at = BATCHES + 3 * k;
            let key = table[at].swap(0, Ordering::Relaxed);
            let count = table[at + 1].swap(0, Ordering::Relaxed);
            let ns = table[at + 2].swap(0, Ordering::Relaxed);
            if key != 0 && count != 0 {
                add_batch(retired, key, count, ns);
            }
        }
        for w in &table[..META_WORDS] {
            w.store(0, Ordering::Relaxed);
        }
        seq.fetch_add(1, Ordering::Release);
    }

    /// Gives the statistics of `version` of model `model` an index every process agrees on
    /// (as [`Region::register_model`]); `None` past [`MAX_VERSIONS`] or [`MAX_VERSION`] bytes:
    /// that version's statistics are not kept (its metrics still are).
    pub fn register_version(&self, model: ModelId, version: &str) -> Option<VersionId> {
        if let Some(id) = self.find_version(model, version) {
            return Some(id);
        }
        let count = self.word(VERSIONS_COUNT).load(Ordering::Acquire) as usize;
        if count >= MAX_VERSIONS
            || version.len() > MAX_VERSION
            || matches!(model, ModelId::NONE | ModelId::OVERFLOW)
        {
            return None;
        }
        let at = VERSIONS + count * VERSION_ENTRY;
        self.word(at).store(model.0 as u64, Ordering::Relaxed);
        let mut bytes = [0u8; MAX_VERSION];
        bytes[..version.len()].copy_from_slice(version.as_bytes());
        for (w, chunk) in bytes.chunks_exact(8).enumerate() {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.word(at + 1 + w).store(word, Ordering::Relaxed);
        }
        self.word(VERSIONS_COUNT)
            .store(count as u64 + 1, Ordering::Release);
        Some(VersionId(count as u8))
    }

    /// The index of a registered model version.
    pub fn find_version(&self, model: ModelId, version: &str) -> Option<VersionId> {
        let count = self.word(VERSIONS_COUNT).load(Ordering::Acquire) as usize;
        (0..count.min(MAX_VERSIONS)).find_map(|i| {
            let at = VERSIONS + i * VERSION_ENTRY;
            let same = self.word(at).load(Ordering::Relaxed) == model.0 as u64
                && self.version_text(i) == version.as_bytes();
            same.then_some(VersionId(i as u8))
        })
    }

    fn version_text(&self, i: usize) -> Vec<u8> {
        let at = VERSIONS + i * VERSION_ENTRY + 1;
        let mut bytes: Vec<u8> = (0..VERSION_WORDS)
            .flat_map(|w| self.word(at + w).load(Ordering::Relaxed).to_le_bytes())
            .collect();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        bytes.truncate(end);
        bytes
    }

    /// The statistics of `version`, every table added up, read consistently with the
    /// master's folds.
    pub fn version_stats(&self, version: VersionId) -> VersionStats {
        self.consistent(|tables| {
            let mut stats = VersionStats::default();
            let base = STATS + version.0 as usize * STAT_WORDS;
            for table in tables {
                let word = |w: usize| table[base + w].load(Ordering::Relaxed);
                stats.last_inference_ms = stats.last_inference_ms.max(word(S_LAST_MS));
                stats.inference_count += word(S_INFERENCES);
                stats.execution_count += word(S_EXECUTIONS);
                for (pair, w) in [
                    (&mut stats.success, S_SUCCESS),
                    (&mut stats.fail, S_FAIL),
                    (&mut stats.queue, S_QUEUE),
                    (&mut stats.compute_input, S_INPUT),
                    (&mut stats.compute_infer, S_INFER),
                    (&mut stats.compute_output, S_OUTPUT),
                ] {
                    pair.count += word(w);
                    pair.ns += word(w + 1);
                }
                for k in 0..BATCH_KEYS {
                    let at = BATCHES + 3 * k;
                    let key = table[at].load(Ordering::Relaxed);
                    let (of, size) = split_batch_key(key);
                    if key == 0 || key == OVERFLOW_KEY || of != version {
                        continue;
                    }
                    let entry = stats.batches.entry(size).or_default();
                    entry.count += table[at + 1].load(Ordering::Relaxed);
                    entry.ns += table[at + 2].load(Ordering::Relaxed);
                }
            }
            stats
        })
    }

    /// `read` over every table in use and the retired one, retried until no fold ran
    /// meanwhile (a seqlock: readers retry when the sequence moved or is odd).
    fn consistent<T>(&self, read: impl Fn(&[&'static [AtomicU64]]) -> T) -> T {
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let seq = self.word(SEQ).load(Ordering::Acquire);
            // A fold takes microseconds; a sequence odd for this long means its master died
            // mid-fold (and this worker follows it soon): read what is there.
            let settled = seq.is_multiple_of(2) || attempt > 100_000;
            if !settled {
                std::thread::yield_now();
                continue;
            }
            let used = (self.word(TABLES_USED).load(Ordering::Acquire) as usize).min(self.slots);
            let tables: Vec<&'static [AtomicU64]> = (0..used)
                .chain(Some(self.slots))
                .map(|i| self.table(i))
                .collect();
            let value = read(&tables);
            fence(Ordering::Acquire);
            if self.word(SEQ).load(Ordering::Relaxed) == seq || attempt > 100_000 {
                return value;
            }
        }
    }

    // Reading.

    /// Every table added up, read consistently with the master's folds.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = self.consistent(|tables| {
            let mut snap = Snapshot::new();
            for table in tables {
                snap.add(table);
            }
            snap
        });
        snap.header(self);
        snap
    }

    /// Models built in the master before forking (`--preload`), as a bit set.
    pub fn preloaded(&self) -> u64 {
        self.word(PRELOADED).load(Ordering::Relaxed)
    }

    pub(crate) fn mark_preloaded(&self, model: ModelId) {
        self.word(PRELOADED)
            .fetch_or(1 << model.index(), Ordering::Relaxed);
    }

    /// Models slot `i`'s worker built, as a bit set.
    pub fn loaded_in(&self, i: usize) -> u64 {
        self.table(i)[META_LOADED].load(Ordering::Relaxed)
    }

    /// The names of the models in a bit set.
    pub fn names_in(&self, set: u64) -> Vec<String> {
        (0..MAX_MODELS)
            .filter(|i| set & 1 << i != 0)
            .map(|i| self.model_name(ModelId(i as u8)))
            .collect()
    }

    /// What `/status` shows of the master.
    pub fn master(&self) -> Master {
        let load = |i| self.word(i).load(Ordering::Relaxed);
        Master {
            pid: load(MASTER_PID) as u32,
            started_unix_ms: load(STARTED_UNIX_MS),
            generation: load(GENERATION),
            last_reload: match load(LAST_RELOAD) {
                1 => Some((ReloadResult::Ok, load(LAST_RELOAD_UNIX_MS))),
                2 => Some((ReloadResult::Failed, load(LAST_RELOAD_UNIX_MS))),
                _ => None,
            },
        }
    }
}

/// Wall-clock time in Unix milliseconds: what `/status` shows of the master's start and its
/// last reload (durations use monotonic clocks).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the master wrote of itself.
#[derive(Clone, Copy, Debug)]
pub struct Master {
    /// Its pid.
    pub pid: u32,
    /// When it started, Unix milliseconds.
    pub started_unix_ms: u64,
    /// The generation serving.
    pub generation: u64,
    /// The last reload's result and when it ended, Unix milliseconds.
    pub last_reload: Option<(ReloadResult, u64)>,
}

/// Adds `count` under `key` in `table`, claiming the key's entry on first use; a full table
/// counts under the overflow entry.
pub(crate) fn add_request(table: &[AtomicU64], key: u64, count: u64) {
    let at = claim(table, REQUESTS, 2, REQUEST_KEYS, key, 57).unwrap_or_else(|| {
        let last = REQUESTS + 2 * (REQUEST_KEYS - 1);
        table[last].store(OVERFLOW_KEY, Ordering::Relaxed);
        last
    });
    table[at + 1].fetch_add(count, Ordering::Relaxed);
}

/// Where `key`'s entry is among the `n` keyed entries of `stride` words from `base` (the last
/// one left for the overflow): found, or claimed on first use by compare-and-swap; `None`
/// when every other entry is taken. `shift` spreads the keys' hash over the entries.
fn claim(
    table: &[AtomicU64],
    base: usize,
    stride: usize,
    n: usize,
    key: u64,
    shift: u32,
) -> Option<usize> {
    let start = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize % (n - 1);
    (0..n - 1).find_map(|probe| {
        let at = base + stride * ((start + probe) % (n - 1));
        let slot = &table[at];
        let found = match slot.load(Ordering::Relaxed) {
            0 => match slot.compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => true,
                Err(other) => other == key,
            },
            other => other == key,
        };
        found.then_some(at)
    })
}

/// A batch key: version and batch size packed, never 0.
pub(crate) fn batch_key(version: VersionId, size: usize) -> u64 {
    1 << 48 | (version.0 as u64) << 32 | (size as u64).min(u32::MAX as u64)
}

fn split_batch_key(key: u64) -> (VersionId, usize) {
    (VersionId((key >> 32) as u8), (key & 0xffff_ffff) as usize)
}

/// Adds executions of one (version, batch size) to a table: its entry claimed on first use
/// by compare-and-swap, the last entry when every other is taken (counted, not kept apart).
pub(crate) fn add_batch(table: &[AtomicU64], key: u64, count: u64, ns: u64) {
    let at = claim(table, BATCHES, 3, BATCH_KEYS, key, 56).unwrap_or_else(|| {
        let last = BATCHES + 3 * (BATCH_KEYS - 1);
        table[last].store(OVERFLOW_KEY, Ordering::Relaxed);
        last
    });
    table[at + 1].fetch_add(count, Ordering::Relaxed);
    table[at + 2].fetch_add(ns, Ordering::Relaxed);
}

/// A count and the nanoseconds it took, as Triton's statistics write them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timed {
    /// How many.
    pub count: u64,
    /// Their total time, in nanoseconds.
    pub ns: u64,
}

/// One model version's statistics, exact across workers (Triton's statistics extension).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionStats {
    /// The last inference request's end, in Unix milliseconds; 0 before any.
    pub last_inference_ms: u64,
    /// Rows inferred by requests that succeeded (Triton's `inference_count`).
    pub inference_count: u64,
    /// Model calls (several requests merged into one call count once).
    pub execution_count: u64,
    /// Requests answered, and their time from the request's body to its answer.
    pub success: Timed,
    /// Requests that failed, and their time.
    pub fail: Timed,
    /// Requests' waits in the model's queue.
    pub queue: Timed,
    /// Requests' decoding of their inputs.
    pub compute_input: Timed,
    /// Requests' model calls (a merged call's time counts for each of its requests).
    pub compute_infer: Timed,
    /// Requests' encoding of their outputs.
    pub compute_output: Timed,
    /// Model calls by batch size (rows per call): their count and time.
    pub batches: std::collections::BTreeMap<usize, Timed>,
}

/// Why a worker dropped a connection before it sent a request
/// (`serve_connections_dropped_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Its TLS handshake failed: cleartext HTTP, garbage, a client that refused the
    /// certificate or has none when one is required.
    TlsHandshake,
    /// Its head or handshake was late: past `--header-timeout`, or slower than `--min-rate`.
    Slow,
    /// The worker was full and a connection waited: it had gone longest without a request.
    GaveWay,
}

impl Dropped {
    /// Every reason, in table order.
    pub const ALL: [Dropped; 3] = [Dropped::TlsHandshake, Dropped::Slow, Dropped::GaveWay];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::TlsHandshake => "tls_handshake",
            Dropped::Slow => "slow",
            Dropped::GaveWay => "gave_way",
        }
    }
}

/// Every table added up at one moment, with the master's counters.
pub struct Snapshot {
    /// Request counts by key, in key order.
    pub(crate) requests: std::collections::BTreeMap<u64, u64>,
    /// The summed per-model words (gauges wrap back to their signed sums).
    pub(crate) models: Vec<u64>,
    /// Connections accepted, recycled (`--max-connection-age`), then dropped by
    /// [`Dropped`].
    pub(crate) connections: [u64; CONNECTION_WORDS],
    pub(crate) restarts: [u64; 5],
    pub(crate) reloads: [u64; 2],
    pub(crate) names: Vec<(ModelId, String)>,
}

impl Snapshot {
    fn new() -> Snapshot {
        Snapshot {
            requests: Default::default(),
            models: vec![0; MAX_MODELS * MODEL_WORDS],
            connections: [0; CONNECTION_WORDS],
            restarts: [0; 5],
            reloads: [0; 2],
            names: Vec::new(),
        }
    }

    fn add(&mut self, table: &[AtomicU64]) {
        for (sum, w) in self.connections.iter_mut().zip(&table[CONNECTIONS..]) {
            *sum += w.load(Ordering::Relaxed);
        }
        for k in 0..REQUEST_KEYS {
            let key = table[REQUESTS + 2 * k].load(Ordering::Relaxed);
            if key != 0 {
                let count = table[REQUESTS + 2 * k + 1].load(Ordering::Relaxed);
                *self.requests.entry(key).or_default() += count;
            }
        }
        for (sum, w) in self.models.iter_mut().zip(&table[MODELS..]) {
            *sum = sum.wrapping_add(w.load(Ordering::Relaxed));
        }
    }

    fn header(&mut self, region: &Region) {
        for (i, r) in self.restarts.iter_mut().enumerate() {
            *r = region.word(RESTARTS + i).load(Ordering::Relaxed);
        }
        for (i, r) in self.reloads.iter_mut().enumerate() {
            *r = region.word(RELOADS + i).load(Ordering::Relaxed);
        }
        self.names = region
            .model_ids()
            .map(|id| (id, region.model_name(id)))
            .collect();
    }

    /// A model's word (see the model block's layout).
    pub(crate) fn model(&self, id: ModelId, offset: usize) -> u64 {
        self.models[id.index() * MODEL_WORDS + offset]
    }

    /// A model's histogram: its buckets (not cumulative), the `+Inf` bucket last, then the sum.
    pub(crate) fn histogram(&self, id: ModelId, offset: usize) -> &[u64] {
        let start = id.index() * MODEL_WORDS + offset;
        &self.models[start..start + HIST_WORDS]
    }

    /// The restarts by cause, in label order.
    pub(crate) fn restarts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Cause::ALL
            .iter()
            .map(|c| (c.label(), self.restarts[*c as usize]))
    }

    /// The requests counted under `model`, every protocol and code.
    pub fn requests_of(&self, model: ModelId) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| **k != OVERFLOW_KEY && split_key(**k).0 == model)
            .map(|(_, v)| v)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Recorder;
    use std::time::Duration;

    #[test]
    fn names_keep_their_index_and_overflow_past_the_capacity() {
        let region = Region::private(2);
        let a = region.register_model("iris");
        let b = region.register_model("titanic");
        assert_eq!(region.register_model("iris"), a);
        assert_ne!(a, b);
        assert_eq!(region.find_model("titanic"), Some(b));
        assert_eq!(region.model_name(b), "titanic");
        assert_eq!(
            region.register_model(&"x".repeat(MAX_NAME + 1)),
            ModelId::OVERFLOW
        );
        for i in 0..MAX_MODELS {
            region.register_model(&format!("m{i}"));
        }
        assert_eq!(region.register_model("one-too-many"), ModelId::OVERFLOW);
        assert_eq!(region.model_name(ModelId::OVERFLOW), "_overflow");
    }

    #[test]
    fn a_fold_moves_counts_to_the_retired_table_without_loss() {
        let region = Region::private(2);
        let iris = region.register_model("iris");
        for slot in 0..2 {
            region.slot_claimed(slot);
            let r = Recorder::for_slot(region, slot);
            for _ in 0..5 {
                r.request(iris, Protocol::V2, 200, Duration::from_micros(70));
            }
            r.queued(iris);
            r.connection_accepted();
        }
        Recorder::for_slot(region, 0).connection_recycled();
        Recorder::for_slot(region, 0).connection_dropped(Dropped::GaveWay);
        let before = region.snapshot();
        assert_eq!(before.requests_of(iris), 10);
        assert_eq!(before.connections, [2, 1, 0, 0, 1]);
        assert_eq!(before.model(iris, M_IN_FLIGHT), 2);
        region.fold(0);
        let after = region.snapshot();
        assert_eq!(after.requests_of(iris), 10);
        assert_eq!(
            after.connections,
            [2, 1, 0, 0, 1],
            "connection counters survive the fold"
        );
        // The dead worker's gauges are gone with it.
        assert_eq!(after.model(iris, M_IN_FLIGHT), 1);
        let duration = after.histogram(iris, M_DURATION);
        assert_eq!(
            duration[1], 10,
            "70 µs falls in the 100 µs bucket: {duration:?}"
        );
        // The slot starts again from zero.
        assert_eq!(
            region
                .table(0)
                .iter()
                .map(|w| w.load(Ordering::Relaxed))
                .sum::<u64>(),
            0
        );
    }

    #[test]
    fn version_statistics_are_exact_across_workers_and_folds() {
        let region = Region::private(2);
        let iris = region.register_model("iris");
        let v3 = region.register_version(iris, "3").unwrap();
        let v1 = region.register_version(iris, "1").unwrap();
        assert_eq!(region.register_version(iris, "3"), Some(v3));
        assert_eq!(region.find_version(iris, "1"), Some(v1));
        assert_eq!(region.find_version(iris, "2"), None);
        assert_eq!(
            region.register_version(iris, &"9".repeat(MAX_VERSION + 1)),
            None
        );
        let ms = |n| Duration::from_millis(n);
        let ok = |rows| crate::record::RequestStats {
            ok: true,
            rows,
            total: ms(10),
            input: ms(1),
            infer: ms(5),
            output: ms(2),
        };
        for slot in 0..2 {
            region.slot_claimed(slot);
            let r = Recorder::for_slot(region, slot);
            r.inference(v3, &ok(2));
            r.version_started(v3, ms(3));
            r.version_call(v3, 2, 1, ms(5));
            r.version_call(v3, 8, 2, ms(8));
        }
        let r = Recorder::for_slot(region, 1);
        r.inference(v1, &crate::record::RequestStats::default());
        region.fold(0);
        let s = region.version_stats(v3);
        assert_eq!(s.inference_count, 4);
        assert_eq!(s.execution_count, 6);
        assert_eq!(
            s.success,
            Timed {
                count: 2,
                ns: 20_000_000
            }
        );
        assert_eq!(
            s.queue,
            Timed {
                count: 2,
                ns: 6_000_000
            }
        );
        assert_eq!(
            s.compute_infer,
            Timed {
                count: 2,
                ns: 10_000_000
            }
        );
        assert_eq!(
            s.compute_output,
            Timed {
                count: 2,
                ns: 4_000_000
            }
        );
        assert_eq!(s.fail.count, 0);
        assert!(s.last_inference_ms > 0);
        let sizes: Vec<(usize, u64)> = s.batches.iter().map(|(k, t)| (*k, t.count)).collect();
        assert_eq!(sizes, [(2, 2), (4, 4)]);
        let one = region.version_stats(v1);
        assert_eq!((one.fail.count, one.success.count), (1, 0));
        assert!(one.batches.is_empty());
    }

    #[test]
    fn a_full_key_table_counts_under_overflow() {
        let region = Region::private(1);
        region.slot_claimed(0);
        let r = Recorder::for_slot(region, 0);
        let n = REQUEST_KEYS as u16 + 100;
        for code in 0..n {
            r.request(ModelId::NONE, Protocol::Other, 100 + code, Duration::ZERO);
        }
        let snap = region.snapshot();
        assert_eq!(snap.requests.values().sum::<u64>(), u64::from(n));
        assert_eq!(
            snap.requests[&OVERFLOW_KEY],
            u64::from(n) - (REQUEST_KEYS as u64 - 1)
        );
    }

    #[test]
    fn requests_refused_before_the_model_leave_the_gauges_and_make_no_call() {
        let region = Region::private(1);
        let m = region.register_model("pinned");
        let r = Recorder::for_slot(region, 0);
        r.queued(m);
        r.started(m, Duration::ZERO);
        r.call(m, 1, 0, 0, Duration::ZERO);
        let snap = region.snapshot();
        assert_eq!(snap.model(m, M_IN_FLIGHT), 0);
        assert_eq!(snap.model(m, M_QUEUE_DEPTH), 0);
        assert_eq!(snap.model(m, M_CALLS), 0);
        let inference = snap.histogram(m, M_INFERENCE);
        assert_eq!(inference.iter().sum::<u64>(), 0);
    }

    #[test]
    fn keys_round_trip() {
        let key = request_key(ModelId(3), Protocol::Health, 503);
        assert_eq!(split_key(key), (ModelId(3), Protocol::Health, 503));
        assert_ne!(key, 0);
        assert_ne!(key, OVERFLOW_KEY);
    }
}
