//! One request, from hyper's parsed head to the response: limits, body, app, counters, log.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderValue};
use http::{HeaderName, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use serve_app::{Context, ModelId, Observed, Protocol, error_response};

use crate::conn::ConnWatch;
use crate::drain::Reason;
use crate::{Role, Shared, admin, auth, body, catch, limits};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The hyper service of one connection.
#[derive(Clone)]
pub(crate) struct Service {
    shared: Arc<Shared>,
    watch: Arc<ConnWatch>,
    peer: Option<SocketAddr>,
    /// What the listener it came on serves.
    role: Role,
}

impl Service {
    pub(crate) fn new(
        shared: Arc<Shared>,
        watch: Arc<ConnWatch>,
        peer: Option<SocketAddr>,
        role: Role,
    ) -> Self {
        Service {
            shared,
            watch,
            peer,
            role,
        }
    }
}

/// An answer's body: whole (every HTTP answer), or streamed by the app ([`serve_app::App::stream`]).
pub(crate) type Answer = Either<Full<Bytes>, serve_app::Body>;

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Answer>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Answer>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        // The whole request runs where the app can label it (serve_app::observe), so that even
        // a request whose future hyper drops is counted under what it was.
        Box::pin(async move { Ok(serve_app::observing(this.handle(req)).await) })
    }
}

/// A request from its head on: whatever ends it (its answer, or hyper dropping its future
/// because the client left or reset the stream), it is counted once, under the labels the
/// app gave, and the worker's and the connection's in-flight counts come back down.
struct InFlight<'a> {
    shared: &'a Shared,
    watch: &'a ConnWatch,
    started: Instant,
    /// The answer's status, once there is one; none: the client left first (counted as 499,
    /// nginx's "client closed request").
    status: Option<u16>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let Observed { model, protocol } = serve_app::seen().unwrap_or_default().observed;
        if let Some(r) = &self.shared.recorder {
            let status = self.status.unwrap_or(CLIENT_CLOSED_REQUEST);
            r.request(model, protocol, status, self.started.elapsed());
        }
        self.shared.slot.request_finished();
        self.watch.request_finished();
    }
}

/// nginx's status for a request whose client closed the connection before the answer.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// What the access log needs of a request whose parts went to the app.
struct Logged {
    method: http::Method,
    uri: http::Uri,
    version: Version,
    headers: http::HeaderMap,
    /// The name of the bearer token the request carried (`--auth-token-file`).
    user: Option<String>,
}

