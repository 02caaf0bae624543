//! The boundary between the server and the application it runs: the WSGI analogue.
//!
//! The server crates (arbiter, worker) know nothing of models, and the model crate knows
//! nothing of processes. Between them sit two small traits:
//!
//! - [`AppFactory`] describes an application that can be built: the master calls
//!   [`AppFactory::check`] once at start (cheap: files exist and parse) and each worker calls
//!   [`AppFactory::build`] on its first request (or the master calls it once before forking,
//!   with `--preload`, and the workers share the result copy-on-write).
//! - [`App`] answers requests. It is built once per worker and shared by every connection of
//!   that worker, so it must be `Send + Sync`.
//!
//! Requests reach the app with their body already read in full, decompressed and bounded by
//! the server's limits; the app answers a whole response. A panic inside [`App::call`] is
//! caught by the worker and answered 500: no request can kill a worker.
//!
//! A request the app claims by its head ([`App::streams`], gRPC's) goes to [`App::stream`]
//! instead: its body arrives as the client sends it, none of the HTTP body limits,
//! decompression or `Connection: close` draining apply to it, and the answer is a body that
//! may stream and end with trailers. The app bounds what it reads itself.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

pub use bytes::Bytes;
pub use http;
/// The shared metrics: an app tells what it answered with [`observe`] so that the worker
/// counts it under its model and protocol.
pub use serve_metrics as metrics;
pub use serve_metrics::{ModelId, Observed, Protocol};

/// A request as the app sees it: the body is complete.
pub type Request = http::Request<Bytes>;
/// A response as the app gives it.
pub type Response = http::Response<Bytes>;
/// What a streamed body fails with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync + 'static>;
/// A body that arrives or leaves in frames and may end with trailers (gRPC's status).
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>;
/// A whole body as a [`Body`].
pub fn whole_body(bytes: Bytes) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A request the app takes as it arrives ([`App::stream`]).
pub type StreamRequest = http::Request<Body>;
/// A response whose body the worker writes as the app produces it.
pub type StreamResponse = http::Response<Body>;
/// The future an app returns; it runs on the worker's runtime.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the server knows about a request beyond the HTTP message itself.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The client's address: the peer of the connection, or the first address of
    /// `X-Forwarded-For` when the peer is trusted by `--forwarded-allow-ips`.
    /// `None` on a unix socket.
    pub client: Option<SocketAddr>,
    /// This worker is draining (the server stops, or this worker retires after a reload,
    /// `--max-requests` or TTOU): it finishes what it has and takes no new connection.
    pub draining: bool,
    /// The server is stopping (TERM, INT, QUIT, or WINCH stopping every worker): readiness
    /// probes should fail so that load balancers stop sending new work here. A worker that
    /// retires while the server serves on is draining but not stopping: the server is ready.
    pub stopping: bool,
    /// The request id, from `X-Request-Id` or made by the server; echoed in the response.
    pub request_id: Arc<str>,
    /// For a streamed request ([`App::stream`]): wakes when the worker starts draining, so
    /// that a stream that would outlive it ends once it has answered what it was sent.
    /// `None` for a whole request, which is answered before the worker goes.
    pub drain: Option<DrainWatch>,
    /// Under `--model-control explicit`: asks the master to load or unload a model (Triton's
    /// repository control). `None` otherwise.
    pub repository: Option<Repository>,
}

/// A change to the models a server serves, which only the master can make (a new
/// generation of workers serves it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelChange {
    /// Read the model from the repository again (with this configuration in place of its
    /// `config.pbtxt`, if any), prove it, and serve it with the models already loaded.
    Load {
        /// The model's name in the repository.
        model: String,
        /// A configuration, in `config.pbtxt`'s text form or Triton's JSON form.
        config: Option<String>,
    },
    /// Serve the models loaded but this one.
    Unload {
        /// The model's name.
        model: String,
    },
}

impl ModelChange {
    /// `load` or `unload`.
    pub fn verb(&self) -> &'static str {
        match self {
            ModelChange::Load { .. } => "load",
            ModelChange::Unload { .. } => "unload",
        }
    }

    /// The model it changes.
    pub fn model(&self) -> &str {
        match self {
            ModelChange::Load { model, .. } | ModelChange::Unload { model } => model,
        }
    }
}

