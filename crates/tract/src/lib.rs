//! The tract engine: how a model's bytes become runnable tract plans, and how a call runs.
//!
//! Building the plans (typing and optimizing the graph) is the expensive step, done once
//! per worker on the first request, or once in the master with `--preload`. The general
//! plan declares every variable dimension as a tract symbol, so it serves every batch size;
//! the first variable dimension of every input is one symbol (`N`), whatever the file names
//! it (converters name each input's batch on its own: tf2onnx `unk__62`, `unk__64`), which
//! is what lets tract type a graph that joins the inputs and the executor merge requests
//! along it (a model whose inputs truly differ there says `batch = false`). Next to it, from the
//! same typed graph, a plan with that symbol bound to 1 serves one-row calls: tract's fast
//! convolution paths need concrete shapes, so on a CNN it is several times faster (see
//! [`TractPlan`]).
//!
//! Graphs are parsed by tract's ONNX framework with serve's ONNX-ML operators registered
//! (crate `serve-onnx-ml`: scikit-learn's exports, answering as onnxruntime does).
//!
//! tract's quirks are handled here, not leaked to clients: an operator tract does not
//! implement is named with its node (instead of "can not be made a TypedOp"), a file whose
//! `value_info` contradicts the graph is retried with `with_ignore_value_info(true)`, a
//! graph tract can type only for a known batch (a `Reshape` whose target is computed from
//! `Shape`) is planned with the batch pinned to 1, and whether outputs are per row is
//! decided from the typed facts.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod engine;

pub use engine::{Tract, TractPlan, build, datatype_of, datum, to_tract, view_of};

#[cfg(test)]
#[path = "../../runtime/src/fixtures.rs"]
mod fixtures;
#[cfg(test)]
mod tests;
