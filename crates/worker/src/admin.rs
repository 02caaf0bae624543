//! `/metrics` and `/status`: what every worker can tell of the whole server.
//!
//! Both read shared memory only (the scoreboard and the metrics region the master mapped), so
//! whichever worker a scrape reaches answers for all of them, and a worker whose app failed to
//! load still answers. They are served on the main listeners, or only on `--metrics-bind`'s
//! when it is given.

use std::fmt::Write as _;

use http::header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Method, StatusCode};
use serve_app::{Bytes, Response, error_response};
use serve_log::time::Utc;
use serve_metrics::{Format, Region, ReloadResult};

use crate::scoreboard::{Slot, State, now_ms};

/// The paths this module answers.
pub(crate) fn is_admin(path: &str) -> bool {
    matches!(path, "/metrics" | "/status")
}

/// The server's health, which a `--metrics-bind` listener passes to the app too: probes
/// reach it where clients must present certificates or tokens (Kubernetes' `grpc:` probes
/// have no TLS). REST's `/v2/health/live` and `/ready`, and grpc.health.v1.
pub(crate) fn is_health(path: &str) -> bool {
    matches!(path, "/v2/health/live" | "/v2/health/ready")
        || path.starts_with("/grpc.health.v1.Health/")
}

/// Answers a request for `/metrics` or `/status`, or any request on a `--metrics-bind`
/// listener (404 for other paths).
pub(crate) fn answer(
    parts: &http::request::Parts,
    board: &[Slot],
    certificate: Option<(&str, i64)>,
) -> Response {
    if !is_admin(parts.uri.path()) {
        error_response(
            StatusCode::NOT_FOUND,
            format!(
                "no route for {} {}: this address (--metrics-bind) serves only /metrics, /status \
                 and the server's health (/v2/health/live, /v2/health/ready, grpc.health.v1)",
                parts.method,
                parts.uri.path()
            ),
        )
    } else if let Some(region) = serve_metrics::region() {
        admin(parts, board, region, certificate)
    } else {
        error_response(
            StatusCode::NOT_FOUND,
            "no metrics here: this process runs without a master",
        )
    }
}

fn admin(
    parts: &http::request::Parts,
    board: &[Slot],
    region: Region,
    certificate: Option<(&str, i64)>,
) -> Response {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut res = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} {} is not allowed; use GET",
                parts.method,
                parts.uri.path()
            ),
        );
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        res
    } else {
        let accept = parts.headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        match parts.uri.path() {
            "/metrics" => metrics(accept, board, region, certificate),
            _ => status(accept, board, region),
        }
    }
}

fn text(content_type: &'static str, body: String) -> Response {
    let mut res = Response::new(Bytes::from(body));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

fn metrics(
    accept: Option<&str>,
    board: &[Slot],
    region: Region,
    certificate: Option<(&str, i64)>,
) -> Response {
    let format = Format::from_accept(accept);
    let mut by_state = STATES.map(|state| (state, 0u64));
    let mut connections = Vec::new();
    for (i, slot) in live(board) {
        let Some(label) = state_label(slot.state()) else {
            continue;
        };
        if let Some((_, n)) = by_state.iter_mut().find(|(state, _)| *state == label) {
            *n += 1;
        }
        connections.push((i, u64::from(slot.connections())));
    }
    let workers = serve_metrics::render::Workers {
        by_state: &by_state,
        connections: &connections,
        certificate,
    };
    let body = serve_metrics::render::render(&region, format, workers);
    text(format.content_type(), body)
}

/// The `state` label of `serve_workers` and `/status`, in that order; `None` for a free slot.
const STATES: [&str; 3] = ["booting", "serving", "draining"];

fn state_label(state: State) -> Option<&'static str> {
    match state {
        State::Booting => Some(STATES[0]),
        State::Ready => Some(STATES[1]),
        State::Draining => Some(STATES[2]),
        State::Free => None,
    }
}

/// The slots with a worker (its pid recorded), with their index in the metrics region.
fn live(board: &[Slot]) -> impl Iterator<Item = (usize, &Slot)> {
    board.iter().enumerate().filter(|(_, s)| s.pid() != 0)
}

