//! One connection: hyper on a watched socket, with the timeouts hyper does not have.
//!
//! hyper's own header-read timeout starts as soon as it waits for a head, so on a keep-alive
//! connection it cannot tell a slow client from an idle one. Instead a [`ConnWatch`] records
//! when the connection last finished a request and when the first byte of the next head
//! arrived, and the driver in [`serve`] sleeps until the next deadline:
//!
//! - a head that started arriving must be complete within `header_timeout` (slowloris), else
//!   the connection is dropped;
//! - an idle connection is closed after `keep_alive` (before its first request: after
//!   `header_timeout`), gracefully, so hyper closes it only when no request is under way;
//!   an HTTP/2 connection that has served is kept while `--http2-keepalive-interval` pings
//!   it (gRPC channels idle between calls), hyper closing it when a ping goes unanswered;
//! - when the worker drains, HTTP/2 connections get GOAWAY at once, HTTP/1 connections answer
//!   their next request with `Connection: close` (see the service) and idle ones close after a
//!   short grace, so that a request already on the wire is answered rather than reset;
//! - past `--max-connection-age` (±10%, as gRPC's `MAX_CONNECTION_AGE`), the client is asked
//!   to reconnect the same graceful way: GOAWAY on HTTP/2, `Connection: close` on the next
//!   HTTP/1 answer. A client that holds its connections for long (a proxy's pool) then lands
//!   again on whichever worker has the fewest (see `accept`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use serve_app::{ModelId, Protocol};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::accept::{Accepted, Stream};
use crate::service::Service;
use crate::{Role, Shared};

/// What an HTTP/2 connection starts with (RFC 9113, 3.4); its first read holds at least
/// this much of it in practice (a client writes the preface whole).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// How long an idle HTTP/1 connection of a draining worker may wait for a last request.
const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(2);

/// How often the driver looks again at an idle HTTP/2 connection that keep-alive pings watch.
const IDLE_HTTP2: Duration = Duration::from_secs(3600);

/// Timestamps and counters shared by a connection's socket, its service and its driver.
pub(crate) struct ConnWatch {
    opened: Instant,
    in_flight: AtomicU32,
    served: AtomicU64,
    /// Milliseconds after `opened` when the last request finished.
    idle_since: AtomicU64,
    /// Milliseconds after `opened`, plus one, when the first byte of a head arrived; 0: none.
    head_since: AtomicU64,
    /// Bytes of the head under way so far (for `--min-rate`).
    head_bytes: AtomicU64,
    /// Any byte has been read (the first read tells HTTP/2's preface).
    read_any: AtomicBool,
    /// Wakes the driver when a head starts: its deadline may be sooner than the idle one it
    /// sleeps until.
    head_started: tokio::sync::Notify,
    http2: AtomicBool,
    /// When the connection has lived long enough (`--max-connection-age`, jittered).
    recycle_at: Option<Instant>,
    /// The client was asked to reconnect (counted once).
    recycled: AtomicBool,
    /// Its place among the connections without a request, until its first one starts.
    place: std::sync::Mutex<Option<crate::evict::Place>>,
}

