//! The server's observer of each model: the runtime's events, into the shared metrics.
//!
//! Each event asks for this process's recorder when it happens, not when the model was
//! built: with `--preload` the model is built in the master and its workers inherit it, and
//! each of them records into its own slot (see `serve_metrics::record`).

use std::time::Duration;

use serve_app::metrics::recorder;
use serve_app::{Inference, ModelId, Response};
use serve_runtime::events::{Call, Cancelled, Observer};
use serve_runtime::outputs::Outputs;

/// `res`, after telling the worker the call that made `outputs` (for the access log).
pub(crate) fn answered(res: Response, outputs: &Outputs) -> Response {
    let (rows, took) = outputs.call();
    serve_app::observe_call(Inference { rows, took });
    res
}

/// Counts one model's queue, calls and loads under its metrics index.
pub(crate) struct Metrics(pub(crate) ModelId);

impl Observer for Metrics {
    fn queued(&self) {
        if let Some(r) = recorder() {
            r.queued(self.0);
        }
    }

    fn started(&self, waited: Duration) {
        if let Some(r) = recorder() {
            r.started(self.0, waited);
        }
    }

    fn cancelled(&self, why: Cancelled, _waited: Duration) {
        if let Some(r) = recorder() {
            r.cancelled(self.0, why == Cancelled::TimedOut);
        }
    }

    fn call(&self, call: &Call) {
        if let Some(r) = recorder() {
            r.call(self.0, call.requests, call.rows, call.calls, call.took);
        }
    }

    fn loaded(&self, took: Duration) {
        if let Some(r) = recorder() {
            r.loaded(self.0, took);
        }
    }
}
