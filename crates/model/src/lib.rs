//! (being written)
#![forbid(unsafe_code)]

pub mod codec_binary;
pub mod codec_json;
pub mod column;
pub mod datatype;
pub mod error;
pub mod executor;
pub mod loader;
pub mod metadata;
pub mod outputs;
pub mod registry;

#[cfg(test)]
mod fixtures;
