//! KServe V2 through the App: health, metadata, readiness, versions, inference in JSON and
//! in the binary extension, every datatype, lazy loading, timeouts and the queue bound.

mod common;
#[path = "../../runtime/src/fixtures.rs"]
mod fixtures;

use std::time::Duration;

use common::*;
use fixtures::TempDir;
use serde_json::{Value, json};
use serve_app::AppFactory;
use serve_model::ModelAppFactory;
use serve_settings::Values;

fn repo(models: &[(&str, Vec<u8>)]) -> TempDir {
    let d = TempDir::new(&format!(
        "v2-{}",
        models.iter().map(|m| m.0).collect::<Vec<_>>().join("-")
    ));
    for (name, bytes) in models {
        d.file(&format!("{name}.onnx"), bytes);
    }
    d
}

fn iris_body(rows: &[[f32; 4]]) -> String {
    let data: Vec<f32> = rows.iter().flatten().copied().collect();
    json!({"inputs": [input("input", "FP32", &[rows.len(), 4], json!(data))]}).to_string()
}

#[tokio::test]
async fn health_and_server_metadata() {
    let app = app(None, &Values::default());
    let a = call(&app, "GET", "/v2/health/live", "").await;
    assert_eq!((a.status, a.json()), (200, json!({"live": true})));
    let a = call(&app, "GET", "/v2/health/ready", "").await;
    assert_eq!((a.status, a.json()), (200, json!({"ready": true})));
    let a = call(&app, "HEAD", "/v2/health/ready", "").await;
    assert_eq!(a.status, 200);
    let v = call(&app, "GET", "/v2", "").await.json();
    assert_eq!(v["name"], "serve");
    assert_eq!(
        v["extensions"],
        json!([
            "binary_tensor_data",
            "classification",
            "model_configuration",
            "statistics"
        ])
    );
    // Load and unload exist under --model-control explicit only: 501, naming what does.
    for verb in ["load", "unload"] {
        let a = call(
            &app,
            "POST",
            &format!("/v2/repository/models/iris/{verb}"),
            "{}",
        )
        .await;
        assert_eq!(a.status, 501, "{verb}");
        let e = a.error();
        assert!(
            e.starts_with(&format!(
                "{verb} of model \"iris\": serve loads and unloads models on request only \
                 under --model-control explicit"
            )),
            "{e}"
        );
        assert!(e.contains("send HUP to the master"), "{e}");
    }
    let a = call(&app, "POST", "/v2/repository/models/nope/load", "{}").await;
    assert!(
        a.error().contains("(this server has \"iris\")"),
        "{}",
        a.error()
    );
    let a = call(&app, "GET", "/v2/models/iris/ready", "").await;
    assert_eq!(
        (a.status, a.json()),
        (200, json!({"name": "iris", "ready": true}))
    );
}

