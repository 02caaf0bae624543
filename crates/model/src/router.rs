//! From a method and a path to a handler: the app's whole URL space in one match.
//!
//! Manifest routes are exact paths and are tried first; then the V2 and V1 trees, where the
//! model is looked up (404 naming the models that exist), then the version (none: the
//! highest; one the model does not have is 404 naming those it has), then the method (405
//! with `Allow`).

use std::sync::Arc;

use crate::Few;
use http::Method;
use serve_app::{Context, ModelId, Observed, Protocol, Request, Response};

use crate::error::ApiError;
use crate::registry::{Model, Registry};
use crate::routes::Route;
use crate::{front, openapi, v1, v2};

/// What the router needs: the models and the manifest routes.
pub struct Inner {
    /// The models.
    pub registry: Registry,
    /// The manifest routes.
    pub routes: Vec<Route>,
    /// gRPC is served beside (the front page shows a `grpcurl` line per model).
    pub grpc: bool,
    /// Under `--model-control explicit`: load and unload requests are passed to the master.
    pub explicit: bool,
    /// Under `--model-control explicit`: the repository's models that are not loaded.
    pub unloaded: Vec<String>,
    /// The API needs a bearer token (`--auth-token-file`): OpenAPI declares it.
    pub auth: bool,
}

const GET: &str = "GET, HEAD";
const POST: &str = "POST";

/// Answers one request. What it counts under (its model and protocol) was told to the worker
/// from the head ([`label`], through `App::observe_head`), before the body was read, so that an
/// error answer, a refused body, or a request whose client leaves while it waits for the model
/// counts there too.
pub async fn dispatch(app: &Inner, req: Request, cx: &Context) -> Result<Response, ApiError> {
    // Labelled already: the worker asks `App::observe_head` (this module's `label`) before it
    // reads the body.
    let path = req.uri().path();
    if let Some(route) = manifest_route(app, req.method(), path)? {
        return route.call(req.body()).await;
    }
    let trimmed = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    let mut buf = [""; MAX_SEGMENTS];
    let Some(segments) = segments(trimmed, &mut buf) else {
        return Err(no_route(&req));
    };
    match segments {
        [""] => allow(&req, GET).map(|()| front::page(app, &req)),
        ["openapi.json"] => allow(&req, GET).map(|()| openapi::document(app, &req)),
        ["v2"] => allow(&req, GET).map(|()| v2::server_metadata(app.explicit)),
        ["v2", "health", "live"] => allow(&req, GET).map(|()| v2::live()),
        ["v2", "health", "ready"] => {
            allow(&req, GET)?;
            Ok(v2::ready(&app.registry, cx).await)
        }
        ["v2", "repository", "index"] => {
            allow(&req, POST)?;
            v2::repository_index(&app.registry, &app.unloaded, req.body()).await
        }
        [
            "v2",
            "repository",
            "models",
            name,
            verb @ ("load" | "unload"),
        ] => {
            allow(&req, POST)?;
            v2::repository_change(&app.registry, app.explicit, cx, (name, verb), req.body()).await
        }
        ["v2", "models", "stats"] => {
            allow(&req, GET)?;
            Ok(v2::statistics(app.registry.models()))
        }
        ["v2", "models", name, rest @ ..] => {
            let named_version = matches!(rest, ["versions", ..]);
            let (model, rest) = versioned(app, name, rest)?;
            match rest {
                [] => allow(&req, GET).map(|()| v2::model_metadata(&app.registry, &model)),
                ["config"] => allow(&req, GET).map(|()| v2::model_config(&model)),
                ["stats"] => {
                    allow(&req, GET)?;
                    if named_version {
                        Ok(v2::statistics(&[model]))
                    } else {
                        let versions: Vec<_> = app.registry.versions(name).cloned().collect();
                        Ok(v2::statistics(&versions))
                    }
                }
                ["ready"] => {
                    allow(&req, GET)?;
                    Ok(v2::model_ready(&model, cx).await)
                }
                ["infer"] => {
                    allow(&req, POST)?;
                    v2::infer(&model, req).await
                }
                _ => Err(no_route(&req)),
            }
        }
        ["v1", "models", rest @ ..] if !rest.is_empty() => {
            // The verb rides on the last segment: `iris:predict`, `versions/1:predict`.
            let (head, last) = rest.split_at(rest.len() - 1);
            let (last, verb) = match last[0].split_once(':') {
                Some((last, verb)) => (last, Some(verb)),
                None => (last[0], None),
            };
            let mut parts: Few<&str> = head.into();
            parts.push(last);
            let named_version = parts.len() > 1;
            let (model, rest) = versioned(app, parts[0], &parts[1..])?;
            if !rest.is_empty() {
                return Err(no_route(&req));
            }
            match verb {
                None => {
                    allow(&req, GET)?;
                    let versions: Vec<Arc<Model>> = if named_version {
                        vec![model]
                    } else {
                        app.registry.versions(&model.name).cloned().collect()
                    };
                    Ok(v1::status(&versions).await)
                }
                Some("predict") => {
                    allow(&req, POST)?;
                    v1::predict(&model, req.body()).await
                }
                Some(other) => Err(ApiError::not_found(format!(
                    "V1 \":{other}\" is not supported; use \":predict\""
                ))),
            }
        }
        _ => Err(no_route(&req)),
    }
}

