//! KServe V2 / Open Inference Protocol: health, server and model metadata, readiness,
//! inference (JSON and the binary tensor extension).
//!
//! Answers are written by hand into one buffer: the inference answer is the hot path, and
//! its shape is fixed (`{"model_name", "model_version", "id", "outputs": [...]}`). Outputs
//! asked in binary get `"parameters": {"binary_data_size": n}` instead of `data`, their
//! bytes follow the JSON, and `Inference-Header-Content-Length` says where the JSON ends.

use std::sync::Arc;

use http::{HeaderValue, StatusCode, header};
use serve_app::{Context, ModelChange, Request, Response, json_response};

use crate::classify::Labels;
use crate::codec_binary;
use crate::error::ApiError;
use crate::outputs::{JsonScalar, Outputs, write_str};
use crate::registry::{Model, Registry};
use crate::v2_request::{self, Asked};

/// The header naming the JSON part's length in a binary-extension body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// `POST /v2/repository/models/NAME/load` and `/unload` without explicit model control:
/// 501, naming how serve changes what it serves.
pub fn repository_control(registry: &Registry, name: &str, verb: &str) -> ApiError {
    let known = if registry.get(name).is_some() {
        String::new()
    } else {
        format!(" (this server has {})", registry.names())
    };
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "{verb} of model \"{name}\"{known}: serve loads and unloads models on request only \
             under --model-control explicit; it serves the models its APP names: edit the files \
             or app.toml, then send HUP to the master (kill -HUP MASTER_PID), which proves the \
             new models before any worker serves them"
        ),
    )
}

/// A load or unload request's parameter, as REST's JSON or gRPC's message carries it.
pub enum Param<'a> {
    /// A boolean.
    Bool(bool),
    /// A number.
    Number,
    /// A string.
    Text(&'a str),
    /// Bytes (gRPC's `bytes_param`).
    Bytes,
    /// Anything else JSON can say.
    Other,
}

impl Param<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Param::Bool(_) => "a boolean",
            Param::Number => "a number",
            Param::Text(_) => "a string",
            Param::Bytes => "bytes",
            Param::Other => "neither a string, a number nor a boolean",
        }
    }
}

/// The change a load or unload request asks for. A load takes `config`, a model
/// configuration (Triton's JSON form, as tritonclient sends it, or `config.pbtxt`'s text
/// form), read here so that a malformed one is refused before the master is asked; an
/// unload takes `unload_dependents` (tritonclient sends it; serve has no ensembles, so it
/// changes nothing). `file:` parameters, a model's files in the request, are refused: serve
/// loads what the repository holds.
pub fn model_change<'a>(
    name: &str,
    verb: &str,
    params: impl IntoIterator<Item = (&'a str, Param<'a>)>,
) -> Result<ModelChange, ApiError> {
    let what = format!("{verb} of model \"{name}\"");
    crate::resolve::check_name(name).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))?;
    let mut config = None;
    for (key, value) in params {
        match (verb, key, value) {
            (_, k, _) if k.starts_with("file:") => {
                return Err(ApiError::bad_request(format!(
                    "{what}: parameter \"{k}\": serve does not take model files in a load \
                     request; put the model in the repository (APP) as {name}/1/model.onnx, then \
                     load it by name"
                )));
            }
            ("load", "config", Param::Text(text)) => {
                serve_triton::parse_given(text).map_err(|e| {
                    ApiError::bad_request(format!("{what}: parameter \"config\": {e}"))
                })?;
                config = Some(text.to_owned());
            }
            ("unload", "unload_dependents", Param::Bool(_)) => {}
            (_, k @ ("config" | "unload_dependents"), v) => {
                let expected = if k == "config" {
                    "a string (the model configuration, in Triton's JSON form or config.pbtxt's)"
                } else {
                    "a boolean"
                };
                let takes = if k == "config" { "load" } else { "unload" };
                return Err(ApiError::bad_request(if verb == takes {
                    format!(
                        "{what}: parameter \"{k}\" must be {expected}, not {}",
                        v.kind()
                    )
                } else {
                    format!("{what}: parameter \"{k}\" belongs to {takes} requests")
                }));
            }
            (_, k, _) => {
                let known = if verb == "load" {
                    "config"
                } else {
                    "unload_dependents"
                };
                return Err(ApiError::bad_request(format!(
                    "{what}: unknown parameter \"{k}\"; a {verb} takes {known}"
                )));
            }
        }
    }
    Ok(if verb == "load" {
        ModelChange::Load {
            model: name.to_owned(),
            config,
        }
    } else {
        ModelChange::Unload {
            model: name.to_owned(),
        }
    })
}

