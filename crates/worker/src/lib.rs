//! One worker process: what runs after the master forks.
//!
//! A worker builds its own tokio runtime (after the fork: the master has no threads), takes
//! the listeners it inherited, serves HTTP/1.1 and h2c with hyper, writes its heartbeat and
//! counters in its scoreboard slot, and runs the [`serve_app::App`]. It stops accepting on
//! SIGTERM or after `--max-requests`, finishes what it has, and returns an exit code; the
//! caller (the arbiter's fork) exits the process with it. Its settings are
//! [`serve_settings::Config`], as the master resolved them.
//!
//! # Layout
//! - [`scoreboard`]: the shared-memory slot through which the master watches this worker.
//! - [`listener`]: the inherited sockets.
//! - [`accept`]: which worker takes the next connection (the workers share them evenly).
//! - [`drain`]: the one-way switch that stops a worker gracefully.
//! - `conn`: a connection's life, with the idle, head and drain timeouts hyper lacks.
//! - `service`: a request's life: limits, body, app, counters, access log.
//! - `admin`: `/metrics` and `/status`, read from the shared memory of every worker.
//! - `limits`, `body`: gunicorn's request limits; body size, time and decompression.
//! - `compress`: answers gzip- or deflate-compressed when the client takes it.
//! - `app_cell`: the app, preloaded or built on the first request.
//! - `memory`: `--max-worker-memory`, the worker's own memory read on the heartbeat.
//! - `catch`: panics in the app become 500s.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod accept;
mod admin;
mod app_cell;
pub mod auth;
mod body;
mod catch;
mod compress;
mod conn;
pub mod control;
pub mod drain;
mod evict;
mod limits;
pub mod listener;
mod memory;
pub mod scoreboard;
mod service;

use std::io::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use serve_settings::kinds::ModelControlMode;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;

pub use accept::{Acceptor, Share};
pub use drain::{Drain, Reason};
pub use listener::Listener;
pub use scoreboard::{Board, Slot, State};

/// The exit codes of serve's processes, master and workers (gunicorn's numbers). The one
/// place they are defined; a process exits with [`ExitCode::code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Stopped as asked.
    Ok = 0,
    /// A configuration or bind error.
    Config = 1,
    /// A command-line usage error.
    Usage = 2,
    /// A worker could not boot (gunicorn's `WORKER_BOOT_ERROR`).
    WorkerBoot = 3,
    /// The app could not be loaded (gunicorn's `APP_LOAD_ERROR`).
    AppLoad = 4,
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// How a start that could not load its app exits: 4, or 1 when the host lacks what the
    /// app needs (a library to install: a configuration error, not the app's).
    pub fn of_app_error(e: &serve_app::AppError) -> ExitCode {
        if e.is_host() {
            ExitCode::Config
        } else {
            ExitCode::AppLoad
        }
    }

    /// The exit code a child process reported, when it is one of serve's.
    pub fn from_code(code: i32) -> Option<ExitCode> {
        [
            ExitCode::Ok,
            ExitCode::Config,
            ExitCode::Usage,
            ExitCode::WorkerBoot,
            ExitCode::AppLoad,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }
}

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `--bind` (or systemd's sockets): every route, REST and gRPC alike, and `/metrics` and
    /// `/status` unless a `--metrics-bind` listener serves them.
    Main,
    /// `--grpc-bind`: gRPC only (a port of its own for clients that route it apart).
    Grpc,
    /// `--metrics-bind`: `/metrics` and `/status` only (scrapes, probes, operators).
    Metrics,
}

/// Everything a freshly forked worker is given.
pub struct WorkerArgs {
    /// The listening sockets, shared with the master and the other workers.
    pub listeners: Vec<Listener>,
    /// This worker's scoreboard slot.
    pub slot: &'static Slot,
    /// Every setting, as the master resolved them.
    pub config: Arc<serve_settings::Config>,
    /// The app's factory: builds the app on the first request unless it was preloaded.
    pub factory: Arc<dyn serve_app::AppFactory>,
    /// The app the master built before forking (`--preload`).
    pub preloaded: Option<Arc<dyn serve_app::App>>,
    /// Requests after which the worker recycles itself (jitter already applied); 0: never.
    pub max_requests: u64,
    /// Every scoreboard slot: the other workers, to share connections with them, and
    /// `/status` and `serve_workers`.
    pub board: Board,
    /// What each listener serves, in the order of `listeners`.
    pub roles: Vec<Role>,
    /// How many connections wait in a listener's queue, as the arbiter can read it.
    pub queue_len: accept::QueueLen,
    /// The workers' end of the master's repository control channel ([`control`]), under
    /// `--model-control explicit`.
    pub control: Option<std::os::fd::OwnedFd>,
    /// TLS for the TCP listeners that serve requests (not `--metrics-bind`'s).
    pub tls: Option<Arc<serve_tls::Tls>>,
    /// The bearer tokens every API request needs (`--auth-token-file`).
    pub tokens: Option<Arc<auth::Tokens>>,
}