impl ConnWatch {
    fn new(max_age: Duration, place: Option<crate::evict::Place>) -> Self {
        let opened = Instant::now();
        ConnWatch {
            place: std::sync::Mutex::new(place),
            opened,
            recycle_at: (!max_age.is_zero()).then(|| opened + jittered(max_age)),
            recycled: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            head_bytes: AtomicU64::new(0),
            read_any: AtomicBool::new(false),
            head_started: tokio::sync::Notify::new(),
            http2: AtomicBool::new(false),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// A request's head was parsed and the service starts.
    pub(crate) fn request_started(&self, http2: bool) {
        if self.served.load(Relaxed) == 0
            && let Ok(mut place) = self.place.lock()
        {
            // A client that sends requests is no slow one: never evicted.
            place.take();
        }
        self.in_flight.fetch_add(1, Relaxed);
        self.head_since.store(0, Relaxed);
        if http2 {
            self.http2.store(true, Relaxed);
        }
    }

    /// The service answered.
    pub(crate) fn request_finished(&self) {
        self.idle_since.store(self.elapsed_ms(), Relaxed);
        self.served.fetch_add(1, Relaxed);
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// Whether the connection has lived past its `--max-connection-age`.
    pub(crate) fn past_age(&self) -> bool {
        self.recycle_at.is_some_and(|t| Instant::now() >= t)
    }

    /// Marks the client as asked to reconnect; true the first time.
    pub(crate) fn recycle(&self) -> bool {
        !self.recycled.swap(true, Relaxed)
    }

    /// Bytes arrived: on an idle HTTP/1 connection (or one whose protocol is not known
    /// yet), a head has started. Not on an HTTP/2 connection that has served: its idle
    /// frames (window updates, ping acks, a call's last data after its answer started) are
    /// no head, and must not get a live connection cut as a slow one.
    fn bytes_read(&self, data: &[u8]) {
        if !self.read_any.swap(true, Relaxed) && data.starts_with(HTTP2_PREFACE) {
            // HTTP/2 (h2c prior knowledge, or h2 by ALPN under TLS): its preface and
            // settings are no request head, and a client may open its connection (a gRPC
            // channel) well before its first call.
            self.http2.store(true, Relaxed);
        }
        if self.in_flight.load(Relaxed) != 0 || self.http2.load(Relaxed) {
            return;
        }
        let n = data.len();
        if self.head_since.load(Relaxed) == 0 {
            self.head_since.store(self.elapsed_ms() + 1, Relaxed);
            self.head_bytes.store(0, Relaxed);
            self.head_started.notify_one();
        }
        self.head_bytes.fetch_add(n as u64, Relaxed);
    }

    fn verdict(&self, cfg: &serve_settings::Values, draining: bool) -> Verdict {
        let now = self.elapsed_ms();
        let at = |ms: u64| self.opened + Duration::from_millis(ms);
        if self.in_flight.load(Relaxed) > 0 {
            // Busy: look again later; the body and app have their own timeouts.
            return Verdict::WaitUntil(Instant::now() + cfg.keep_alive.max(Duration::from_secs(1)));
        }
        let head = self.head_since.load(Relaxed);
        if head != 0 {
            let allowed = head_allows(cfg, self.head_bytes.load(Relaxed));
            let deadline = head - 1 + allowed.as_millis() as u64;
            return if now >= deadline {
                Verdict::Abort
            } else {
                Verdict::WaitUntil(at(deadline))
            };
        }
        let mut grace = if self.served.load(Relaxed) == 0 {
            cfg.header_timeout
        } else if self.http2.load(Relaxed) && !cfg.http2_keepalive_interval.is_zero() {
            // hyper's pings watch an idle HTTP/2 connection (a gRPC channel between calls):
            // it is kept until it fails one, its age, or the drain.
            IDLE_HTTP2
        } else {
            cfg.keep_alive
        };
        if draining {
            grace = grace.min(DRAIN_IDLE_GRACE);
        }
        let deadline = self.idle_since.load(Relaxed) + grace.as_millis() as u64;
        if now >= deadline {
            Verdict::CloseIdle
        } else {
            Verdict::WaitUntil(at(deadline))
        }
    }
}

/// How long `bytes` may take to arrive at `--min-rate` (`rate` bytes a second, after a first
/// second that is always allowed): `None` when the rate is off.
pub(crate) fn rate_allows(rate: usize, bytes: u64) -> Option<Duration> {
    (rate > 0).then(|| RATE_GRACE + Duration::from_secs_f64(bytes as f64 / rate as f64))
}

/// How long a request head or TLS handshake of `bytes` so far may take: `--header-timeout`,
/// or sooner at `--min-rate`.
fn head_allows(cfg: &serve_settings::Values, bytes: u64) -> Duration {
    rate_allows(cfg.min_rate, bytes).map_or(cfg.header_timeout, |t| t.min(cfg.header_timeout))
}

/// The time every head, handshake or body has before `--min-rate` applies.
const RATE_GRACE: Duration = Duration::from_secs(1);

enum Verdict {
    WaitUntil(Instant),
    CloseIdle,
    Abort,
}

/// `age` give or take 10%, so that connections opened together do not all reconnect together
/// (gRPC's `MAX_CONNECTION_AGE` jitter).
fn jittered(age: Duration) -> Duration {
    use std::hash::BuildHasher;
    // A randomly keyed hash of nothing: a fresh random number without a generator to keep.
    let r = std::collections::hash_map::RandomState::new().hash_one(()) as f64 / u64::MAX as f64;
    age.mul_f64(0.9 + 0.2 * r)
}

/// What a connection's bytes go through: its socket, or TLS over it.
enum Io {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::server::TlsStream<Counting>>),
}

/// A TCP stream that counts the bytes it reads, so that a handshake's rate can be judged
/// while rustls owns the stream.
struct Counting {
    tcp: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counting {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.tcp).poll_read(cx, buf);
        this.read
            .fetch_add((buf.filled().len() - before) as u64, Relaxed);
        res
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Runs `$e` with `$s` bound to the pinned stream under `$io`, whatever it is.
macro_rules! on_io {
    ($io:expr, $s:ident => $e:expr) => {
        match $io {
            Io::Tcp(s) => {
                let $s = Pin::new(s);
                $e
            }
            Io::Unix(s) => {
                let $s = Pin::new(s);
                $e
            }
            Io::Tls(s) => {
                let $s = Pin::new(s);
                $e
            }
        }
    };
}

/// The stream, noting when bytes arrive.
pub(crate) struct WatchedIo {
    io: Io,
    watch: Arc<ConnWatch>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = on_io!(&mut this.io, s => s.poll_read(cx, buf));
        if buf.filled().len() > before {
            this.watch.bytes_read(&buf.filled()[before..]);
        }
        res
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_io!(&mut self.get_mut().io, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_io!(&mut self.get_mut().io, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_io!(&mut self.get_mut().io, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_io!(&mut self.get_mut().io, s => s.poll_shutdown(cx))
    }
}

/// The TLS handshake of a connection to a listener that serves requests over TLS; `None`
/// when it fails or is not done within `--header-timeout` or at `--min-rate` (a handshake is
/// the start of a request head: untrusted, bounded the same way). Cleartext HTTP, garbage
/// and a truncated or trickled handshake all end here, the connection closed.
async fn handshake(
    shared: &Shared,
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: Option<SocketAddr>,
) -> Option<Io> {
    let cfg = &shared.config;
    let started = Instant::now();
    let read = Arc::new(AtomicU64::new(0));
    let accept = acceptor.accept(Counting {
        tcp,
        read: read.clone(),
    });
    tokio::pin!(accept);
    // Not cut short when the worker drains: the client is about to send a request, which
    // the drain answers (with `Connection: close`), as it does any accepted connection's.
    loop {
        // Bytes that came since the last look move the deadline on.
        let deadline = started + head_allows(cfg, read.load(Relaxed));
        if Instant::now() >= deadline {
            tracing::debug!(
                ?peer,
                "TLS handshake too slow: {} bytes in {:.1} s (--header-timeout {} s, \
                 --min-rate {} bytes/s)",
                read.load(Relaxed),
                started.elapsed().as_secs_f64(),
                cfg.header_timeout.as_secs_f64(),
                cfg.min_rate
            );
            dropped(shared, serve_metrics::Dropped::Slow);
            return None;
        }
        tokio::select! {
            done = &mut accept => return match done {
                Ok(tls) => Some(Io::Tls(Box::new(tls))),
                Err(e) => {
                    tracing::debug!(?peer, "TLS handshake failed: {e}");
                    dropped(shared, serve_metrics::Dropped::TlsHandshake);
                    None
                }
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Serves one connection to its end. The permit counts it against `--worker-connections`
/// and is returned when this returns, which is how a draining worker knows it is done; the
/// connection leaves the worker's count in the scoreboard at the same moment.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    accepted: Accepted,
    role: Role,
    _permit: OwnedSemaphorePermit,
) {
    let Accepted {
        stream,
        peer,
        counted: _counted,
    } = accepted;
    let _open = OpenGuard::new(&shared);
    if let Some(r) = &shared.recorder {
        r.connection_accepted();
    }
    // Until its first request, a connection may have to give way when the worker is full;
    // not one on a `--metrics-bind` listener (probes and scrapes must get through then).
    let place = (role != Role::Metrics).then(|| shared.pending.enter());
    let evicted = place.as_ref().map_or_else(
        || Arc::new(tokio::sync::Notify::new()),
        |p| p.evicted.clone(),
    );
    let io = match (stream, &shared.tls) {
        (Stream::Tcp(tcp), Some(acceptor)) if role != Role::Metrics => {
            tokio::select! {
                io = handshake(&shared, acceptor, tcp, peer) => match io {
                    Some(io) => io,
                    None => return,
                },
                _ = evicted.notified() => {
                    tracing::debug!(?peer, "a connection still in its TLS handshake gave way (the worker is full)");
                    dropped(&shared, serve_metrics::Dropped::GaveWay);
                    return;
                }
            }
        }
        (Stream::Tcp(tcp), _) => Io::Tcp(tcp),
        (Stream::Unix(unix), _) => Io::Unix(unix),
    };
    let watch = Arc::new(ConnWatch::new(shared.config.max_connection_age, place));
    let io = TokioIo::new(WatchedIo {
        io,
        watch: watch.clone(),
    });
    let started = Instant::now();
    let service = Service::new(shared.clone(), watch.clone(), peer, role);
    let conn = shared.http.serve_connection(io, service);
    tokio::pin!(conn);

    let cfg = &shared.config;
    let mut draining = shared.drain.is_draining();
    let mut closing = false;
    let mut hard_deadline: Option<Instant> = None;
    let drain_started = shared.drain.started();
    tokio::pin!(drain_started);
    loop {
        if !closing && watch.http2.load(Relaxed) && watch.past_age() {
            // GOAWAY: streams under way finish, the client opens its next ones elsewhere.
            conn.as_mut().graceful_shutdown();
            closing = true;
            hard_deadline = Some(Instant::now() + cfg.graceful_timeout);
            if watch.recycle()
                && let Some(r) = &shared.recorder
            {
                r.connection_recycled();
            }
        }
        let wake = match watch.verdict(cfg, draining) {
            Verdict::WaitUntil(t) => match watch.recycle_at {
                // An HTTP/2 connection is told at its age; an HTTP/1 one on its next answer.
                Some(age) if !closing && age > Instant::now() => t.min(age),
                _ => t,
            },
            Verdict::Abort => {
                tracing::debug!(?peer, "closing a connection whose request head is late");
                dropped(&shared, serve_metrics::Dropped::Slow);
                return;
            }
            Verdict::CloseIdle if closing => hard_deadline.unwrap_or_else(Instant::now),
            Verdict::CloseIdle => {
                conn.as_mut().graceful_shutdown();
                closing = true;
                let t = Instant::now() + cfg.graceful_timeout;
                hard_deadline = Some(t);
                t
            }
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    refused_by_hyper(&shared, &*e, peer, started);
                    tracing::debug!(?peer, "connection ended: {e}");
                }
                return;
            }
            _ = &mut drain_started, if !draining => {
                draining = true;
                if watch.http2.load(Relaxed) && !closing {
                    // GOAWAY: streams under way finish, the client opens no new ones here.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    hard_deadline = Some(Instant::now() + cfg.graceful_timeout);
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if hard_deadline.is_some_and(|t| Instant::now() >= t) {
                    return;
                }
            }
            // A head began: its deadline (`--min-rate`) may come before `wake`.
            _ = watch.head_started.notified() => {}
            // The worker is full and this connection has not started a request: it goes.
            _ = evicted.notified() => {
                tracing::debug!(?peer, "a connection without a request gave way (the worker is full)");
                dropped(&shared, serve_metrics::Dropped::GaveWay);
                return;
            }
        }
    }
}

/// A request hyper refused itself, before any service ran: a head past its limits, which it
/// answers 431 (too many fields, `--limit-request-fields`; or a head larger than its buffer,
/// `--limit-request-field_size`) or 414 (a URI past 64 KiB), with an empty body, and closes
/// the connection. Counted (no model, protocol `other`) and logged, as every refusal is.
fn refused_by_hyper(
    shared: &Shared,
    e: &(dyn std::error::Error + 'static),
    peer: Option<SocketAddr>,
    since: Instant,
) {
    // hyper-util's auto builder boxes hyper's error.
    let Some(e) = e.downcast_ref::<hyper::Error>() else {
        return;
    };
    if !e.is_parse_too_large() {
        return;
    }
    // hyper says which limit only in its message.
    let (status, what) = if e.to_string().contains("URI") {
        (414, "its URI is longer than 64 KiB")
    } else {
        (
            431,
            "its head has more header fields than --limit-request-fields or is larger than \
             the head buffer (--limit-request-field_size)",
        )
    };
    if let Some(r) = &shared.recorder {
        r.request(ModelId::NONE, Protocol::Other, status, since.elapsed());
    }
    let from = peer.map_or_else(|| "a unix socket".to_owned(), |p| p.ip().to_string());
    tracing::info!("Refused a request from {from} with {status}: {what}");
}

/// Counts a connection dropped before its first request.
fn dropped(shared: &Shared, why: serve_metrics::Dropped) {
    if let Some(r) = &shared.recorder {
        r.connection_dropped(why);
    }
}

/// Counts the connection as open for as long as it lives (for the drain's log line).
struct OpenGuard<'a>(&'a Shared);

impl<'a> OpenGuard<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.open_connections.fetch_add(1, Relaxed);
        OpenGuard(shared)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Relaxed);
    }
}
