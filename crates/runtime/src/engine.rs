//! What an engine is to the runtime: it builds a model's bytes into a [`Plan`], and a plan
//! runs calls on the runtime's own [`Tensor`]s.
//!
//! The runtime owns everything around the call: the queue, the batching policy (which asks
//! the plan's [`Batching`] what it may do), events, errors and the model's lifecycle. An
//! engine owns only what differs between engines: how the graph is read and planned, and
//! how a call runs. tract's is `serve_tract::Tract` (crate `serve-tract`), onnxruntime's
//! `serve_onnxruntime::OnnxRuntime`.

use std::fmt;
use std::sync::Arc;

use crate::metadata::ModelMeta;
use crate::run_error::RunError;
use crate::source::Source;
use crate::tensor::{Tensor, TensorView};

/// The inputs of one call, in the model's input order.
pub type TensorList = smallvec::SmallVec<[Tensor; 4]>;

/// An engine: turns a model's bytes into a runnable plan.
pub trait Engine: Send + Sync + 'static {
    /// Its name, as logs and metadata say it (`tract`).
    fn name(&self) -> &'static str;

    /// True when building a plan starts no thread, so that a process may build and then
    /// fork (the master with `--preload`). onnxruntime's environment starts threads.
    fn fork_safe(&self) -> bool {
        true
    }

    /// Builds the plan of a model. `batch_dim`: the first dimension of every input is one
    /// batch, whatever the file names it (false: manifest `batch = false`).
    fn build(
        &self,
        source: &Source,
        meta: &ModelMeta,
        batch_dim: bool,
    ) -> Result<Box<dyn Plan>, BuildError>;
}

/// A model built by an engine, ready to run.
pub trait Plan: Send + Sync + fmt::Debug + 'static {
    /// What it can do with rows: the executor's choices.
    fn batching(&self) -> Batching;

    /// Why the batch is pinned to 1, when the engine could plan the model only so.
    fn pinned(&self) -> Option<&str>;

    /// One call: `inputs` in the model's input order, on the plan for any batch size or
    /// the one for a single row. A panic inside the engine is the caller's to catch.
    fn run(&self, on: On, inputs: TensorList) -> Result<Arc<dyn OutputSet>, RunError>;
}

/// Which of a plan's forms a call runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    /// The form for any batch size: a call of several rows as one call.
    AnyBatch,
    /// The form for one row (faster for CNNs on tract, whose fast convolutions need
    /// concrete shapes); the general form when the plan has no other.
    OneRow,
}

/// What a plan can do with rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// A call of several rows can run as one call ([`On::AnyBatch`]).
    pub any_batch: bool,
    /// A request of several rows can run row by row on [`On::OneRow`] and its outputs be
    /// stacked back.
    pub row_by_row: bool,
    /// Concurrent requests can be concatenated along the first dimension into one call,
    /// and the outputs split back into each request's rows.
    pub mergeable: bool,
}

/// The outputs of one call, read where the engine left them.
pub trait OutputSet: Send + Sync + fmt::Debug {
    /// How many outputs.
    fn len(&self) -> usize;

    /// True when the model gave no output.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Output `i` (below [`OutputSet::len`]); an error for one the protocols cannot carry.
    fn get(&self, i: usize) -> Result<TensorView<'_>, RunError>;
}

/// Outputs that are the runtime's own tensors (stacked rows, tests).
impl OutputSet for Vec<Tensor> {
    fn len(&self) -> usize {
        <[Tensor]>::len(self)
    }

    fn get(&self, i: usize) -> Result<TensorView<'_>, RunError> {
        Ok(self[i].view())
    }
}

/// Why a model cannot be built: the bytes cannot be served (only other bytes can change
/// that), or the host lacks what the engine needs ([`BuildError::host`]). One line naming
/// the cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    message: String,
    host: bool,
}

impl BuildError {
    /// The model cannot be built from these bytes.
    pub fn new(message: impl Into<String>) -> Self {
        BuildError {
            message: message.into(),
            host: false,
        }
    }

    /// The engine itself cannot run here (its library missing, unloadable or too old):
    /// any model on it would fail the same way, and the fix is on the host.
    pub fn host(message: impl Into<String>) -> Self {
        BuildError {
            message: message.into(),
            host: true,
        }
    }

    /// The message: one line naming the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the host, not the model, is at fault.
    pub fn is_host(&self) -> bool {
        self.host
    }

    /// The same fault, its message replaced (the model's name and file added).
    pub fn with_message(self, message: String) -> Self {
        BuildError { message, ..self }
    }
}

impl From<BuildError> for serve_app::AppError {
    fn from(e: BuildError) -> Self {
        if e.host {
            serve_app::AppError::host(e.message)
        } else {
            serve_app::AppError::new(e.message)
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}
