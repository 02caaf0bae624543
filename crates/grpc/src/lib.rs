//! `serve-grpc`: the Open Inference Protocol over gRPC, on the worker's own connections.
//!
//! Triton's `inference.GRPCInferenceService` (the KServe V2 RPCs and what tritonclient and
//! Seldon call besides), `grpc.health.v1.Health` and server reflection, answered from the
//! same registry and runtime as the REST protocols of `serve-model`. The worker hands this
//! crate the requests it claims by their head ([`serve_app::App::streams`]: HTTP/2 with a
//! `content-type` of `application/grpc`) with their body unread: gRPC frames its own
//! messages, compresses them one by one (`grpc-encoding`) and ends its answer with
//! trailers, so none of the HTTP body limits, decompression or `Connection: close`
//! draining applies. This crate bounds a message itself ([`limit`]), before tonic's decoder
//! would.
//!
//! - [`GrpcAppFactory`] / [`GrpcApp`]: the model app with gRPC beside its REST routes.
//! - [`inference`]: the GRPCInferenceService.
//! - [`tensors`]: a ModelInferRequest's tensors into the runtime's, its outputs back.
//! - [`status`]: every REST error as its gRPC status; `grpc-timeout`.
//! - [`health`]: grpc.health.v1, SERVING exactly when `/v2/health/ready` is 200.
//! - [`limit`]: the message limit (`--max-body-size`), checked on each frame's header.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::BodyExt;
use serve_app::{
    App, AppError, AppFactory, BoxFuture, Context, Request, Response, StreamRequest, StreamResponse,
};
use serve_model::{ModelApp, ModelAppFactory};
use tonic::codec::CompressionEncoding;
use tower_service::Service;

pub mod health;
pub mod inference;
pub mod limit;
pub mod status;
pub mod tensors;

pub use serve_triton::pb;

/// The model app's factory, its app answering gRPC beside REST.
pub struct GrpcAppFactory {
    models: ModelAppFactory,
    /// `--max-body-size`: the largest message a call may send.
    max_message: usize,
}

impl GrpcAppFactory {
    /// gRPC beside the model app `models`, its messages bounded by `max_message` bytes
    /// (`--max-body-size`; 0 is unlimited, as for REST bodies).
    pub fn new(models: ModelAppFactory, max_message: u64) -> Self {
        let max_message = match max_message {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        GrpcAppFactory {
            models,
            max_message,
        }
    }
}

impl AppFactory for GrpcAppFactory {
    fn describe(&self) -> String {
        self.models.describe()
    }

    fn summary(&self) -> Vec<String> {
        self.models.summary()
    }

    fn models(&self) -> Vec<String> {
        self.models.models()
    }

    fn versions_of(&self, model: &str) -> Vec<String> {
        self.models.versions_of(model)
    }

    fn engine_of(&self, model: &str) -> Option<String> {
        self.models.engine_of(model)
    }

    fn check(&self) -> Result<(), AppError> {
        self.models.check()
    }

    fn build(&self) -> Result<Arc<dyn App>, AppError> {
        Ok(Arc::new(GrpcApp::new(
            Arc::new(self.models.app(true)?),
            self.max_message,
        )))
    }

