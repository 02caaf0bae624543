//! Prints per-call figures of the model app, in one process, without HTTP: a tract call,
//! the V2 JSON decoder, and whole `App::call`s one at a time and 64 at a time (batching on
//! and off). A program that prints figures, not a test: run it with
//!
//! ```sh
//! cargo run --release -p serve-model --example bench
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serve_app::{App, AppFactory, Context};
use serve_model::metadata::ModelMeta;
use serve_model::{ModelAppFactory, v2_request};
use serve_settings::Values;
use tract_onnx::prelude::*;

fn per_iter(label: &str, iters: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iters / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let each = t.elapsed() / iters;
    println!("{label:<58} {:>9.2} µs", each.as_secs_f64() * 1e6);
    each
}

fn iris_body(rows: usize) -> String {
    let row = "5.1,3.5,1.4,0.2";
    let data = vec![row; rows].join(",");
    format!(
        r#"{{"inputs":[{{"name":"input","shape":[{rows},4],"datatype":"FP32","data":[{data}]}}]}}"#
    )
}

fn request(path: &str, body: &str) -> http::Request<Bytes> {
    http::Request::builder()
        .method("POST")
        .uri(path)
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn cx() -> Context {
    Context {
        client: None,
        draining: false,
        stopping: false,
        request_id: "bench".into(),
        drain: None,
        repository: None,
    }
}

fn build(path: Option<std::path::PathBuf>, values: &Values) -> Arc<dyn App> {
    let app = ModelAppFactory::new(path, values).build().unwrap();
    app.warm().unwrap();
    app
}

async fn sequential(label: &str, app: &Arc<dyn App>, path: &str, body: &str, n: u32) {
    for _ in 0..n / 10 {
        app.call(request(path, body), cx()).await;
    }
    let t = Instant::now();
    for _ in 0..n {
        let res = app.call(request(path, body), cx()).await;
        assert_eq!(res.status(), 200, "{:?}", res.body());
    }
    let each = t.elapsed() / n;
    println!("{label:<58} {:>9.2} µs", each.as_secs_f64() * 1e6);
}

/// `waves` rounds of `width` concurrent calls on this task (one worker's runtime).
async fn concurrent(label: &str, app: &Arc<dyn App>, body: &str, width: usize, waves: u32) {
    let t = Instant::now();
    for _ in 0..waves {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..width {
            let app = app.clone();
            let req = request("/v2/models/iris/infer", body);
            set.spawn_local(async move { app.call(req, cx()).await.status() });
        }
        while let Some(s) = set.join_next().await {
            assert_eq!(s.unwrap(), 200);
        }
    }
    let n = waves as f64 * width as f64;
    let per = t.elapsed().as_secs_f64() / n;
    println!(
        "{label:<58} {:>9.2} µs  ({:.0} requests/s)",
        per * 1e6,
        1.0 / per
    );
}

fn main() {
    let iris = serve_model::resolve::EMBEDDED_IRIS;
    let meta = ModelMeta::from_onnx(iris).unwrap();
    let plan = serve_tract::build(
        &serve_model::source::Source::Bytes("iris", Bytes::from_static(iris)),
        &meta,
        true,
    )
    .unwrap();
    println!("-- tract");
    let general = plan.any_batch().expect("iris plans for any batch").clone();
    let single = plan.one_row().clone();
    let x = Tensor::zero::<f32>(&[1, 4]).unwrap();
    per_iter(
        "iris single plan (batch bound to 1), batch 1",
        20_000,
        || {
            single.run(tvec!(x.clone().into_tvalue())).unwrap();
        },
    );
    for rows in [1usize, 64] {
        let x = Tensor::zero::<f32>(&[rows, 4]).unwrap();
        per_iter(&format!("iris general plan, batch {rows}"), 20_000, || {
            general.run(tvec!(x.clone().into_tvalue())).unwrap();
        });
    }
    let t = Instant::now();
    serve_tract::build(
        &serve_model::source::Source::Bytes("iris", Bytes::from_static(iris)),
        &meta,
        true,
    )
    .unwrap();
    println!(
        "{:<58} {:>9.2} ms",
        "iris load (parse, type, optimize)",
        t.elapsed().as_secs_f64() * 1e3
    );

    println!("-- V2 JSON decoder");
    for rows in [1usize, 64, 4096] {
        let body = iris_body(rows);
        let each = per_iter(
            &format!("decode iris body, {rows} rows ({} bytes)", body.len()),
            (200_000 / rows as u32).max(50),
            || {
                v2_request::decode(body.as_bytes(), None, &meta).unwrap();
            },
        );
        println!(
            "{:<58} {:>9.0} MB/s",
            "",
            body.len() as f64 / each.as_secs_f64() / 1e6
        );
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        println!("-- App::call, one at a time (decode, executor, tract, encode)");
        let app = build(None, &Values::default());
        sequential(
            "iris V2 JSON, batch 1",
            &app,
            "/v2/models/iris/infer",
            &iris_body(1),
            50_000,
        )
        .await;
        sequential(
            "iris V2 JSON, batch 64",
            &app,
            "/v2/models/iris/infer",
            &iris_body(64),
            5_000,
        )
        .await;
        sequential(
            "iris V1 instances, batch 1",
            &app,
            "/v1/models/iris:predict",
            r#"{"instances":[[5.1,3.5,1.4,0.2]]}"#,
            50_000,
        )
        .await;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic");
        let titanic = build(Some(root), &Values::default());
        let passenger = r#"{"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3}"#;
        sequential(
            "titanic POST /model, one record",
            &titanic,
            "/model",
            passenger,
            20_000,
        )
        .await;

        println!("-- App::call, 64 concurrent requests on one runtime");
        let body = iris_body(1);
        let off = build(
            None,
            &Values {
                max_batch_size: 1,
                ..Values::default()
            },
        );
        concurrent("iris V2 JSON, batching off", &off, &body, 64, 1_000).await;
        concurrent("iris V2 JSON, batching on (max 64)", &app, &body, 64, 1_000).await;
    });
}
