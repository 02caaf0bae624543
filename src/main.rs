//! The `serve` binary: ONNX models over KServe V2, TF-Serving V1 and app routes.

fn main() {
    std::process::exit(serve::main_with(serve::model_app));
}
