//! Which worker takes the next connection.
//!
//! Every worker waits on the same listening sockets (the master's, inherited), and the kernel
//! wakes all of them when a connection arrives. Left to itself, the first worker to run
//! accepts until the queue is empty: 64 keep-alive connections that arrive together all land
//! on it and stay there for their whole life, while the other workers idle (one worker served
//! every request in 2 of 6 starts of `-w 2`, before this module).
//!
//! So a worker takes, at each wake-up, only what brings it to its fair share: the connections
//! open in every worker that can take one, plus those waiting in the queue (TCP tells how
//! many), divided among those workers ([`Share`], which reads every worker's count in the
//! scoreboard). A worker that holds its share leaves the rest to the others: it decides again
//! at the next arrival, or after a millisecond, until the queue is empty. A peer that takes
//! nothing for [`STALL`] while connections wait for it (its event loop is stuck, or it is not
//! scheduled) is passed over until it takes one again; a peer whose heartbeat is stale, that
//! is draining, or that is at its `--worker-connections` is not counted at all: a connection
//! never waits on a worker that will not come. ARCHITECTURE.md has the measurements behind
//! this choice, against one accept per wake-up, `SO_REUSEPORT` and `EPOLLEXCLUSIVE`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::SockFlag;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use crate::listener::Listener;
use crate::scoreboard::{Board, Slot, now_ms};

/// How long connections may wait on a less loaded peer that takes none of them before the
/// other workers stop leaving them to it. A worker that can run takes its connection within
/// microseconds, or a scheduler slice or two on a loaded machine.
pub const STALL: Duration = Duration::from_millis(100);

/// How often a worker that leaves connections to its peers looks at the queue when no new
/// connection arrives to wake it.
const RECHECK: Duration = Duration::from_millis(1);

/// A peer silent for this many heartbeat intervals is not waited for at all.
const STALE_BEATS: u32 = 3;

/// An accepted connection's socket.
pub enum Stream {
    /// TCP, with `TCP_NODELAY` set.
    Tcp(TcpStream),
    /// A unix stream socket.
    Unix(UnixStream),
}

/// A connection this worker took.
pub struct Accepted {
    /// The socket, registered with this thread's runtime.
    pub stream: Stream,
    /// The client's address (TCP only).
    pub peer: Option<SocketAddr>,
    /// Keeps the connection in its worker's count until dropped (none on a listener that does
    /// not balance).
    pub counted: Option<Counted>,
}

