//! `GET /openapi.json`: an OpenAPI 3.1 document of every route this server answers now.
//!
//! Made from the same registry and routes the router serves, so it cannot drift from them:
//! the V2 and V1 trees once per model (literal paths, not templates, because each model's
//! request has its own schema: its inputs by name, their datatypes and shapes), each
//! manifest route with its record's keys, and what serve answers itself (`/`, this
//! document, the worker's `/metrics` and `/status`). Every request body carries its
//! example ([`crate::example`]: the manifest's, or a placeholder that the decoders accept),
//! so a client generated from the document (a Postman collection, say) has bodies ready to
//! send. The `/versions/{v}/` forms of the V2 and V1 paths answer the same and are named in
//! each operation's description rather than listed twice.
//!
//! Schemas say what the decoders accept: a V2 input is an object whose `name` and
//! `datatype` are constants and whose `shape` has the declared rank, fixed sizes as
//! constants (`prefixItems`); data is flat or nested. `servers` is the address the client
//! used (the `Host` header), so a collection made from it targets this server.

use std::collections::HashSet;

use http::StatusCode;
use serde_json::{Map, Value, json};
use serve_app::{Request, Response, json_response};

use crate::datatype::DataType;
use crate::metadata::TensorMeta;
use crate::registry::Model;
use crate::router::Inner;
use crate::routes::Route;

/// `GET /openapi.json`.
pub fn document(app: &Inner, req: &Request) -> Response {
    let server = crate::front::origin(req);
    json_response(StatusCode::OK, build(app, server.as_deref()).to_string())
}

/// The methods an OpenAPI path item can hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document; `server` is the origin to name in `servers` (none: the document's own).
pub fn build(app: &Inner, server: Option<&str>) -> Value {
    let mut doc = Doc::default();
    doc.server_paths();
    for model in app.registry.latest() {
        doc.model_paths(
            model,
            &crate::router::version_list(&app.registry, &model.name),
        );
    }
    let mut skipped = Vec::new();
    for route in &app.routes {
        if !doc.route_path(route) {
            skipped.push(format!("{} {}", route.method, route.path));
        }
    }
    let names: Vec<&str> = app.registry.latest().map(|m| m.name.as_str()).collect();
    let mut description = format!(
        "serve: the models {} over KServe V2 (Open Inference Protocol), TF-Serving V1 and \
         the manifest's routes. Every model path also answers under `/versions/{{version}}/` \
         (e.g. `/v2/models/NAME/versions/1/infer`); every GET also answers HEAD. Errors are \
         `{{\"error\": \"...\"}}` naming the cause.",
        names.join(", ")
    );
    if !skipped.is_empty() {
        description.push_str(&format!(
            " Routes with a method OpenAPI cannot list: {}.",
            skipped.join(", ")
        ));
    }
    let mut out = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description,
        },
        "tags": [
            {"name": "front", "description": "What serve answers itself"},
            {"name": "V2", "description": "KServe V2 / Open Inference Protocol"},
            {"name": "V1", "description": "TF-Serving's V1 REST protocol"},
            {"name": "routes", "description": "The manifest's routes (app.toml)"},
        ],
        "paths": Value::Object(doc.paths),
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string", "description": "the cause"}},
                },
            },
        },
    });
    if let Some(url) = server {
        out["servers"] = json!([{ "url": url }]);
    }
    if app.auth {
        // --auth-token-file: every operation needs the bearer token but those open to a
        // browser and to probes.
        out["components"]["securitySchemes"] =
            json!({ "bearer": { "type": "http", "scheme": "bearer" } });
        out["security"] = json!([{ "bearer": [] }]);
        if let Some(paths) = out["paths"].as_object_mut() {
            for path in ["/", "/openapi.json", "/v2/health/live", "/v2/health/ready"] {
                if let Some(Value::Object(item)) = paths.get_mut(path) {
                    for op in item.values_mut() {
                        if let Value::Object(op) = op {
                            op.insert("security".into(), json!([]));
                        }
                    }
                }
            }
        }
    }
    out
}

/// The paths being built, and the operation ids taken.
#[derive(Default)]
struct Doc {
    paths: Map<String, Value>,
    ids: HashSet<String>,
}

