//! `serve-model`: ONNX models served over KServe V2, TF-Serving V1 and manifest routes.
//!
//! This crate is the application the `serve` server runs (the Flask `app.py` of the
//! gunicorn world, written once): it knows models and protocols and nothing of processes.
//! The binary builds a [`ModelAppFactory`] from APP and the settings; the master checks it at
//! start, each worker builds the [`ModelApp`] and calls it for every request.
//!
//! # Layout
//!
//! A request goes router → protocol decoder → executor → engine (tract) → encoder. One module per
//! step:
//!
//! - [`app`]: the [`App`](serve_app::App) and [`AppFactory`](serve_app::AppFactory)
//!   implementations: building, checking, warming.
//! - [`resolve`]: what APP names (a file, a repository, an app directory, nothing).
//! - [`manifest`]: the `app.toml` format (documented there).
//! - [`example`]: the example request bodies the front page and OpenAPI show (the
//!   manifest's, checked at start, or placeholders from the metadata).
//! - [`registry`]: the models by name, each the runtime's [`model`] with the records spec
//!   V1 needs beside it.
//! - From `serve-runtime`, re-exported here: [`model`] (one model's lifecycle: its plan
//!   built lazily once, its executor, its readiness), [`engine`] (what an engine is to the
//!   runtime; tract's is crate `serve-tract`, onnxruntime's `serve-onnxruntime`),
//!   [`source`] (a model's bytes, read once before the fork), [`tensor`] (the
//!   runtime's tensors, what the decoders produce and engines take), [`metadata`] (inputs
//!   and outputs read from the protobuf), [`inputs`] (a request's tensors), [`executor`] (per model, a
//!   bounded queue and dynamic batching), [`outputs`] (a request's rows of the outputs,
//!   written as JSON or bytes), [`datatype`], [`run_error`] (why the runtime could not answer,
//!   mapped to a status in [`error`]).
//! - [`router`]: method and path → handler; 404 and 405.
//! - [`front`]: `GET /`, the front page: every model and route, a `curl` and a form each.
//! - [`openapi`]: `GET /openapi.json`, an OpenAPI 3.1 document of every route.
//! - [`v2`], [`v2_request`]: KServe V2 handlers and its request decoder.
//! - [`v1`]: TF-Serving's `:predict` and model status.
//! - [`routes`]: the manifest's record routes (`POST /model`).
//! - [`records`]: JSON records ↔ rows, shared by V1 and manifest routes.
//! - [`codec_json`]: JSON values straight into typed buffers; JSON error messages.
//! - [`codec_binary`]: the binary tensor extension's decoder (its encoder is
//!   [`outputs::OutView::write_le`]).
//! - [`column`](mod@column): typed buffers.
//! - [`error`]: [`ApiError`](error::ApiError), the status and message of every failure.
//!
//! # Why it is shaped this way
//!
//! Speed: at the size of the example models an engine call costs about as much as the HTTP
//! request, so the decoders write JSON numbers straight into the tensor buffer, the
//! encoders write outputs straight into the response, the plans are built once and shared,
//! nothing on the request path takes a lock shared between connections, and concurrent
//! requests ride together on one engine call (dynamic batching). Safety: every number a
//! client declares is checked against the bytes it sent before anything is allocated from
//! it, and no input can panic the worker (property tests feed the decoders arbitrary bytes).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod app;
// The runtime's modules, where this crate and its users have always found them.
pub use serve_runtime::{
    datatype, engine, executor, inputs, metadata, model, outputs, run_error, source, tensor,
};
pub mod classify;
pub mod codec_binary;
pub mod codec_json;
pub mod column;
pub mod error;
pub mod example;
pub mod front;
pub mod manifest;
pub mod observe;
pub mod openapi;
pub mod records;
pub mod registry;
pub mod resolve;
pub mod router;
pub mod routes;
pub mod triton;
pub mod v1;
pub mod v2;
pub mod v2_request;

#[cfg(test)]
#[path = "../../runtime/src/fixtures.rs"]
mod fixtures;

pub use app::{ModelApp, ModelAppFactory};

/// A short list, inline up to four (inputs, a shape's dimensions, requested outputs): no
/// allocation for the usual counts.
pub(crate) type Few<T> = smallvec::SmallVec<[T; 4]>;