/// A connection in its worker's count, for as long as this lives.
pub struct Counted(&'static Slot);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// Reads how many connections wait in a listening socket's accept queue; `None` where the
/// kernel does not tell (unix sockets). serve's arbiter gives one that reads TCP's
/// `TCP_INFO`, a call this crate cannot make without `unsafe`.
pub type QueueLen = fn(BorrowedFd<'_>) -> Option<u32>;

/// A worker's view of the others, to share the connections with them.
pub struct Share {
    board: Board,
    me: &'static Slot,
    stale_ms: u64,
    queue_len: QueueLen,
}

impl Share {
    /// The worker of slot `me` on `board`, whose workers beat every `heartbeat`; `queue_len`
    /// tells how many connections wait (see [`QueueLen`]).
    pub fn new(board: Board, me: &'static Slot, heartbeat: Duration, queue_len: QueueLen) -> Share {
        let stale = heartbeat * STALE_BEATS;
        Share {
            board,
            me,
            stale_ms: stale.as_millis() as u64,
            queue_len,
        }
    }

    /// How many of the `queued` connections this worker takes now: as many as bring it to
    /// its fair share of every connection, open or waiting, among the workers that can take
    /// one; none when it holds its share already and a peer below it has not stalled while
    /// this worker left connections to it (0: leave them to the peers).
    ///
    /// Taking its whole share at once, rather than one connection per turn, matters under
    /// churn (a connection per request): connections taken together send their requests
    /// together, and the model merges them into one call. Strict turns cost a third more CPU
    /// per request there, for no better spread.
    fn room(&self, queued: u32, waiting: &mut Waiting, now: Instant) -> u32 {
        let beat = now_ms();
        let mine = u64::from(self.me.connections());
        let peers = self.board.in_use().iter().enumerate();
        let peers = peers.filter(|(_, p)| !std::ptr::eq(*p, self.me));
        let (mut sum, mut n) = (mine + u64::from(queued), 1u64);
        for (_, peer) in peers.clone() {
            if peer.takes_connections(beat, self.stale_ms) {
                sum += u64::from(peer.connections());
                n += 1;
            }
        }
        let share = sum.div_ceil(n);
        if mine < share {
            waiting.end();
            return u32::try_from(share - mine).unwrap_or(u32::MAX);
        }
        let mut leaves = false;
        for (i, peer) in peers {
            if u64::from(peer.connections()) < share && peer.takes_connections(beat, self.stale_ms)
            {
                leaves |= !waiting.stalled(i, peer.accepted(), now);
            } else {
                waiting.forget(i);
            }
        }
        // Every peer that should take them stalled: take them all.
        if leaves { 0 } else { queued.max(1) }
    }
}

/// While connections wait in the queue: the peers this worker leaves them to, each with its
/// accept count when last seen and since when that count has not moved.
#[derive(Default)]
struct Waiting {
    peers: Vec<(usize, u32, Instant)>,
}

impl Waiting {
    /// Whether peer `i`, whose accept count is now `accepted`, took no connection for
    /// [`STALL`] while this worker left connections to it.
    fn stalled(&mut self, i: usize, accepted: u32, now: Instant) -> bool {
        match self.peers.iter_mut().find(|(peer, ..)| *peer == i) {
            None => {
                self.peers.push((i, accepted, now));
                false
            }
            Some((_, seen, since)) if *seen != accepted => {
                (*seen, *since) = (accepted, now);
                false
            }
            Some((.., since)) => now.duration_since(*since) >= STALL,
        }
    }

    /// Peer `i` is no longer one to leave connections to.
    fn forget(&mut self, i: usize) {
        self.peers.retain(|(peer, ..)| *peer != i);
    }

    /// The queue is empty: nobody is waited for any more.
    fn end(&mut self) {
        self.peers.clear();
    }
}

/// A listening socket registered with this thread's runtime, and how this worker takes its
/// connections.
pub struct Acceptor {
    socket: Registered,
    /// The same socket registered a second time, under another descriptor: its readiness is
    /// cleared by a worker that leaves waiting connections to its peers, so that the next
    /// arrival wakes it (the first registration's readiness must stay set while connections
    /// wait, or accept would not be tried).
    arrivals: Registered,
    /// `None`: this worker takes every connection it can (a `--metrics-bind` listener).
    share: Option<Share>,
    /// The peers this worker leaves waiting connections to.
    waiting: Waiting,
    /// Connections this worker may still take before it decides again.
    room: u32,
}

/// A listening socket as the runtime watches it.
///
/// tokio's listener types accept as soon as the socket is readable, with no way to wait for
/// readability alone, and its `AsyncFd` constructors are deprecated (tokio #8587) for an
/// `unsafe` one, which serve allows only in the arbiter. Its stream types have both
/// `readable()` and `try_io()`, which is all a listening socket needs: readable is `EPOLLIN`,
/// a connection in the queue, and accept(2) runs under `try_io`, which keeps tokio's
/// readiness right (cleared on `EWOULDBLOCK`, and not when a connection arrived since). The
/// stream is never read from or written to.
enum Registered {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Registered {
    fn new(listener: Listener) -> io::Result<Registered> {
        Ok(match listener {
            Listener::Tcp(l) => {
                l.set_nonblocking(true)?;
                let fd = OwnedFd::from(l);
                Registered::Tcp(TcpStream::from_std(std::net::TcpStream::from(fd))?)
            }
            Listener::Unix(l, _) => {
                l.set_nonblocking(true)?;
                let fd = OwnedFd::from(l);
                let s = std::os::unix::net::UnixStream::from(fd);
                Registered::Unix(UnixStream::from_std(s)?)
            }
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Registered::Tcp(s) => s.as_fd(),
            Registered::Unix(s) => s.as_fd(),
        }
    }

    async fn readable(&self) -> io::Result<()> {
        match self {
            Registered::Tcp(s) => s.readable().await,
            Registered::Unix(s) => s.readable().await,
        }
    }

    /// Runs `f` if the socket may be readable; `EWOULDBLOCK` from `f` clears the readiness.
    fn try_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Registered::Tcp(s) => s.try_io(Interest::READABLE, f),
            Registered::Unix(s) => s.try_io(Interest::READABLE, f),
        }
    }
}

impl Acceptor {
    /// Registers an inherited listener with the current runtime. With a [`Share`], the
    /// connections are counted in the worker's slot and shared with the other workers.
    pub fn new(listener: Listener, share: Option<Share>) -> io::Result<Acceptor> {
        let twin = listener.try_clone()?;
        Ok(Acceptor {
            socket: Registered::new(listener)?,
            arrivals: Registered::new(twin)?,
            share,
            waiting: Waiting::default(),
            room: 0,
        })
    }

    /// Ends when a connection waits in the listener's queue (for this worker or another).
    pub async fn arrival(&self) {
        let _ = self.socket.readable().await;
    }

    /// The next connection this worker should take. Cancel-safe: a connection is taken only
    /// in the call that returns it.
    pub async fn accept(&mut self) -> io::Result<Accepted> {
        loop {
            if self.room == 0 {
                self.socket.readable().await?;
                self.room = self.decide().await?;
                if self.room == 0 {
                    continue;
                }
            }
            let fd = self.socket.fd();
            let share = self.share.as_ref();
            match self.socket.try_io(|| take(fd, share)) {
                Ok(accepted) => {
                    self.room -= 1;
                    return Ok(accepted);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.room = 0;
                    self.waiting.end();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// How many connections to take now, waiting while the peers should take them; 0 when
    /// they took every connection that waited (the readiness is then cleared).
    async fn decide(&mut self) -> io::Result<u32> {
        let Some(share) = &self.share else {
            // Not shared: take whatever comes.
            return Ok(u32::MAX);
        };
        // Unknown (a unix socket): at least the one whose arrival woke this worker.
        let queued = || (share.queue_len)(self.socket.fd()).unwrap_or(1);
        let waiting = &mut self.waiting;
        let recheck = tokio::time::sleep(RECHECK);
        tokio::pin!(recheck);
        let room = loop {
            let room = share.room(queued(), waiting, Instant::now());
            if room > 0 {
                break room;
            }
            // Forget the arrivals seen so far: the next one wakes this worker to decide
            // again (the counts move as the peers take connections).
            let _ = self.arrivals.try_io(would_block);
            tokio::select! {
                r = self.arrivals.readable() => r?,
                _ = &mut recheck => {
                    // No arrival for a while: stop looking once the peers took all.
                    if !queued_now(self.socket.fd()) {
                        // Clear the readiness under try_io, which keeps it when a
                        // connection arrived since it was set.
                        let fd = self.socket.fd();
                        let _ = self.socket.try_io(|| match queued_now(fd) {
                            true => Ok(()),
                            false => would_block(),
                        });
                        waiting.end();
                        break 0;
                    }
                    recheck.as_mut().reset(tokio::time::Instant::now() + RECHECK);
                }
            }
        };
        Ok(room)
    }

    /// Takes a connection already in the queue, if any, without waiting (a closing listener's
    /// last connections).
    pub fn accept_now(&self) -> io::Result<Option<Accepted>> {
        match take(self.socket.fd(), self.share.as_ref()) {
            Ok(a) => Ok(Some(a)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn would_block() -> io::Result<()> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Whether a connection waits in a listening socket's queue (`POLLIN` on a listening socket,
/// TCP or unix, means exactly that).
fn queued_now(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// One accept(2), the new socket non-blocking from the start, counted in the worker's slot.
fn take(fd: BorrowedFd<'_>, share: Option<&Share>) -> io::Result<Accepted> {
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let (conn, addr) = SockRef::from(&fd).accept4(flags.bits())?;
    let (stream, peer) = match addr.as_socket() {
        Some(peer) => {
            // Responses are small and whole: never wait for Nagle.
            conn.set_tcp_nodelay(true)?;
            let s = std::net::TcpStream::from(conn);
            (Stream::Tcp(TcpStream::from_std(s)?), Some(peer))
        }
        None => {
            let s = std::os::unix::net::UnixStream::from(conn);
            (Stream::Unix(UnixStream::from_std(s)?), None)
        }
    };
    let counted = share.map(|s| {
        s.me.connection_accepted();
        Counted(s.me)
    });
    Ok(Accepted {
        stream,
        peer,
        counted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::State;

    /// A board of serving workers with these connection counts; the share of the first.
    fn workers(counts: &[u32]) -> (Board, Share) {
        let board = Board::private(counts.len());
        for (i, (slot, &n)) in board.all().iter().zip(counts).enumerate() {
            slot.claim(1);
            slot.set_state(State::Ready);
            slot.set_connection_limit(1000);
            board.cover(i);
            for _ in 0..n {
                slot.connection_accepted();
            }
        }
        let share = Share::new(board, &board.all()[0], Duration::from_secs(1), |_| None);
        (board, share)
    }

    fn room(share: &Share, queued: u32) -> u32 {
        share.room(queued, &mut Waiting::default(), Instant::now())
    }

    #[test]
    fn a_worker_takes_what_brings_it_to_its_share_of_open_and_waiting_connections() {
        // 64 arrive at once on two idle workers: each takes 32, whoever wakes first.
        let (board, share) = workers(&[0, 0]);
        assert_eq!(room(&share, 64), 32);
        let peer = Share::new(board, &board.all()[1], Duration::from_secs(1), |_| None);
        for _ in 0..32 {
            board.all()[0].connection_accepted();
        }
        assert_eq!(room(&peer, 32), 32);
        assert_eq!(
            room(&share, 32),
            0,
            "the first has its share: the rest is the peer's"
        );
        // Two connections on two workers: one each.
        let (_, share) = workers(&[0, 0]);
        assert_eq!(room(&share, 2), 1);
        let (_, share) = workers(&[1, 0]);
        assert_eq!(room(&share, 1), 0);
        let (_, alone) = workers(&[7]);
        assert_eq!(room(&alone, 5), 5);
        // Ties take: 3 + 3 open and one waiting make a share of 4 each.
        let (_, share) = workers(&[3, 3]);
        assert_eq!(room(&share, 1), 1);
    }

    #[test]
    fn peers_that_cannot_take_a_connection_are_not_counted_or_waited_for() {
        let (board, share) = workers(&[3, 1]);
        assert_eq!(room(&share, 1), 0);
        let peer = &board.all()[1];
        peer.set_state(State::Draining);
        assert_eq!(room(&share, 1), 1, "draining");
        peer.set_state(State::Booting);
        assert_eq!(room(&share, 1), 0, "booting: it comes soon");
        peer.set_state(State::Ready);
        peer.set_connection_limit(1);
        assert_eq!(room(&share, 1), 1, "full");
        peer.set_connection_limit(1000);
        peer.release();
        assert_eq!(room(&share, 1), 1, "gone");
    }

    #[test]
    fn a_peer_whose_heartbeat_is_stale_is_not_waited_for() {
        let (board, _) = workers(&[3, 1]);
        // Heartbeats every millisecond: a peer silent for more than three is stale.
        let share = Share::new(board, &board.all()[0], Duration::from_millis(1), |_| None);
        assert!(wait_until_silent(&board.all()[1], 3));
        assert_eq!(room(&share, 1), 1);
        board.all()[1].beat();
        let fresh = Share::new(board, &board.all()[0], Duration::from_secs(1), |_| None);
        assert_eq!(room(&fresh, 1), 0);
    }

    /// Waits (a few milliseconds) until `slot`'s heartbeat is older than `ms`.
    fn wait_until_silent(slot: &Slot, ms: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if slot.silence_ms(now_ms()) > ms {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn a_peer_that_takes_nothing_while_connections_wait_is_passed_over_until_it_takes_one() {
        let t0 = Instant::now();
        let (board, share) = workers(&[5, 1]);
        let peer = &board.all()[1];
        let mut waiting = Waiting::default();
        assert_eq!(share.room(1, &mut waiting, t0), 0);
        assert_eq!(share.room(1, &mut waiting, t0 + STALL / 2), 0);
        // Nothing taken for STALL: this worker takes all that waits itself.
        assert_eq!(share.room(2, &mut waiting, t0 + STALL), 2);
        // The peer takes one: it is waited for again, from then on.
        peer.connection_accepted();
        assert_eq!(share.room(1, &mut waiting, t0 + STALL * 2), 0);
        assert_eq!(share.room(1, &mut waiting, t0 + STALL * 2 + STALL / 2), 0);
        assert_eq!(share.room(1, &mut waiting, t0 + STALL * 3), 1);
        // A new wait (the queue emptied in between) starts the clock again.
        waiting.end();
        assert_eq!(share.room(1, &mut waiting, t0 + STALL * 3), 0);
    }

    #[test]
    fn the_stall_clock_starts_when_a_peer_becomes_the_one_to_wait_for() {
        let t0 = Instant::now();
        let (board, share) = workers(&[3, 3]);
        let peer = &board.all()[1];
        let mut waiting = Waiting::default();
        // 3 + 3 + 1 waiting: a share of 4, this worker takes it.
        assert_eq!(share.room(1, &mut waiting, t0), 1);
        peer.connection_closed();
        // 3 + 2 + 1: a share of 3, the peer's; waited for from now, not from t0.
        assert_eq!(share.room(1, &mut waiting, t0 + STALL * 5), 0);
        assert_eq!(share.room(1, &mut waiting, t0 + STALL * 5 + STALL / 2), 0);
    }
}