impl Doc {
    /// Adds an operation; its id made unique (letters, digits and `_`).
    fn add(&mut self, path: &str, method: &str, mut op: Value) {
        let base: String = op["operationId"]
            .as_str()
            .unwrap_or("op")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut id = base.clone();
        let mut n = 2;
        while !self.ids.insert(id.clone()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        op["operationId"] = Value::String(id);
        let item = self
            .paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        item[method] = op;
    }

    fn server_paths(&mut self) {
        self.add(
            "/",
            "get",
            json!({
                "operationId": "front_page", "tags": ["front"],
                "summary": "The front page: every model and route, with a curl and a form each",
                "responses": {"200": {"description": "an HTML page",
                    "content": {"text/html": {"schema": {"type": "string"}}}}},
            }),
        );
        self.add(
            "/openapi.json",
            "get",
            json!({
                "operationId": "openapi", "tags": ["front"],
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}}}},
            }),
        );
        self.add(
            "/v2/models/stats",
            "get",
            json!({
                "operationId": "v2_statistics", "tags": ["V2"],
                "summary": "Every model version's statistics (Triton's extension)",
                "description": "Exact across workers; see README, \"Coming from Triton\".",
                "responses": {"200": ok(statistics_schema())},
            }),
        );
        self.add(
            "/metrics",
            "get",
            json!({
                "operationId": "metrics", "tags": ["front"],
                "summary": "Prometheus metrics (answered by the worker, for the whole server)",
                "description": "Counters and histograms of every worker (README, \"Watching \
                    it\"). On the --metrics-bind address instead, when the server has one.",
                "responses": {"200": {"description": "the Prometheus text exposition format, or \
                    OpenMetrics when Accept asks for application/openmetrics-text",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/openmetrics-text": {"schema": {"type": "string"}},
                    }}},
            }),
        );
        self.add(
            "/status",
            "get",
            json!({
                "operationId": "status", "tags": ["front"],
                "summary": "The server's workers (answered by the worker)",
                "description": "The master and every worker. On the --metrics-bind address \
                    instead, when the server has one.",
                "responses": {"200": {"description": "an HTML page for a person, or the same \
                    facts as JSON (Accept: application/json)",
                    "content": {
                        "text/html": {"schema": {"type": "string"}},
                        "application/json": {"schema": status_schema()},
                    }}},
            }),
        );
        self.add(
            "/v2",
            "get",
            json!({
                "operationId": "v2_server_metadata", "tags": ["V2"],
                "summary": "Server metadata",
                "responses": {"200": ok(json!({
                    "type": "object", "required": ["name", "version", "extensions"],
                    "properties": {
                        "name": {"type": "string"}, "version": {"type": "string"},
                        "extensions": {"type": "array", "items": {"type": "string"}},
                    },
                }))},
            }),
        );
        self.add(
            "/v2/health/live",
            "get",
            json!({
                "operationId": "v2_live", "tags": ["V2"],
                "summary": "Liveness: the process answers",
                "responses": {"200": ok(flag("live"))},
            }),
        );
        self.add(
            "/v2/health/ready",
            "get",
            json!({
                "operationId": "v2_ready", "tags": ["V2"],
                "summary": "Readiness: the server is not stopping and every model can serve",
                "responses": {"200": ok(flag("ready")), "503": not_ready("ready")},
            }),
        );
        self.add(
            "/v2/repository/index",
            "post",
            json!({
                "operationId": "v2_repository_index", "tags": ["V2"],
                "summary": "The models and their state (Triton's model repository extension)",
                "requestBody": {"required": false, "content": {"application/json": {
                    "schema": {"type": "object", "additionalProperties": false,
                        "properties": {"ready": {"type": "boolean",
                            "description": "list only the ready models"}}},
                    "example": {"ready": false},
                }}},
                "responses": {"200": ok(json!({"type": "array", "items": {
                    "type": "object", "required": ["name", "version", "state", "reason"],
                    "properties": {
                        "name": {"type": "string"}, "version": {"type": "string"},
                        "state": {"enum": ["READY", "UNAVAILABLE"]},
                        "reason": {"type": "string"},
                    },
                }})), "400": error("the body is not {\"ready\": true|false}")},
            }),
        );
    }

    /// A model's paths, described from its highest version; `versions` lists every version
    /// served, highest first.
    fn model_paths(&mut self, model: &Model, versions: &str) {
        let name = &model.name;
        let id = |what: &str| format!("{what}_{name}");
        let versions = versions.replace('`', "");
        let versioned = |path: &str, tail: &str| {
            if versions.contains(',') {
                format!(
                    "The highest version; each version also at `{path}/versions/V{tail}` \
                     (V: {versions})."
                )
            } else {
                format!("Also at `{path}/versions/{versions}{tail}`.")
            }
        };
        let v2 = format!("/v2/models/{name}");
        self.add(
            &v2,
            "get",
            json!({
                "operationId": id("v2_metadata"), "tags": ["V2"],
                "summary": format!("Model {name}: metadata (inputs, outputs, versions)"),
                "description": versioned(&v2, ""),
                "responses": {"200": ok(json!({
                    "type": "object",
                    "required": ["name", "versions", "platform", "inputs", "outputs"],
                    "properties": {
                        "name": {"const": name},
                        "versions": {"type": "array", "items": {"type": "string"}},
                        "platform": {"type": "string"},
                        "inputs": {"type": "array", "items": tensor_meta_schema()},
                        "outputs": {"type": "array", "items": tensor_meta_schema()},
                        "parameters": {"type": "object"},
                    },
                })), "404": error("no such model or version")},
            }),
        );
        let config = format!("{v2}/config");
        self.add(
            &config,
            "get",
            json!({
                "operationId": id("v2_model_config"), "tags": ["V2"],
                "summary": format!("Model {name}: configuration (Triton's extension)"),
                "description": format!(
                    "{} Triton's model configuration in its JSON form: the model's \
                     config.pbtxt, or what serve knows of the model.",
                    versioned(&v2, "/config")
                ),
                "responses": {"200": ok(json!({"type": "object",
                    "required": ["name", "platform", "max_batch_size", "input", "output"],
                    "properties": {
                        "name": {"const": name},
                        "platform": {"type": "string"},
                        "backend": {"type": "string"},
                        "max_batch_size": {"type": "integer"},
                        "input": {"type": "array", "items": {"type": "object"}},
                        "output": {"type": "array", "items": {"type": "object"}},
                    },
                })), "404": error("no such model or version")},
            }),
        );
        let stats = format!("{v2}/stats");
        self.add(
            &stats,
            "get",
            json!({
                "operationId": id("v2_model_statistics"), "tags": ["V2"],
                "summary": format!("Model {name}: statistics of each version (Triton's extension)"),
                "description": format!(
                    "Every version served; at `{v2}/versions/V/stats`, that version's."
                ),
                "responses": {"200": ok(statistics_schema()),
                    "404": error("no such model or version")},
            }),
        );
        let ready = format!("{v2}/ready");
        self.add(
            &ready,
            "get",
            json!({
                "operationId": id("v2_model_ready"), "tags": ["V2"],
                "summary": format!("Model {name}: ready"),
                "description": versioned(&v2, "/ready"),
                "responses": {"200": ok(json!({"type": "object", "required": ["name", "ready"],
                    "properties": {"name": {"const": name}, "ready": {"const": true}}})),
                    "503": not_ready("ready"), "404": error("no such model or version")},
            }),
        );
        let infer = format!("{v2}/infer");
        self.add(
            &infer,
            "post",
            json!({
                "operationId": id("v2_infer"), "tags": ["V2"],
                "summary": format!("Model {name}: inference"),
                "description": format!(
                    "{} The binary tensor extension (`Inference-Header-Content-Length`, \
                     `application/octet-stream`) is accepted too.",
                    versioned(&v2, "/infer")
                ),
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": v2_request_schema(model),
                    "example": example_value(&model.examples.v2),
                }}},
                "responses": infer_responses(v2_response_schema(model)),
            }),
        );
        let v1 = format!("/v1/models/{name}");
        self.add(
            &v1,
            "get",
            json!({
                "operationId": id("v1_status"), "tags": ["V1"],
                "summary": format!("Model {name}: TF-Serving status"),
                "description": versioned(&v1, ""),
                "responses": {"200": ok(json!({"type": "object",
                    "required": ["model_version_status"],
                    "properties": {"model_version_status": {"type": "array", "items": {
                        "type": "object", "properties": {
                            "version": {"type": "string"},
                            "state": {"enum": ["AVAILABLE", "END"]},
                            "status": {"type": "object", "properties": {
                                "error_code": {"type": "string"},
                                "error_message": {"type": "string"}}},
                        }}}}})), "404": error("no such model or version")},
            }),
        );
        let predict = format!("{v1}:predict");
        let mut body = json!({"schema": v1_request_schema(model)});
        if let Some(example) = &model.examples.v1 {
            body["example"] = example_value(example);
        }
        self.add(
            &predict,
            "post",
            json!({
                "operationId": id("v1_predict"), "tags": ["V1"],
                "summary": format!("Model {name}: TF-Serving predict"),
                "description": versioned(&v1, ":predict"),
                "requestBody": {"required": true, "content": {"application/json": body}},
                "responses": infer_responses(v1_response_schema(model)),
            }),
        );
    }

    /// Adds a manifest route; false when its method is not one OpenAPI can list.
    fn route_path(&mut self, route: &Route) -> bool {
        let method = route.method.as_str().to_ascii_lowercase();
        if !METHODS.contains(&method.as_str()) {
            return false;
        }
        let meta = &route.model.meta;
        let spec = route.spec();
        let mut props = Map::new();
        let mut required = Vec::new();
        for (key, input, shared) in spec.key_feeds() {
            let t = &meta.inputs[input];
            let schema = if shared {
                with_description(
                    element(t.datatype),
                    format!("one feature of input {}", t.name),
                )
            } else {
                row_schema(t)
            };
            props.insert(key.to_string(), schema);
            required.push(json!(key));
        }
        let record = json!({
            "type": "object", "properties": props, "required": required,
            "additionalProperties": spec.ignores_unknown_keys(),
        });
        let mut answer = Map::new();
        for (key, output) in route.response_keys() {
            answer.insert(key.clone(), route_output_schema(&meta.outputs[*output]));
        }
        let answer = json!({"type": "object", "properties": answer});
        let op = json!({
            "operationId": format!("route_{method}{}", route.path),
            "tags": ["routes"],
            "summary": format!("{} {} → model {}", route.method, route.path, route.model.name),
            "description": "One record answers one object; a list of records answers a list.",
            "requestBody": {"required": true, "content": {"application/json": {
                "schema": {"oneOf": [record.clone(),
                    {"type": "array", "minItems": 1, "items": record}]},
                "example": example_value(&route.example),
            }}},
            "responses": infer_responses(json!({"oneOf": [answer.clone(),
                {"type": "array", "items": answer}]})),
        });
        self.add(&route.path, &method, op);
        true
    }
}

