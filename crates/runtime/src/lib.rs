//! `serve-runtime`: the model runtime under every front end.
//!
//! It reads a model's inputs and outputs from its ONNX bytes, plans it with an engine
//! (crate `serve-tract` or `serve-onnxruntime`; this crate depends on neither), and runs requests through one bounded queue per model with dynamic batching.
//! The queue, the batching and the lifecycle see only the [`engine`] traits and the
//! runtime's own [`tensor`]s. It knows nothing of
//! HTTP: it fails with a [`run_error::RunError`], which each protocol maps to its answer
//! (the REST mapping is in `serve-model`; gRPC will map the same enum).
//!
//! - [`metadata`]: inputs and outputs read from the protobuf without building, skipping
//!   the weights, with the ONNX messages of [`onnx_pb`] (no engine's types).
//! - [`model`]: one model in one worker: its plan built lazily once (one request builds,
//!   the others wait), its executor, its readiness; a failed build remembered.
//! - [`engine`]: what an engine is to the runtime: it builds a model's bytes into a plan
//!   that says what it can do with rows and runs calls on the runtime's [`tensor`]s.
//! - [`source`]: a model's bytes, read once before the fork.
//! - [`tensor`]: the runtime's tensors: a shape and one typed `Vec`, what the protocols'
//!   decoders produce and every engine takes.
//! - [`inputs`]: a request's tensors.
//! - [`executor`]: per model, a bounded queue, dynamic batching where it measurably pays
//!   (the policy: `batching.rs`), inline or blocking calls; what it does is counted in its
//!   [`executor::Activity`].
//! - [`events`]: what the executor does, told as it happens to an [`events::Observer`]
//!   (queued, shed, started, cancelled and why, each call with its rows and duration):
//!   the one interface a server's metrics need.
//! - [`outputs`]: a request's rows of (possibly batched) outputs, and how they are written
//!   as JSON straight into a response buffer.
//! - [`datatype`]: the element types, by their protocol names.
//! - [`io_error`]: I/O errors as one-line messages.
//! - [`run_error`]: why a request could not be answered.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod batching;
pub mod datatype;
pub mod engine;
pub mod events;
pub mod executor;
pub mod inputs;
pub mod io_error;
pub mod metadata;
pub mod model;
pub mod onnx_pb;
pub mod outputs;
pub mod run_error;
pub mod source;
pub mod tensor;

#[cfg(test)]
mod fixtures;

// The unit tests run real models: tract's engine, compiled into this crate's tests from its
// own crate's source (a dev-dependency on serve-tract would link a second serve-runtime,
// whose traits the tests' could not take). It names the runtime `serve_runtime`.
#[cfg(test)]
extern crate self as serve_runtime;
#[cfg(test)]
#[path = "../../tract/src/engine.rs"]
mod tract;
