//! A ZipMap output (every scikit-learn classifier's default export) is served: as the FP32
//! probabilities `[N, C]` in V2, with the class labels in the metadata, and as one
//! `{label: probability}` object per row in V1 and in manifest routes, as onnxruntime's
//! Python API returns them.

mod common;
#[path = "../../runtime/src/fixtures.rs"]
mod fixtures;

use common::*;
use fixtures::TempDir;
use serde_json::{Value, json};

/// `x` rows whose softmax is known: [0, 0, ln 2] gives [0.25, 0.25, 0.5].
const LN2: f32 = std::f32::consts::LN_2;

/// A directory holding the classifier, named after the test (tests run concurrently).
fn model_dir(test: &str, strings: bool) -> TempDir {
    let d = TempDir::new(&format!("zipmap-{test}-{strings}"));
    d.file("cls.onnx", &fixtures::zipmap(strings));
    d
}

fn close(got: &Value, want: f64) -> bool {
    got.as_f64().is_some_and(|g| (g - want).abs() < 1e-6)
}

#[tokio::test]
async fn v2_metadata_names_the_classes_of_the_probabilities() {
    for (strings, classes) in [(false, json!([0, 1, 2])), (true, json!(["a", "b", "c"]))] {
        let d = model_dir("meta", strings);
        let app = app_for(d.0.join("cls.onnx"));
        let meta = call(&app, "GET", "/v2/models/cls", "").await.json();
        let probs = &meta["outputs"][1];
        assert_eq!(probs["name"], "output_probability");
        assert_eq!(probs["datatype"], "FP32");
        assert_eq!(probs["shape"], json!([-1, 3]));
        assert_eq!(probs["parameters"]["classes"], classes);
        assert!(meta["outputs"][0].get("parameters").is_none());
    }
}

#[tokio::test]
async fn v2_answers_the_probabilities_as_a_tensor() {
    let d = model_dir("v2", true);
    let app = app_for(d.0.join("cls.onnx"));
    let body = json!({"inputs": [input("x", "FP32", &[2, 3], json!([0, 0, LN2, 0, 0, 0]))]});
    let a = call(&app, "POST", "/v2/models/cls/infer", body.to_string()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let out = a.json();
    let probs = &out["outputs"][1];
    assert_eq!(probs["name"], "output_probability");
    assert_eq!(probs["shape"], json!([2, 3]));
    let got = floats(&probs["data"]);
    let want = [0.25, 0.25, 0.5, 1. / 3., 1. / 3., 1. / 3.];
    assert!(
        got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6),
        "{got:?}"
    );
    assert_eq!(out["outputs"][0]["data"], json!([2, 0]));
}

#[tokio::test]
async fn v1_rows_are_label_probability_objects() {
    for (strings, keys) in [(false, ["0", "1", "2"]), (true, ["a", "b", "c"])] {
        let d = model_dir("v1", strings);
        let app = app_for(d.0.join("cls.onnx"));
        let body = json!({"instances": [[0, 0, LN2], [LN2, 0, 0]]});
        let a = call(&app, "POST", "/v1/models/cls:predict", body.to_string()).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        let preds = &a.json()["predictions"];
        assert_eq!(preds[0]["output_label"], 2);
        let first = preds[0]["output_probability"].as_object().unwrap();
        assert_eq!(
            first.keys().collect::<Vec<_>>(),
            keys.iter().collect::<Vec<_>>()
        );
        assert!(close(&first[keys[2]], 0.5), "{first:?}");
        assert!(close(&preds[1]["output_probability"][keys[0]], 0.5));

        // Columnar inputs give columnar outputs: one object per row there too.
        let body = json!({"inputs": [[0, 0, LN2]]});
        let a = call(&app, "POST", "/v1/models/cls:predict", body.to_string()).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        let outputs = &a.json()["outputs"];
        assert!(
            close(&outputs["output_probability"][0][keys[2]], 0.5),
            "{outputs}"
        );
    }
}

#[tokio::test]
async fn routes_answer_the_probabilities_keyed_by_label() {
    let d = model_dir("route", true);
    d.file(
        "app.toml",
        b"[[model]]\nname = \"cls\"\npath = \"cls.onnx\"\n\n[[route]]\npath = \"/predict\"\n\
          [route.inputs]\nx = [\"a\", \"b\", \"c\"]\n[route.outputs]\nlabel = \"output_label\"\n\
          proba = \"output_probability\"\n",
    );
    let app = app_for(d.0.clone());
    let body = json!({"a": 0, "b": LN2, "c": 0});
    let a = call(&app, "POST", "/predict", body.to_string()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let out = a.json();
    assert_eq!(out["label"], 1);
    assert!(close(&out["proba"]["b"], 0.5), "{out}");
    assert!(close(&out["proba"]["a"], 0.25), "{out}");
}
