//! The manifest's own routes: a JSON record (or a list) in, an object (or a list) out.
//!
//! A [`Route`] is compiled once, when the app is built: its model resolved, its record
//! keys checked against the model's inputs ([`RecordSpec`]) and its response keys against
//! the outputs. Serving one is then the records decoder, the model's executor and
//! [`write_objects`](crate::records::write_objects).

use std::sync::Arc;

use http::{Method, StatusCode};
use serve_app::{Response, json_response};

use crate::error::ApiError;
use crate::manifest::{RouteEntry, UnknownKeys};
use crate::records::{self, RecordSpec};
use crate::registry::{Model, Registry};

/// A compiled manifest route.
pub struct Route {
    /// The exact path.
    pub path: String,
    /// The method it answers.
    pub method: Method,
    /// The model it calls.
    pub model: Arc<Model>,
    spec: RecordSpec,
    /// Response key ← output index.
    outputs: Vec<(String, usize)>,
    /// The example record the front page and OpenAPI show (the manifest's, checked by the
    /// route's decoder, or a placeholder).
    pub example: String,
}

/// Paths serve answers itself, whatever the app: the front page, the OpenAPI document, and
/// the worker's Prometheus metrics and status page.
pub const RESERVED_PATHS: [&str; 4] = ["/", "/openapi.json", "/metrics", "/status"];

