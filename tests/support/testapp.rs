//! The test-only app: routes that sleep, hang their thread, hold memory, crash, panic and name
//! the worker that answered. Built by `cargo test` as an example, never installed or shipped, so no
//! production build can expose these routes.
//!
//! It runs under the real master with the real flags (`serve::main_with`). APP, when given,
//! is a text file whose words steer the factory: `fail-check` (the master's start check
//! fails: exit 4), `fail-build` (building the app fails: a reload's proof fails),
//! `fail-boot` (post_fork fails: the worker cannot boot, exit 3).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serve::app::http::{Method, StatusCode};
use serve::app::{
    App, AppError, AppFactory, BoxFuture, Bytes, Context, Request, Response, error_response,
    json_response,
};

/// What `/hold` keeps.
static HELD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

struct TestFactory {
    words: String,
    generation: String,
}

impl TestFactory {
    fn fails(&self, what: &str) -> Result<(), AppError> {
        if self.words.split_whitespace().any(|w| w == what) {
            return Err(AppError::new(format!("the test app was told to {what}")));
        }
        Ok(())
    }
}

impl AppFactory for TestFactory {
    fn describe(&self) -> String {
        format!("test app ({})", self.generation)
    }
    fn check(&self) -> Result<(), AppError> {
        self.fails("fail-check")
    }
    fn build(&self) -> Result<Arc<dyn App>, AppError> {
        self.fails("fail-build")?;
        Ok(Arc::new(TestApp {
            generation: self.generation.clone(),
            sleeping: Arc::new(AtomicUsize::new(0)),
        }))
    }
    fn post_fork(&self) -> Result<(), AppError> {
        self.fails("fail-boot")
    }
}

struct TestApp {
    generation: String,
    /// Requests of this worker now inside /sleep.
    sleeping: Arc<AtomicUsize>,
}

fn query_ms(req: &Request, default: u64) -> u64 {
    req.uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn json(value: serde_json::Value) -> Response {
    json_response(StatusCode::OK, value.to_string())
}

impl App for TestApp {
    fn call(&self, req: Request, cx: Context) -> BoxFuture<Response> {
        let pid = std::process::id();
        let generation = self.generation.clone();
        let sleeping = self.sleeping.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            match (req.method().clone(), path.as_str()) {
                // A fixed answer, as the benchmark's bare-hyper ceiling gives: measures what
                // the server itself costs per request.
                (_, "/static") => json_response(StatusCode::OK, Bytes::from_static(STATIC)),
                (Method::GET, "/" | "/pid") => {
                    json(serde_json::json!({"pid": pid, "generation": generation}))
                }
                (Method::GET, "/sleep") => {
                    let ms = query_ms(&req, 100);
                    sleeping.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    sleeping.fetch_sub(1, Ordering::SeqCst);
                    json(serde_json::json!({"pid": pid, "slept_ms": ms}))
                }
                (Method::GET, "/hang") => {
                    // Blocks the worker's event loop: its heartbeat stops.
                    std::thread::sleep(Duration::from_millis(query_ms(&req, 3_600_000)));
                    json(serde_json::json!({"pid": pid}))
                }
                (Method::GET, "/sleeping") => json(
                    serde_json::json!({"pid": pid, "sleeping": sleeping.load(Ordering::SeqCst)}),
                ),
                (Method::GET, "/hold") => {
                    // Keeps `mib` MiB written and resident for the worker's life, as an
                    // engine's arena keeps the peak of its largest call.
                    let mib = req
                        .uri()
                        .query()
                        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("mib=")))
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(64);
                    HELD.lock().unwrap().push(vec![1u8; mib << 20]);
                    json(serde_json::json!({"pid": pid, "held_mib": mib}))
                }
                (Method::GET, "/crash") => std::process::exit(13),
                (Method::GET, "/panic") => panic!("the test app panicked on purpose"),
                (Method::POST, "/echo") => {
                    let mut res = Response::new(req.body().clone());
                    res.headers_mut().insert(
                        "x-body-length",
                        req.body().len().to_string().parse().unwrap(),
                    );
                    res
                }
                // What the server tells the app: the server stops, this worker drains.
                (Method::GET, "/ready") if cx.stopping => {
                    error_response(StatusCode::SERVICE_UNAVAILABLE, "stopping")
                }
                (Method::GET, "/ready") => {
                    json(serde_json::json!({"ready": true, "draining": cx.draining}))
                }
                (Method::GET, "/client") => json(serde_json::json!({
                    "client": cx.client.map(|c| c.ip().to_string()),
                    "request_id": cx.request_id.to_string(),
                })),
                _ => error_response(StatusCode::NOT_FOUND, format!("no route {path}")),
            }
        })
    }
}

fn make_app(config: &serve::Config) -> Result<Arc<dyn AppFactory>, String> {
    let words = match &config.app {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the test app's file {}: {e}", path.display()))?,
        None => String::new(),
    };
    // The file's first line names the generation, so tests can tell reloads apart.
    let generation = words.lines().next().unwrap_or("").trim().to_string();
    Ok(Arc::new(TestFactory { words, generation }))
}

const STATIC: &[u8] =
    br#"{"predictions":[{"label":0,"probabilities":[0.98165685,0.018343145,1.4395042e-8]}]}"#;

fn main() {
    std::process::exit(serve::main_with(make_app));
}
