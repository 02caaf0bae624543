//! Missing values and infinities as clients send them: Python's `json.dumps` writes `NaN`,
//! `Infinity` and `-Infinity` (not JSON), pandas' `to_json` writes `null`, protobuf's JSON
//! mapping the strings `"NaN"`, `"Infinity"`, `"-Infinity"`. A float input takes all of them,
//! every other input refuses them naming itself; answers write NaN as `null` and the
//! infinities as strings, which go back in as they came out.

mod common;
#[path = "../../runtime/src/fixtures.rs"]
mod fixtures;

use common::*;
use serde_json::{Value, json};

/// The corpus case of a scikit-learn pipeline with a SimpleImputer, and its onnxruntime answers.
fn imputer() -> (std::sync::Arc<dyn serve_app::App>, Value) {
    let dir = root().join("corpus/sklearn");
    let text = std::fs::read_to_string(dir.join("pipeline_imputer_logreg.json")).unwrap();
    let app = app_for(dir.join("pipeline_imputer_logreg.onnx"));
    (app, serde_json::from_str(&text).unwrap())
}

/// The rows of the corpus case that hold a NaN, each as its 4 features (None for NaN), with
/// their expected label and probabilities.
fn rows_with_nan(case: &Value) -> Vec<(Vec<Option<f64>>, Value, Vec<f64>)> {
    let data = case["inputs"]["X"]["data"].as_array().unwrap();
    let labels = case["outputs"]["output_label"]["data"].as_array().unwrap();
    let probs = floats(&case["outputs"]["output_probability"]["data"]);
    let classes = probs.len() / labels.len();
    data.chunks(4)
        .enumerate()
        .filter(|(_, row)| row.iter().any(|x| x == "NaN"))
        .map(|(i, row)| {
            let row = row.iter().map(Value::as_f64).collect();
            let p = probs[i * classes..(i + 1) * classes].to_vec();
            (row, labels[i].clone(), p)
        })
        .collect()
}

/// A row's features as JSON text, a missing one written `missing`.
fn features(row: &[Option<f64>], missing: &str) -> String {
    let items: Vec<String> = row
        .iter()
        .map(|x| x.map_or_else(|| missing.to_owned(), |x| x.to_string()))
        .collect();
    format!("[{}]", items.join(", "))
}

fn assert_probabilities(got: &Value, want: &[f64], what: &str) {
    let got = floats(got);
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-5, "{what}: {got:?} against {want:?}");
    }
}

#[tokio::test]
async fn rows_with_missing_values_answer_as_onnxruntime_over_v2_and_v1() {
    let (app, doc) = imputer();
    let case = &doc;
    let rows = rows_with_nan(case);
    assert!(rows.len() >= 10, "the corpus case has rows with NaN");
    for (missing, how) in [
        ("NaN", "Python's json.dumps"),
        ("null", "pandas' to_json"),
        ("\"NaN\"", "protobuf's JSON"),
    ] {
        for (row, label, probs) in &rows {
            let body = format!(
                r#"{{"inputs":[{{"name":"X","shape":[1,4],"datatype":"FP32","data":{}}}]}}"#,
                features(row, missing)
            );
            let a = call(
                &app,
                "POST",
                "/v2/models/pipeline_imputer_logreg/infer",
                body,
            )
            .await;
            assert_eq!(a.status, 200, "{how}: {:?}", a.body);
            let v = a.json();
            assert_eq!(v["outputs"][0]["data"][0], *label, "{how}: {v}");
            assert_probabilities(&v["outputs"][1]["data"], probs, how);

            let body = format!(r#"{{"instances":[{}]}}"#, features(row, missing));
            let path = "/v1/models/pipeline_imputer_logreg:predict";
            let a = call(&app, "POST", path, body).await;
            assert_eq!(a.status, 200, "{how}, V1: {:?}", a.body);
            let p = &a.json()["predictions"][0];
            assert_eq!(p["output_label"], *label, "{how}, V1: {p}");
            // A ZipMap: V1 writes each row as {label: probability}.
            let by_label: Vec<Value> = (0..probs.len())
                .map(|c| p["output_probability"][c.to_string()].clone())
                .collect();
            assert_probabilities(&Value::Array(by_label), probs, how);
        }
    }
}

#[tokio::test]
async fn what_comes_out_goes_back_in() {
    use fixtures::{D, FLOAT, graph, model, node, vi};
    let dir = fixtures::TempDir::new("identity");
    let path = dir.file(
        "same.onnx",
        &model(graph(
            vec![node("Identity", &["x"], &["y"], vec![])],
            vec![vi("x", FLOAT, &[D::N, D::F(4)])],
            vec![vi("y", FLOAT, &[D::N, D::F(4)])],
            vec![],
        )),
    );
    let app = app_for(path);
    let sent = r#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[NaN,Infinity,-Infinity,1.5]}]}"#;
    let a = call(&app, "POST", "/v2/models/same/infer", sent).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let out = a.json()["outputs"][0]["data"].clone();
    assert_eq!(out, json!([null, "Infinity", "-Infinity", 1.5]));
    // The answer's data, sent back as it came, answers the same.
    let again =
        json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": out}]});
    let b = call(&app, "POST", "/v2/models/same/infer", again.to_string()).await;
    assert_eq!(b.status, 200, "{:?}", b.body);
    assert_eq!(b.json()["outputs"][0]["data"], out);
    // V1 writes them the same way.
    let v1 = call(
        &app,
        "POST",
        "/v1/models/same:predict",
        r#"{"instances":[[null,"Infinity",NaN,-Infinity]]}"#,
    )
    .await;
    assert_eq!(v1.status, 200, "{:?}", v1.body);
    assert_eq!(
        v1.json()["predictions"][0],
        json!([null, "Infinity", null, "-Infinity"])
    );
}
