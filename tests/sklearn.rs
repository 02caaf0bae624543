//! scikit-learn models as skl2onnx exports them by default, served by the real binary: a
//! sample of the corpus (corpus/sklearn: each model with onnxruntime's answers) in one model
//! repository, asked over KServe V2 in JSON and in the binary tensor extension, and over V1,
//! and compared with onnxruntime. The ZipMap classifier with string labels answers its labels
//! as BYTES in V2 and as JSON strings in V1, its probabilities keyed by label. The shapes of
//! the heavy models (corpus/torch) are served the same way and compared with torch.

mod common;

use std::path::{Path, PathBuf};

use common::http::{Conn, Response};
use common::{Bin, start};
use serde_json::{Value, json};

/// The sample: a linear classifier with string labels (ZipMap), a scaler pipeline, trees of
/// both kinds, gradient boosting, an SVM with probabilities and an imputer fed NaN.
const SAMPLE: &[&str] = &[
    "logreg_string_labels",
    "pipeline_scaler_logreg",
    "random_forest_regressor",
    "gradient_boosting_binary",
    "svc_rbf_multiclass",
    "simple_imputer_mean",
];

/// Rows of each case sent per request.
const ROWS: usize = 7;

/// The shapes of the heavy models, with torch's answers: a ResNet-shaped CNN, a 2-layer
/// GRU, and a BERT-style encoder whose batch and sequence are both dynamic (planned for one
/// row on tract, so its rows run one by one).
const HEAVY: &[&str] = &["resnet", "gru", "bert"];

fn corpus_in(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(dir)
        .join(name)
}

fn expected(name: &str) -> Value {
    expected_in("sklearn", name)
}

fn expected_in(dir: &str, name: &str) -> Value {
    let text = std::fs::read_to_string(corpus_in(dir, &format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A repository holding the sample, served by 2 workers.
fn serve_sample() -> (tempfile::TempDir, common::Server) {
    serve_cases("sklearn", SAMPLE)
}

/// A repository holding these cases of corpus/DIR, served by 2 workers.
fn serve_cases(corpus_dir: &str, names: &[&str]) -> (tempfile::TempDir, common::Server) {
    serve_cases_with(corpus_dir, names, &[])
}

/// [`serve_cases`] with more arguments (another engine).
fn serve_cases_with(
    corpus_dir: &str,
    names: &[&str],
    args: &[&str],
) -> (tempfile::TempDir, common::Server) {
    let dir = common::tempdir();
    for name in names {
        let from = corpus_in(corpus_dir, &format!("{name}.onnx"));
        std::fs::copy(&from, dir.path().join(format!("{name}.onnx")))
            .unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
    let repo = dir.path().display().to_string();
    let mut all = vec!["-w", "2", "-b", "127.0.0.1:0"];
    all.extend_from_slice(args);
    all.push(&repo);
    let server = start(Bin::Serve, &all);
    (dir, server)
}

fn post(server: &common::Server, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let res = Conn::open(server.addr())
        .unwrap()
        .request("POST", path, &all, body)
        .unwrap();
    assert_eq!(res.status, 200, "{path}: {}", res.text());
    res
}

/// A JSON value as f64: numbers, and onnxruntime's non-finite floats as the corpus spells
/// them ("NaN", "Infinity", "-Infinity"); serve answers non-finite floats as null.
fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "NaN" => Some(f64::NAN),
        Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
        Value::Null => Some(f64::NAN),
        _ => None,
    }
}

fn same(got: &Value, want: &Value) -> bool {
    match (float(got), float(want)) {
        (Some(g), Some(w)) if !w.is_finite() => g.is_nan() || g == w,
        (Some(g), Some(w)) => (g - w).abs() <= 1e-6 + 1e-5 * w.abs(),
        _ => got == want,
    }
}

/// The first `rows` rows of a stored tensor: its shape and flat data.
fn head(t: &Value, rows: usize) -> (Vec<usize>, Vec<Value>) {
    let mut shape: Vec<usize> = t["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let width: usize = shape[1..].iter().product();
    let rows = rows.min(shape[0]);
    shape[0] = rows;
    let data = t["data"].as_array().unwrap()[..rows * width].to_vec();
    (shape, data)
}

/// The answer's outputs, checked to be as many as onnxruntime gave.
fn every_output<'a>(answer: &'a Value, case: &Value, name: &str) -> &'a [Value] {
    let outputs = answer["outputs"].as_array().unwrap();
    let want = case["outputs"].as_object().unwrap().len();
    assert_eq!(outputs.len(), want, "{name}: {answer}");
    outputs
}

fn assert_output(case: &str, name: &str, got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "{case} {name}: {got:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(same(g, w), "{case} {name}[{i}]: serve {g}, reference {w}");
    }
}