#[tokio::test]
async fn the_repository_index_lists_every_model_and_its_state() {
    let d = repo(&[
        ("a", fixtures::iris_like()),
        ("b", fixtures::unimplemented_op()),
    ]);
    let app = app_for(d.0.clone());
    let a = call(&app, "POST", "/v2/repository/index", "").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    // Not loaded yet: ready (the first request pays the load).
    assert_eq!(
        a.json(),
        json!([
            {"name": "a", "version": "1", "state": "READY", "reason": ""},
            {"name": "b", "version": "1", "state": "READY", "reason": ""},
        ])
    );
    // A model whose build failed: listed with the reason, or left out when only the ready
    // ones are asked for.
    let body = json!({"inputs": [input("x", "FP32", &[1, 2], json!([1, 2]))]});
    let a = call(&app, "POST", "/v2/models/b/infer", body.to_string()).await;
    assert_eq!(a.status, 503);
    let all = call(&app, "POST", "/v2/repository/index", "{}")
        .await
        .json();
    assert_eq!(all[1]["state"], "UNAVAILABLE");
    assert!(
        all[1]["reason"].as_str().unwrap().contains("b.onnx"),
        "{all}"
    );
    let ready = call(&app, "POST", "/v2/repository/index", r#"{"ready": true}"#).await;
    assert_eq!(ready.json().as_array().unwrap().len(), 1);

    let a = call(&app, "POST", "/v2/repository/index", r#"{"readdy": 1}"#).await;
    assert_eq!(a.status, 400);
    assert!(
        a.error().contains("{\"ready\": true|false}"),
        "{}",
        a.error()
    );
    assert_eq!(
        call(&app, "GET", "/v2/repository/index", "").await.status,
        405
    );
}

#[tokio::test]
async fn a_stopping_server_is_not_ready() {
    let app = app(None, &Values::default());
    let a = call_with(&app, "GET", "/v2/health/ready", &[], "", true).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.json()["ready"], false);
    let a = call_with(&app, "GET", "/v2/models/iris/ready", &[], "", true).await;
    assert_eq!(a.status, 503);
    // Liveness is not readiness.
    let a = call_with(&app, "GET", "/v2/health/live", &[], "", true).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn metadata_is_read_without_loading_and_says_when_loaded() {
    let app = app(None, &Values::default());
    let v = call(&app, "GET", "/v2/models/iris", "").await.json();
    assert_eq!(
        v,
        json!({
            "name": "iris", "versions": ["1"], "platform": "onnx_onnxv1",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
            "parameters": {"loaded": false, "engine": "tract"}
        })
    );
    let a = call(
        &app,
        "POST",
        "/v2/models/iris/infer",
        iris_body(&[[5.1, 3.5, 1.4, 0.2]]),
    )
    .await;
    assert_eq!(a.status, 200);
    let v = call(&app, "GET", "/v2/models/iris/versions/1", "")
        .await
        .json();
    assert_eq!(v["parameters"]["loaded"], true);
}

#[tokio::test]
async fn warm_loads_every_model() {
    let d = repo(&[("a", fixtures::iris_like()), ("b", fixtures::classifier())]);
    let app = app_for(&d.0);
    app.warm().unwrap();
    for m in ["a", "b"] {
        let v = call(&app, "GET", &format!("/v2/models/{m}"), "")
            .await
            .json();
        assert_eq!(v["parameters"]["loaded"], true, "{m}");
    }
}

#[tokio::test]
async fn a_manifest_version_is_the_version_every_protocol_answers() {
    let d = repo(&[("iris", fixtures::classifier())]);
    d.file(
        "app.toml",
        b"[[model]]\nname = \"iris\"\npath = \"iris.onnx\"\nversion = 2\n",
    );
    let app = app_for(d.0.clone());
    let body =
        json!({"inputs": [input("input", "FP32", &[1, 4], json!([1, 2, 3, 4]))]}).to_string();
    for path in ["/v2/models/iris/infer", "/v2/models/iris/versions/2/infer"] {
        let a = call(&app, "POST", path, body.clone()).await;
        assert_eq!(a.status, 200, "{path}: {:?}", a.body);
        assert_eq!(a.json()["model_version"], "2", "{path}");
    }
    let a = call(&app, "POST", "/v2/models/iris/versions/1/infer", body).await;
    assert_eq!(a.status, 404);
    assert!(a.error().contains("(its versions: 2)"), "{}", a.error());
    let meta = call(&app, "GET", "/v2/models/iris", "").await.json();
    assert_eq!(meta["versions"], json!(["2"]));
    let index = call(&app, "POST", "/v2/repository/index", "").await.json();
    assert_eq!(index[0]["version"], "2");
    let v1 = call(&app, "GET", "/v1/models/iris", "").await.json();
    assert_eq!(v1["model_version_status"][0]["version"], "2");

    // A string works too; a version that is not one path segment is refused at start.
    d.file(
        "app.toml",
        b"[[model]]\nname = \"iris\"\npath = \"iris.onnx\"\nversion = \"2024-06\"\n",
    );
    let meta = call(&app_for(d.0.clone()), "GET", "/v2/models/iris", "")
        .await
        .json();
    assert_eq!(meta["versions"], json!(["2024-06"]));
    d.file(
        "app.toml",
        b"[[model]]\nname = \"iris\"\npath = \"iris.onnx\"\nversion = \"a/b\"\n",
    );
    let f = ModelAppFactory::new(Some(d.0.clone()), &Values::default());
    let e = f.check().unwrap_err().to_string();
    assert!(
        e.contains("version \"a/b\" must be one path segment"),
        "{e}"
    );
}

#[tokio::test]
async fn versions_other_than_1_are_404() {
    let app = app(None, &Values::default());
    let a = call(
        &app,
        "POST",
        "/v2/models/iris/versions/1/infer",
        iris_body(&[[1.0; 4]]),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["model_version"], "1");
    for path in [
        "/v2/models/iris/versions/2",
        "/v2/models/iris/versions/2/ready",
    ] {
        let a = call(&app, "GET", path, "").await;
        assert_eq!(a.status, 404, "{path}");
        assert!(a.error().contains("no version \"2\""), "{}", a.error());
    }
    let a = call(
        &app,
        "POST",
        "/v2/models/iris/versions/0/infer",
        iris_body(&[[1.0; 4]]),
    )
    .await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn unknown_models_paths_and_methods() {
    let app = app(None, &Values::default());
    let a = call(
        &app,
        "POST",
        "/v2/models/nope/infer",
        iris_body(&[[1.0; 4]]),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.error(),
        "unknown model \"nope\" (this server has \"iris\")"
    );
    let a = call(&app, "GET", "/v3/whatever", "").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error(), "no route for GET /v3/whatever");
    let a = call(&app, "GET", "/v2/models/iris/infer", "").await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "POST");
    let a = call(&app, "POST", "/v2/models/iris", "{}").await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "GET, HEAD");
    let a = call(&app, "DELETE", "/v2/health/live", "").await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["content-type"], "application/json");
}