/// An example body as a JSON value (it is JSON text this crate wrote).
fn example_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn ok(schema: Value) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn flag(name: &str) -> Value {
    json!({"type": "object", "required": [name], "properties": {name: {"const": true}}})
}

fn not_ready(name: &str) -> Value {
    json!({"description": "not ready (the server is stopping, or a model cannot serve)",
        "content": {"application/json": {"schema": {"type": "object",
            "properties": {name: {"const": false}, "error": {"type": "string"}}}}}})
}

/// An inference's answers: the schema, and the errors every protocol shares.
fn infer_responses(schema: Value) -> Value {
    json!({
        "200": ok(schema),
        "400": error("the request does not fit the model (the message names the input or key)"),
        "404": error("no such model or version"),
        "503": error("the model's queue is full (Retry-After) or it cannot load"),
        "504": error("the request waited or ran past --request-timeout"),
    })
}

fn with_description(mut schema: Value, description: String) -> Value {
    schema["description"] = Value::String(description);
    schema
}

/// The JSON type of one element.
fn element(dt: DataType) -> Value {
    match dt {
        DataType::Bool => json!({"type": "boolean"}),
        DataType::Bytes => json!({"type": "string"}),
        DataType::F16 | DataType::F32 | DataType::F64 => float(),
        DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64 => {
            json!({"type": "integer", "minimum": 0})
        }
        DataType::I8 | DataType::I16 | DataType::I32 | DataType::I64 => json!({"type": "integer"}),
    }
}

