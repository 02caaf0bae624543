//! `inference.GRPCInferenceService`: each RPC answers what its REST twin answers.
//!
//! Errors carry the REST message under the gRPC code of [`crate::status::of`]. A model
//! named without a version is its highest, as in REST. Shared memory, tracing and log
//! settings are Triton's own and answer UNIMPLEMENTED (tonic's default); load and unload
//! are REST's (`--model-control explicit`; without it UNIMPLEMENTED naming HUP, as REST
//! answers 501).

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use serve_app::{Context, ModelId, Observed, Protocol};
use serve_model::ModelApp;
use serve_model::error::ApiError;
use serve_model::registry::{Model, Registry};
use tonic::{Request, Response, Status, Streaming};

use crate::pb::{self, grpc_inference_service_server::GrpcInferenceService};
use crate::{status, tensors};

/// How many requests of one ModelStreamInfer stream may run at once: they ride together in
/// the model's batches, and a client that sends faster than the model answers waits for
/// its earlier answers rather than filling the worker's memory.
const STREAM_IN_FLIGHT: usize = 64;

/// The service over one worker's models.
#[derive(Clone)]
pub struct Inference {
    app: Arc<ModelApp>,
}

impl Inference {
    /// The service over `app`'s registry.
    pub fn new(app: Arc<ModelApp>) -> Self {
        Inference { app }
    }

    fn registry(&self) -> &Registry {
        self.app.registry()
    }

    /// The model a request names (`version` "" is its highest), labelled for the metrics.
    fn model(&self, name: &str, version: &str) -> Result<Arc<Model>, Status> {
        let version = (!version.is_empty()).then_some(version);
        let model =
            serve_model::router::lookup(self.registry(), name, version).map_err(status::of)?;
        serve_app::observe(Observed {
            model: model.metric,
            protocol: Protocol::Grpc,
        });
        Ok(model)
    }
}