#[tokio::test]
async fn infer_echoes_the_id_and_selects_outputs() {
    let app = app(None, &Values::default());
    let body = json!({
        "id": "42",
        "inputs": [input("input", "FP32", &[2, 4], json!([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))],
        "outputs": [{"name": "label"}]
    });
    let v = call(&app, "POST", "/v2/models/iris/infer", body.to_string())
        .await
        .json();
    assert_eq!(
        v,
        json!({"model_name": "iris", "model_version": "1", "id": "42",
               "outputs": [{"name": "label", "datatype": "INT64", "shape": [2], "data": [0, 2]}]})
    );
    let v = call(
        &app,
        "POST",
        "/v2/models/iris/infer",
        iris_body(&[[5.1, 3.5, 1.4, 0.2]]),
    )
    .await
    .json();
    assert!(v.get("id").is_none());
    assert_eq!(v["outputs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_zero_batch_answers_empty_outputs() {
    let app = app(None, &Values::default());
    let body = json!({"inputs": [input("input", "FP32", &[0, 4], json!([]))]});
    let a = call(&app, "POST", "/v2/models/iris/infer", body.to_string()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let v = a.json();
    assert_eq!(v["outputs"][0]["shape"], json!([0]));
    assert_eq!(v["outputs"][0]["data"], json!([]));
    assert_eq!(v["outputs"][1]["shape"], json!([0, 3]));
}

/// Splits a binary-extension answer into its JSON header and binary tail.
fn split_binary(a: &Answer) -> (Value, Vec<u8>) {
    let n: usize = a.headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (
        serde_json::from_slice(&a.body[..n]).unwrap(),
        a.body[n..].to_vec(),
    )
}

#[tokio::test]
async fn binary_inputs_and_outputs_like_tritonclient() {
    let app = app(None, &Values::default());
    let header = json!({
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": 32}}],
        "parameters": {"binary_data_output": true}
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    for v in [5.1f32, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let hdr = [("inference-header-content-length", header.len().to_string())];
    let a = call_with(&app, "POST", "/v2/models/iris/infer", &hdr, body, false).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.headers["content-type"], "application/octet-stream");
    let (json, tail) = split_binary(&a);
    let outs = json["outputs"].as_array().unwrap();
    assert_eq!(outs[0]["name"], "label");
    assert_eq!(outs[0]["parameters"]["binary_data_size"], 16);
    assert!(outs[0].get("data").is_none());
    assert_eq!(outs[1]["parameters"]["binary_data_size"], 24);
    assert_eq!(tail.len(), 40);
    let labels: Vec<i64> = tail[..16]
        .chunks(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(labels, vec![0, 2]);
    let p0 = f32::from_le_bytes(tail[16..20].try_into().unwrap());
    assert!((p0 - 0.98165685).abs() < 1e-5);
}

#[tokio::test]
async fn one_output_in_binary_the_other_in_json() {
    let app = app(None, &Values::default());
    let body = json!({
        "inputs": [input("input", "FP32", &[1, 4], json!([5.1, 3.5, 1.4, 0.2]))],
        "outputs": [{"name": "label", "parameters": {"binary_data": true}}, {"name": "probabilities"}]
    });
    let a = call(&app, "POST", "/v2/models/iris/infer", body.to_string()).await;
    let (json, tail) = split_binary(&a);
    assert_eq!(json["outputs"][1]["data"].as_array().unwrap().len(), 3);
    assert_eq!(tail, 0i64.to_le_bytes());
}

/// A JSON value and its little-endian bytes for each datatype of the identities fixture.
fn samples() -> Vec<(&'static str, Value, Vec<u8>)> {
    fn le<T: Copy, const N: usize>(v: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|x| f(*x)).collect()
    }
    let h = |x: f32| half::f16::from_f32(x).to_le_bytes();
    let mut bytes = vec![];
    for s in ["a", "", "é", "x y"] {
        bytes.extend((s.len() as u32).to_le_bytes());
        bytes.extend(s.as_bytes());
    }
    vec![
        ("BOOL", json!([true, false, false, true]), vec![1, 0, 0, 1]),
        ("UINT8", json!([0, 1, 254, 255]), vec![0, 1, 254, 255]),
        (
            "UINT16",
            json!([0, 1, 65534, 65535]),
            le(&[0u16, 1, 65534, 65535], u16::to_le_bytes),
        ),
        (
            "UINT32",
            json!([0, 1, 7, 4294967295u32]),
            le(&[0u32, 1, 7, u32::MAX], u32::to_le_bytes),
        ),
        (
            "UINT64",
            json!([0, 1, 7, 18446744073709551615u64]),
            le(&[0u64, 1, 7, u64::MAX], u64::to_le_bytes),
        ),
        (
            "INT8",
            json!([-128, -1, 0, 127]),
            le(&[-128i8, -1, 0, 127], i8::to_le_bytes),
        ),
        (
            "INT16",
            json!([-32768, -1, 0, 32767]),
            le(&[i16::MIN, -1, 0, i16::MAX], i16::to_le_bytes),
        ),
        (
            "INT32",
            json!([-2147483648i64, -1, 0, 2147483647]),
            le(&[i32::MIN, -1, 0, i32::MAX], i32::to_le_bytes),
        ),
        (
            "INT64",
            json!([-9223372036854775808i64, -1, 0, 9223372036854775807i64]),
            le(&[i64::MIN, -1, 0, i64::MAX], i64::to_le_bytes),
        ),
        (
            "FP16",
            json!([0.5, -2.0, 0.0, 65504.0]),
            le(&[0.5f32, -2.0, 0.0, 65504.0], h),
        ),
        (
            "FP32",
            json!([0.5, -2.25, 0.0, 1e30]),
            le(&[0.5f32, -2.25, 0.0, 1e30], f32::to_le_bytes),
        ),
        (
            "FP64",
            json!([0.5, -2.25, 0.0, 1e300]),
            le(&[0.5f64, -2.25, 0.0, 1e300], f64::to_le_bytes),
        ),
        ("BYTES", json!(["a", "", "é", "x y"]), bytes),
    ]
}

#[tokio::test]
async fn every_datatype_round_trips_in_json_and_binary() {
    let d = repo(&[("id", fixtures::identities())]);
    let app = app_for(&d.0);
    // JSON in, JSON out.
    let inputs: Vec<Value> = samples()
        .iter()
        .map(|(dt, v, _)| input(&format!("t_{dt}"), dt, &[2, 2], v.clone()))
        .collect();
    let a = call(
        &app,
        "POST",
        "/v2/models/id/infer",
        json!({"inputs": inputs}).to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let v = a.json();
    for (dt, value, _) in samples() {
        let out = v["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == format!("o_{dt}"))
            .unwrap();
        assert_eq!(out["datatype"], dt);
        assert_eq!(out["shape"], json!([2, 2]));
        assert_eq!(out["data"], value, "{dt}");
    }
    // Binary in, binary out.
    let mut header_inputs = vec![];
    let mut tail = vec![];
    for (dt, _, bytes) in samples() {
        header_inputs.push(
            json!({"name": format!("t_{dt}"), "datatype": dt, "shape": [2, 2],
                                  "parameters": {"binary_data_size": bytes.len()}}),
        );
        tail.extend_from_slice(&bytes);
    }
    let header =
        json!({"inputs": header_inputs, "parameters": {"binary_data_output": true}}).to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&tail);
    let hdr = [("inference-header-content-length", header.len().to_string())];
    let a = call_with(&app, "POST", "/v2/models/id/infer", &hdr, body, false).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let (json, out_tail) = split_binary(&a);
    let mut at = 0;
    for (out, (dt, _, bytes)) in json["outputs"].as_array().unwrap().iter().zip(samples()) {
        assert_eq!(out["datatype"], dt);
        let n = out["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
        assert_eq!(&out_tail[at..at + n], &bytes[..], "{dt}");
        at += n;
    }
}

#[tokio::test]
async fn cast_to_int64_is_answered_as_int64() {
    let d = repo(&[("cast", fixtures::cast_to_int64())]);
    let app = app_for(&d.0);
    let body = json!({"inputs": [input("x", "FP32", &[1, 2], json!([1.0, 2.9]))]});
    let v = call(&app, "POST", "/v2/models/cast/infer", body.to_string())
        .await
        .json();
    assert_eq!(v["outputs"][0]["datatype"], "INT64");
    assert_eq!(v["outputs"][0]["data"], json!([1, 2]));
}

/// The log lines of this test binary, captured by a global subscriber (the build runs on
/// the blocking pool, where a thread-local one would not see it).
fn log_lines_about(model: &str) -> Vec<(tracing::Level, String)> {
    use std::sync::{Mutex, OnceLock};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};

    #[derive(Default)]
    struct Capture(Mutex<Vec<(tracing::Level, String)>>);
    struct Message(String);
    impl Visit for Message {
        fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
            if f.name() == "message" {
                self.0 = format!("{v:?}");
            }
        }
    }
    impl tracing::Subscriber for &'static Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut m = Message(String::new());
            event.record(&mut m);
            let level = *event.metadata().level();
            self.0.lock().unwrap().push((level, m.0));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    let capture = *CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::default());
        tracing::subscriber::set_global_default(c).expect("the only subscriber");
        c
    });
    let lines = capture.0.lock().unwrap();
    lines
        .iter()
        .filter(|(_, m)| m.contains(model))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_model_tract_cannot_build_answers_503_with_the_cause_and_logs_it_once() {
    log_lines_about("");
    let d = repo(&[("fancy", fixtures::unimplemented_op())]);
    let factory = ModelAppFactory::new(Some(d.0.clone()), &Values::default());
    factory
        .check()
        .expect("it parses, so the start-time check passes");
    let app = factory.build().unwrap();
    assert_eq!(call(&app, "GET", "/v2/health/ready", "").await.status, 200);
    let body = json!({"inputs": [input("x", "FP32", &[1, 2], json!([1, 2]))]});
    for _ in 0..3 {
        let a = call(&app, "POST", "/v2/models/fancy/infer", body.to_string()).await;
        assert_eq!(a.status, 503);
        let e = a.error();
        assert!(
            e.contains(
                "cannot be loaded: tract does not implement the operator FancyOp (node \"FancyOp_y\"); "
            ),
            "{e}"
        );
        assert!(a.headers.get("retry-after").is_none());
    }
    let a = call(&app, "GET", "/v2/health/ready", "").await;
    assert_eq!(a.status, 503);
    assert!(a.json()["error"].as_str().unwrap().contains("FancyOp"));
    let lines = log_lines_about("fancy.onnx");
    assert_eq!(lines.len(), 1, "one line for three requests: {lines:?}");
    assert_eq!(lines[0].0, tracing::Level::ERROR);
    // Warming (preload, reload proof) builds again and fails the same way.
    assert!(app.warm().unwrap_err().to_string().contains("FancyOp"));
}

#[tokio::test]
async fn a_model_fixed_on_disk_is_served_by_the_next_generation_only() {
    let d = repo(&[("m", fixtures::mistyped())]);
    let app = app_for(&d.0);
    let body = json!({"inputs": [input("x", "FP32", &[1, 4], json!([1, 2, 3, 4]))]}).to_string();
    assert_eq!(
        call(&app, "POST", "/v2/models/m/infer", body.clone())
            .await
            .status,
        503
    );
    // The same interface, now buildable: this generation keeps what it read...
    std::fs::write(d.0.join("m.onnx"), fixtures::mistyped_fixed()).unwrap();
    let a = call(&app, "GET", "/v2/models/m/ready", "").await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    // ...and the next one (a reload builds a new app) serves the new file.
    let next = app_for(&d.0);
    let a = call(&next, "POST", "/v2/models/m/infer", body).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.json()["outputs"][0]["data"], json!([10.0, 10.0, 10.0]));
}

#[tokio::test]
async fn a_model_tract_plans_only_for_one_row_is_served_row_by_row_and_warned_about_once() {
    log_lines_about("");
    let d = repo(&[("pinned", fixtures::shape_from_input(false))]);
    let app = app_for(&d.0);
    app.warm().unwrap();
    let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
    for (rows, data) in [(1, &data[..6]), (2, &data[..])] {
        let body = json!({"inputs": [input("x", "FP32", &[rows, 2, 3], json!(data))]});
        let a = call(&app, "POST", "/v2/models/pinned/infer", body.to_string()).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(a.json()["outputs"][0]["shape"], json!([rows, 6]));
        assert_eq!(a.json()["outputs"][0]["data"], json!(data));
    }
    let warnings: Vec<_> = log_lines_about("model pinned:")
        .into_iter()
        .filter(|(level, m)| *level == tracing::Level::WARN && m.contains("pinned to 1"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].1.contains("Reshape"), "names why: {warnings:?}");
}

#[tokio::test]
async fn inference_errors_are_500_with_tracts_message() {
    let d = repo(&[("gather", fixtures::gather())]);
    let app = app_for(&d.0);
    let body = json!({"inputs": [input("idx", "INT64", &[1], json!([9]))]});
    let a = call(&app, "POST", "/v2/models/gather/infer", body.to_string()).await;
    assert_eq!(a.status, 500, "{:?}", a.body);
    assert!(a.error().starts_with("inference "), "{}", a.error());
    let body = json!({"inputs": [input("idx", "INT64", &[2], json!([0, 2]))]});
    let a = call(&app, "POST", "/v2/models/gather/infer", body.to_string()).await;
    assert_eq!(a.json()["outputs"][0]["data"], json!([10.0, 30.0]));
}

#[tokio::test]
async fn a_model_file_that_breaks_or_disappears_changes_nothing_until_a_reload() {
    let d = repo(&[("m", fixtures::iris_like())]);
    let app = app_for(&d.0);
    assert_eq!(call(&app, "GET", "/v2/health/ready", "").await.status, 200);
    std::fs::write(d.0.join("m.onnx"), b"not a model any more").unwrap();
    assert_eq!(call(&app, "GET", "/v2/health/ready", "").await.status, 200);
    std::fs::remove_file(d.0.join("m.onnx")).unwrap();
    let body = json!({"inputs": [input("input", "FP32", &[1, 4], json!([5.1, 3.5, 1.4, 0.2]))]});
    let a = call(&app, "POST", "/v2/models/m/infer", body.to_string()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        call(&app, "GET", "/v2/models/m/ready", "").await.status,
        200
    );
    let v = call(&app, "GET", "/v1/models/m", "").await.json();
    assert_eq!(v["model_version_status"][0]["state"], "AVAILABLE");
}

// The batcher waits 10 s for company, the request 10 ms; paused time jumps to the earliest
// timer as soon as the runtime idles, so the request always runs past its timeout (a zero
// timeout raced the first call on the blocking pool, and sometimes lost).
#[tokio::test(start_paused = true)]
async fn past_the_request_timeout_is_504_and_the_app_lives_on() {
    let app = app(
        None,
        &Values {
            request_timeout: Duration::from_millis(10),
            batch_timeout_us: 10_000_000,
            ..Values::default()
        },
    );
    app.warm().unwrap();
    let a = call(
        &app,
        "POST",
        "/v2/models/iris/infer",
        iris_body(&[[1.0; 4]]),
    )
    .await;
    assert_eq!(a.status, 504);
    assert!(a.error().contains("request timeout"), "{}", a.error());
    assert_eq!(call(&app, "GET", "/v2/health/live", "").await.status, 200);
}

#[tokio::test]
async fn a_full_queue_is_503_with_retry_after() {
    let app = app(
        None,
        &Values {
            max_queue: 1,
            ..Values::default()
        },
    );
    app.warm().unwrap();
    let body = iris_body(&[[1.0; 4]]);
    let (a, b) = tokio::join!(
        call(&app, "POST", "/v2/models/iris/infer", body.clone()),
        call(&app, "POST", "/v2/models/iris/infer", body.clone())
    );
    assert_eq!(a.status, 200);
    assert_eq!(b.status, 503);
    assert_eq!(b.headers["retry-after"], "1");
    assert!(b.error().contains("--max-queue"), "{}", b.error());
}

#[tokio::test]
async fn concurrent_requests_are_answered_separately_when_batched() {
    let app = app(None, &Values::default());
    app.warm().unwrap();
    let rows = [
        [5.1, 3.5, 1.4, 0.2],
        [6.7, 3.0, 5.2, 2.3],
        [5.9, 3.0, 4.2, 1.5],
    ];
    let calls = rows
        .iter()
        .map(|r| call(&app, "POST", "/v2/models/iris/infer", iris_body(&[*r])));
    let answers = futures_join(calls).await;
    let labels: Vec<Value> = answers
        .iter()
        .map(|a| a.json()["outputs"][0]["data"][0].clone())
        .collect();
    assert_eq!(labels, vec![json!(0), json!(2), json!(1)]);
}

/// Joins futures without the futures crate: polls them all on this task.
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(|r| r.unwrap()));
    out
}

#[test]
fn start_time_check_errors_are_one_line_naming_the_file() {
    let d = TempDir::new("check");
    let garbage = d.file(
        "broken.onnx",
        b"\x08\x01garbage that is not protobuf at all",
    );
    let sequence = d.file("sequence.onnx", &fixtures::sequence_output());
    let cases = [
        (d.0.join("missing.onnx"), "missing.onnx: no such file"),
        (garbage, "broken.onnx: not an ONNX model"),
        (sequence, "sequence.onnx: output \"probs\" is not a tensor"),
    ];
    for (path, want) in cases {
        let f = ModelAppFactory::new(Some(path), &Values::default());
        let e = f.check().unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains(want), "{e}\n  want: {want}");
    }
    let app_dir = TempDir::new("check-manifest");
    app_dir.file("model.onnx", &fixtures::records());
    app_dir.file(
        "app.toml",
        b"[[route]]\npath = \"/model\"\n[route.outputs]\nx = \"nope\"\n",
    );
    let f = ModelAppFactory::new(Some(app_dir.0.clone()), &Values::default());
    let e = f.check().unwrap_err().to_string();
    assert!(
        e.contains("app.toml: route POST /model: unknown output \"nope\""),
        "{e}"
    );
}

#[test]
fn describe_names_the_models_and_their_source() {
    let f = ModelAppFactory::new(None, &Values::default());
    assert_eq!(f.describe(), "model iris (embedded)");
    let f = ModelAppFactory::new(Some(example("titanic")), &Values::default());
    assert!(
        f.describe()
            .starts_with("models titanic, titanic_sklearn ("),
        "{}",
        f.describe()
    );
}
