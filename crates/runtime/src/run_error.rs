//! What the model runtime (registry and executor) answers when it cannot run a request, and
//! the one place where that becomes a protocol's answer.
//!
//! The runtime knows nothing of HTTP: it says why (the queue is full, the model could not be
//! loaded, the engine failed...), and each front end maps the reason to its status. The REST
//! mapping is `From<RunError> for ApiError` in `serve-model`; gRPC will map the same enum
//! to its codes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why the runtime could not answer a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    /// The model's queue already holds `max_queue` requests (`--max-queue`): shed, not
    /// queued; another worker or a later try will do.
    QueueFull {
        /// The model.
        model: Arc<str>,
        /// The queue's bound.
        max_queue: usize,
    },
    /// The model's runner has stopped (the worker is going away).
    Stopped {
        /// The model.
        model: Arc<str>,
    },
    /// No answer within `--request-timeout`, or within the client's deadline when it was
    /// sooner (gRPC's `grpc-timeout`); the request was not run late.
    TimedOut {
        /// The model.
        model: Arc<str>,
        /// The timeout.
        limit: Duration,
        /// The limit was the client's deadline, not `--request-timeout`.
        client: bool,
    },
    /// The model could not be built in this worker; the message names the file and the
    /// cause, and was logged once when it happened.
    LoadFailed(String),
    /// The build was interrupted (its thread could not finish); a later try may work.
    LoadInterrupted {
        /// The model.
        model: Arc<str>,
        /// What happened.
        cause: String,
    },
    /// The request's rows cannot run on this model's plans (a model pinned to one row whose
    /// outputs are not rows, sent several).
    BadBatch(String),
    /// The engine failed or panicked, or its outputs could not be taken apart.
    Inference(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::QueueFull { model, max_queue } => write!(
                f,
                "model {model}: {max_queue} requests are already waiting (--max-queue); \
                 retry later"
            ),
            RunError::Stopped { model } => write!(f, "model {model}: its executor has stopped"),
            RunError::TimedOut {
                model,
                limit,
                client: false,
            } => write!(
                f,
                "model {model}: no answer within the request timeout ({limit:?})"
            ),
            RunError::TimedOut {
                model,
                limit,
                client: true,
            } => write!(
                f,
                "model {model}: no answer within the call's deadline ({limit:?}); a request \
                 still queued then is never run"
            ),
            RunError::LoadInterrupted { model, cause } => {
                write!(f, "model {model} cannot be loaded now: {cause}")
            }
            RunError::LoadFailed(m) | RunError::BadBatch(m) | RunError::Inference(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for RunError {}