/// Loads or unloads a model under explicit model control: the master makes the change by
/// a new generation, and this answers when every worker of it serves it (or why not).
pub async fn change_models(
    registry: &Registry,
    explicit: bool,
    cx: &Context,
    change: Result<ModelChange, ApiError>,
    (name, verb): (&str, &str),
) -> Result<(), ApiError> {
    if !explicit {
        return Err(repository_control(registry, name, verb));
    }
    let change = change?;
    let Some(repository) = &cx.repository else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{verb} of model \"{name}\": this worker has no channel to the master"),
        ));
    };
    repository
        .change(change)
        .await
        .map_err(|r| ApiError::new(r.status, r.message))
}

/// `POST /v2/repository/models/NAME/load` and `/unload`: the body is empty or
/// `{"parameters": {...}}` (see [`model_change`]); 200 with an empty body once the change
/// is served, as Triton answers.
pub async fn repository_change(
    registry: &Registry,
    explicit: bool,
    cx: &Context,
    (name, verb): (&str, &str),
    body: &[u8],
) -> Result<Response, ApiError> {
    let parse = || -> Result<ModelChange, ApiError> {
        let what = format!("{verb} of model \"{name}\"");
        let params = if body.iter().all(u8::is_ascii_whitespace) {
            serde_json::Map::new()
        } else {
            let bad = |e: String| {
                ApiError::bad_request(format!(
                    "{what}: the body is empty or {{\"parameters\": {{...}}}}: {e}"
                ))
            };
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
            let serde_json::Value::Object(mut top) = value else {
                return Err(bad("it is not a JSON object".into()));
            };
            if let Some(k) = top.keys().find(|k| *k != "parameters") {
                return Err(bad(format!("unknown key \"{k}\"")));
            }
            match top.remove("parameters") {
                None | Some(serde_json::Value::Null) => serde_json::Map::new(),
                Some(serde_json::Value::Object(p)) => p,
                Some(_) => return Err(bad("\"parameters\" is not an object".into())),
            }
        };
        model_change(
            name,
            verb,
            params.iter().map(|(k, v)| {
                let p = match v {
                    serde_json::Value::Bool(b) => Param::Bool(*b),
                    serde_json::Value::Number(_) => Param::Number,
                    serde_json::Value::String(t) => Param::Text(t),
                    _ => Param::Other,
                };
                (k.as_str(), p)
            }),
        )
    };
    change_models(registry, explicit, cx, parse(), (name, verb)).await?;
    Ok(http::Response::builder()
        .status(StatusCode::OK)
        .body(bytes::Bytes::new())
        .expect("a static response"))
}

/// The extensions the server metadata lists. Only whole extensions: Triton's
/// model_repository is the index and load/unload, which serve has under explicit model
/// control only (see [`server_metadata`]).
pub const EXTENSIONS: [&str; 4] = [
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "statistics",
];

/// The extensions the server metadata lists: [`EXTENSIONS`], and `model_repository` under
/// explicit model control.
pub fn extensions(explicit: bool) -> impl Iterator<Item = &'static str> {
    EXTENSIONS
        .into_iter()
        .chain(explicit.then_some("model_repository"))
}

