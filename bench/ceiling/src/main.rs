//! The HTTP ceiling for `serve`'s benchmarks: a bare hyper server that reads the request
//! body whole and answers a fixed JSON body, with no model, no parsing and no logging. A model
//! server cannot beat it; the harness (bench/run.py) reports `serve` as a fraction of it.
//!
//! ```text
//! ceiling [-w N] [-b 127.0.0.1:8001] [--accept MODE] [--reuse-port] [--max-seconds S]
//! ```
//!
//! Shape, chosen to match `serve -w N` as closely as a fork-free program can:
//! - `-w N` starts N OS threads, each with its own **current-thread** tokio runtime (serve's
//!   worker runtime without `--threads`), so N threads run at most N cores, like N workers.
//! - The N threads **share one listening socket** (one accept queue, each runtime polling a
//!   clone of the same fd), as serve's forked workers share the master's listener, and take
//!   their connections as serve's workers do (`--accept balanced`, the default: serve's own
//!   `serve_worker::Acceptor`, over a scoreboard of N slots in this process's memory).
//! - HTTP/1.1 with keep-alive through `hyper_util`'s auto builder (h1, and h2c on preface),
//!   `TCP_NODELAY` on every accepted socket, as serve's worker does.
//! - Binds 127.0.0.1 by default; `--max-seconds S` makes it exit by itself after S seconds
//!   (the harness also kills it), so a forgotten process cannot linger.
//!
//! `--accept` runs the other ways of spreading connections that serve's issue 18 measured
//! before choosing (ARCHITECTURE.md has the figures):
//! - `shared`: each thread accepts in a loop until the queue is empty (serve before it).
//! - `one`: each thread accepts one connection per wake-up, then lets its other tasks run.
//! - `exclusive`: each thread has an acceptor thread blocked in `epoll_wait` on the listener
//!   registered with `EPOLLEXCLUSIVE` (the kernel wakes one waiter per connection), which
//!   hands each connection to its runtime. tokio cannot register the listener that way
//!   itself, so the waiter is a thread of its own.
//! - `reuseport` (or `--reuse-port`): a socket per thread with `SO_REUSEPORT`; the kernel
//!   hashes each connection onto one of them.
//!
//! `GET /workers` answers each thread's connections accepted and open and requests served,
//! and which thread answers (`{"accepted":[..],"open":[..],"requests":[..],"me":0}`: its
//! `open` counts the connection asking), so that the harness can see the spread.
//!
//! The answer is the size and shape of serve's V1 iris answer for one row.

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
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
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use serve_worker::accept::{Accepted, Stream};
use serve_worker::{Acceptor, Board, Listener, Share};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;

/// The fixed answer: serve's V1 answer for one iris row.
const ANSWER: &[u8] =
    br#"{"predictions":[{"label":0,"probabilities":[0.98165685,0.018343147,1.4395042e-8]}]}"#;

const USAGE: &str = "usage: ceiling [-w N] [-b ADDR] [--accept balanced|shared|one|exclusive|reuseport] \
                     [--reuse-port] [--max-seconds S]";

/// How the threads take their connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Balanced,
    Shared,
    One,
    Exclusive,
    ReusePort,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "balanced" => Mode::Balanced,
            "shared" => Mode::Shared,
            "one" => Mode::One,
            "exclusive" => Mode::Exclusive,
            "reuseport" => Mode::ReusePort,
            _ => return Err(format!("--accept: unknown mode {s:?}\n{USAGE}")),
        })
    }
}

struct Args {
    workers: usize,
    bind: SocketAddr,
    mode: Mode,
    max_seconds: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        workers: 1,
        bind: SocketAddr::from(([127, 0, 0, 1], 8001)),
        mode: Mode::Balanced,
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
            "--accept" => args.mode = Mode::parse(&value(&a)?)?,
            "--reuse-port" => args.mode = Mode::ReusePort,
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

/// What one thread counts.
#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    open: AtomicI64,
    requests: AtomicU64,
}

/// Every thread's counts.
static COUNTS: OnceLock<Box<[Counts]>> = OnceLock::new();

thread_local! {
    /// This thread's index in [`COUNTS`].
    static ME: Cell<usize> = const { Cell::new(0) };
}

fn counts() -> &'static Counts {
    &COUNTS.get().expect("set before the threads start")[ME.get()]
}

