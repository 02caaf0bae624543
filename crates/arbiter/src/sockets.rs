//! Listening sockets: bound once by the master before any fork, or inherited from a previous
//! master (`SERVE_FDS`, on upgrade), from systemd (`LISTEN_FDS`), or from the caller (`fd://N`).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    AddressFamily, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Uid, chown};
use socket2::{Domain, Socket, Type};

use serve_settings::Bind;
use serve_worker::{Listener, Role};

/// The environment variable naming listener fds handed over by an upgrading master.
pub const SERVE_FDS: &str = "SERVE_FDS";

/// A listener the master owns, with the address it was asked for.
pub struct Bound {
    /// What the user asked for.
    pub bind: Bind,
    /// The socket.
    pub listener: Listener,
    /// What it serves (which flag asked for it).
    pub role: Role,
}

/// Options for binding.
pub struct BindOptions {
    /// listen(2) backlog.
    pub backlog: i32,
    /// SO_REUSEPORT.
    pub reuse_port: bool,
    /// The umask under which unix sockets are created.
    pub umask: u32,
    /// Owner for unix sockets, so that workers that dropped privileges can still be reached.
    pub owner: (Option<Uid>, Option<Gid>),
}

/// Binds every address, reusing inherited sockets whose address matches. Returns a one-line
/// error naming the address, the cause and the fix.
pub fn bind_all(
    binds: &[Bind],
    role: Role,
    inherited: &mut Vec<Listener>,
    opts: &BindOptions,
) -> Result<Vec<Bound>, String> {
    let mut out = Vec::with_capacity(binds.len());
    for bind in binds {
        let listener = match take_matching(inherited, bind) {
            Some(l) => l,
            None => bind_one(bind, opts)?,
        };
        out.push(Bound {
            bind: bind.clone(),
            listener,
            role,
        });
    }
    Ok(out)
}

fn take_matching(inherited: &mut Vec<Listener>, bind: &Bind) -> Option<Listener> {
    let pos = inherited.iter().position(|l| matches(l, bind))?;
    Some(inherited.remove(pos))
}

/// Whether an inherited socket serves this bind. Port 0 matches any port on the same address,
/// so that an upgraded master started with `-b 127.0.0.1:0` keeps its predecessor's port.
fn matches(l: &Listener, bind: &Bind) -> bool {
    match (l, bind) {
        (Listener::Tcp(t), Bind::Tcp(want)) => t.local_addr().is_ok_and(|have| {
            have.ip() == want.ip() && (want.port() == 0 || want.port() == have.port())
        }),
        (Listener::Unix(_, have), Bind::Unix(want)) => have == want,
        (l, Bind::Fd(fd)) => raw_fd(l) == *fd,
        _ => false,
    }
}

fn raw_fd(l: &Listener) -> RawFd {
    match l {
        Listener::Tcp(t) => t.as_raw_fd(),
        Listener::Unix(u, _) => u.as_raw_fd(),
    }
}

/// How many connections wait in a listening TCP socket's accept queue: `TCP_INFO` on a
/// listening socket reports it as `tcpi_unacked`. `None` for any other socket (unix sockets
/// have no such count). The workers read it to take their share of a burst at once (see
/// `serve_worker::accept`).
pub fn accept_queue(fd: BorrowedFd<'_>) -> Option<u32> {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is a descriptor the caller holds open; `info` is a writable buffer of
    // `len` bytes, and the kernel writes at most `len` bytes into it and the size it wrote
    // into `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: zeroed, then partly written by the kernel: every field is a plain integer, for
    // which any bytes are a valid value.
    let info = unsafe { info.assume_init() };
    const TCP_LISTEN: u8 = 10;
    (info.tcpi_state == TCP_LISTEN).then_some(info.tcpi_unacked)
}

/// The listener's descriptor number, for `SERVE_FDS`.
pub fn fd_of(l: &Listener) -> RawFd {
    raw_fd(l)
}

