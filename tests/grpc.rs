//! KServe V2 over gRPC through the real binary, with tonic's client: on the same port as
//! REST, the message limit that follows `--max-body-size`, and calls that keep being
//! answered (0 failed) across HUP, `--max-requests` recycling, `--max-connection-age` and
//! TERM, unary and streaming.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::http::Conn;
use common::{Addr, Bin, PATIENCE, Server, start};
use nix::sys::signal::Signal;
use serve_triton::pb;
use serve_triton::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use tonic::transport::Channel;

type Client = GrpcInferenceServiceClient<Channel>;

fn tcp(server: &Server) -> String {
    match server.addr() {
        Addr::Tcp(a) => a.clone(),
        Addr::Unix(_) => unreachable!("these tests bind TCP"),
    }
}

async fn client(addr: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("a gRPC channel");
    GrpcInferenceServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// A ModelInferRequest for iris with `rows` rows, in raw_input_contents.
fn iris(rows: usize) -> pb::ModelInferRequest {
    let row = [5.1f32, 3.5, 1.4, 0.2];
    let raw: Vec<u8> = row
        .iter()
        .cycle()
        .take(rows * 4)
        .flat_map(|v| v.to_le_bytes())
        .collect();
    pb::ModelInferRequest {
        model_name: "iris".into(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![rows as i64, 4],
            ..Default::default()
        }],
        raw_input_contents: vec![raw],
        ..Default::default()
    }
}

/// The index of output `name` in an answer.
fn output(res: &pb::ModelInferResponse, name: &str) -> usize {
    res.outputs
        .iter()
        .position(|o| o.name == name)
        .unwrap_or_else(|| panic!("no output {name}: {:?}", res.outputs))
}

/// The first row's probabilities of an iris answer.
fn first_row(res: &pb::ModelInferResponse) -> Vec<f32> {
    res.raw_output_contents[output(res, "probabilities")][..12]
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn rest_and_grpc_share_one_port() {
    let server = start(Bin::Serve, &["-w", "2", "-b", "127.0.0.1:0"]);
    let addr = tcp(&server);
    common::h2::runtime().block_on(async {
        let mut c = client(&addr).await;
        let live = c.server_live(pb::ServerLiveRequest {}).await.unwrap();
        assert!(live.into_inner().live);
        let res = c.model_infer(iris(2)).await.unwrap().into_inner();
        assert_eq!((res.model_name.as_str(), res.model_version.as_str()), ("iris", "1"));
        assert_eq!(res.outputs[output(&res, "probabilities")].shape, [2, 3]);
        let p = first_row(&res);
        assert!(p[0] > 0.9, "setosa: {p:?}");

        // The same answer as REST's, on the same address.
        let rest = Conn::post_json(
            server.addr(),
            "/v2/models/iris/infer",
            br#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#,
        );
        let json = rest.json();
        let probabilities = json["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "probabilities")
            .unwrap();
        let json: Vec<f32> = probabilities["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(json, p);

        // Errors: the REST message under the gRPC code.
        let mut unknown = iris(1);
        unknown.model_name = "nope".into();
        let e = c.model_infer(unknown).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(e.message().contains("\"nope\"") && e.message().contains("iris"), "{e:?}");
        let mut bad = iris(1);
        bad.inputs[0].shape = vec![1, 5];
        let e = c.model_infer(bad).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    });
    // Counted under protocol="grpc".
    let metrics = server.get("/metrics").text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("serve_requests_total{") && l.contains("protocol=\"grpc\"")),
        "{metrics}"
    );
}

#[test]
fn the_message_limit_is_max_body_size_and_names_it() {
    let _serial = common::serial();
    let server = start(
        Bin::Serve,
        &["-w", "1", "-b", "127.0.0.1:0", "--max-body-size", "200M"],
    );
    let addr = tcp(&server);
    common::h2::runtime().block_on(async {
        let mut c = client(&addr).await;
        // 100 MiB: past tonic's 4 MiB default, inside the flag's 200 MiB.
        let rows = 100 * 1024 * 1024 / 16;
        let res = c.model_infer(iris(rows)).await.expect("100 MiB is allowed");
        let res = res.into_inner();
        assert_eq!(
            res.outputs[output(&res, "probabilities")].shape,
            [rows as i64, 3]
        );

        let e = c
            .model_infer(iris(210 * 1024 * 1024 / 16))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("--max-body-size"), "{e:?}");
        // The worker serves on.
        c.model_infer(iris(1))
            .await
            .expect("served after a refusal");
    });
}