/// A float element: a number, or what JSON cannot write as one, as serve writes and reads it
/// (NaN as null, infinities as strings; requests may also write Python's bare tokens).
fn float() -> Value {
    json!({
        "anyOf": [{"type": ["number", "null"]}, {"enum": ["NaN", "Infinity", "-Infinity"]}],
        "description": "null (or \"NaN\") is a missing value; \"Infinity\" and \"-Infinity\" \
            the infinities",
    })
}

/// A V2 shape: the declared rank, fixed sizes as constants.
fn shape_schema(t: &TensorMeta) -> Value {
    match &t.shape {
        Some(dims) => {
            let items: Vec<Value> = dims
                .iter()
                .map(|d| match d.fixed() {
                    Some(n) => json!({"const": n}),
                    None => json!({"type": "integer", "minimum": 0}),
                })
                .collect();
            json!({"type": "array", "prefixItems": items, "items": false,
                "minItems": dims.len(), "maxItems": dims.len()})
        }
        None => json!({"type": "array", "items": {"type": "integer", "minimum": 0}}),
    }
}

/// Elements, flat in row-major order or nested as the shape.
fn data_schema(dt: DataType) -> Value {
    json!({"type": "array", "items": {"anyOf": [element(dt), {"type": "array"}]},
        "description": "the elements in row-major order, flat or nested as the shape"})
}