impl Service {
    async fn handle(self, req: Request<Incoming>) -> Response<Answer> {
        let started = Instant::now();
        let shared = &*self.shared;
        let http2 = req.version() == Version::HTTP_2;
        self.watch.request_started(http2);
        shared
            .slot
            .request_started(req.method().as_str(), req.uri().path());
        let mut in_flight = InFlight {
            shared,
            watch: &self.watch,
            started,
            status: None,
        };

        let (mut parts, incoming) = req.into_parts();
        let request_id = shared.request_id(&parts.headers);
        let client = self.client(&parts.headers);
        let mut logged = shared.access_log.then(|| Logged {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            user: None,
        });
        let admin = (self.role == Role::Metrics && !admin::is_health(parts.uri.path()))
            || (self.role == Role::Main
                && shared.admin_on_main()
                && admin::is_admin(parts.uri.path()));
        // The app labels the request from its head, so that a refusal of its body counts under
        // the model and protocol it was for.
        let app = if admin {
            serve_app::observe(Observed {
                model: ModelId::NONE,
                protocol: Protocol::Admin,
            });
            None
        } else {
            Some(shared.app.get().await)
        };
        // What the app is told of the request, read when it is called.
        let context = |drain| Context {
            client,
            draining: shared.drain.is_draining(),
            stopping: shared.slot.server_stopping(),
            request_id: request_id.clone(),
            drain,
            repository: shared.repository.clone(),
        };
        if let Some(Ok(app)) = &app {
            app.observe_head(&parts);
        }
        // Tokens, once the app labelled the request: a refusal counts under its model and
        // protocol.
        if let Some(tokens) = &shared.tokens
            && self.role != Role::Metrics
            && !auth::is_open(parts.uri.path())
        {
            match tokens.check(&parts.headers) {
                Ok(name) => {
                    if let Some(logged) = &mut logged {
                        logged.user = Some(name.to_owned());
                    }
                }
                Err(refusal) => {
                    let grpc = matches!(&app, Some(Ok(app)) if app.streams(&parts));
                    let mut res = unauthorized(refusal, grpc);
                    self.finish(res.headers_mut(), &request_id);
                    in_flight.status = Some(StatusCode::UNAUTHORIZED.as_u16());
                    if let Some(logged) = logged {
                        log_access(
                            &logged,
                            client,
                            (401, Some(res.body().len() as u64), res.headers()),
                            started,
                            &request_id,
                        );
                    }
                    return res.map(|body| Either::Left(Full::new(body)));
                }
            }
        }
        if let Some(Ok(app)) = &app
            && app.streams(&parts)
        {
            // Read and bounded by the app as it arrives, answered as it is produced: no
            // body limits, decompression or `Connection: close` here (see serve_app).
            let cx = context(Some(shared.drain_watch()));
            let req = Request::from_parts(parts, incoming.map_err(Into::into).boxed_unsync());
            let mut res = self.stream_app(app, req, cx).await;
            let status = grpc_equivalent(&res);
            self.finish(res.headers_mut(), &request_id);
            in_flight.status = Some(status);
            if let Some(logged) = logged {
                log_access(
                    &logged,
                    client,
                    (status, None, res.headers()),
                    started,
                    &request_id,
                );
            }
            return res.map(Either::Right);
        }
        let min = usize::try_from(shared.config.compress_min_size).unwrap_or(usize::MAX);
        let coding = (min > 0)
            .then(|| crate::compress::accepted(&parts.headers))
            .flatten();
        let mut res = match limits::check_head(&parts, &shared.config) {
            _ if self.role == Role::Grpc => {
                serve_app::observe(Observed {
                    model: ModelId::NONE,
                    protocol: Protocol::Other,
                });
                error_response(
                    StatusCode::NOT_FOUND,
                    "this address (--grpc-bind) serves gRPC only: HTTP/2 with content-type \
                     application/grpc; REST, the front page and the probes are on the --bind \
                     addresses",
                )
            }
            Err(res) => res,
            Ok(()) => match body::read(&mut parts, incoming, &shared.config).await {
                Err(res) => res,
                Ok(body) => match app {
                    None => admin::answer(
                        &parts,
                        shared.board.in_use(),
                        shared.certificate.as_ref().map(|(f, t)| (f.as_str(), *t)),
                    ),
                    Some(app) => self.call_app(app, parts, body, context(None)).await,
                },
            },
        };

        if min > 0 {
            crate::compress::answer(&mut res, coding, min).await;
        }
        self.finish(res.headers_mut(), &request_id);
        if !http2 {
            let recycle = !shared.drain.is_draining() && self.watch.past_age();
            if recycle
                && self.watch.recycle()
                && let Some(r) = &shared.recorder
            {
                r.connection_recycled();
            }
            if recycle || shared.drain.is_draining() {
                res.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
        }
        // Counted (when `in_flight` drops, as this returns) before hyper writes the answer:
        // a scrape that follows sees it.
        let status = res.status().as_u16();
        in_flight.status = Some(status);
        if let Some(logged) = logged {
            let bytes = Some(res.body().len() as u64);
            log_access(
                &logged,
                client,
                (status, bytes, res.headers()),
                started,
                &request_id,
            );
        }
        res.map(|body| Either::Left(Full::new(body)))
    }

    /// What every answer gets: its request id, and its count towards `--max-requests`.
    fn finish(&self, headers: &mut http::HeaderMap, id: &str) {
        let shared = &*self.shared;
        if let Ok(v) = HeaderValue::from_str(id) {
            headers.insert(X_REQUEST_ID.clone(), v);
        }
        let served = shared.served.fetch_add(1, Relaxed) + 1;
        if shared.max_requests > 0
            && served >= shared.max_requests
            && shared.retire(Reason::MaxRequests, serve_metrics::Cause::MaxRequests)
        {
            tracing::info!(
                "Autorestarting worker after current request ({served} requests, --max-requests)."
            );
        }
    }

    async fn stream_app(
        &self,
        app: &Arc<dyn serve_app::App>,
        req: serve_app::StreamRequest,
        cx: Context,
    ) -> serve_app::StreamResponse {
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        match catch::stream(app.as_ref(), req, cx).await {
            Ok(res) => res,
            Err(panic) => {
                tracing::error!("the app panicked on {method} {path}: {panic}");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error: the app panicked: {panic}"),
                )
                .map(serve_app::whole_body)
            }
        }
    }