/// Whether a call failed at the connection, before the server took it: tonic's transport
/// error, no gRPC status from the server. h2's client keeps opening streams after the
/// server's first GOAWAY (which announces the drain); those that reach the server after
/// its final GOAWAY are refused unseen, as RFC 9113 says, and grpc-core's clients
/// (tritonclient's) retry them transparently. tonic does not, so this load retries them
/// itself, and the test proves they were never run (the server counted exactly the
/// calls answered).
fn refused_by_connection(e: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<tonic::transport::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Calls that run until stopped: `unary` clients each calling ModelInfer in a loop on
/// their own channel, and one stream sending a request and waiting for its answer in turn
/// (a stream that ends with UNAVAILABLE after a drain is opened again). Every call counts
/// as ok, failed, or retried (refused at the connection: [`refused_by_connection`]).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    /// Unary calls answered (the stream's are in `ok` too).
    unary_ok: Arc<AtomicU64>,
    retried: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    runtime: tokio::runtime::Runtime,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: &str, unary: usize) -> Load {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let unary_ok = Arc::new(AtomicU64::new(0));
        let retried = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..unary {
            let addr = addr.to_owned();
            let (stop, ok, unary_ok, retried, failed, errors) = (
                stop.clone(),
                ok.clone(),
                unary_ok.clone(),
                retried.clone(),
                failed.clone(),
                errors.clone(),
            );
            tasks.push(runtime.spawn(async move {
                let mut c = client(&addr).await;
                while !stop.load(Relaxed) {
                    match c.model_infer(iris(1)).await {
                        Ok(_) => {
                            ok.fetch_add(1, Relaxed);
                            unary_ok.fetch_add(1, Relaxed)
                        }
                        Err(e) if refused_by_connection(&e) => retried.fetch_add(1, Relaxed),
                        Err(e) => {
                            errors.lock().unwrap().push(format!("unary: {e:?}"));
                            failed.fetch_add(1, Relaxed)
                        }
                    };
                }
            }));
        }
        let (addr2, stop2, ok2, failed2, errors2, retried2) = (
            addr.to_owned(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            errors.clone(),
            retried.clone(),
        );
        tasks.push(runtime.spawn(async move {
            let mut c = client(&addr2).await;
            'streams: while !stop2.load(Relaxed) {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                let mut answers = match c
                    .model_stream_infer(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                {
                    Ok(res) => res.into_inner(),
                    Err(e) if refused_by_connection(&e) => {
                        retried2.fetch_add(1, Relaxed);
                        continue;
                    }
                    Err(e) => {
                        errors2.lock().unwrap().push(format!("stream open: {e:?}"));
                        failed2.fetch_add(1, Relaxed);
                        continue;
                    }
                };
                while !stop2.load(Relaxed) {
                    if tx.send(iris(1)).await.is_err() {
                        continue 'streams;
                    }
                    match answers.message().await {
                        Ok(Some(a)) if a.error_message.is_empty() => {
                            ok2.fetch_add(1, Relaxed);
                        }
                        Ok(Some(a)) => {
                            errors2.lock().unwrap().push(a.error_message);
                            failed2.fetch_add(1, Relaxed);
                        }
                        // The worker drains: the request sent was answered before this
                        // (one at a time), so nothing is lost; open a new stream.
                        Err(e) if e.code() == tonic::Code::Unavailable => continue 'streams,
                        Err(e) if refused_by_connection(&e) => {
                            retried2.fetch_add(1, Relaxed);
                            continue 'streams;
                        }
                        other => {
                            errors2.lock().unwrap().push(format!("stream: {other:?}"));
                            failed2.fetch_add(1, Relaxed);
                            continue 'streams;
                        }
                    }
                }
            }
        }));
        Load {
            stop,
            ok,
            unary_ok,
            retried,
            failed,
            errors,
            runtime,
            tasks,
        }
    }

    /// Waits until `n` more calls were answered.
    fn flowing(&self, n: u64) {
        let from = self.ok.load(Relaxed);
        assert!(
            common::wait_until(PATIENCE, || self.ok.load(Relaxed) >= from + n),
            "calls stopped being answered: {:?}",
            self.errors.lock().unwrap()
        );
    }

    fn finish(self) -> Finished {
        self.stop.store(true, Relaxed);
        self.runtime.block_on(async {
            for t in self.tasks {
                let _ = tokio::time::timeout(PATIENCE, t).await;
            }
        });
        Finished {
            ok: self.ok.load(Relaxed),
            unary_ok: self.unary_ok.load(Relaxed),
            retried: self.retried.load(Relaxed),
            failed: self.failed.load(Relaxed),
            errors: self.errors.lock().unwrap().clone(),
        }
    }
}

struct Finished {
    ok: u64,
    unary_ok: u64,
    retried: u64,
    failed: u64,
    errors: Vec<String>,
}