fn shape_text(t: &TensorMeta) -> String {
    crate::error::fmt_shape(&t.shape_i64())
}

/// The class labels, for descriptions.
fn classes_text(t: &TensorMeta) -> Option<String> {
    t.classes.as_ref().map(|c| {
        format!(
            "the probability of each class, columns labelled {}",
            c.to_json()
        )
    })
}

fn tensor_meta_schema() -> Value {
    json!({"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "parameters": {"type": "object"},
    }})
}

fn v2_request_schema(model: &Model) -> Value {
    let inputs: Vec<Value> = model
        .meta
        .inputs
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "title": t.name,
                "description": format!("input {}: {} {}", t.name, t.datatype.as_str(), shape_text(t)),
                "required": ["name", "datatype", "shape"],
                "properties": {
                    "name": {"const": t.name},
                    "datatype": {"const": t.datatype.as_str()},
                    "shape": shape_schema(t),
                    "data": data_schema(t.datatype),
                    "parameters": {"type": "object", "properties": {
                        "binary_data_size": {"type": "integer", "minimum": 0}}},
                },
            })
        })
        .collect();
    let n = inputs.len();
    let outputs: Vec<&str> = model.meta.outputs.iter().map(|o| o.name.as_str()).collect();
    json!({
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": n, "maxItems": n,
                "items": {"oneOf": inputs}},
            "outputs": {"type": "array", "description": "the outputs to answer (default: all)",
                "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"enum": outputs},
                    "parameters": {"type": "object", "properties": {
                        "binary_data": {"type": "boolean"}}},
                }}},
        },
    })
}

fn v2_response_schema(model: &Model) -> Value {
    let outputs: Vec<Value> = model
        .meta
        .outputs
        .iter()
        .map(|t| {
            let mut description = format!(
                "output {}: {} {}",
                t.name,
                t.datatype.as_str(),
                shape_text(t)
            );
            if let Some(c) = classes_text(t) {
                description.push_str(&format!(" ({c})"));
            }
            json!({
                "type": "object",
                "title": t.name,
                "description": description,
                "required": ["name", "datatype", "shape"],
                "properties": {
                    "name": {"const": t.name},
                    "datatype": {"const": t.datatype.as_str()},
                    "shape": shape_schema(t),
                    "data": {"type": "array", "items": element(t.datatype)},
                    "parameters": {"type": "object"},
                },
            })
        })
        .collect();
    json!({
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"const": model.name},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"oneOf": outputs}},
        },
    })
}

/// One row of an input, as records and V1 instances give it: a scalar for one value, an
/// array (flat, or nested as the row's dimensions) for several.
fn row_schema(t: &TensorMeta) -> Value {
    let description = format!(
        "input {}: {} {}",
        t.name,
        t.datatype.as_str(),
        shape_text(t)
    );
    let schema = match (t.row_dims(), t.fixed_row_size()) {
        (Some(_), Some(1)) => json!({"anyOf": [element(t.datatype),
            {"type": "array", "minItems": 1, "maxItems": 1, "items": element(t.datatype)}]}),
        (Some([_]), Some(n)) => {
            json!({"type": "array", "minItems": n, "maxItems": n, "items": element(t.datatype)})
        }
        _ => json!({"type": "array", "items": {"anyOf": [element(t.datatype), {"type": "array"}]}}),
    };
    with_description(schema, description)
}

