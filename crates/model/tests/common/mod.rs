//! Helpers for the crate-level tests: build the app from options, call it with
//! `http::Request<Bytes>`, read JSON answers. No sockets, no processes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serve_app::{App, AppFactory, Context};
use serve_model::ModelAppFactory;
use serve_settings::Values;

/// The repository's root (for `examples/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An example directory or file.
pub fn example(rel: &str) -> PathBuf {
    root().join("examples").join(rel)
}

/// Builds the app as a worker does.
pub fn app(path: Option<PathBuf>, values: &Values) -> Arc<dyn App> {
    ModelAppFactory::new(path, values)
        .build()
        .expect("the app builds")
}

/// The app of one APP path with default options.
pub fn app_for(path: impl Into<PathBuf>) -> Arc<dyn App> {
    app(Some(path.into()), &Values::default())
}

/// An answer, with its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {:?}", self.body))
            .to_string()
    }
}

/// Calls the app.
pub async fn call(app: &Arc<dyn App>, method: &str, path: &str, body: impl Into<Bytes>) -> Answer {
    call_with(app, method, path, &[], body, false).await
}

/// Calls the app with headers, and as a worker of a stopping server if asked.
pub async fn call_with(
    app: &Arc<dyn App>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: impl Into<Bytes>,
    stopping: bool,
) -> Answer {
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(body.into()).unwrap();
    let cx = Context {
        client: None,
        draining: stopping,
        stopping,
        request_id: "test".into(),
        drain: None,
        repository: None,
    };
    let res = app.call(req, cx).await;
    let (parts, body) = res.into_parts();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// A V2 JSON input.
pub fn input(
    name: &str,
    datatype: &str,
    shape: &[usize],
    data: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({"name": name, "datatype": datatype, "shape": shape, "data": data})
}

/// The f64 values of a JSON array.
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x}")))
        .collect()
}