impl Finished {
    /// No call failed, and the server ran exactly the unary calls answered (plus `extra`):
    /// none of those refused at the connection had been run.
    fn assert_nothing_lost(&self, server: &Server, extra: u64) {
        assert_eq!(self.failed, 0, "{:?}", self.errors);
        let metrics = server.get("/metrics").text();
        let ran: f64 = metrics
            .lines()
            .filter(|l| {
                l.starts_with("serve_requests_total{")
                    && l.contains("protocol=\"grpc\"")
                    && l.contains("model=\"iris\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(
            ran as u64,
            self.unary_ok + extra,
            "the server ran as many iris calls as were answered ({} retried)\n{metrics}",
            self.retried
        );
    }
}

#[test]
fn grpc_calls_are_not_lost_across_hup_and_max_requests() {
    let _serial = common::serial();
    let server = start(
        Bin::Serve,
        &["-w", "2", "-b", "127.0.0.1:0", "--max-requests", "150"],
    );
    let addr = tcp(&server);
    let before = server.wait_workers(2);
    let load = Load::start(&addr, 4);
    load.flowing(100);
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload complete in", PATIENCE),
        "{}",
        server.log()
    );
    assert!(
        common::wait_until(PATIENCE, || before
            .iter()
            .all(|p| !common::procs::alive(*p))),
        "the old workers drain and exit"
    );
    // Past --max-requests, each worker retires and is replaced, many times over.
    load.flowing(600);
    let done = load.finish();
    done.assert_nothing_lost(&server, 0);
    assert!(
        server.count_log("Autorestarting worker") >= 2,
        "{}",
        server.log()
    );
    common::report(
        "grpc across HUP and --max-requests",
        format!(
            "{} calls, 0 failed, {} retried unseen",
            done.ok, done.retried
        ),
    );
}

#[test]
fn a_channel_reconnects_past_max_connection_age_without_failures() {
    let _serial = common::serial();
    let server = start(
        Bin::Serve,
        &["-w", "2", "-b", "127.0.0.1:0", "--max-connection-age", "1"],
    );
    let addr = tcp(&server);
    let load = Load::start(&addr, 2);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        load.flowing(20);
    }
    let done = load.finish();
    done.assert_nothing_lost(&server, 0);
    // GOAWAY at the age: each channel opened new connections.
    let metrics = server.get("/metrics").text();
    let recycled: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("serve_connections_recycled_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        recycled >= 3.0,
        "connections recycled: {recycled}\n{metrics}"
    );
    common::report(
        "grpc past --max-connection-age 1",
        format!(
            "{} calls, {recycled} GOAWAYs, 0 failed, {} retried unseen",
            done.ok, done.retried
        ),
    );
}