/// Why a [`ModelChange`] was not made: the status to answer and what to tell the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRefused {
    /// 400 when the model cannot be served (the proof's error), 503 when the server
    /// stops, 504 when the answer took longer than `--model-load-timeout`...
    pub status: http::StatusCode,
    /// What happened, naming the model and the fix.
    pub message: String,
}

/// Asks the master for a [`ModelChange`] and waits for its answer (see
/// [`Context::repository`]).
#[derive(Clone)]
pub struct Repository(
    Arc<dyn Fn(ModelChange) -> BoxFuture<Result<(), ChangeRefused>> + Send + Sync>,
);

impl Repository {
    /// A handle whose [`Repository::change`] is the future `ask` makes.
    pub fn new(
        ask: impl Fn(ModelChange) -> BoxFuture<Result<(), ChangeRefused>> + Send + Sync + 'static,
    ) -> Self {
        Repository(Arc::new(ask))
    }

    /// Ends when the change is served by every worker of a new generation, or refused.
    pub fn change(&self, change: ModelChange) -> BoxFuture<Result<(), ChangeRefused>> {
        (self.0)(change)
    }
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Repository")
    }
}

/// Tells a long-lived answer when its worker starts draining (see [`Context::drain`]).
#[derive(Clone)]
pub struct DrainWatch(Arc<dyn Fn() -> BoxFuture<()> + Send + Sync>);

impl DrainWatch {
    /// A watch whose [`DrainWatch::started`] is the future `started` makes.
    pub fn new(started: impl Fn() -> BoxFuture<()> + Send + Sync + 'static) -> Self {
        DrainWatch(Arc::new(started))
    }

    /// Ends when the worker starts draining (at once if it already has).
    pub fn started(&self) -> BoxFuture<()> {
        (self.0)()
    }
}

impl fmt::Debug for DrainWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DrainWatch")
    }
}

/// An application: built once per worker, answers every request of that worker.
pub trait App: Send + Sync + 'static {
    /// Answers one request. The future must not block its thread for long: work that takes
    /// more than a millisecond or so belongs on a blocking thread (`tokio::task::spawn_blocking`),
    /// so that the worker's event loop keeps serving and keeps proving it is alive.
    fn call(&self, req: Request, cx: Context) -> BoxFuture<Response>;

    /// Labels a request from its head alone, before the worker reads its body: the app calls
    /// [`observe`] with what the request will be counted under, so that a body the worker
    /// refuses (too large, an unknown encoding, compression that does not decompress) counts
    /// under the model and protocol it was for. Nothing by default; [`App::call`] may observe
    /// again.
    fn observe_head(&self, parts: &http::request::Parts) {
        let _ = parts;
    }

    /// Whether the app takes this request as it arrives, through [`App::stream`], rather
    /// than whole through [`App::call`]: decided from the head alone (gRPC's content type).
    /// None by default.
    fn streams(&self, parts: &http::request::Parts) -> bool {
        let _ = parts;
        false
    }

    /// Answers a request [`App::streams`] claimed: its body is read by the app as it comes,
    /// under limits of the app's own, and the answer may stream and end with trailers. A
    /// panic is caught as in [`App::call`].
    fn stream(&self, req: StreamRequest, cx: Context) -> BoxFuture<StreamResponse> {
        let _ = (req, cx);
        Box::pin(async {
            let res = error_response(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "this app claimed a request it does not stream",
            );
            res.map(whole_body)
        })
    }

    /// Builds now everything that would otherwise be built lazily (a model's optimized plan),
    /// so that a broken application fails here rather than on a request. Called in the master
    /// with `--preload`, and on reload in a short-lived child that proves the new application
    /// before any old worker retires.
    fn warm(&self) -> Result<(), AppError> {
        Ok(())
    }

    /// [`App::warm`] of what may be built in a process that forks afterwards (the master
    /// with `--preload`); returns what it left unbuilt because building it starts threads
    /// (a model on onnxruntime), one name each. The master has a short-lived child prove
    /// what was left, and each worker builds it right after the fork
    /// ([`App::warm_after_fork`]).
    fn warm_before_fork(&self) -> Result<Vec<String>, AppError> {
        self.warm().map(|()| Vec::new())
    }

    /// In a worker that inherited a preloaded app, right after the fork and before it
    /// accepts: builds what [`App::warm_before_fork`] left.
    fn warm_after_fork(&self) -> Result<(), AppError> {
        Ok(())
    }
}

