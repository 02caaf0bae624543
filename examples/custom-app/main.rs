//! A custom app written against the `App` trait: the Rust analogue of writing your own Flask
//! `app.py`, run by the same master with the same flags and signals as `serve`.
//!
//! It answers `POST /species` with `{"sepal_length": 5.1, "sepal_width": 3.5,
//! "petal_length": 1.4, "petal_width": 0.2}` by `{"species": "setosa", "probability": 0.98}`,
//! and leaves every other route (KServe V2, V1, health) to the model app it wraps: the same
//! composition a Flask user gets by calling a model from a view, here done by calling another
//! `App`. Its answers count in `/metrics` as the model app's do: the factory names its models
//! (`models`), and each answer says what it was (`observe`).
//!
//!     cargo run --release --example custom-app -- -w 2 -b 127.0.0.1:8000
//!     curl -s localhost:8000/species -d '{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}'

use std::sync::Arc;

use serve::app::http::{Method, StatusCode};
use serve::app::{
    App, AppError, AppFactory, BoxFuture, Context, ModelId, Observed, Protocol, Request, Response,
    error_response, json_response, metrics, observe,
};

const SPECIES: [&str; 3] = ["setosa", "versicolor", "virginica"];
const FEATURES: [&str; 4] = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

/// Builds the wrapped model app (the embedded iris model) and this app around it.
struct SpeciesFactory {
    model: serve_model::ModelAppFactory,
}

impl AppFactory for SpeciesFactory {
    fn describe(&self) -> String {
        format!("iris species app around {}", self.model.describe())
    }
    fn models(&self) -> Vec<String> {
        self.model.models()
    }
    fn check(&self) -> Result<(), AppError> {
        self.model.check()
    }
    fn build(&self) -> Result<Arc<dyn App>, AppError> {
        Ok(Arc::new(SpeciesApp {
            model: self.model.build()?,
            // Resolved once: the master registered the name before forking.
            iris: metrics::model_id("iris"),
        }))
    }
}

struct SpeciesApp {
    model: Arc<dyn App>,
    iris: ModelId,
}

impl App for SpeciesApp {
    fn call(&self, req: Request, cx: Context) -> BoxFuture<Response> {
        if req.uri().path() != "/species" {
            return self.model.call(req, cx);
        }
        let answer = self.species(req, cx);
        let seen = Observed {
            model: self.iris,
            protocol: Protocol::Route,
        };
        Box::pin(async move {
            let res = answer.await;
            // After the model app's answer, which labelled the request as its own V2 call.
            observe(seen);
            res
        })
    }

    fn warm(&self) -> Result<(), AppError> {
        self.model.warm()
    }
}

impl SpeciesApp {
    fn species(&self, req: Request, cx: Context) -> BoxFuture<Response> {
        if req.method() != Method::POST {
            let mut res = error_response(StatusCode::METHOD_NOT_ALLOWED, "use POST /species");
            res.headers_mut().insert("allow", "POST".parse().unwrap());
            return Box::pin(async move { res });
        }
        let row = match features(req.body()) {
            Ok(row) => row,
            Err(e) => return Box::pin(async move { error_response(StatusCode::BAD_REQUEST, e) }),
        };
        // Ask the model app with a KServe V2 request, as any client would.
        let infer = serde_json::json!({
            "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": row}]
        });
        let mut inner = Request::new(infer.to_string().into());
        *inner.method_mut() = Method::POST;
        *inner.uri_mut() = "/v2/models/iris/infer".parse().unwrap();
        let answer = self.model.call(inner, cx);
        Box::pin(async move {
            let res = answer.await;
            if res.status() != StatusCode::OK {
                return res;
            }
            match species(res.body()) {
                Some((name, p)) => json_response(
                    StatusCode::OK,
                    serde_json::json!({"species": name, "probability": p}).to_string(),
                ),
                None => {
                    error_response(StatusCode::INTERNAL_SERVER_ERROR, "unexpected model output")
                }
            }
        })
    }
}

/// The four measurements, by name, each a finite number.
fn features(body: &[u8]) -> Result<Vec<f32>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    FEATURES
        .iter()
        .map(|name| match v.get(name) {
            Some(x) if x.is_number() => Ok(x.as_f64().unwrap_or(f64::NAN) as f32),
            Some(x) => Err(format!("{name}: expected a number, received {x}")),
            None => Err(format!("missing {name}; expected {}", FEATURES.join(", "))),
        })
        .collect()
}

/// The label and its probability from the model's V2 answer.
fn species(body: &[u8]) -> Option<(&'static str, f64)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let outputs = v["outputs"].as_array()?;
    let find = |n: &str| outputs.iter().find(|o| o["name"] == n);
    let label = find("label")?["data"][0].as_u64()? as usize;
    let p = find("probabilities")?["data"][label].as_f64()?;
    Some((SPECIES.get(label)?, p))
}

fn make_app(_config: &serve::Config) -> Result<Arc<dyn AppFactory>, String> {
    Ok(Arc::new(SpeciesFactory {
        model: serve_model::ModelAppFactory::new(None, &serve_settings::Values::default()),
    }))
}

fn main() {
    std::process::exit(serve::main_with(make_app));
}