/// One row of an output in a route's answer: a scalar for one value, `{label: probability}`
/// for a ZipMap's probabilities, an array otherwise.
fn route_output_schema(t: &TensorMeta) -> Value {
    let description = format!(
        "output {}: {} {}",
        t.name,
        t.datatype.as_str(),
        shape_text(t)
    );
    let schema = if let Some(classes) = &t.classes {
        let labels: Map<String, Value> = match classes.to_json() {
            Value::Array(v) => v
                .iter()
                .map(|l| {
                    let label = match l {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (label, float())
                })
                .collect(),
            _ => Map::new(),
        };
        json!({"type": "object", "properties": labels})
    } else if t.fixed_row_size() == Some(1) || t.row_dims().is_some_and(<[_]>::is_empty) {
        element(t.datatype)
    } else {
        json!({"type": "array"})
    };
    with_description(schema, description)
}

fn v1_request_schema(model: &Model) -> Value {
    let instance = match model.meta.inputs.as_slice() {
        [only] => row_schema(only),
        inputs => {
            let props: Map<String, Value> = inputs
                .iter()
                .map(|t| (t.name.clone(), row_schema(t)))
                .collect();
            let names: Vec<&str> = inputs.iter().map(|t| t.name.as_str()).collect();
            json!({"type": "object", "properties": props, "required": names,
                "additionalProperties": false})
        }
    };
    json!({
        "type": "object",
        "description": "the row format (instances) or the columnar one (inputs)",
        "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
        "properties": {
            "instances": {"type": "array", "minItems": 1, "items": instance},
            "inputs": {"description": "whole tensors, the batch first: for a model of one \
                input its nested arrays, otherwise an object of them by input name"},
        },
    })
}

fn v1_response_schema(model: &Model) -> Value {
    let prediction = match model.meta.outputs.as_slice() {
        [only] => route_output_schema(only),
        outputs => {
            let props: Map<String, Value> = outputs
                .iter()
                .map(|t| (t.name.clone(), route_output_schema(t)))
                .collect();
            json!({"type": "object", "properties": props})
        }
    };
    json!({
        "type": "object",
        "properties": {
            "predictions": {"type": "array", "items": prediction},
            "outputs": {"description": "the columnar format's answer"},
        },
    })
}

/// `/status` as JSON (crates/worker/src/admin.rs writes it).
fn status_schema() -> Value {
    let number = json!({"type": "number"});
    let integer = json!({"type": "integer"});
    json!({
        "type": "object",
        "required": ["server", "version", "master", "models", "workers"],
        "properties": {
            "server": {"const": "serve"},
            "version": {"type": "string"},
            "master": {
                "type": "object",
                "required": ["pid", "started", "uptime_seconds", "generation", "last_reload"],
                "properties": {
                    "pid": integer,
                    "started": {"type": "string", "format": "date-time"},
                    "uptime_seconds": number,
                    "generation": integer,
                    "last_reload": {"oneOf": [{"type": "null"}, {
                        "type": "object",
                        "required": ["result", "at"],
                        "properties": {
                            "result": {"enum": ["ok", "failed"]},
                            "at": {"type": "string", "format": "date-time"},
                        },
                    }]},
                },
            },
            "models": {"type": "array", "items": {
                "type": "object",
                "required": ["name", "engine", "loaded_in_workers"],
                "properties": {
                    "name": {"type": "string"},
                    "engine": {"enum": ["tract", "onnxruntime"]},
                    "loaded_in_workers": {"type": "integer", "description": "live workers \
                        that have built it (all of them when it was preloaded)"},
                },
            }},
            "workers": {"type": "array", "items": {
                "type": "object",
                "required": ["pid", "state", "generation", "age_seconds", "requests",
                    "in_flight", "connections", "last_heartbeat_seconds_ago", "models_loaded"],
                "properties": {
                    "pid": integer,
                    "state": {"enum": ["booting", "serving", "draining"]},
                    "generation": integer,
                    "age_seconds": number,
                    "requests": integer,
                    "in_flight": integer,
                    "connections": {"type": "integer", "description": "open connections \
                        on the listeners that share connections (all but --metrics-bind's)"},
                    "last_heartbeat_seconds_ago": number,
                    "models_loaded": {"type": "array", "items": {"type": "string"}},
                },
            }},
        },
    })
}

/// The statistics extension's answer.
fn statistics_schema() -> Value {
    let timed = json!({"type": "object", "required": ["count", "ns"],
        "properties": {"count": {"type": "integer"}, "ns": {"type": "integer"}}});
    json!({"type": "object", "required": ["model_stats"], "properties": {
        "model_stats": {"type": "array", "items": {"type": "object",
            "required": ["name", "version", "last_inference", "inference_count",
                "execution_count", "inference_stats", "batch_stats"],
            "properties": {
                "name": {"type": "string"}, "version": {"type": "string"},
                "last_inference": {"type": "integer", "description": "Unix milliseconds"},
                "inference_count": {"type": "integer"},
                "execution_count": {"type": "integer"},
                "inference_stats": {"type": "object", "additionalProperties": timed},
                "batch_stats": {"type": "array", "items": {"type": "object",
                    "properties": {"batch_size": {"type": "integer"},
                        "compute_input": timed, "compute_infer": timed,
                        "compute_output": timed}}},
            }}},
    }})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::tests::app;

    const ROUTE: &str = "[[route]]\npath = \"/predict\"\n[route.inputs]\n\
                         input = [\"sepal_length\", \"sepal_width\", \"petal_length\", \"petal_width\"]\n\
                         [route.outputs]\nspecies = \"label\"\nprobabilities = \"probabilities\"\n\
                         [[route]]\npath = \"/predict\"\nmethod = \"PUT\"\n\
                         [[route]]\npath = \"/odd\"\nmethod = \"BREW\"\n";

    #[test]
    fn every_route_is_a_path_with_unique_operation_ids() {
        let doc = build(&app("iris", ROUTE), Some("http://h:1"));
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["servers"][0]["url"], "http://h:1");
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/", "get"),
            ("/openapi.json", "get"),
            ("/metrics", "get"),
            ("/status", "get"),
            ("/v2", "get"),
            ("/v2/health/live", "get"),
            ("/v2/health/ready", "get"),
            ("/v2/repository/index", "post"),
            ("/v2/models/iris", "get"),
            ("/v2/models/iris/ready", "get"),
            ("/v2/models/iris/infer", "post"),
            ("/v1/models/iris", "get"),
            ("/v1/models/iris:predict", "post"),
            ("/predict", "post"),
            ("/predict", "put"),
        ] {
            assert!(paths[path][method].is_object(), "{method} {path}");
        }
        assert!(!paths.contains_key("/odd"));
        assert!(
            doc["info"]["description"]
                .as_str()
                .unwrap()
                .contains("BREW /odd")
        );
        let mut ids = HashSet::new();
        for item in paths.values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "{id} twice");
            }
        }
        assert!(ids.contains("route_put_predict") && ids.contains("route_post_predict"));
    }

    #[test]
    fn schemas_name_the_inputs_and_carry_the_examples() {
        let doc = build(&app("iris", ROUTE), None);
        assert!(doc.get("servers").is_none());
        let body = &doc["paths"]["/v2/models/iris/infer"]["post"]["requestBody"]["content"]["application/json"];
        let input = &body["schema"]["properties"]["inputs"]["items"]["oneOf"][0];
        assert_eq!(input["properties"]["name"]["const"], "input");
        assert_eq!(input["properties"]["datatype"]["const"], "FP32");
        assert_eq!(input["properties"]["shape"]["prefixItems"][1]["const"], 4);
        assert_eq!(
            body["example"]["inputs"][0]["data"],
            json!([5.1, 3.5, 1.4, 0.2])
        );
        let v1 = &doc["paths"]["/v1/models/iris:predict"]["post"]["requestBody"]["content"]["application/json"];
        assert_eq!(v1["example"], json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}));
        assert_eq!(
            v1["schema"]["properties"]["instances"]["items"]["maxItems"],
            4
        );
        let out = &doc["paths"]["/v2/models/iris/infer"]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["properties"]["outputs"]["items"]["oneOf"];
        let names: Vec<&str> = out
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["properties"]["name"]["const"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["label", "probabilities"]);
        let route = &doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"];
        let record = &route["schema"]["oneOf"][0];
        assert_eq!(
            record["required"],
            json!(["sepal_length", "sepal_width", "petal_length", "petal_width"])
        );
        assert_eq!(
            record["properties"]["petal_width"]["anyOf"][0]["type"],
            json!(["number", "null"])
        );
        assert_eq!(record["additionalProperties"], false);
        assert_eq!(
            route["example"],
            json!({"sepal_length": 0, "sepal_width": 0, "petal_length": 0, "petal_width": 0})
        );
        let answer = &doc["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["oneOf"][0]["properties"];
        assert_eq!(answer["species"]["type"], "integer");
        assert_eq!(answer["probabilities"]["type"], "array");
    }
}