/// Opens one bind: a new socket, or the inherited descriptor `fd://N` names.
pub(crate) fn bind_one(bind: &Bind, opts: &BindOptions) -> Result<Listener, String> {
    match bind {
        Bind::Tcp(addr) => bind_tcp(*addr, opts).map_err(|e| bind_error(&bind.to_string(), &e)),
        Bind::Unix(path) => bind_unix(path, opts).map_err(|e| bind_error(&bind.to_string(), &e)),
        Bind::Fd(fd) => adopt_fd(*fd).map_err(|e| {
            format!("cannot use fd://{fd}: {e}; pass a listening socket's descriptor number")
        }),
    }
}

fn bind_tcp(addr: SocketAddr, opts: &BindOptions) -> io::Result<Listener> {
    // socket2 creates the socket with SOCK_CLOEXEC: workers inherit it through fork, and only
    // an upgrade's exec clears the flag on purpose.
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // As nginx: [::]:PORT takes IPv6 only, so that 0.0.0.0:PORT can be bound beside it.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(opts.backlog)?;
    socket.set_nonblocking(true)?;
    Ok(Listener::Tcp(socket.into()))
}

fn bind_unix(path: &Path, opts: &BindOptions) -> io::Result<Listener> {
    remove_stale_socket(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let old = umask(Mode::from_bits_truncate(opts.umask));
    let bound = socket.bind(&socket2::SockAddr::unix(path)?);
    umask(old);
    bound?;
    if opts.owner.0.is_some() || opts.owner.1.is_some() {
        chown(path, opts.owner.0, opts.owner.1).map_err(io::Error::from)?;
    }
    socket.listen(opts.backlog)?;
    socket.set_nonblocking(true)?;
    Ok(Listener::Unix(socket.into(), path.to_path_buf()))
}

/// A socket file left by a server that died can be replaced; one that answers cannot.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file that is not a socket is in the way",
        ));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::from(io::ErrorKind::AddrInUse));
    }
    std::fs::remove_file(path)
}

fn bind_error(addr: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "cannot bind {addr}: address in use; is another serve running? pass -b to choose another address"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "cannot bind {addr}: permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE, and a unix socket needs a writable directory; pass -b to choose another address"
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "cannot bind {addr}: this machine has no such address; pass -b with one of its addresses, or 0.0.0.0"
        ),
        _ => format!("cannot bind {addr}: {e}; pass -b to choose another address"),
    }
}

/// Takes ownership of an inherited descriptor, which must be a listening stream socket.
fn adopt_fd(fd: RawFd) -> io::Result<Listener> {
    nix::fcntl::fcntl(
        // SAFETY (of borrow_raw): only used for this one call while `fd` is open or the call
        // fails with EBADF, which is then reported.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .map_err(|_| io::Error::new(io::ErrorKind::NotFound, "no such open descriptor"))?;
    // SAFETY: the descriptor is open (checked above) and was handed to this process to own:
    // by the user (fd://N), by systemd (LISTEN_FDS) or by the previous master (SERVE_FDS).
    // Nothing else in the process refers to it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let accepting = getsockopt(&owned, sockopt::AcceptConn)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not a socket"))?;
    if !accepting {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a listening socket",
        ));
    }
    // Inherited descriptors may lack CLOEXEC; workers get them by fork, not exec.
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    let addr: SockaddrStorage = getsockname(owned.as_raw_fd())?;
    match addr.family() {
        Some(AddressFamily::Inet) | Some(AddressFamily::Inet6) => {
            let l = TcpListener::from(owned);
            l.set_nonblocking(true)?;
            Ok(Listener::Tcp(l))
        }
        Some(AddressFamily::Unix) => {
            let path = addr
                .as_unix_addr()
                .and_then(|u| u.path())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(format!("fd{fd}")));
            let l = UnixListener::from(owned);
            l.set_nonblocking(true)?;
            Ok(Listener::Unix(l, path))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a TCP or unix socket",
        )),
    }
}

