//! `serve-onnxruntime`: the onnxruntime engine, for the heavy models (CNNs, RNNs,
//! transformers) that tract runs about 3x slower.
//!
//! The library is not linked: it is loaded at run time ([`library::find`] says from where),
//! the one the `onnxruntime` Python package ships, so the binary, the wheel and the image stay
//! as they are for everyone who does not choose this engine. Loading it starts threads, so
//! only a process that will not fork loads it: a worker, or the short-lived child that proves
//! a generation; never the master.
//!
//! - [`library`]: where the library is (the flag, `ORT_DYLIB_PATH`, the Python package).
//! - [`engine`]: [`OnnxRuntime`], the [`Engine`](serve_runtime::engine::Engine): one
//!   environment per process with a global thread pool, one session per model; tensors in
//!   and out without a copy where onnxruntime allows it; ZipMap outputs (a sequence of maps
//!   in onnxruntime) laid out as the `[N, C]` tensor serve answers.

pub mod engine;
pub mod library;

pub use engine::OnnxRuntime;