/// `{"accepted":[..],"open":[..],"requests":[..],"me":N}`.
fn report() -> String {
    let all = COUNTS.get().expect("set before the threads start");
    let list = |f: &dyn Fn(&Counts) -> String| all.iter().map(f).collect::<Vec<_>>().join(",");
    format!(
        r#"{{"accepted":[{}],"open":[{}],"requests":[{}],"me":{}}}"#,
        list(&|c| c.accepted.load(Relaxed).to_string()),
        list(&|c| c.open.load(Relaxed).to_string()),
        list(&|c| c.requests.load(Relaxed).to_string()),
        ME.get(),
    )
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let workers = req.uri().path() == "/workers";
    // Read the body whole, as a model server must before it can parse it.
    let _ = req.into_body().collect().await;
    let body = if workers {
        Bytes::from(report())
    } else {
        counts().requests.fetch_add(1, Relaxed);
        Bytes::from_static(ANSWER)
    };
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// Serves one connection on the current runtime; `hold` lives as long as it (serve's count of
/// the connection, in balanced mode).
fn spawn_conn<H: Send + 'static>(http: &auto::Builder<TokioExecutor>, stream: TcpStream, hold: H) {
    let _ = stream.set_nodelay(true);
    counts().accepted.fetch_add(1, Relaxed);
    counts().open.fetch_add(1, Relaxed);
    let http = http.clone();
    tokio::spawn(async move {
        let _ = http
            .serve_connection(TokioIo::new(stream), service_fn(answer))
            .await;
        counts().open.fetch_sub(1, Relaxed);
        drop(hold);
    });
}

/// One worker: a current-thread runtime taking connections as `mode` says, until the process
/// exits.
fn worker(listener: StdListener, mode: Mode, index: usize, board: Board) -> std::io::Result<()> {
    ME.set(index);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1().timer(TokioTimer::new()).keep_alive(true);
        match mode {
            Mode::Shared | Mode::ReusePort | Mode::One => {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => spawn_conn(&http, stream, ()),
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                    if mode == Mode::One {
                        tokio::task::yield_now().await;
                    }
                }
            }
            Mode::Balanced => {
                let slot = &board.all()[index];
                let heartbeat = Duration::from_millis(100);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(heartbeat);
                    loop {
                        tick.tick().await;
                        slot.beat();
                    }
                });
                let share = Share::new(board, slot, heartbeat, serve_arbiter::accept_queue);
                let mut acceptor = Acceptor::new(Listener::Tcp(listener), Some(share))?;
                loop {
                    match acceptor.accept().await {
                        Ok(Accepted {
                            stream: Stream::Tcp(stream),
                            counted,
                            ..
                        }) => spawn_conn(&http, stream, counted),
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }
            Mode::Exclusive => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let name = format!("ceiling-{index}-accept");
                thread::Builder::new()
                    .name(name)
                    .spawn(move || accept_exclusive(listener, tx))?;
                while let Some(stream) = rx.recv().await {
                    match TcpStream::from_std(stream) {
                        Ok(s) => spawn_conn(&http, s, ()),
                        Err(e) => eprintln!("ceiling: {e}"),
                    }
                }
                Ok(())
            }
        }
    })
}

/// Waits on the listener with `EPOLLEXCLUSIVE` and hands one connection per wake-up to the
/// runtime.
fn accept_exclusive(
    listener: StdListener,
    to: tokio::sync::mpsc::UnboundedSender<std::net::TcpStream>,
) -> std::io::Result<()> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
    epoll.add(&listener, EpollEvent::new(flags, 0))?;
    let mut events = [EpollEvent::empty()];
    loop {
        epoll.wait(&mut events, EpollTimeout::NONE)?;
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(true)?;
                if to.send(stream).is_err() {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let reuse_port = args.mode == Mode::ReusePort;
    let mut listeners = Vec::with_capacity(args.workers);
    let first = match bind(args.bind, reuse_port) {
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
        let next = if reuse_port {
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
    eprintln!(
        "ceiling: listening on http://{bound} ({} current-thread runtimes, --accept {:?})",
        args.workers, args.mode
    );
    // The scoreboard serve's acceptor reads: one slot per thread, serving from the start.
    let board = Board::private(args.workers);
    for (i, slot) in board.all().iter().enumerate() {
        slot.claim(1);
        slot.set_state(serve_worker::State::Ready);
        board.cover(i);
    }
    let _ = COUNTS.set((0..args.workers).map(|_| Counts::default()).collect());
    for (i, l) in listeners.into_iter().enumerate() {
        let mode = args.mode;
        let spawned = thread::Builder::new()
            .name(format!("ceiling-{i}"))
            .spawn(move || {
                if let Err(e) = worker(l, mode, i, board) {
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