/// A recipe for an [`App`], made from the configuration.
pub trait AppFactory: Send + Sync + 'static {
    /// A short description for logs, e.g. `model iris (examples/iris/model.onnx)`.
    fn describe(&self) -> String;

    /// What the master logs at start under the app's description, one line each: for a
    /// model app, every model with its inputs and outputs and every route, so that an
    /// operator reading the log knows what to call. Empty by default.
    fn summary(&self) -> Vec<String> {
        Vec::new()
    }

    /// The names of the models the app serves, known before any fork: the master gives each
    /// its index in the shared metrics, so that every worker counts it under the same label.
    /// An app labels what it answers with [`observe`] (the `model` from
    /// [`metrics::model_id`], resolved once when the app is built); a name not listed here
    /// counts as `_overflow`. Empty by default.
    fn models(&self) -> Vec<String> {
        Vec::new()
    }

    /// The versions of a model of [`AppFactory::models`] that keep statistics of their own
    /// (Triton's statistics extension): the master registers each in the shared metrics
    /// before any fork, and the app finds it with [`metrics::version_id`]. None by default.
    fn versions_of(&self, model: &str) -> Vec<String> {
        let _ = model;
        Vec::new()
    }

    /// The engine that runs a model of [`AppFactory::models`] (`tract`), for `/status`.
    /// None by default.
    fn engine_of(&self, model: &str) -> Option<String> {
        let _ = model;
        None
    }

    /// Cheap checks made by the master at start, before any fork: the files exist and parse.
    /// A failure here exits the server with code 4 before any worker starts.
    fn check(&self) -> Result<(), AppError>;

    /// Builds the application. Called by each worker on its first request, or once by the
    /// master before forking with `--preload`.
    fn build(&self) -> Result<Arc<dyn App>, AppError>;

    /// Runs in each worker right after the fork, before it accepts (gunicorn's `post_fork`):
    /// per-process setup such as seeding a random generator or opening a per-worker file.
    /// An error stops the worker with exit code 3; during the first boot the whole server
    /// then exits 3, later the worker is respawned with backoff.
    fn post_fork(&self) -> Result<(), AppError> {
        Ok(())
    }
}

/// Why an application could not be checked, built or warmed. The message is shown to the
/// operator as it is, so it names the cause and, where there is one, the fix.
#[derive(Debug, Clone)]
pub struct AppError {
    message: String,
    host: bool,
}

impl AppError {
    /// An error with this message: the app cannot be served as it is.
    pub fn new(message: impl Into<String>) -> Self {
        AppError {
            message: message.into(),
            host: false,
        }
    }

    /// The app is sound but this host lacks what it needs to run it (a library that is
    /// missing, cannot be loaded or is too old): the fix is on the host, not in the app, and
    /// the start exits as a configuration error does (1), not as an app that cannot load (4).
    pub fn host(message: impl Into<String>) -> Self {
        AppError {
            message: message.into(),
            host: true,
        }
    }

    /// Whether the host, not the app, is at fault (see [`AppError::host`]).
    pub fn is_host(&self) -> bool {
        self.host
    }

    /// The same fault, its message prefixed (which model, which file).
    pub fn context(self, prefix: impl fmt::Display) -> Self {
        AppError {
            message: format!("{prefix}: {}", self.message),
            host: self.host,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}

impl From<String> for AppError {
    fn from(message: String) -> Self {
        AppError::new(message)
    }
}

impl From<&str> for AppError {
    fn from(message: &str) -> Self {
        AppError::new(message)
    }
}

/// The model call that answered a request, for the access log (`%(I)s` its time in
/// microseconds, `%(R)s` its rows). With batching, the call may have answered several
/// requests: its rows are theirs together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inference {
    /// Rows the model ran in that call, after merging requests.
    pub rows: usize,
    /// Time of the call (inputs stacked included).
    pub took: std::time::Duration,
}

/// What the app said of the request it answered: the labels it counts under and the model
/// call that answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Model and protocol (no model and `other` unless the app says).
    pub observed: Observed,
    /// The model call, when one ran.
    pub call: Option<Inference>,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            observed: Observed {
                model: ModelId::NONE,
                protocol: Protocol::Other,
            },
            call: None,
        }
    }
}