    async fn call_app(
        &self,
        app: Result<&Arc<dyn serve_app::App>, serve_app::AppError>,
        parts: http::request::Parts,
        body: Bytes,
        cx: Context,
    ) -> serve_app::Response {
        let app = match app {
            Ok(app) => app,
            Err(e) => {
                tracing::error!("app failed to load: {e}");
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the app failed to load in this worker: {e}"),
                );
            }
        };
        let (method, uri) = (parts.method.clone(), parts.uri.clone());
        let req = serve_app::Request::from_parts(parts, body);
        match catch::call(app.as_ref(), req, cx).await {
            Ok(res) => res,
            Err(panic) => {
                tracing::error!("the app panicked on {method} {}: {panic}", uri.path());
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error: the app panicked: {panic}"),
                )
            }
        }
    }

    /// The client's address: the peer, or the first `X-Forwarded-For` entry from a trusted peer.
    fn client(&self, headers: &http::HeaderMap) -> Option<SocketAddr> {
        let peer = self.peer?;
        if !self.shared.config.forwarded_allow_ips.trusts(peer.ip()) {
            return Some(peer);
        }
        let forwarded = headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        Some(forwarded.map_or(peer, |ip| SocketAddr::new(ip, 0)))
    }
}

/// The status, the body's length when known and the headers of an answer.
type Answered<'a> = (u16, Option<u64>, &'a http::HeaderMap);

fn log_access(
    req: &Logged,
    client: Option<SocketAddr>,
    (status, bytes, response_headers): Answered<'_>,
    started: Instant,
    request_id: &str,
) {
    let seen = serve_app::seen().unwrap_or_default();
    let model = match (seen.observed.model, serve_metrics::region()) {
        (ModelId::NONE, _) | (_, None) => String::new(),
        (id, Some(region)) => region.model_name(id),
    };
    let call = seen.call.map(|c| (c.rows, c.took));
    let remote = match client {
        Some(a) => a.ip().to_string(),
        None => "-".to_string(),
    };
    let protocol = match req.version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    serve_log::access(&serve_log::AccessRecord {
        remote: &remote,
        method: req.method.as_str(),
        path: req.uri.path(),
        query: req.uri.query().unwrap_or(""),
        protocol,
        status,
        bytes: bytes.unwrap_or(0),
        duration: started.elapsed(),
        request_headers: &req.headers,
        response_headers,
        request_id,
        model: &model,
        call,
        user: req.user.as_deref(),
    });
}

/// The answer to a request without a valid bearer token: 401 with `WWW-Authenticate` and the
/// JSON error, or, for a gRPC call, UNAUTHENTICATED in a trailers-only answer.
fn unauthorized(refusal: auth::Refusal, grpc: bool) -> Response<Bytes> {
    if grpc {
        let mut res = Response::new(Bytes::new());
        let h = res.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from_static("16"));
        h.insert("grpc-message", HeaderValue::from_static(refusal.message()));
        return res;
    }
    let mut res = error_response(StatusCode::UNAUTHORIZED, refusal.message());
    let challenge = match refusal {
        auth::Refusal::Missing => "Bearer",
        auth::Refusal::Wrong => "Bearer error=\"invalid_token\"",
    };
    res.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    res
}

/// The HTTP status that stands for a streamed answer in the metrics and the access log: a
/// gRPC error known when the head is written (tonic answers errors in the head, "trailers
/// only") as the status its REST twin answers; otherwise the HTTP status (200 for a call
/// whose own status follows in the trailers). The access log's `%({grpc-status}o)s` gives
/// the gRPC code itself.
fn grpc_equivalent(res: &serve_app::StreamResponse) -> u16 {
    let code = res
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u8>().ok());
    match code {
        None | Some(0) => res.status().as_u16(),
        Some(1) => CLIENT_CLOSED_REQUEST,
        // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
        Some(3 | 9 | 11) => 400,
        Some(4) => 504,
        Some(5) => 404,
        Some(6) => 409,
        Some(7) => 403,
        Some(8) => 429,
        Some(12) => 501,
        Some(14) => 503,
        Some(16) => 401,
        Some(_) => 500,
    }
}
