//! The HTTP ceiling for `serve`'s benchmarks: a bare hyper server that reads the request
//! body whole and answers a fixed JSON body, with no model, no parsing and no logging. A model
//! server cannot beat it; the harness (bench/run.py) reports `serve` as a fraction of it.
//!
//! ```text
//! ceiling [-w N] [-b 127.0.0.1:8001] [--reuse-port] [--max-seconds S]
//! ```
//!
//! Shape, chosen to match `serve -w N` as closely as a fork-free program can:
//! - `-w N` starts N OS threads, each with its own **current-thread** tokio runtime (serve's
//!   worker runtime without `--threads`), so N threads run at most N cores, like N workers.
//! - By default the N threads **share one listening socket** (one accept queue, each runtime
//!   polling a clone of the same fd), as serve's forked workers share the master's listener.
//!   With `--reuse-port` each thread binds its own socket with `SO_REUSEPORT`, so the kernel
//!   spreads connections across N queues (what serve does *not* do, see ARCHITECTURE.md).
//! - HTTP/1.1 with keep-alive through `hyper_util`'s auto builder (h1, and h2c on preface),
//!   `TCP_NODELAY` on every accepted socket, as serve's worker does.
//! - Binds 127.0.0.1 by default; `--max-seconds S` makes it exit by itself after S seconds
//!   (the harness also kills it), so a forgotten process cannot linger.
//!
//! The answer is the size and shape of serve's V1 iris answer for one row.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{Domain, Protocol, Socket, Type};

/// The fixed answer: serve's V1 answer for one iris row.
const ANSWER: &[u8] =
    br#"{"predictions":[{"label":0,"probabilities":[0.98165685,0.018343147,1.4395042e-8]}]}"#;

const USAGE: &str = "usage: ceiling [-w N] [-b ADDR] [--reuse-port] [--max-seconds S]";

struct Args {
    workers: usize,
    bind: SocketAddr,
    reuse_port: bool,
    max_seconds: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        workers: 1,
        bind: SocketAddr::from(([127, 0, 0, 1], 8001)),
        reuse_port: false,
        max_seconds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "-w" | "--workers" => {
                args.workers = value(&a)?
                    .parse()
                    .map_err(|e| format!("-w: {e}"))
                    .and_then(|n: usize| {
                        if n == 0 {
                            Err("-w: at least 1".into())
                        } else {
                            Ok(n)
                        }
                    })?;
            }
            "-b" | "--bind" => {
                args.bind = value(&a)?.parse().map_err(|e| format!("-b: {e}"))?;
            }
            "--reuse-port" => args.reuse_port = true,
            "--max-seconds" => {
                args.max_seconds = Some(
                    value(&a)?
                        .parse()
                        .map_err(|e| format!("--max-seconds: {e}"))?,
                );
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(2048)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body whole, as a model server must before it can parse it.
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(Bytes::from_static(ANSWER)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// One worker: a current-thread runtime accepting on its listener until the process exits.
fn worker(listener: StdListener) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1().timer(TokioTimer::new()).keep_alive(true);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let http = http.clone();
            tokio::spawn(async move {
                let _ = http
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut listeners = Vec::with_capacity(args.workers);
    let first = match bind(args.bind, args.reuse_port) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ceiling: cannot bind {}: {e}", args.bind);
            return ExitCode::from(1);
        }
    };
    // The address actually bound (port 0 picks one), for the other sockets.
    let bound = first.local_addr().unwrap_or(args.bind);
    listeners.push(first);
    for _ in 1..args.workers {
        let next = if args.reuse_port {
            bind(bound, true)
        } else {
            listeners[0].try_clone()
        };
        match next {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("ceiling: cannot open another listener on {bound}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let mode = if args.reuse_port {
        "SO_REUSEPORT sockets"
    } else {
        "one shared listener"
    };
    eprintln!(
        "ceiling: listening on http://{bound} ({} current-thread runtimes, {mode})",
        args.workers
    );
    for (i, l) in listeners.into_iter().enumerate() {
        let spawned = thread::Builder::new()
            .name(format!("ceiling-{i}"))
            .spawn(move || {
                if let Err(e) = worker(l) {
                    eprintln!("ceiling: worker {i}: {e}");
                    std::process::exit(1);
                }
            });
        if let Err(e) = spawned {
            eprintln!("ceiling: cannot start worker {i}: {e}");
            return ExitCode::from(1);
        }
    }
    match args.max_seconds {
        Some(s) => thread::sleep(Duration::from_secs(s)),
        None => loop {
            thread::park();
        },
    }
    ExitCode::SUCCESS
}