/// Sockets handed to this process at start: `SERVE_FDS=3,4` from an upgrading master, or
/// systemd's `LISTEN_FDS` (fds from 3) when `LISTEN_PID` is this process. Returns the
/// sockets and where they came from.
pub fn inherited() -> Result<(Vec<Listener>, Option<&'static str>), String> {
    if let Ok(list) = std::env::var(SERVE_FDS) {
        let mut out = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let fd: RawFd = part.parse().map_err(|_| {
                format!("{SERVE_FDS}={list:?}: {part:?} is not a descriptor number")
            })?;
            out.push(adopt_fd(fd).map_err(|e| format!("{SERVE_FDS}: fd {fd}: {e}"))?);
        }
        return Ok((out, Some(SERVE_FDS)));
    }
    let pid_matches = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if let (true, Ok(n)) = (pid_matches, std::env::var("LISTEN_FDS")) {
        let n: RawFd = n
            .parse()
            .map_err(|_| format!("LISTEN_FDS={n:?} is not a number"))?;
        let mut out = Vec::new();
        for fd in 3..3 + n {
            out.push(adopt_fd(fd).map_err(|e| format!("LISTEN_FDS: fd {fd}: {e}"))?);
        }
        return Ok((out, Some("LISTEN_FDS")));
    }
    Ok((Vec::new(), None))
}

/// Stops new handshakes on a TCP listener for good while keeping the connections already in
/// its queue, for a server that stops.
///
/// A listening socket is destroyed when its last descriptor closes, and the kernel resets
/// every connection still in its accept queue: connections it completed on the client's
/// behalf, whose clients have sent their requests. Closing cannot be made atomic with a last
/// accept, so instead this attaches a socket filter that drops bare SYNs (SYN without ACK):
/// nothing new enters the queue, the handshakes already under way complete, and the workers
/// take what the queue holds before they let go of it. A client whose SYN is dropped retries
/// it; by then the socket is gone and it is refused, or, with `--reuse-port`, another server
/// bound to the same address answers it.
pub(crate) fn stop_handshakes(l: &TcpListener) -> io::Result<()> {
    use socket2::{SockFilter, SockRef};
    // Classic BPF over the TCP segment (a TCP socket's filter sees it from the TCP header).
    const LD_B_ABS: u16 = 0x30; // A = byte at k
    const ALU_AND_K: u16 = 0x54; // A &= k
    const JMP_JEQ_K: u16 = 0x15; // A == k ? jt : jf
    const RET_K: u16 = 0x06; // return k bytes (0: drop)
    const FLAGS_OFFSET: u32 = 13;
    const SYN: u32 = 0x02;
    const ACK: u32 = 0x10;
    let program = [
        SockFilter::new(LD_B_ABS, 0, 0, FLAGS_OFFSET),
        SockFilter::new(ALU_AND_K, 0, 0, SYN | ACK),
        SockFilter::new(JMP_JEQ_K, 0, 1, SYN),
        SockFilter::new(RET_K, 0, 0, 0),
        SockFilter::new(RET_K, 0, 0, u32::MAX),
    ];
    SockRef::from(l).attach_filter(&program)
}

