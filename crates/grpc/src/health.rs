//! `grpc.health.v1.Health`: what Kubernetes' `grpc:` probes and grpc-health-probe ask.
//!
//! The whole server (service `""`, and `inference.GRPCInferenceService`) is SERVING exactly
//! when `GET /v2/health/ready` answers 200, NOT_SERVING otherwise; a model's name as the
//! service answers that model's readiness (`/v2/models/{m}/ready`). Any other name is
//! NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch), as the protocol says. Watch sends the
//! status at once and again each time it changes, looking once a second.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use serve_app::{Context, ModelId, Observed, Protocol};
use serve_model::ModelApp;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// How often Watch looks at the status again.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The health service over one worker's models.
pub struct Health {
    app: Arc<ModelApp>,
}

impl Health {
    /// Health of `app`'s models.
    pub fn new(app: Arc<ModelApp>) -> Self {
        Health { app }
    }

    /// The status of `service`; `None`: no such service.
    fn status(app: &ModelApp, service: &str, cx: &Context) -> Option<ServingStatus> {
        let registry = app.registry();
        let ready = match service {
            "" | "inference.GRPCInferenceService" => serve_model::v2::readiness(registry, cx),
            name => serve_model::v2::model_readiness(registry.get(name)?, cx),
        };
        Some(match ready {
            Ok(()) => ServingStatus::Serving,
            Err(_) => ServingStatus::NotServing,
        })
    }
}

fn observe() {
    serve_app::observe(Observed {
        model: ModelId::NONE,
        protocol: Protocol::Health,
    });
}

type Watch = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl tonic_health::pb::health_server::Health for Health {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        observe();
        let cx = crate::context(&req);
        let service = &req.get_ref().service;
        match Health::status(&self.app, service, &cx) {
            Some(status) => Ok(Response::new(HealthCheckResponse {
                status: status as i32,
            })),
            None => Err(Status::not_found(format!(
                "unknown service \"{service}\": ask \"\" for the server, or a model's name \
                 (this server has {})",
                self.app.registry().names()
            ))),
        }
    }

    type WatchStream = Watch;

    async fn watch(&self, req: Request<HealthCheckRequest>) -> Result<Response<Watch>, Status> {
        observe();
        let cx = crate::context(&req);
        let service = req.into_inner().service;
        let app = self.app.clone();
        let drain = cx.drain.clone();
        let stream = async_stream(move |tx| async move {
            let mut last = None;
            loop {
                let status =
                    Health::status(&app, &service, &cx).unwrap_or(ServingStatus::ServiceUnknown);
                if last != Some(status) {
                    last = Some(status);
                    let answer = HealthCheckResponse {
                        status: status as i32,
                    };
                    if tx.send(Ok(answer)).await.is_err() {
                        return;
                    }
                }
                let draining = async {
                    match &drain {
                        Some(d) => d.started().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(WATCH_EVERY) => {}
                    _ = draining => {
                        // The watch ends with the worker; the client watches again elsewhere.
                        let _ = tx.send(Err(Status::unavailable(
                            "the worker is restarting: watch again",
                        ))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task: what `f` sends on its channel.
fn async_stream<F, Fut>(f: F) -> Watch
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<HealthCheckResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
