//! Compiles the vendored Triton protocol buffers (`proto/triton`) in Rust: protox parses them
//! (no `protoc`), tonic-prost-build writes the messages and the gRPC service, and the
//! descriptor set is kept for prost-reflect's text format and JSON mapping and for the gRPC
//! server's reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/triton");
    let files = [
        dir.join("model_config.proto"),
        dir.join("grpc_service.proto"),
    ];
    for file in &files {
        println!("cargo::rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&dir])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptors.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