/// State shared by every connection of the worker.
pub(crate) struct Shared {
    config: Arc<serve_settings::Config>,
    slot: &'static Slot,
    board: Board,
    /// Where this worker's figures go (none in a process without the master's region).
    recorder: Option<serve_metrics::Recorder>,
    /// See [`WorkerArgs::roles`].
    roles: Vec<Role>,
    drain: Drain,
    /// The drain as streamed requests see it, made once.
    drain_watch: serve_app::DrainWatch,
    /// Asks the master to load and unload models (`--model-control explicit`).
    repository: Option<serve_app::Repository>,
    /// Terminates TLS (`--certfile`).
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The certificate served: its file and expiry, for `/metrics`.
    certificate: Option<(String, i64)>,
    /// See [`WorkerArgs::tokens`].
    tokens: Option<Arc<auth::Tokens>>,
    /// The connections that have not started a request (they give way when full).
    pending: Arc<evict::Pending>,
    app: app_cell::AppCell,
    http: auto::Builder<TokioExecutor>,
    max_requests: u64,
    served: AtomicU64,
    open_connections: AtomicUsize,
    access_log: bool,
    id_prefix: String,
    next_id: AtomicU64,
}

impl Shared {
    /// Starts draining because the worker retires itself (`--max-requests`,
    /// `--max-worker-memory`), and tells the master why, so that it counts the restart under
    /// `cause`; true the first time only.
    fn retire(&self, reason: Reason, cause: serve_metrics::Cause) -> bool {
        let first = self.drain.start(reason);
        if let (true, Some(r)) = (first, &self.recorder) {
            r.retiring(cause);
        }
        first
    }

    /// What listener `index` serves.
    fn role(&self, index: usize) -> Role {
        self.roles.get(index).copied().unwrap_or(Role::Main)
    }

    /// Whether `/metrics` and `/status` are served on the main listeners: no
    /// `--metrics-bind` listener serves them.
    fn admin_on_main(&self) -> bool {
        !self.roles.contains(&Role::Metrics)
    }

    /// The drain as a streamed request sees it ([`serve_app::Context::drain`]).
    fn drain_watch(&self) -> serve_app::DrainWatch {
        self.drain_watch.clone()
    }

    /// The client's `X-Request-Id` when it is sane, or a fresh one unique across workers.
    fn request_id(&self, headers: &http::HeaderMap) -> Arc<str> {
        let given = headers.get("x-request-id").and_then(|v| v.to_str().ok());
        if let Some(v) = given.filter(|v| !v.is_empty() && v.len() <= 200) {
            return Arc::from(v);
        }
        let n = self.next_id.fetch_add(1, Relaxed);
        // Formatted on the stack: the Arc is the request's one allocation for its id.
        let mut buf = [0u8; 64];
        let mut rest = &mut buf[..];
        let _ = write!(rest, "{}{n:x}", self.id_prefix);
        let len = 64 - rest.len();
        Arc::from(std::str::from_utf8(&buf[..len]).unwrap_or("-"))
    }
}

