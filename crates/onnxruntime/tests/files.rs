//! The onnxruntime engine on model files as users have them: weights in an external data
//! file beside the model. Needs the library (`ORT_DYLIB_PATH`); without it the test says it
//! did not run, and fails if `SERVE_REQUIRE_ONNXRUNTIME=1`. A file of its own: one process
//! loads one library, so the tests that load none live apart.

#[path = "../../runtime/src/fixtures.rs"]
mod fixtures;

use serve_onnxruntime::OnnxRuntime;
use serve_runtime::engine::{Engine, On, TensorList};
use serve_runtime::source::Source;
use serve_runtime::tensor::Tensor;
use serve_tract::Tract;

fn library() -> Option<std::path::PathBuf> {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => Some(p.into()),
        _ if std::env::var("SERVE_REQUIRE_ONNXRUNTIME").is_ok_and(|v| v == "1") => {
            panic!("SERVE_REQUIRE_ONNXRUNTIME=1, but ORT_DYLIB_PATH is not set")
        }
        _ => {
            // Straight to stderr: the test harness shows it even though the test passes.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "[not run] files.rs: set ORT_DYLIB_PATH to libonnxruntime.so to run it"
            );
            None
        }
    }
}

/// The first output of one call of `engine` on `source`, as floats.
fn answer(engine: &dyn Engine, source: &Source) -> Vec<f32> {
    let meta = source.read_meta().unwrap();
    let plan = engine.build(source, &meta, true).unwrap();
    let row: TensorList = [Tensor::new(&[2, 4], vec![1f32, 2., 3., 4., -1., 0., 0.5, 2.]).unwrap()]
        .into_iter()
        .collect();
    let out = plan.run(On::AnyBatch, row).unwrap();
    let view = out.get(0).unwrap();
    assert_eq!(view.shape, &[2, 3]);
    view.to_tensor().as_slice::<f32>().unwrap().to_vec()
}

#[test]
fn weights_in_an_external_data_file_are_found_beside_the_model() {
    let Some(library) = library() else {
        return;
    };
    let dir = fixtures::TempDir::new("ort-external");
    let external = Source::read_file(fixtures::iris_like_external(&dir)).unwrap();
    let inline = Source::Bytes("iris", fixtures::iris_like().into());
    let ort = OnnxRuntime::new(library, 1);
    let want = answer(&Tract, &inline);
    for got in [answer(&ort, &inline), answer(&ort, &external)] {
        let close = got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 1e-6);
        assert!(
            close && got.len() == want.len(),
            "{got:?} against tract's {want:?}"
        );
    }
}
