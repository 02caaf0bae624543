//! `grpc-load`: wrk's counterpart for gRPC in serve's benchmarks (bench/run.py). A closed
//! loop: `--conns` channels, each its own TCP connection, each with one ModelInfer in flight
//! at a time (as wrk keeps one request in flight per connection), for `--seconds`.
//!
//! ```text
//! grpc-load --addr 127.0.0.1:PORT --body V2.json [--conns 64] [--seconds 5] [--model NAME]
//! ```
//!
//! The request is made once from a KServe V2 REST body (the same file wrk sends): each
//! input's `data` in `raw_input_contents` (little-endian; BYTES with 4-byte lengths), as
//! tritonclient sends. It prints one line, `GRPCJSON {...}`, shaped as post.lua's `WRKJSON`
//! summary: requests, duration, latency percentiles and errors (a call answered with a gRPC
//! error counts as `status`, one that failed at the connection as `read`).

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serve_triton::pb;
use serve_triton::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use tonic::transport::Channel;

const USAGE: &str =
    "usage: grpc-load --addr HOST:PORT --body V2.json [--conns N] [--seconds S] [--model NAME]";

struct Args {
    addr: String,
    body: String,
    conns: usize,
    seconds: f64,
    model: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: String::new(),
        body: String::new(),
        conns: 64,
        seconds: 5.0,
        model: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let value = it.next().ok_or(format!("{a} needs a value\n{USAGE}"))?;
        match a.as_str() {
            "--addr" => args.addr = value,
            "--body" => args.body = value,
            "--conns" => args.conns = value.parse().map_err(|e| format!("--conns: {e}"))?,
            "--seconds" => args.seconds = value.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--model" => args.model = Some(value),
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    if args.addr.is_empty() || args.body.is_empty() || args.conns == 0 {
        return Err(USAGE.into());
    }
    Ok(args)
}

/// The ModelInferRequest of a V2 REST body, every input raw.
fn request(body: &[u8], model: &str) -> Result<pb::ModelInferRequest, String> {
    let v2: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut req = pb::ModelInferRequest {
        model_name: model.to_owned(),
        ..Default::default()
    };
    for input in v2["inputs"].as_array().ok_or("the body has no inputs")? {
        let datatype = input["datatype"]
            .as_str()
            .ok_or("an input has no datatype")?;
        let mut flat = Vec::new();
        flatten(&input["data"], &mut flat);
        let mut raw = Vec::new();
        for v in flat {
            match datatype {
                "FP32" => raw.extend((v.as_f64().ok_or("not a number")? as f32).to_le_bytes()),
                "FP64" => raw.extend(v.as_f64().ok_or("not a number")?.to_le_bytes()),
                "INT64" => raw.extend(v.as_i64().ok_or("not an integer")?.to_le_bytes()),
                "INT32" => raw.extend((v.as_i64().ok_or("not an integer")? as i32).to_le_bytes()),
                "BYTES" => {
                    let s = v.as_str().ok_or("not a string")?;
                    raw.extend((s.len() as u32).to_le_bytes());
                    raw.extend(s.as_bytes());
                }
                other => return Err(format!("datatype {other} is not supported here")),
            }
        }
        req.inputs.push(pb::model_infer_request::InferInputTensor {
            name: input["name"]
                .as_str()
                .ok_or("an input has no name")?
                .to_owned(),
            datatype: datatype.to_owned(),
            shape: input["shape"]
                .as_array()
                .ok_or("an input has no shape")?
                .iter()
                .map(|d| d.as_i64().unwrap_or(0))
                .collect(),
            ..Default::default()
        });
        req.raw_input_contents.push(raw);
    }
    Ok(req)
}

fn flatten(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match v {
        serde_json::Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other.clone()),
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    status: u64,
    transport: u64,
}

async fn one_connection(
    addr: String,
    req: pb::ModelInferRequest,
    until: Instant,
) -> Result<Tally, String> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let mut client = GrpcInferenceServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let mut tally = Tally::default();
    while Instant::now() < until {
        let started = Instant::now();
        match client.model_infer(req.clone()).await {
            Ok(_) => {
                let us = started.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Err(e) if std::error::Error::source(&e).is_some() => tally.transport += 1,
            Err(_) => tally.status += 1,
        }
    }
    Ok(tally)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let body = match std::fs::read(&args.body) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {}: {e}", args.body);
            return ExitCode::from(2);
        }
    };
    let model = args.model.clone().unwrap_or_else(|| "iris".to_owned());
    let req = match request(&body, &model) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: {e}", args.body);
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(args.seconds);
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = (0..args.conns)
            .map(|_| tokio::spawn(one_connection(args.addr.clone(), req.clone(), until)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string()).and_then(|r| r));
        }
        out
    });
    let duration = started.elapsed();
    let mut all = Vec::new();
    let (mut status, mut transport, mut connect) = (0u64, 0u64, 0u64);
    for t in tallies {
        match t {
            Ok(t) => {
                all.extend(t.latencies_us);
                status += t.status;
                transport += t.transport;
            }
            Err(e) => {
                eprintln!("{e}");
                connect += 1;
            }
        }
    }
    all.sort_unstable();
    let summary = serde_json::json!({
        "requests": all.len() as u64 + status + transport,
        "duration_us": duration.as_micros() as u64,
        "latency_us": {
            "p50": percentile(&all, 0.50),
            "p99": percentile(&all, 0.99),
            "p999": percentile(&all, 0.999),
            "max": all.last().copied().unwrap_or(0),
        },
        "errors": {"status": status, "connect": connect, "read": transport, "write": 0, "timeout": 0},
    });
    println!("GRPCJSON {summary}");
    ExitCode::SUCCESS
}