/// One inference: decoded, run within the call's deadline, encoded; timed for the model
/// version's statistics as REST's are.
async fn infer(
    model: &Model,
    req: pb::ModelInferRequest,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<pb::ModelInferResponse, Status> {
    let timeout =
        tensors::int_parameter(&req.parameters, "timeout", "the request").map_err(status::of)?;
    let limit = status::deadline(metadata, timeout);
    serve_model::observe::infer_within(
        model,
        limit,
        || {
            let d = tensors::decode(req, &model.meta)?;
            Ok((d.inputs, (d.id, d.outputs)))
        },
        |(id, asked), outputs| tensors::encode(model, id, &asked, outputs),
    )
    .await
    .map_err(|e: ApiError| status::of(e))
}

type StreamAnswer =
    Pin<Box<dyn Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        observe_server();
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        req: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        observe_server();
        let cx = crate::context(&req);
        let ready = serve_model::v2::readiness(self.registry(), &cx).is_ok();
        Ok(Response::new(pb::ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        req: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let cx = crate::context(&req);
        let r = req.get_ref();
        // A model this server does not serve (unknown, or not loaded under explicit model
        // control) is not ready, as Triton answers: tritonclient's is_model_ready is False,
        // as over REST (404).
        let ready = match self.model(&r.name, &r.version) {
            Ok(model) => serve_model::v2::model_readiness(&model, &cx).is_ok(),
            Err(s) if s.code() == tonic::Code::NotFound => {
                observe_server();
                false
            }
            Err(s) => return Err(s),
        };
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        observe_server();
        Ok(Response::new(pb::ServerMetadataResponse {
            name: "serve".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: serve_model::v2::extensions(self.app.explicit())
                .map(str::to_owned)
                .collect(),
        }))
    }

    async fn model_metadata(
        &self,
        req: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let r = req.get_ref();
        let model = self.model(&r.name, &r.version)?;
        let tensors = |list: &[serve_model::metadata::TensorMeta]| {
            list.iter()
                .map(|t| pb::model_metadata_response::TensorMetadata {
                    name: t.name.clone(),
                    datatype: t.datatype.as_str().to_owned(),
                    shape: t.shape_i64(),
                })
                .collect()
        };
        Ok(Response::new(pb::ModelMetadataResponse {
            name: model.name.clone(),
            versions: self
                .registry()
                .versions(&model.name)
                .map(|m| m.version.clone())
                .collect(),
            platform: serve_model::v2::PLATFORM.to_owned(),
            inputs: tensors(&model.meta.inputs),
            outputs: tensors(&model.meta.outputs),
        }))
    }

    async fn model_infer(
        &self,
        req: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let model = self.model(&req.model_name, &req.model_version)?;
        let answer = infer(&model, req, &metadata).await?;
        Ok(Response::new(answer))
    }

    async fn model_stream_infer(
        &self,
        req: Request<Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<StreamAnswer>, Status> {
        serve_app::observe(Observed {
            model: ModelId::NONE,
            protocol: Protocol::Grpc,
        });
        let cx = crate::context(&req);
        let (metadata, _, requests) = req.into_parts();
        let this = self.clone();
        let metadata = Arc::new(metadata);
        Ok(Response::new(Box::pin(stream(
            this, cx, metadata, requests,
        ))))
    }

    async fn model_config(
        &self,
        req: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        let r = req.get_ref();
        let model = self.model(&r.name, &r.version)?;
        Ok(Response::new(pb::ModelConfigResponse {
            config: Some(serve_model::triton::config(&model)),
        }))
    }

    async fn model_statistics(
        &self,
        req: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        let r = req.get_ref();
        let models: Vec<Arc<Model>> = if r.name.is_empty() {
            observe_server();
            self.registry().models().to_vec()
        } else if r.version.is_empty() {
            self.model(&r.name, "")?;
            self.registry().versions(&r.name).cloned().collect()
        } else {
            vec![self.model(&r.name, &r.version)?]
        };
        Ok(Response::new(pb::ModelStatisticsResponse {
            model_stats: models.iter().map(|m| statistics(m)).collect(),
        }))
    }

    async fn repository_index(
        &self,
        req: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        observe_server();
        let only_ready = req.get_ref().ready;
        let models = serve_model::v2::index(self.registry(), self.app.unloaded(), only_ready)
            .map(|e| pb::repository_index_response::ModelIndex {
                name: e.name.to_owned(),
                version: e.version.to_owned(),
                state: e.state.to_owned(),
                reason: e.reason,
            })
            .collect();
        Ok(Response::new(pb::RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        req: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        observe_server();
        let cx = crate::context(&req);
        let r = req.get_ref();
        self.change(
            &cx,
            &r.repository_name,
            &r.model_name,
            "load",
            &r.parameters,
        )
        .await?;
        Ok(Response::new(pb::RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        req: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        observe_server();
        let cx = crate::context(&req);
        let r = req.get_ref();
        self.change(
            &cx,
            &r.repository_name,
            &r.model_name,
            "unload",
            &r.parameters,
        )
        .await?;
        Ok(Response::new(pb::RepositoryModelUnloadResponse {}))
    }
}

impl Inference {
    /// RepositoryModelLoad and Unload: what REST's load and unload do, with the message's
    /// parameters.
    async fn change(
        &self,
        cx: &Context,
        repository: &str,
        name: &str,
        verb: &str,
        params: &std::collections::HashMap<String, pb::ModelRepositoryParameter>,
    ) -> Result<(), Status> {
        use pb::model_repository_parameter::ParameterChoice as P;
        use serve_model::v2::Param;
        let change = if repository.is_empty() {
            serve_model::v2::model_change(
                name,
                verb,
                params.iter().map(|(k, v)| {
                    let p = match &v.parameter_choice {
                        Some(P::BoolParam(b)) => Param::Bool(*b),
                        Some(P::Int64Param(_)) => Param::Number,
                        Some(P::StringParam(t)) => Param::Text(t),
                        Some(P::BytesParam(_)) => Param::Bytes,
                        None => Param::Other,
                    };
                    (k.as_str(), p)
                }),
            )
        } else {
            Err(ApiError::bad_request(format!(
                "{verb} of model \"{name}\": repository_name \"{repository}\": serve has one \
                 repository (its APP); leave repository_name empty"
            )))
        };
        serve_model::v2::change_models(
            self.registry(),
            self.app.explicit(),
            cx,
            change,
            (name, verb),
        )
        .await
        .map_err(status::of)
    }
}

/// A call about the server rather than one model.
fn observe_server() {
    serve_app::observe(Observed {
        model: ModelId::NONE,
        protocol: Protocol::Grpc,
    });
}

/// ModelStreamInfer: each request answered in the order sent, an error as that answer's
/// `error_message` (the stream goes on, as Triton's does). Up to [`STREAM_IN_FLIGHT`] run at
/// once. When the worker starts draining, the requests already received are answered, and
/// the stream then ends with UNAVAILABLE, so that the client sends the rest on a new
/// connection (to another worker).
fn stream(
    this: Inference,
    cx: Context,
    metadata: Arc<tonic::metadata::MetadataMap>,
    requests: Streaming<pb::ModelInferRequest>,
) -> impl Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send {
    let drain = cx.drain.clone();
    let draining = async move {
        match drain {
            Some(d) => d.started().await,
            None => std::future::pending().await,
        }
    };
    // Requests until the client ends its side or the worker drains; then a last UNAVAILABLE.
    let requests = until_drained(requests, draining);
    requests
        .map(move |next| {
            let this = this.clone();
            let metadata = metadata.clone();
            async move {
                match next {
                    Next::Request(Ok(req)) => {
                        let answer = match this.model(&req.model_name, &req.model_version) {
                            Ok(model) => infer(&model, req, &metadata).await,
                            Err(e) => Err(e),
                        };
                        Ok(match answer {
                            Ok(res) => pb::ModelStreamInferResponse {
                                error_message: String::new(),
                                infer_response: Some(res),
                            },
                            Err(e) => pb::ModelStreamInferResponse {
                                error_message: e.message().to_owned(),
                                infer_response: None,
                            },
                        })
                    }
                    Next::Request(Err(e)) => Err(e),
                    Next::Drained => Err(Status::unavailable(
                        "the worker is restarting (a reload, --max-requests or a stop): every \
                         request sent before this was answered; open a new stream",
                    )),
                }
            }
        })
        .buffered(STREAM_IN_FLIGHT)
}

/// What the stream of requests gives: a request, or the drain's start (its last item).
enum Next {
    Request(Result<pb::ModelInferRequest, Status>),
    Drained,
}

/// `requests` until it ends, or until `draining` completes: then one [`Next::Drained`].
fn until_drained(
    requests: Streaming<pb::ModelInferRequest>,
    draining: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl Stream<Item = Next> + Send {
    Until {
        requests,
        draining: Some(Box::pin(draining)),
    }
}

struct Until<D> {
    requests: Streaming<pb::ModelInferRequest>,
    /// `None` once the drain started and [`Next::Drained`] was given.
    draining: Option<Pin<Box<D>>>,
}

impl<D: std::future::Future<Output = ()>> Stream for Until<D> {
    type Item = Next;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Next>> {
        use std::task::Poll;
        let Some(draining) = self.draining.as_mut() else {
            return Poll::Ready(None);
        };
        if draining.as_mut().poll(cx).is_ready() {
            self.draining = None;
            return Poll::Ready(Some(Next::Drained));
        }
        Pin::new(&mut self.requests)
            .poll_next(cx)
            .map(|next| next.map(Next::Request))
    }
}

/// A model version's figures (the statistics extension), as `GET .../stats` answers them.
fn statistics(m: &Model) -> pb::ModelStatistics {
    let s = m.statistics();
    let timed = |t: serve_app::metrics::Timed| {
        Some(pb::StatisticDuration {
            count: t.count,
            ns: t.ns,
        })
    };
    let none = || Some(pb::StatisticDuration::default());
    pb::ModelStatistics {
        name: m.name.clone(),
        version: m.version.clone(),
        last_inference: s.last_inference_ms,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: Some(pb::InferStatistics {
            success: timed(s.success),
            fail: timed(s.fail),
            queue: timed(s.queue),
            compute_input: timed(s.compute_input),
            compute_infer: timed(s.compute_infer),
            compute_output: timed(s.compute_output),
            cache_hit: none(),
            cache_miss: none(),
        }),
        batch_stats: s
            .batches
            .iter()
            .map(|(size, t)| pb::InferBatchStatistics {
                batch_size: *size as u64,
                compute_input: none(),
                compute_infer: timed(*t),
                compute_output: none(),
            })
            .collect(),
        memory_usage: Vec::new(),
        response_stats: Default::default(),
    }
}
