//! The server's observer of each model: the runtime's events, into the shared metrics.
//!
//! Each event asks for this process's recorder when it happens, not when the model was
//! built: with `--preload` the model is built in the master and its workers inherit it, and
//! each of them records into its own slot (see `serve_metrics::record`).

use std::time::{Duration, Instant};

use serve_app::metrics::{RequestStats, VersionId, recorder};
use serve_app::{Inference, ModelId, Response};
use serve_runtime::events::{Call, Cancelled, Observer};
use serve_runtime::outputs::Outputs;

use crate::error::ApiError;
use crate::inputs::Inputs;
use crate::registry::Model;

/// `res`, after telling the worker the call that made `outputs` (for the access log).
pub(crate) fn answered<R>(res: R, outputs: &Outputs) -> R {
    let (rows, took) = outputs.call();
    serve_app::observe_call(Inference { rows, took });
    res
}

/// Counts one model version's queue, calls and loads under its model's metrics index, and
/// its queue and calls in its version's statistics.
pub(crate) struct Metrics {
    model: ModelId,
    version: Option<VersionId>,
}

impl Metrics {
    /// The observer of model `name` in `version`, with the indices the master registered.
    pub(crate) fn of(name: &str, version: &str) -> Metrics {
        let model = serve_app::metrics::model_id(name);
        Metrics {
            model,
            version: serve_app::metrics::version_id(model, version),
        }
    }
}

impl Observer for Metrics {
    fn queued(&self) {
        if let Some(r) = recorder() {
            r.queued(self.model);
        }
    }

    fn started(&self, waited: Duration) {
        if let Some(r) = recorder() {
            r.started(self.model, waited);
            if let Some(v) = self.version {
                r.version_started(v, waited);
            }
        }
    }

    fn cancelled(&self, why: Cancelled, _waited: Duration) {
        if let Some(r) = recorder() {
            r.cancelled(self.model, why == Cancelled::TimedOut);
        }
    }

    fn call(&self, call: &Call) {
        if let Some(r) = recorder() {
            r.call(self.model, call.requests, call.rows, call.calls, call.took);
            if let Some(v) = self.version {
                r.version_call(v, call.rows, call.calls, call.took);
            }
        }
    }

    fn loaded(&self, took: Duration) {
        if let Some(r) = recorder() {
            r.loaded(self.model, took);
        }
    }
}

/// Runs one inference request, timed for its model version's statistics: `decode` reads
/// its inputs (and what `encode` needs besides), the model infers, `encode` writes the
/// answer.
pub(crate) async fn infer<T>(
    model: &Model,
    decode: impl FnOnce() -> Result<(Inputs, T), ApiError>,
    encode: impl FnOnce(T, &Outputs) -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    infer_within(model, None, decode, encode).await
}

/// The one path of an inference request, for any protocol's answer `R` (REST's and gRPC's),
/// within `limit` when the client gave a deadline (gRPC's `grpc-timeout`): the sooner of it
/// and `--request-timeout` ends the request.
pub async fn infer_within<T, R>(
    model: &Model,
    limit: Option<Duration>,
    decode: impl FnOnce() -> Result<(Inputs, T), ApiError>,
    encode: impl FnOnce(T, &Outputs) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let mut timer = Timer::start(model);
    let result = async {
        let (inputs, rest) = decode()?;
        timer.decoded(inputs.rows);
        let outputs = model.infer_within(inputs, limit).await?;
        timer.inferred(&outputs);
        let res = encode(rest, &outputs)?;
        Ok(answered(res, &outputs))
    }
    .await;
    timer.end(result.is_ok());
    result
}

/// Times one inference request for its model version's statistics (Triton's statistics
/// extension): its inputs' decoding, its model call, its outputs' encoding. Told when it
/// ends; a request dropped before it ended (its client left) counts as failed.
pub(crate) struct Timer {
    version: Option<VersionId>,
    started: Instant,
    stats: RequestStats,
    inferred_at: Option<Instant>,
    ended: bool,
}

impl Timer {
    /// A request to `model` whose body has arrived.
    pub(crate) fn start(model: &Model) -> Timer {
        Timer {
            version: model.stats,
            started: Instant::now(),
            stats: RequestStats::default(),
            inferred_at: None,
            ended: false,
        }
    }

    /// Its inputs are decoded: `rows` rows.
    pub(crate) fn decoded(&mut self, rows: usize) {
        self.stats.input = self.started.elapsed();
        self.stats.rows = rows;
    }

    /// The model answered it with `outputs`.
    pub(crate) fn inferred(&mut self, outputs: &Outputs) {
        self.stats.infer = outputs.call().1;
        self.inferred_at = Some(Instant::now());
    }

    /// It ended, answered (`ok`) or failed.
    pub(crate) fn end(mut self, ok: bool) {
        self.record(ok);
    }

    fn record(&mut self, ok: bool) {
        self.ended = true;
        let (Some(version), Some(r)) = (self.version, recorder()) else {
            return;
        };
        let now = Instant::now();
        self.stats.ok = ok;
        self.stats.total = now - self.started;
        self.stats.output = self.inferred_at.map_or(Duration::ZERO, |at| now - at);
        r.inference(version, &self.stats);
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if !self.ended {
            self.record(false);
        }
    }
}
