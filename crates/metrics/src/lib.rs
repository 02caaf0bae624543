//! serve's metrics: exact counters and histograms of every worker, readable from any of them.
//!
//! A pre-fork server has the problem Python's `prometheus_client` solves with files and
//! gunicorn with statsd: each worker counts its own requests, and a scrape reaches one worker.
//! serve's workers already share memory with their master (the scoreboard), so the figures
//! live there too: one `MAP_SHARED` region of plain atomics, mapped by the master before the
//! first fork (the arbiter does the mapping; this crate has no `unsafe`), with a
//! table per worker slot that only that worker writes, and a *retired* table.
//! When the master reaps a worker it adds the worker's table into the retired one and zeroes
//! it before the slot is reused, under a sequence counter, so a scrape sees every request
//! exactly once: counters survive a worker's replacement and a reload (HUP). They start again
//! at zero after an upgrade (USR2), whose new master maps a region of its own.
//!
//! Everything is sized at start: a table holds a fixed number of model names (registered by
//! the master, so every worker agrees on the index of a name), a bounded set of
//! `(model, protocol, code)` label sets for the request counter and an `_overflow` label set
//! beyond. Recording is an atomic add on the worker's own cache lines; no lock anywhere.
//!
//! # Layout
//! - [`mod@region`]: the shared words: the master's header (restarts, reloads, generation, model
//!   names), the per-slot tables, the fold and the consistent snapshot.
//! - [`record`]: what a process records into: nowhere, the master's row, or a worker's slot
//!   (set after the fork); the labels a response carries ([`Observed`]).
//! - [`expo`]: the Prometheus text and OpenMetrics writer.
//! - [`render`]: the pinned metric families, from a snapshot.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod expo;
pub mod record;
pub mod region;
pub mod render;

pub use expo::{Format, Writer};
pub use record::{
    Observed, Recorder, RequestStats, Target, install, model_id, record_into, recorder, region,
    version_id,
};
pub use region::{
    Cause, Dropped, ModelId, Protocol, Region, ReloadResult, Timed, VersionId, VersionStats,
};
