//! Compiles the vendored Triton schema (`proto/triton`) in Rust: protox parses it (no
//! `protoc`), prost-build writes the types, and the descriptor set is kept for
//! prost-reflect's text format and JSON mapping.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/triton");
    let file = dir.join("model_config.proto");
    println!("cargo::rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&dir])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptors.bin"), descriptors.encode_to_vec())?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