/// Runs the worker to its end and returns the process exit code.
pub fn run(args: WorkerArgs) -> i32 {
    if let Err(e) = args.factory.post_fork() {
        tracing::error!("Worker failed to boot: {e}");
        return ExitCode::WorkerBoot.code();
    }
    let threads = args.config.threads;
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = builder
        .enable_all()
        .max_blocking_threads(64)
        .thread_name("serve-worker")
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("worker failed to boot: cannot start its runtime: {e}");
            return ExitCode::WorkerBoot.code();
        }
    };
    let code = runtime.block_on(serve(args));
    // Blocking tasks (a long inference) must not hold the exit back past the graceful timeout.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn serve(args: WorkerArgs) -> i32 {
    let WorkerArgs {
        listeners,
        slot,
        config,
        factory,
        preloaded,
        max_requests,
        board,
        roles,
        queue_len,
        control,
        tls,
        tokens,
    } = args;
    let pid = std::process::id();
    let warm_after_fork = preloaded.clone();

    let mut http = auto::Builder::new(TokioExecutor::new());
    {
        let mut h1 = http.http1();
        h1.timer(TokioTimer::new())
            .header_read_timeout(None)
            .keep_alive(!config.keep_alive.is_zero());
        if let Some(size) = limits::head_buffer_size(&config) {
            h1.max_buf_size(size);
        }
        // hyper's parser needs a bound on the field count and answers 431 itself past it.
        // Its default of 100 lives on the stack; another value costs an allocation per request.
        match config.limit_request_fields {
            100 => {}
            0 => {
                h1.max_headers(limits::UNLIMITED_FIELDS);
            }
            n => {
                h1.max_headers(n);
            }
        }
    }
    {
        let mut h2 = http.http2();
        h2.timer(TokioTimer::new()).max_concurrent_streams(
            u32::try_from(config.http2_max_concurrent_streams).unwrap_or(u32::MAX),
        );
        if !config.http2_keepalive_interval.is_zero() {
            h2.keep_alive_interval(config.http2_keepalive_interval)
                .keep_alive_timeout(config.http2_keepalive_timeout);
        }
    }

    let drain = Drain::default();
    let shared = Arc::new(Shared {
        access_log: serve_log::access_enabled(),
        id_prefix: format!("{:x}-{pid:x}-", scoreboard::now_ms()),
        next_id: AtomicU64::new(1),
        served: AtomicU64::new(0),
        open_connections: AtomicUsize::new(0),
        app: app_cell::AppCell::new(factory, preloaded),
        drain: drain.clone(),
        drain_watch: serve_app::DrainWatch::new(move || {
            let drain = drain.clone();
            Box::pin(async move { drain.started().await })
        }),
        repository: control
            .filter(|_| config.model_control == ModelControlMode::Explicit)
            .map(|fd| control::repository(fd, config.model_load_timeout)),
        certificate: tls.as_ref().map(|t| {
            let c = t.certificate();
            (c.file.display().to_string(), c.not_after)
        }),
        tls: tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config())),
        tokens,
        pending: Arc::default(),
        http,
        max_requests,
        slot,
        board,
        recorder: serve_metrics::recorder(),
        roles,
        config,
    });

    slot.set_connection_limit(shared.config.worker_connections);
    let mut accepting = Vec::new();
    for (index, l) in listeners.into_iter().enumerate() {
        // The main and gRPC listeners share their connections with the other workers; the
        // `--metrics-bind` ones take whatever comes (scrapes and probes, not the load).
        let share = (shared.role(index) != Role::Metrics)
            .then(|| Share::new(board, slot, shared.config.heartbeat_interval(), queue_len));
        match Acceptor::new(l, share) {
            Ok(acceptor) => accepting.push(acceptor),
            Err(e) => {
                tracing::error!("worker failed to boot: cannot use an inherited listener: {e}");
                return ExitCode::WorkerBoot.code();
            }
        }
    }
    if let Err(e) = watch_signals(&shared.drain) {
        tracing::error!("worker failed to boot: cannot install signal handlers: {e}");
        return ExitCode::WorkerBoot.code();
    }

    tokio::spawn(heartbeat(shared.clone()));
    // A preloaded app's parts that could not be built before the fork (their engine starts
    // threads) are built now, before the first connection; the heartbeat goes on meanwhile.
    if let Some(app) = warm_after_fork {
        let built = tokio::task::spawn_blocking(move || app.warm_after_fork()).await;
        let failed = match built {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some((e.to_string(), ExitCode::of_app_error(&e))),
            Err(e) => Some((e.to_string(), ExitCode::AppLoad)),
        };
        if let Some((e, code)) = failed {
            tracing::error!("worker failed to boot: {e}");
            return code.code();
        }
    }
    let connections = Arc::new(Semaphore::new(shared.config.worker_connections));
    let accept_loops: Vec<_> = accepting
        .into_iter()
        .enumerate()
        .map(|(index, acceptor)| {
            tokio::spawn(accept_loop(
                shared.clone(),
                index,
                acceptor,
                connections.clone(),
            ))
        })
        .collect();
    slot.beat();
    slot.set_state(State::Ready);

    shared.drain.started().await;
    slot.set_state(State::Draining);
    let open = shared.open_connections.load(Relaxed);
    tracing::info!("Worker exiting (pid: {pid}), {open} connections to finish");
    let all = u32::try_from(shared.config.worker_connections).unwrap_or(u32::MAX);
    let finished = tokio::time::timeout(shared.config.graceful_timeout, async {
        // The accept loops first: emptying a closing listener's queue takes permits.
        for l in accept_loops {
            let _ = l.await;
        }
        connections.acquire_many(all).await
    })
    .await;
    if finished.is_err() {
        let left = shared.open_connections.load(Relaxed);
        tracing::warn!(
            "Worker {pid} gave up on {left} connections after the graceful timeout of {} s",
            shared.config.graceful_timeout.as_secs_f64()
        );
    }
    0
}