/// What a request is counted under, from its head alone: its model and protocol. The worker
/// asks before it reads the body (`App::observe_head`), so that a body refused for its size,
/// encoding or compression counts under the model it was for.
pub fn label(app: &Inner, method: &Method, path: &str) -> Observed {
    // The route of this method (two methods of one path may serve two models), else the
    // path's first.
    let mut same_path = app.routes.iter().filter(|r| r.path == path);
    let first = same_path.clone().next();
    if let Some(route) = same_path.find(|r| r.method == method).or(first) {
        return observed(Protocol::Route, Some(&route.model));
    }
    let trimmed = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    let mut buf = [""; MAX_SEGMENTS];
    let model = |name: &str| app.registry.get(name).map(|m| &**m);
    match segments(trimmed, &mut buf).unwrap_or_default() {
        [""] | ["openapi.json"] => observed(Protocol::Admin, None),
        ["v2", "health", ..] => observed(Protocol::Health, None),
        ["v2", "models", name, .., "ready"] => observed(Protocol::Health, model(name)),
        ["v2", "models", name, ..] => observed(Protocol::V2, model(name)),
        ["v2", ..] => observed(Protocol::V2, None),
        ["v1", "models", first, ..] => {
            let name = first.split_once(':').map_or(*first, |(name, _)| name);
            observed(Protocol::V1, model(name))
        }
        ["v1", ..] => observed(Protocol::V1, None),
        _ => observed(Protocol::Other, None),
    }
}

/// The labels of a request for `model` (or none) over `protocol`.
fn observed(protocol: Protocol, model: Option<&Model>) -> Observed {
    Observed {
        model: model.map_or(ModelId::NONE, |m| m.metric),
        protocol,
    }
}

/// The most segments a path of the V1 and V2 trees has
/// (`/v2/models/{m}/versions/{v}/infer` has 6).
const MAX_SEGMENTS: usize = 8;

/// The path's segments after the leading `/`, in `buf` (no allocation on the request path);
/// `None` when there are more than any route has.
fn segments<'a, 'b>(path: &'a str, buf: &'b mut [&'a str; MAX_SEGMENTS]) -> Option<&'b [&'a str]> {
    let mut n = 0;
    for s in path.split('/').skip(1) {
        *buf.get_mut(n)? = s;
        n += 1;
    }
    Some(&buf[..n])
}

/// The manifest route for this path: `None` when no route has this path, 405 when routes
/// have it but with other methods.
fn manifest_route<'a>(
    app: &'a Inner,
    method: &Method,
    path: &str,
) -> Result<Option<&'a Route>, ApiError> {
    let mut same_path = app.routes.iter().filter(|r| r.path == path).peekable();
    if same_path.peek().is_none() {
        return Ok(None);
    }
    let mut allowed = Vec::new();
    for r in same_path {
        if r.method == method {
            return Ok(Some(r));
        }
        allowed.push(r.method.as_str());
    }
    Err(ApiError::method_not_allowed(allowed.join(", ")))
}

fn allow(req: &Request, methods: &'static str) -> Result<(), ApiError> {
    let ok = match methods {
        GET => req.method() == Method::GET || req.method() == Method::HEAD,
        _ => req.method().as_str() == methods,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(methods))
    }
}

fn find(app: &Inner, name: &str) -> Result<Arc<Model>, ApiError> {
    lookup(&app.registry, name, None)
}

/// The model `name` in the version the path's rest names (`versions/{v}/...`, stripped),
/// or in its highest; a version it does not have is 404 naming those it has.
fn versioned<'a, 'b>(
    app: &Inner,
    name: &str,
    rest: &'b [&'a str],
) -> Result<(Arc<Model>, &'b [&'a str]), ApiError> {
    match rest {
        ["versions", v, tail @ ..] => Ok((lookup(&app.registry, name, Some(v))?, tail)),
        _ => Ok((find(app, name)?, rest)),
    }
}

/// The model `name` in `version`, or in its highest when `None`: what every protocol's
/// request names. An unknown model is 404 naming the models served, an unknown version 404
/// naming the model's versions.
pub fn lookup(
    registry: &Registry,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<Model>, ApiError> {
    let unknown = || {
        ApiError::not_found(format!(
            "unknown model \"{name}\" (this server has {})",
            registry.names()
        ))
    };
    match version {
        None => registry.get(name).cloned().ok_or_else(unknown),
        Some(v) => match registry.version(name, v) {
            Some(model) => Ok(model.clone()),
            None => {
                let model = registry.get(name).ok_or_else(unknown)?;
                Err(ApiError::not_found(format!(
                    "model {} has no version \"{v}\" (its versions: {})",
                    model.name,
                    version_list(registry, name)
                )))
            }
        },
    }
}

/// A model's versions for messages, highest first: `3, 2, 1`.
pub fn version_list(registry: &Registry, name: &str) -> String {
    registry
        .versions(name)
        .map(|m| m.version.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn no_route(req: &Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}