#[test]
fn term_answers_the_calls_in_flight_and_ends_streams_with_unavailable() {
    let _serial = common::serial();
    // Each call waits up to 1 s in its batch for more rows: calls are in flight at TERM.
    let mut server = start(
        Bin::Serve,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--batch-timeout-us",
            "1000000",
            "--max-batch-size",
            "64",
        ],
    );
    let addr = tcp(&server);
    let runtime = common::h2::runtime();
    runtime.block_on(async {
        let mut c = client(&addr).await;
        c.model_infer(iris(1)).await.expect("warm");
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let mut answers = c
            .model_stream_infer(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        for _ in 0..3 {
            tx.send(iris(1)).await.unwrap();
        }
        let unary: Vec<_> = (0..4)
            .map(|_| {
                let mut c = c.clone();
                tokio::spawn(async move { c.model_infer(iris(1)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.signal(Signal::SIGTERM);
        for u in unary {
            u.await
                .unwrap()
                .expect("a call in flight at TERM is answered");
        }
        for _ in 0..3 {
            let a = answers
                .message()
                .await
                .expect("answered")
                .expect("an answer");
            assert!(a.error_message.is_empty(), "{}", a.error_message);
        }
        let end = answers.message().await.unwrap_err();
        assert_eq!(end.code(), tonic::Code::Unavailable, "{end:?}");
        assert!(end.message().contains("open a new stream"), "{end:?}");
    });
    assert!(server.wait_exit(PATIENCE).is_some_and(|s| s.success()));
}

/// `serve_connections_total`, scraped on a connection of its own (counted too).
fn connections(server: &Server) -> u64 {
    let metrics = server.get("/metrics").text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("serve_connections_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"))
}

#[test]
fn an_idle_channel_is_kept_past_keep_alive_while_pings_watch_it() {
    let server = start(
        Bin::Serve,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--keep-alive",
            "1",
            "--header-timeout",
            "1",
        ],
    );
    let addr = tcp(&server);
    common::h2::runtime().block_on(async {
        let mut c = client(&addr).await;
        c.model_infer(iris(1)).await.unwrap();
        let before = connections(&server);
        // Past --keep-alive: an HTTP/1 connection would be closed; this channel is kept.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        c.model_infer(iris(1)).await.unwrap();
        assert_eq!(
            connections(&server),
            before + 1,
            "only the second scrape's connection is new: the channel did not reconnect"
        );
    });
}

#[test]
fn grpc_bind_serves_grpc_alone_and_survives_hup() {
    let _serial = common::serial();
    let server = start(
        Bin::Serve,
        &["-w", "2", "-b", "127.0.0.1:0", "--grpc-bind", "127.0.0.1:0"],
    );
    let grpc = server.logged_addr("gRPC at");
    let runtime = common::h2::runtime();
    runtime.block_on(async {
        let mut c = client(&grpc).await;
        c.model_infer(iris(1)).await.expect("gRPC on --grpc-bind");
        // gRPC is on the main address too.
        let mut main = client(&tcp(&server)).await;
        main.model_infer(iris(1)).await.expect("gRPC on --bind");
    });
    // REST on the gRPC address: refused, naming the flag.
    let res = Conn::open(&Addr::Tcp(grpc.clone()))
        .and_then(|mut c| c.request("GET", "/v2/health/ready", &[], b""))
        .expect("an answer");
    assert_eq!(res.status, 404);
    assert!(res.text().contains("--grpc-bind"), "{}", res.text());

    // A reload keeps the address (the same socket) and serves gRPC on it.
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload complete in", PATIENCE),
        "{}",
        server.log()
    );
    runtime.block_on(async {
        let mut c = client(&grpc).await;
        c.model_infer(iris(1))
            .await
            .expect("gRPC on --grpc-bind after HUP");
    });
}

#[test]
fn repository_load_and_unload_under_explicit_control() {
    let repo = common::tempdir();
    std::fs::create_dir_all(repo.path().join("iris/1")).unwrap();
    std::fs::copy(
        common::examples("iris/model.onnx"),
        repo.path().join("iris/1/model.onnx"),
    )
    .unwrap();
    let server = start(
        Bin::Serve,
        &[
            "-w",
            "2",
            "-b",
            "127.0.0.1:0",
            "--model-control",
            "explicit",
            repo.path().to_str().unwrap(),
        ],
    );
    let addr = tcp(&server);
    common::h2::runtime().block_on(async {
        let mut c = client(&addr).await;
        let index = |only_ready| pb::RepositoryIndexRequest {
            repository_name: String::new(),
            ready: only_ready,
        };
        let listed = c.repository_index(index(false)).await.unwrap().into_inner();
        assert_eq!(listed.models.len(), 1);
        assert_eq!(
            (
                listed.models[0].state.as_str(),
                listed.models[0].reason.as_str()
            ),
            ("UNAVAILABLE", "unloaded")
        );
        let e = c.model_infer(iris(1)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");

        let load = |parameters| pb::RepositoryModelLoadRequest {
            repository_name: String::new(),
            model_name: "iris".into(),
            parameters,
        };
        c.repository_model_load(load(Default::default()))
            .await
            .expect("load");
        // The channel's connection was to a worker of the old generation, which drains: the
        // next calls may need a new connection, as after any reload.
        let mut c = client(&addr).await;
        c.model_infer(iris(1)).await.expect("iris is served");
        let ready = c.repository_index(index(true)).await.unwrap().into_inner();
        assert_eq!(ready.models[0].state, "READY");

        // A model's bytes in the request: refused, naming the parameter.
        let file = pb::ModelRepositoryParameter {
            parameter_choice: Some(pb::model_repository_parameter::ParameterChoice::BytesParam(
                vec![0; 4],
            )),
        };
        let e = c
            .repository_model_load(load([("file:1/model.onnx".to_owned(), file)].into()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("file:1/model.onnx"), "{e:?}");

        c.repository_model_unload(pb::RepositoryModelUnloadRequest {
            repository_name: String::new(),
            model_name: "iris".into(),
            parameters: Default::default(),
        })
        .await
        .expect("unload");
        let mut c = client(&addr).await;
        let e = c.model_infer(iris(1)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    });
}

#[test]
fn without_explicit_control_load_is_unimplemented_naming_the_flag() {
    let server = start(Bin::Serve, &["-b", "127.0.0.1:0"]);
    let addr = tcp(&server);
    common::h2::runtime().block_on(async {
        let mut c = client(&addr).await;
        let e = c
            .repository_model_load(pb::RepositoryModelLoadRequest {
                model_name: "iris".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented, "{e:?}");
        assert!(e.message().contains("--model-control explicit"), "{e:?}");
    });
}