/// Accepts connections until the worker drains. A connection is accepted only when a
/// `--worker-connections` permit is free, so past the limit connections wait in the kernel's
/// queue, where another worker can take them; and only when this worker's turn comes (see
/// [`accept`]). When the server stops, the listener's queue is emptied before the listener is
/// let go (see [`take_queue`]).
async fn accept_loop(
    shared: Arc<Shared>,
    index: usize,
    mut acceptor: Acceptor,
    connections: Arc<Semaphore>,
) {
    let drained = shared.drain.started();
    tokio::pin!(drained);
    loop {
        let permit = tokio::select! {
            biased;
            _ = &mut drained => break,
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            // Full, and a connection waits: the slowest to send a request gives way (its
            // permit comes back through the arm above). Nothing to evict: look again soon.
            _ = acceptor.arrival(), if connections.available_permits() == 0 => {
                if !shared.pending.evict_oldest() {
                    tokio::time::sleep(evict::MIN_AGE / 5).await;
                }
                continue;
            }
        };
        let accepted = tokio::select! {
            biased;
            _ = &mut drained => break,
            a = acceptor.accept() => a,
        };
        match accepted {
            Ok(accepted) => {
                let role = shared.role(index);
                tokio::spawn(conn::serve(shared.clone(), accepted, role, permit));
            }
            Err(e) => {
                // EMFILE and friends: the process is out of descriptors; back off rather
                // than spin, the queue keeps the connection meanwhile.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if shared.slot.listener_closing(index) {
        take_queue(&shared, index, acceptor, &connections).await;
    }
}

/// The server stops and this listener closes for good: the master let no new connection
/// into it, but the kernel may already have completed some whose clients sent their
/// requests, and would reset them when the last descriptor closes. Take them all, as permits
/// allow, whoever's turn it is, and answer them like the connections already open
/// (`Connection: close`).
async fn take_queue(
    shared: &Arc<Shared>,
    index: usize,
    acceptor: Acceptor,
    connections: &Arc<Semaphore>,
) {
    // Plain non-blocking accept(2) calls: tokio's readiness may lag behind the queue.
    let mut taken = 0usize;
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return;
        };
        match acceptor.accept_now() {
            Ok(Some(accepted)) => {
                taken += 1;
                let role = shared.role(index);
                tokio::spawn(conn::serve(shared.clone(), accepted, role, permit));
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("emptying a closing listener's queue: accept failed: {e}");
                break;
            }
        }
    }
    if taken > 0 {
        tracing::debug!("took {taken} connections left in a closing listener's queue");
    }
}

/// Writes the heartbeat from the event loop: if the loop is stuck, the heartbeat stops, and
/// the master notices after `--timeout`.
///
/// On the same tick, `--max-worker-memory` reads the worker's own memory.
async fn heartbeat(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut memory = memory::Watch::new(shared.config.max_worker_memory);
    loop {
        tick.tick().await;
        shared.slot.beat();
        if let Some(own) = memory.past_limit(shared.served.load(Relaxed))
            && shared.retire(Reason::Memory, serve_metrics::Cause::Memory)
        {
            tracing::info!(
                "Autorestarting worker after current requests: its own memory ({}) passed \
                 --max-worker-memory ({}) after {} requests.",
                memory::mib(own),
                memory::mib(shared.config.max_worker_memory),
                shared.served.load(Relaxed)
            );
        }
    }
}

/// A worker's signals: TERM drains, INT and QUIT exit at once, USR1 reopens the logs.
fn watch_signals(drain: &Drain) -> io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let drain = drain.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    drain.start(Reason::Signal);
                }
                _ = int.recv() => quick_exit(),
                _ = quit.recv() => quick_exit(),
                _ = usr1.recv() => {
                    if let Err(e) = serve_log::reopen() {
                        tracing::error!("cannot reopen the log files: {e}");
                    }
                }
            }
        }
    });
    Ok(())
}

fn quick_exit() -> ! {
    serve_log::quiesce();
    std::process::exit(ExitCode::Ok.code())
}