/// Removes a unix socket's file when the server stops for good.
pub fn unlink(bound: &Bound) {
    if let Listener::Unix(_, path) = &bound.listener {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> BindOptions {
        BindOptions {
            backlog: 16,
            reuse_port: false,
            umask: 0,
            owner: (None, None),
        }
    }

    #[test]
    fn the_accept_queue_of_a_tcp_listener_is_counted_and_a_unix_one_is_not() {
        use std::os::fd::AsFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(accept_queue(l.as_fd()), Some(0));
        let addr = l.local_addr().unwrap();
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        assert_eq!(accept_queue(l.as_fd()), Some(3));
        let _ = l.accept().unwrap();
        assert_eq!(accept_queue(l.as_fd()), Some(2));
        drop(clients);
        let dir = tempfile::tempdir().unwrap();
        let u = UnixListener::bind(dir.path().join("s")).unwrap();
        assert_eq!(accept_queue(u.as_fd()), None);
        let connected = std::net::TcpStream::connect(addr).unwrap();
        assert_eq!(accept_queue(connected.as_fd()), None, "not a listener");
    }

    #[test]
    fn binds_port_zero_and_reports_the_real_port() {
        let l = bind_one(&Bind::Tcp("127.0.0.1:0".parse().unwrap()), &opts()).unwrap();
        let Listener::Tcp(t) = &l else { panic!() };
        assert_ne!(t.local_addr().unwrap().port(), 0);
        // An upgraded master with the same -b 127.0.0.1:0 keeps the inherited port.
        assert!(matches(&l, &Bind::Tcp("127.0.0.1:0".parse().unwrap())));
        assert!(!matches(&l, &Bind::Tcp("127.0.0.2:0".parse().unwrap())));
    }

    #[test]
    fn an_address_in_use_says_so_and_names_the_fix() {
        let first = bind_one(&Bind::Tcp("127.0.0.1:0".parse().unwrap()), &opts()).unwrap();
        let Listener::Tcp(t) = &first else { panic!() };
        let taken = Bind::Tcp(t.local_addr().unwrap());
        let e = bind_one(&taken, &opts()).unwrap_err();
        assert!(e.contains("address in use") && e.contains("pass -b"), "{e}");
    }

    #[test]
    fn unix_sockets_replace_stale_files_but_not_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let live = bind_one(&Bind::Unix(path.clone()), &opts()).unwrap();
        let e = bind_one(&Bind::Unix(path.clone()), &opts()).unwrap_err();
        assert!(e.contains("address in use"), "{e}");
        drop(live);
        // The file stays behind, answering nothing: it is stale and may be replaced.
        assert!(path.exists());
        bind_one(&Bind::Unix(path.clone()), &opts()).unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        assert!(bind_one(&Bind::Unix(plain), &opts()).is_err());
    }

    #[test]
    fn stopped_handshakes_keep_the_queue_and_refuse_newcomers() {
        use std::io::{Read, Write};
        use std::net::TcpStream;
        for any in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(l) = bind_one(&Bind::Tcp(any.parse().unwrap()), &opts()) else {
                println!("[skipped] {any}: cannot bind (no IPv6 here?)");
                continue;
            };
            let Listener::Tcp(t) = &l else { panic!() };
            let addr = t.local_addr().unwrap();
            // Completed by the kernel, waiting in the queue, its request sent.
            let mut queued = TcpStream::connect(addr).unwrap();
            queued.write_all(b"ping").unwrap();
            if let Err(e) = stop_handshakes(t) {
                // Recent kernels refuse a filter on a TCP socket without CAP_NET_ADMIN.
                assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
                println!("[skipped] {any}: no CAP_NET_ADMIN here: {e}");
                continue;
            }
            // A newcomer's SYN is dropped: no handshake in the wait (its first retry is 1 s
            // away).
            let late = TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300));
            assert!(
                late.is_err(),
                "{any}: a connection completed after stop_handshakes"
            );
            // The queued one is still there, with its bytes, and can be answered.
            t.set_nonblocking(false).unwrap();
            let (mut s, _) = t.accept().unwrap();
            let mut buf = [0; 4];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            s.write_all(b"pong").unwrap();
            queued.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"pong", "{any}");
        }
    }

    #[test]
    fn adopting_a_closed_or_non_listening_fd_is_an_error() {
        assert!(adopt_fd(987_654).is_err());
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = f.as_raw_fd();
        std::mem::forget(f); // adopt_fd takes ownership on its way to the error
        assert!(adopt_fd(fd).is_err());
    }
}