/// One worker as `/status` shows it.
struct Row {
    pid: i32,
    state: &'static str,
    generation: u64,
    age_s: f64,
    requests: u64,
    in_flight: u64,
    connections: u32,
    heartbeat_s: f64,
    models: Vec<String>,
}

fn rows(board: &[Slot], region: Region) -> Vec<Row> {
    let now = now_ms();
    let preloaded = region.preloaded();
    live(board)
        .filter_map(|(i, s)| Some((i, s, state_label(s.state())?)))
        .map(|(i, s, state)| Row {
            pid: s.pid(),
            state,
            generation: s.generation(),
            age_s: s.age_ms(now) as f64 / 1000.0,
            requests: s.requests(),
            in_flight: s.in_flight(),
            connections: s.connections(),
            heartbeat_s: s.silence_ms(now) as f64 / 1000.0,
            models: region.names_in(region.loaded_in(i) | preloaded),
        })
        .collect()
}

fn status(accept: Option<&str>, board: &[Slot], region: Region) -> Response {
    let master = region.master();
    let now_unix = serve_metrics::region::unix_ms();
    let uptime = now_unix.saturating_sub(master.started_unix_ms) as f64 / 1000.0;
    let rows = rows(board, region);
    let reload = master.last_reload.map(|(result, at)| {
        let result = if result == ReloadResult::Ok {
            "ok"
        } else {
            "failed"
        };
        (result, at)
    });
    // Each model, its engine, and how many live workers have built it.
    let models: Vec<(String, String, usize)> = region
        .registered()
        .map(|id| {
            let name = region.model_name(id);
            let workers = rows.iter().filter(|r| r.models.contains(&name)).count();
            (name, region.engine(id), workers)
        })
        .collect();
    let wants_json = accept.is_some_and(|a| a.contains("application/json"));
    if wants_json {
        let workers: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "pid": r.pid,
                    "state": r.state,
                    "generation": r.generation,
                    "age_seconds": r.age_s,
                    "requests": r.requests,
                    "in_flight": r.in_flight,
                    "connections": r.connections,
                    "last_heartbeat_seconds_ago": r.heartbeat_s,
                    "models_loaded": r.models,
                })
            })
            .collect();
        let body = serde_json::json!({
            "server": "serve",
            "version": env!("CARGO_PKG_VERSION"),
            "master": {
                "pid": master.pid,
                "started": rfc3339(master.started_unix_ms),
                "uptime_seconds": uptime,
                "generation": master.generation,
                "last_reload": reload.map(|(result, at)| serde_json::json!({
                    "result": result,
                    "at": rfc3339(at),
                })),
            },
            "models": models.iter().map(|(name, engine, loaded)| serde_json::json!({
                "name": name,
                "engine": engine,
                "loaded_in_workers": loaded,
            })).collect::<Vec<_>>(),
            "workers": workers,
        });
        return text(serve_app::APPLICATION_JSON, body.to_string());
    }
    let mut html = String::with_capacity(4096);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\">\
         <title>serve status</title><style>{STYLE}</style></head><body>\
         <h1>serve {version} <small>status</small></h1>\
         <dl id=\"master\"><dt>master pid</dt><dd>{pid}</dd>\
         <dt>started</dt><dd>{started}</dd><dt>uptime</dt><dd>{uptime}</dd>\
         <dt>generation</dt><dd>{generation}</dd><dt>last reload</dt><dd>{reload}</dd></dl>\
         <table id=\"workers\"><thead><tr><th>pid</th><th>state</th><th>generation</th>\
         <th>age</th><th>requests</th><th>in flight</th><th>connections</th>\
         <th>last heartbeat</th>\
         <th>models loaded</th></tr></thead><tbody>",
        version = env!("CARGO_PKG_VERSION"),
        pid = master.pid,
        started = rfc3339(master.started_unix_ms),
        uptime = human(uptime),
        generation = master.generation,
        reload = match reload {
            Some((result, at)) => format!("{result} at {}", rfc3339(at)),
            None => "none yet".to_string(),
        },
    );
    for r in &rows {
        let models = if r.models.is_empty() {
            "none yet (loaded on the first request)".to_string()
        } else {
            serve_app::escape_html(&r.models.join(", "))
        };
        let _ = write!(
            html,
            "<tr data-pid=\"{pid}\"><td>{pid}</td><td class=\"{state}\">{state}</td>\
             <td>{generation}</td><td>{age}</td><td>{requests}</td><td>{in_flight}</td>\
             <td>{connections}</td><td>{heartbeat:.1} s ago</td><td>{models}</td></tr>",
            pid = r.pid,
            state = r.state,
            generation = r.generation,
            age = human(r.age_s),
            requests = r.requests,
            in_flight = r.in_flight,
            connections = r.connections,
            heartbeat = r.heartbeat_s,
        );
    }
    html.push_str(
        "</tbody></table><table id=\"models\"><thead><tr><th>model</th><th>engine</th>\
         <th>loaded in</th></tr></thead><tbody>",
    );
    for (name, engine, loaded) in &models {
        let _ = write!(
            html,
            "<tr><td>{name}</td><td>{engine}</td><td>{loaded} of {workers} workers</td></tr>",
            name = serve_app::escape_html(name),
            engine = serve_app::escape_html(engine),
            workers = rows.len(),
        );
    }
    html.push_str(
        "</tbody></table><p>This page refreshes every 5 s. The same as JSON: \
         <code>curl -H 'Accept: application/json' …/status</code>; counters for Prometheus: \
         <a href=\"metrics\">/metrics</a>.</p></body></html>",
    );
    text("text/html; charset=utf-8", html)
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;\
padding:0 1em;color:#1d2330}h1 small{color:#6a7385;font-weight:normal}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em}dt{color:#6a7385}\
dd{margin:0}table{border-collapse:collapse;width:100%;margin-top:1em}\
th,td{text-align:left;padding:.35em .7em;border-bottom:1px solid #e2e5ea}\
th{background:#f4f6f8}td.serving{color:#176c2e}td.draining{color:#9a5b00}\
td.booting{color:#2d5db3}code{background:#f4f6f8;padding:0 .3em}";

/// Seconds as people read an age: `42 s`, `3 min 20 s`, `2 h 05 min`, `3 d 4 h`.
fn human(s: f64) -> String {
    let s = s as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// Unix milliseconds as an RFC 3339 UTC time to the second (`2026-11-30T18:37:15Z`).
fn rfc3339(unix_ms: u64) -> String {
    let t = Utc::from_unix((unix_ms / 1000) as i64, 0);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_write_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_150_235_000), "2026-12-01T18:37:15Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(human(59.9), "59 s");
        assert_eq!(human(200.0), "3 min 20 s");
        assert_eq!(human(7500.0), "2 h 05 min");
    }

    #[test]
    fn status_lists_live_workers_and_escapes_model_names() {
        let region = Region::private(4);
        let id = region.register_model("<iris>");
        region.set_engine(id, "onnxruntime");
        let board: Vec<Slot> = (0..4).map(|_| Slot::default()).collect();
        board[1].claim(1);
        board[1].set_pid(4242);
        board[1].set_state(State::Ready);
        board[1].connection_accepted();
        serve_metrics::Recorder::for_slot(region, 1).loaded(id, std::time::Duration::ZERO);
        let res = status(None, &board, region);
        let html = std::str::from_utf8(res.body()).unwrap();
        assert!(html.contains("<tr data-pid=\"4242\">"), "{html}");
        assert!(html.contains("&lt;iris&gt;"), "{html}");
        assert_eq!(html.matches("data-pid").count(), 1);
        let res = status(Some("application/json"), &board, region);
        let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(v["workers"][0]["pid"], 4242);
        assert_eq!(v["workers"][0]["state"], "serving");
        assert_eq!(v["workers"][0]["models_loaded"][0], "<iris>");
        assert_eq!(v["workers"][0]["connections"], 1);
        assert_eq!(v["models"][0]["name"], "<iris>");
        assert_eq!(v["models"][0]["engine"], "onnxruntime");
        assert_eq!(v["models"][0]["loaded_in_workers"], 1);
        assert!(
            html.contains("<tr><td>&lt;iris&gt;</td><td>onnxruntime</td><td>1 of 1 workers"),
            "{html}"
        );
    }
}