impl Route {
    /// Checks a manifest entry against the app's models.
    pub fn compile(entry: &RouteEntry, registry: &Registry) -> Result<Route, String> {
        let at = format!("route {} {}", entry.method, entry.path);
        if !entry.path.starts_with('/') {
            return Err(format!("{at}: the path must start with '/'"));
        }
        if ["/v1/", "/v2/"].iter().any(|p| entry.path.starts_with(p)) || entry.path == "/v2" {
            return Err(format!(
                "{at}: /v1/ and /v2/ belong to the inference protocols"
            ));
        }
        let bare = match entry.path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => &entry.path,
        };
        if RESERVED_PATHS.contains(&bare) {
            return Err(format!(
                "{at}: {bare} is served by serve itself ({}); choose another path for the route \
                 (e.g. /predict)",
                RESERVED_PATHS.join(", ")
            ));
        }
        let method = Method::from_bytes(entry.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("{at}: \"{}\" is not an HTTP method", entry.method))?;
        let model = match &entry.model {
            Some(name) => registry.get(name).cloned().ok_or_else(|| {
                format!(
                    "{at}: no model \"{name}\" (the app has {})",
                    registry.names()
                )
            })?,
            None => match registry.latest().collect::<Vec<_>>().as_slice() {
                [only] => (*only).clone(),
                _ => {
                    return Err(format!(
                        "{at}: name its model (the app has {})",
                        registry.names()
                    ));
                }
            },
        };
        let model = match &entry.version {
            None => model,
            Some(v) => {
                let v = v.to_string();
                registry.version(&model.name, &v).cloned().ok_or_else(|| {
                    format!(
                        "{at}: model {} has no version \"{v}\" (its versions: {})",
                        model.name,
                        crate::router::version_list(registry, &model.name)
                    )
                })?
            }
        };
        let meta = &model.meta;
        let spec = RecordSpec::new(meta, &entry.inputs)
            .map_err(|e| format!("{at}: {e}"))?
            .for_route();
        let spec = match entry.unknown_keys {
            UnknownKeys::Reject => spec,
            UnknownKeys::Ignore => spec.ignoring_unknown_keys(),
        };
        if let Some(i) = meta.inputs.iter().find(|i| !i.has_batch_dim()) {
            return Err(format!(
                "{at}: input \"{}\" of model {} has no batch dimension, so records cannot feed it",
                i.name, model.name
            ));
        }
        let outputs = if entry.outputs.is_empty() {
            meta.outputs
                .iter()
                .enumerate()
                .map(|(i, o)| (o.name.clone(), i))
                .collect()
        } else {
            entry
                .outputs
                .iter()
                .map(|(key, output)| {
                    let i = meta.output_index(output).ok_or_else(|| {
                        format!(
                            "{at}: unknown output \"{output}\" (the model's outputs are {})",
                            meta.output_names()
                        )
                    })?;
                    Ok((key.clone(), i))
                })
                .collect::<Result<_, String>>()?
        };
        let example = crate::example::route_record(meta, &spec, entry.example.as_ref())
            .map_err(|e| format!("{at}: {e}"))?;
        Ok(Route {
            path: entry.path.clone(),
            method,
            model,
            spec,
            outputs,
            example,
        })
    }

    /// Which record keys feed which inputs.
    pub fn spec(&self) -> &RecordSpec {
        &self.spec
    }

    /// The response keys, each with the index of the output it answers.
    pub fn response_keys(&self) -> &[(String, usize)] {
        &self.outputs
    }

    /// One line for the start log: `route POST /model -> model titanic (keys "Age", ...)`.
    pub fn describe(&self) -> String {
        format!(
            "route {} {} -> model {} (record keys {})",
            self.method,
            self.path,
            self.model.name,
            self.spec.keys()
        )
    }

    /// Answers a request to this route.
    pub async fn call(&self, body: &[u8]) -> Result<Response, ApiError> {
        crate::observe::infer(
            &self.model,
            || records::decode(body, &self.model.meta, &self.spec),
            |single, outputs| {
                let mut buf = Vec::with_capacity(32 * self.outputs.len());
                records::write_objects(
                    &mut buf,
                    &self.model.meta,
                    outputs,
                    &self.outputs,
                    single,
                    true,
                )?;
                Ok(json_response(StatusCode::OK, buf))
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Settings;
    use crate::source::Source;

    /// The embedded iris, in this version.
    fn iris(version: &str) -> Model {
        let core = serve_runtime::model::Model::open(
            "iris".into(),
            Source::Bytes("test", crate::resolve::EMBEDDED_IRIS.into()),
            Settings::default(),
            None,
            std::sync::Arc::new(serve_tract::Tract),
        )
        .unwrap()
        .with_version(version.into());
        Model::new(core)
    }

    fn compile(path: &str) -> Result<Route, String> {
        let mut registry = Registry::default();
        registry
            .add(iris(crate::registry::DEFAULT_VERSION))
            .unwrap();
        let text = format!("[[route]]\npath = \"{path}\"\n");
        let manifest = crate::manifest::parse(&text, std::path::Path::new("app.toml")).unwrap();
        Route::compile(&manifest.routes[0], &registry)
    }

    #[test]
    fn a_route_calls_the_highest_version_unless_it_names_one() {
        let mut registry = Registry::default();
        for version in ["1", "2"] {
            registry.add(iris(version)).unwrap();
        }
        let route = |extra: &str| {
            let text = format!("[[route]]\npath = \"/p\"\n{extra}");
            let manifest = crate::manifest::parse(&text, std::path::Path::new("app.toml")).unwrap();
            Route::compile(&manifest.routes[0], &registry)
        };
        assert_eq!(route("").unwrap().model.version, "2");
        assert_eq!(route("version = 1\n").unwrap().model.version, "1");
        let e = route("version = 7\n").err().unwrap();
        assert!(
            e.contains("model iris has no version \"7\" (its versions: 2, 1)"),
            "{e}"
        );
    }

    #[test]
    fn the_protocols_paths_are_refused() {
        for path in ["/v2", "/v2/models/x", "/v1/models/iris:predict"] {
            let e = compile(path).err().unwrap();
            assert!(
                e.contains(&format!(
                    "route POST {path}: /v1/ and /v2/ belong to the inference"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn the_paths_serve_answers_itself_are_refused() {
        for (path, bare) in [
            ("/", "/"),
            ("/openapi.json", "/openapi.json"),
            ("/metrics", "/metrics"),
            ("/metrics/", "/metrics"),
            ("/status", "/status"),
        ] {
            let e = compile(path).err().unwrap();
            assert!(
                e.starts_with(&format!(
                    "route POST {path}: {bare} is served by serve itself"
                )) && e.contains("choose another path"),
                "{e}"
            );
        }
        assert!(compile("/metrics/model").is_ok());
        assert!(compile("/statuses").is_ok());
    }
}