/// The V2 JSON request of a case's first rows; `None` when they hold a non-finite float,
/// which JSON cannot carry (such cases go over the binary extension).
fn v2_json_body(case: &Value, rows: usize) -> Option<String> {
    let mut inputs = Vec::new();
    for (name, t) in case["inputs"].as_object().unwrap() {
        let (shape, data) = head(t, rows);
        if data
            .iter()
            .any(|v| v.is_string() && t["datatype"] != "BYTES")
        {
            return None;
        }
        inputs.push(json!({"name": name, "datatype": t["datatype"], "shape": shape, "data": data}));
    }
    Some(json!({"inputs": inputs}).to_string())
}

/// Posts a case's V2 JSON request of its first `rows` rows and checks every output against
/// the stored answer: shape, datatype and values.
fn infer_as_stored(server: &common::Server, name: &str, case: &Value, body: &str, rows: usize) {
    let res = post(
        server,
        &format!("/v2/models/{name}/infer"),
        &[],
        body.as_bytes(),
    );
    let answer = res.json();
    for out in every_output(&answer, case, name) {
        let out_name = out["name"].as_str().unwrap();
        let (shape, want) = head(&case["outputs"][out_name], rows);
        assert_eq!(out["shape"], json!(shape), "{name} {out_name}");
        assert_eq!(out["datatype"], case["outputs"][out_name]["datatype"]);
        assert_output(name, out_name, out["data"].as_array().unwrap(), &want);
    }
}

#[test]
fn the_corpus_sample_answers_as_onnxruntime_over_v2_json() {
    let (_dir, server) = serve_sample();
    sample_over_v2_json(&server);
}

fn sample_over_v2_json(server: &common::Server) {
    let mut asked = 0;
    for name in SAMPLE {
        let case = expected(name);
        let Some(body) = v2_json_body(&case, ROWS) else {
            continue;
        };
        asked += 1;
        infer_as_stored(server, name, &case, &body, ROWS);
    }
    // Only the imputer's rows hold NaN, which JSON cannot carry.
    assert_eq!(asked, SAMPLE.len() - 1);
}

#[test]
fn the_heavy_model_shapes_answer_as_torch_over_v2_json() {
    let (_dir, server) = serve_cases("torch", HEAVY);
    heavy_over_v2_json(&server);
}

fn heavy_over_v2_json(server: &common::Server) {
    for name in HEAVY {
        let case = expected_in("torch", name);
        let body = v2_json_body(&case, 8).expect("finite inputs");
        infer_as_stored(server, name, &case, &body, 8);
    }
}

#[test]
fn on_onnxruntime_the_sample_and_the_heavy_shapes_answer_the_same() {
    let Some(library) = common::onnxruntime_library("sklearn.rs on onnxruntime") else {
        return;
    };
    let args = ["--engine", "onnxruntime", "--onnxruntime", &library];
    let (_dir, server) = serve_cases_with("sklearn", SAMPLE, &args);
    assert!(
        server.log().contains("(on onnxruntime)"),
        "{}",
        server.log()
    );
    sample_over_v2_json(&server);
    drop(server);
    // The BERT-style encoder's 8 rows run as one call here (tract runs them one by one).
    let (_dir, server) = serve_cases_with("torch", HEAVY, &args);
    heavy_over_v2_json(&server);
}

/// Little-endian bytes of a stored tensor's first rows, as the binary extension carries
/// them (BYTES: each element's length as a u32, then its bytes).
fn tensor_bytes(t: &Value, rows: usize) -> (Vec<usize>, Vec<u8>) {
    let (shape, data) = head(t, rows);
    let mut bytes = Vec::new();
    for v in &data {
        match t["datatype"].as_str().unwrap() {
            "FP32" => bytes.extend((float(v).unwrap() as f32).to_le_bytes()),
            "FP64" => bytes.extend(float(v).unwrap().to_le_bytes()),
            "INT64" => bytes.extend(v.as_i64().unwrap().to_le_bytes()),
            "INT32" => bytes.extend((v.as_i64().unwrap() as i32).to_le_bytes()),
            "BYTES" => {
                let s = v.as_str().unwrap().as_bytes();
                bytes.extend((s.len() as u32).to_le_bytes());
                bytes.extend(s);
            }
            other => panic!("datatype {other} not in the sample"),
        }
    }
    (shape, bytes)
}