/// `GET /v2`.
pub fn server_metadata(explicit: bool) -> Response {
    let extensions: Vec<&str> = extensions(explicit).collect();
    let body = serde_json::json!({
        "name": "serve",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": extensions,
    });
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /v2/health/live`: the process answers.
pub fn live() -> Response {
    json_response(StatusCode::OK, r#"{"live":true}"#)
}

/// `GET /v2/health/ready`: the server is not stopping and every model can serve. A worker
/// that retires (a reload, `--max-requests`) while the server serves on answers ready: the
/// server is.
pub async fn ready(registry: &Registry, cx: &Context) -> Response {
    match readiness(registry, cx) {
        Ok(()) => json_response(StatusCode::OK, r#"{"ready":true}"#),
        Err(e) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "ready": false, "error": e }).to_string(),
        ),
    }
}

/// Whether the server is ready (`/v2/health/ready`, gRPC's ServerReady and its health
/// service): not stopping, and every model can serve; the error says why not.
pub fn readiness(registry: &Registry, cx: &Context) -> Result<(), String> {
    if cx.stopping {
        return Err("the server is stopping".to_string());
    }
    for model in registry.models() {
        model.health()?;
    }
    Ok(())
}

/// Whether a model is ready (`/v2/models/{m}/ready`, gRPC's ModelReady).
pub fn model_readiness(model: &Model, cx: &Context) -> Result<(), String> {
    if cx.stopping {
        Err("the server is stopping".to_string())
    } else {
        model.health()
    }
}

/// `POST /v2/repository/index` (Triton's model repository extension, read-only): every
/// model with its version and state, `READY` when this worker can serve it (every model was
/// proven at start), `UNAVAILABLE` with the reason when its file has since become one that
/// cannot be served. A body `{"ready": true}` lists the ready ones only.
pub async fn repository_index(
    registry: &Registry,
    unloaded: &[String],
    body: &[u8],
) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct IndexRequest {
        #[serde(default)]
        ready: bool,
    }
    let only_ready = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        serde_json::from_slice::<IndexRequest>(body)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the repository index takes an empty body or {{\"ready\": true|false}}: {e}"
                ))
            })?
            .ready
    };
    let entries: Vec<serde_json::Value> = index(registry, unloaded, only_ready)
        .map(|e| {
            let mut entry = serde_json::json!({ "name": e.name });
            if !e.version.is_empty() {
                entry["version"] = e.version.into();
            }
            entry["state"] = e.state.into();
            entry["reason"] = e.reason.into();
            entry
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        serde_json::Value::Array(entries).to_string(),
    ))
}

/// One line of the repository index.
pub struct IndexEntry<'a> {
    /// The model's name.
    pub name: &'a str,
    /// Its version; empty for a model that is not loaded.
    pub version: &'a str,
    /// `READY` or `UNAVAILABLE`.
    pub state: &'static str,
    /// Why it is unavailable (`unloaded`: in the repository, not loaded).
    pub reason: String,
}

/// The repository index (REST's and gRPC's): each model version with its state, `READY`
/// when this worker can serve it, `UNAVAILABLE` and the reason when it cannot, then, under
/// explicit model control, the repository's models that are not loaded (`unloaded`); only
/// the ready ones when `only_ready`.
pub fn index<'a>(
    registry: &'a Registry,
    unloaded: &'a [String],
    only_ready: bool,
) -> impl Iterator<Item = IndexEntry<'a>> {
    let served = registry
        .models()
        .iter()
        .filter_map(move |model| match model.health() {
            Ok(()) => Some((model, "READY", String::new())),
            Err(_) if only_ready => None,
            Err(e) => Some((model, "UNAVAILABLE", e)),
        })
        .map(|(model, state, reason)| IndexEntry {
            name: &model.name,
            version: &model.version,
            state,
            reason,
        });
    let unloaded = unloaded
        .iter()
        .filter(move |_| !only_ready)
        .map(|name| IndexEntry {
            name,
            version: "",
            state: "UNAVAILABLE",
            reason: "unloaded".to_owned(),
        });
    served.chain(unloaded)
}

/// `GET /v2/models/{m}/ready`.
pub async fn model_ready(model: &Arc<Model>, cx: &Context) -> Response {
    let (status, body) = match model_readiness(model, cx) {
        Ok(()) => (
            StatusCode::OK,
            serde_json::json!({ "name": model.name, "ready": true }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "name": model.name, "ready": false, "error": e }),
        ),
    };
    json_response(status, body.to_string())
}

/// The platform the metadata and the configuration say: an ONNX model.
pub const PLATFORM: &str = "onnx_onnxv1";

/// `GET /v2/models/{m}[/versions/{v}]/config` (Triton's model configuration extension).
pub fn model_config(model: &Model) -> Response {
    json_response(
        StatusCode::OK,
        serve_triton::to_json(&crate::triton::config(model)).to_string(),
    )
}

/// `GET /v2/models/stats`, `GET /v2/models/{m}[/versions/{v}]/stats` (Triton's statistics
/// extension): each model version's figures, exact across workers (the shared metrics
/// region). serve has no response cache (`cache_hit`, `cache_miss` 0), no decoupled models
/// (`response_stats` empty), and does not time a merged call's input and output apart
/// (`batch_stats` has `compute_infer` only).
pub fn statistics(models: &[Arc<Model>]) -> Response {
    let timed = |t: serve_app::metrics::Timed| serde_json::json!({"count": t.count, "ns": t.ns});
    let none = serde_json::json!({"count": 0, "ns": 0});
    let stats: Vec<serde_json::Value> = models
        .iter()
        .map(|m| {
            let s = m.statistics();
            let batches: Vec<serde_json::Value> = s
                .batches
                .iter()
                .map(|(size, t)| {
                    serde_json::json!({
                        "batch_size": size,
                        "compute_input": none,
                        "compute_infer": timed(*t),
                        "compute_output": none,
                    })
                })
                .collect();
            serde_json::json!({
                "name": m.name,
                "version": m.version,
                "last_inference": s.last_inference_ms,
                "inference_count": s.inference_count,
                "execution_count": s.execution_count,
                "inference_stats": {
                    "success": timed(s.success),
                    "fail": timed(s.fail),
                    "queue": timed(s.queue),
                    "compute_input": timed(s.compute_input),
                    "compute_infer": timed(s.compute_infer),
                    "compute_output": timed(s.compute_output),
                    "cache_hit": none,
                    "cache_miss": none,
                },
                "response_stats": {},
                "batch_stats": batches,
                "memory_usage": [],
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        serde_json::json!({ "model_stats": stats }).to_string(),
    )
}

/// `GET /v2/models/{m}`: read from the file, so it answers before the model is loaded;
/// `parameters.loaded` says whether this worker has built it. `versions` lists every
/// version of the model served, highest first.
pub fn model_metadata(registry: &Registry, model: &Model) -> Response {
    let tensors = |list: &[crate::metadata::TensorMeta]| {
        list.iter()
            .map(|t| {
                let mut json = serde_json::json!({
                    "name": t.name,
                    "datatype": t.datatype.as_str(),
                    "shape": t.shape_i64(),
                });
                if let Some(classes) = &t.classes {
                    json["parameters"] = serde_json::json!({ "classes": classes.to_json() });
                }
                json
            })
            .collect::<Vec<_>>()
    };
    let body = serde_json::json!({
        "name": model.name,
        "versions": registry.versions(&model.name).map(|m| &m.version).collect::<Vec<_>>(),
        "platform": PLATFORM,
        "inputs": tensors(&model.meta.inputs),
        "outputs": tensors(&model.meta.outputs),
        "parameters": { "loaded": model.loaded(), "engine": model.engine().name() },
    });
    json_response(StatusCode::OK, body.to_string())
}

/// `POST /v2/models/{m}/infer`.
pub async fn infer(model: &Arc<Model>, req: Request) -> Result<Response, ApiError> {
    crate::observe::infer(
        model,
        || {
            let json_len = match req.headers().get(HEADER_LENGTH) {
                None => None,
                Some(v) => Some(
                    v.to_str()
                        .ok()
                        .and_then(|s| s.trim().parse::<usize>().ok())
                        .ok_or_else(|| {
                            ApiError::bad_request("Inference-Header-Content-Length is not a number")
                        })?,
                ),
            };
            let request = v2_request::decode(req.body(), json_len, &model.meta)?;
            Ok((request.inputs, (request.id, request.outputs)))
        },
        |(id, asked), outputs| encode(model, id.as_deref(), &asked, outputs),
    )
    .await
}

/// An output asked with `parameters.classification`: its classes as a BYTES tensor of
/// `"value:index[:label]"` (see [`crate::classify`]), answered as any output is.
pub fn classification(
    model: &Model,
    asked: &Asked,
    view: &crate::outputs::OutView<'_>,
) -> Result<Outputs, ApiError> {
    let meta = &model.meta.outputs[asked.index];
    let lines = model
        .config
        .as_ref()
        .and_then(|c| c.labels.iter().find(|(name, _)| *name == meta.name))
        .map(|(_, lines)| Labels::Lines(lines));
    let labels = lines.or_else(|| meta.classes.as_ref().map(Labels::Classes));
    let batched = model.settings.batch_dim && meta.has_batch_dim();
    let (shape, elements) =
        crate::classify::classify(view, asked.classification, batched, labels.as_ref())?;
    let tensor = crate::tensor::Tensor::new(&shape, elements).map_err(ApiError::internal)?;
    Ok(Outputs::whole(Arc::new(vec![tensor])))
}

/// Writes the inference answer.
fn encode(
    model: &Model,
    id: Option<&str>,
    selected: &[Asked],
    outputs: &Outputs,
) -> Result<Response, ApiError> {
    let mut json = Vec::with_capacity(256 + 64 * selected.len());
    let mut binary = Vec::new();
    let any_binary = selected.iter().any(|o| o.binary);
    json.extend_from_slice(b"{\"model_name\":");
    write_str(&mut json, &model.name);
    json.extend_from_slice(b",\"model_version\":");
    write_str(&mut json, &model.version);
    if let Some(id) = id {
        json.extend_from_slice(b",\"id\":");
        write_str(&mut json, id);
    }
    json.extend_from_slice(b",\"outputs\":[");
    for (n, asked) in selected.iter().enumerate() {
        let (i, as_binary) = (asked.index, asked.binary);
        let classified = match asked.classification {
            0 => None,
            _ => Some(classification(model, asked, &outputs.view(i)?)?),
        };
        let view = match &classified {
            Some(classes) => classes.view(0)?,
            None => outputs.view(i)?,
        };
        if n > 0 {
            json.push(b',');
        }
        json.extend_from_slice(b"{\"name\":");
        write_str(&mut json, &model.meta.outputs[i].name);
        json.extend_from_slice(b",\"datatype\":\"");
        json.extend_from_slice(view.datatype.as_str().as_bytes());
        json.extend_from_slice(b"\",\"shape\":[");
        for (k, d) in view.shape.iter().enumerate() {
            if k > 0 {
                json.push(b',');
            }
            (*d as u64).write_json(&mut json);
        }
        json.push(b']');
        if as_binary {
            let size = codec_binary::encode(&mut binary, &view)?;
            json.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            (size as u64).write_json(&mut json);
            json.push(b'}');
        } else {
            json.extend_from_slice(b",\"data\":");
            view.write_flat(&mut json)?;
        }
        json.push(b'}');
    }
    json.extend_from_slice(b"]}");
    if !any_binary {
        return Ok(json_response(StatusCode::OK, json));
    }
    let json_len = json.len();
    json.extend_from_slice(&binary);
    let mut res = Response::new(json.into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    res.headers_mut()
        .insert(HEADER_LENGTH, HeaderValue::from(json_len));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Settings;
    use crate::fixtures;
    use crate::source::Source;

    fn registry() -> Registry {
        let mut r = Registry::default();
        let source = Source::Bytes("test", fixtures::iris_like().into());
        let core = serve_runtime::model::Model::open(
            "iris".into(),
            source,
            Settings::default(),
            None,
            std::sync::Arc::new(serve_tract::Tract),
        );
        r.add(Model::new(core.unwrap())).unwrap();
        r
    }

    #[tokio::test]
    async fn readiness_is_about_the_server_not_one_worker() {
        let r = registry();
        let cx = |draining, stopping| Context {
            draining,
            stopping,
            ..Context::default()
        };
        assert_eq!(ready(&r, &cx(false, false)).await.status(), 200);
        // A worker retiring (reload, max-requests) while the server serves on: ready.
        assert_eq!(ready(&r, &cx(true, false)).await.status(), 200);
        let iris = r.get("iris").unwrap();
        assert_eq!(model_ready(iris, &cx(true, false)).await.status(), 200);
        // The server stops: not ready.
        let res = ready(&r, &cx(true, true)).await;
        assert_eq!(res.status(), 503);
        assert!(
            std::str::from_utf8(res.body())
                .unwrap()
                .contains("the server is stopping")
        );
        assert_eq!(model_ready(iris, &cx(true, true)).await.status(), 503);
    }
}