    fn post_fork(&self) -> Result<(), AppError> {
        self.models.post_fork()
    }
}

/// One gRPC service, type-erased: the request to its answer.
type Handler = Arc<dyn Fn(Call) -> BoxFuture<StreamResponse> + Send + Sync>;

/// A call as the services take it: the worker's body, its messages bounded (boxed once, by
/// the worker).
type Call = http::Request<limit::Limited<serve_app::Body>>;

/// A generated tonic service as a [`Handler`].
fn handler<S, F>(service: S) -> Handler
where
    S: Service<Call, Response = http::Response<tonic::body::Body>, Error = Infallible, Future = F>
        + Clone
        + Send
        + Sync
        + 'static,
    F: std::future::Future<Output = Result<http::Response<tonic::body::Body>, Infallible>>
        + Send
        + 'static,
{
    Arc::new(move |req| {
        // A generated service is always ready (its poll_ready holds nothing to wait for).
        let answer = service.clone().call(req);
        Box::pin(async move {
            let res = match answer.await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            res.map(|body| body.map_err(serve_app::BodyError::from).boxed_unsync())
        })
    })
}

/// The model app, and gRPC's services over its registry.
pub struct GrpcApp {
    rest: Arc<ModelApp>,
    inference: Handler,
    health: Handler,
    reflection_v1: Handler,
    reflection_v1alpha: Handler,
    max_message: usize,
}

impl GrpcApp {
    /// gRPC over `rest`'s models, its messages bounded by `max_message` bytes.
    pub fn new(rest: Arc<ModelApp>, max_message: usize) -> Self {
        let inference = pb::grpc_inference_service_server::GrpcInferenceServiceServer::new(
            inference::Inference::new(rest.clone()),
        )
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        // serve's own check (limit) refuses a larger message first, naming the flag;
        // this bounds what a compressed one may decompress to.
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(usize::MAX);
        let health =
            tonic_health::pb::health_server::HealthServer::new(health::Health::new(rest.clone()));
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(serve_triton::DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        const DESCRIPTORS: &str = "the vendored descriptors, compiled by build.rs, decode";
        GrpcApp {
            inference: handler(inference),
            health: handler(health),
            reflection_v1: handler(reflection().build_v1().expect(DESCRIPTORS)),
            reflection_v1alpha: handler(reflection().build_v1alpha().expect(DESCRIPTORS)),
            rest,
            max_message,
        }
    }
}

/// Whether a request is a gRPC call: HTTP/2 (gRPC has no HTTP/1 form) with gRPC's content
/// type (`application/grpc`, `application/grpc+proto`).
pub fn is_grpc(parts: &http::request::Parts) -> bool {
    parts.version == http::Version::HTTP_2
        && parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.strip_prefix("application/grpc")
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']))
            })
}

impl App for GrpcApp {
    fn call(&self, req: Request, cx: Context) -> BoxFuture<Response> {
        self.rest.call(req, cx)
    }

    fn observe_head(&self, parts: &http::request::Parts) {
        if is_grpc(parts) {
            serve_app::observe(serve_app::Observed {
                model: serve_app::ModelId::NONE,
                protocol: serve_app::Protocol::Grpc,
            });
        } else {
            self.rest.observe_head(parts);
        }
    }

    fn streams(&self, parts: &http::request::Parts) -> bool {
        is_grpc(parts)
    }

    fn stream(&self, req: StreamRequest, cx: Context) -> BoxFuture<StreamResponse> {
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(cx);
        let req = http::Request::from_parts(parts, limit::Limited::new(body, self.max_message));
        let path = req.uri().path();
        let service = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .map_or("", |(service, _)| service);
        match service {
            "inference.GRPCInferenceService" => (self.inference)(req),
            "grpc.health.v1.Health" => (self.health)(req),
            "grpc.reflection.v1.ServerReflection" => (self.reflection_v1)(req),
            "grpc.reflection.v1alpha.ServerReflection" => (self.reflection_v1alpha)(req),
            _ => {
                let status = tonic::Status::unimplemented(format!(
                    "no gRPC service {service:?}: this server has inference.GRPCInferenceService, \
                     grpc.health.v1.Health and grpc.reflection.v1.ServerReflection"
                ));
                Box::pin(async move {
                    status
                        .into_http::<tonic::body::Body>()
                        .map(|b| b.map_err(serve_app::BodyError::from).boxed_unsync())
                })
            }
        }
    }

    fn warm(&self) -> Result<(), AppError> {
        self.rest.warm()
    }

    fn warm_before_fork(&self) -> Result<Vec<String>, AppError> {
        self.rest.warm_before_fork()
    }

    fn warm_after_fork(&self) -> Result<(), AppError> {
        self.rest.warm_after_fork()
    }
}

/// The request's [`Context`], which [`GrpcApp::stream`] puts in its extensions.
pub(crate) fn context<T>(req: &tonic::Request<T>) -> Context {
    req.extensions()
        .get::<Context>()
        .cloned()
        .unwrap_or_default()
}