/// Decodes a binary output of `shape` and `datatype` to JSON values.
fn decode_binary(datatype: &str, bytes: &[u8]) -> Vec<Value> {
    match datatype {
        "FP32" => bytes
            .chunks_exact(4)
            .map(|c| json!(f32::from_le_bytes(c.try_into().unwrap()) as f64))
            .collect(),
        "INT64" => bytes
            .chunks_exact(8)
            .map(|c| json!(i64::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        "BYTES" => {
            let mut out = Vec::new();
            let mut rest = bytes;
            while rest.len() >= 4 {
                let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                out.push(json!(String::from_utf8(rest[4..4 + n].to_vec()).unwrap()));
                rest = &rest[4 + n..];
            }
            out
        }
        other => panic!("datatype {other} not in the sample"),
    }
}

#[test]
fn the_corpus_sample_answers_as_onnxruntime_over_the_binary_extension() {
    let (_dir, server) = serve_sample();
    for name in SAMPLE {
        let case = expected(name);
        let mut inputs = Vec::new();
        let mut payload = Vec::new();
        for (input, t) in case["inputs"].as_object().unwrap() {
            let (shape, bytes) = tensor_bytes(t, ROWS);
            inputs.push(
                json!({"name": input, "datatype": t["datatype"], "shape": shape,
                "parameters": {"binary_data_size": bytes.len()}}),
            );
            payload.extend(bytes);
        }
        let outputs: Vec<Value> = case["outputs"]
            .as_object()
            .unwrap()
            .keys()
            .map(|o| json!({"name": o, "parameters": {"binary_data": true}}))
            .collect();
        let header = json!({"inputs": inputs, "outputs": outputs}).to_string();
        let mut body = header.clone().into_bytes();
        body.extend(payload);
        let len = header.len().to_string();
        let res = post(
            &server,
            &format!("/v2/models/{name}/infer"),
            &[("Inference-Header-Content-Length", &len)],
            &body,
        );
        let json_len: usize = res
            .header("Inference-Header-Content-Length")
            .expect("a binary answer")
            .parse()
            .unwrap();
        let answer: Value = serde_json::from_slice(&res.body[..json_len]).unwrap();
        let mut at = json_len;
        let outputs = every_output(&answer, &case, name);
        for out in outputs {
            let out_name = out["name"].as_str().unwrap();
            let size = out["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
            let got = decode_binary(out["datatype"].as_str().unwrap(), &res.body[at..at + size]);
            at += size;
            let (_, want) = head(&case["outputs"][out_name], ROWS);
            assert_output(name, out_name, &got, &want);
        }
        assert_eq!(at, res.body.len(), "{name}: trailing bytes");
    }
}

#[test]
fn v1_and_metadata_speak_the_labels_of_a_string_label_classifier() {
    let (_dir, server) = serve_sample();
    let name = "logreg_string_labels";
    let case = expected(name);

    let meta = server.get(&format!("/v2/models/{name}")).json();
    let probs = &meta["outputs"][1];
    assert_eq!(probs["name"], "output_probability");
    let classes = case["outputs"]["output_probability"]["classes"].clone();
    assert_eq!(probs["parameters"]["classes"], classes);
    assert_eq!(meta["outputs"][0]["datatype"], "BYTES");

    let (shape, rows) = head(&case["inputs"]["X"], 3);
    let instances: Vec<Value> = rows.chunks(shape[1]).map(|r| json!(r)).collect();
    let body = json!({"instances": instances}).to_string();
    let res = post(
        &server,
        &format!("/v1/models/{name}:predict"),
        &[],
        body.as_bytes(),
    );
    let predictions = res.json()["predictions"].clone();
    let (_, labels) = head(&case["outputs"]["output_label"], 3);
    let (_, probabilities) = head(&case["outputs"]["output_probability"], 3);
    let classes: Vec<&str> = classes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for (r, p) in predictions.as_array().unwrap().iter().enumerate() {
        assert_eq!(p["output_label"], labels[r], "row {r}: {p}");
        let by_label = p["output_probability"].as_object().unwrap();
        assert_eq!(
            by_label.keys().map(String::as_str).collect::<Vec<_>>(),
            classes
        );
        for (k, class) in classes.iter().enumerate() {
            let want = &probabilities[r * classes.len() + k];
            assert!(same(&by_label[*class], want), "row {r} {class}: {p}");
        }
    }
}