// Task-local rather than a response extension: an extension costs the request an
// allocation or three (the map and a box per value); this costs nothing, and the worker
// reads it in the same task, right after the app's future ends.
tokio::task_local! {
    static SEEN: std::cell::Cell<Seen>;
}

/// Labels the request being answered: its model and protocol, for `serve_requests_total` and
/// the other request metrics. Call it from the future [`App::call`] returns (the last call
/// wins, so an app wrapping another labels after the inner one answered). Outside a
/// request (a unit test calling the app directly) it does nothing.
pub fn observe(observed: Observed) {
    let _ = SEEN.try_with(|s| {
        s.set(Seen {
            observed,
            ..s.get()
        })
    });
}

/// Records the model call that answered the request being answered (the access log's
/// `%(I)s` and `%(R)s`). Like [`observe`], from the future [`App::call`] returns.
pub fn observe_call(call: Inference) {
    let _ = SEEN.try_with(|s| {
        s.set(Seen {
            call: Some(call),
            ..s.get()
        })
    });
}

/// What the request being answered was labelled so far (the worker reads it; `None` outside
/// a request).
pub fn seen() -> Option<Seen> {
    SEEN.try_with(std::cell::Cell::get).ok()
}

/// Runs a request's future where the app can label it (the worker's side of [`observe`]):
/// inside it, [`seen`] tells what the app said so far. If the future is dropped before its
/// end, it is dropped inside the scope: what it drops can still read [`seen`].
pub async fn observing<F: Future>(answer: F) -> F::Output {
    SEEN.scope(std::cell::Cell::new(Seen::default()), answer)
        .await
}

/// The content type of every JSON answer.
pub const APPLICATION_JSON: &str = "application/json";

/// The message a panic carried (`panic!("...")` gives a `&str` or a `String`), for the
/// error line or answer that replaces it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Text made safe for HTML content and for attribute values in double or single quotes:
/// what the server's own pages (the front page, `/status`) do to every name from a user file.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON response with this status and an already serialised body.
pub fn json_response(status: http::StatusCode, body: impl Into<Bytes>) -> Response {
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(APPLICATION_JSON),
    );
    res
}

/// The error answer every part of the server gives: `{"error": "..."}` with this status.
pub fn error_response(status: http::StatusCode, message: impl fmt::Display) -> Response {
    let body = serde_json::json!({ "error": message.to_string() }).to_string();
    json_response(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_label_wins_and_none_leaks_out_of_its_request() {
        let v2 = Observed {
            model: ModelId::NONE,
            protocol: Protocol::V2,
        };
        let route = Observed {
            protocol: Protocol::Route,
            ..v2
        };
        // Outside a request: nothing to label, and no panic.
        observe(v2);
        assert_eq!(seen(), None);
        let said = observing(async {
            observe(v2);
            let call = Inference {
                rows: 3,
                took: std::time::Duration::from_micros(9),
            };
            observe_call(call);
            tokio::task::yield_now().await;
            observe(route);
            seen()
        })
        .await
        .expect("inside a request");
        assert_eq!(said.observed, route);
        assert_eq!(said.call.map(|c| c.rows), Some(3));
        let fresh = observing(async { seen() }).await;
        assert_eq!(fresh, Some(Seen::default()));
    }

    #[test]
    fn error_response_is_json_with_the_message() {
        let res = error_response(http::StatusCode::BAD_REQUEST, "input \"x\": \"quoted\"");
        assert_eq!(res.status(), 400);
        assert_eq!(res.headers()[http::header::CONTENT_TYPE], APPLICATION_JSON);
        let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(v["error"], "input \"x\": \"quoted\"");
    }
}
