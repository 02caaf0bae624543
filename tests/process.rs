//! Process-level settings: privileges, inherited sockets (fd://, systemd), names, reuse-port,
//! the per-worker connection limit.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::http::Conn;
use common::{Addr, Bin, PATIENCE, Spawn, procs, start};

fn uid_of(pid: i32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap()
}

#[test]
fn workers_drop_privileges_and_the_master_keeps_its_own() {
    let me = nix::unistd::geteuid();
    if !me.is_root() {
        // Without root, asking for another user is a clear configuration error.
        let mut s = Spawn::new(Bin::TestApp, &["-u", "nobody", "-b", "127.0.0.1:0"]).spawn();
        assert_eq!(s.wait_exit(PATIENCE).and_then(|st| st.code()), Some(1));
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a nobody user");
    let server = start(
        Bin::TestApp,
        &["-w", "2", "-b", "127.0.0.1:0", "-u", "nobody"],
    );
    let workers = server.wait_workers(2);
    assert_eq!(uid_of(server.master), 0);
    for w in workers {
        assert_eq!(uid_of(w), nobody.uid.as_raw(), "worker {w} runs as nobody");
    }
    assert_eq!(server.get("/pid").status, 200);
}

/// Makes a listener that a child process inherits under the same descriptor number.
fn inheritable_listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    nix::fcntl::fcntl(
        &l,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    l
}

/// The pid of the worker that answers `GET /pid` at this address, if one does.
fn worker_at(addr: &str) -> Option<i64> {
    let res = Conn::open(&Addr::Tcp(addr.to_string()))
        .and_then(|mut c| c.request("GET", "/pid", &[], b""))
        .ok()?;
    (res.status == 200).then(|| res.json()["pid"].as_i64())?
}

/// HUP to `master`, then a worker of the new generation answers at `addr`: the reload kept
/// the socket and the old worker left.
fn reload_keeps_serving_at(master: i32, addr: &str) -> bool {
    let before = worker_at(addr);
    assert!(before.is_some(), "a worker answers at {addr} before HUP");
    let master = nix::unistd::Pid::from_raw(master);
    nix::sys::signal::kill(master, nix::sys::signal::Signal::SIGHUP).unwrap();
    common::wait_until(PATIENCE, || {
        worker_at(addr).is_some_and(|pid| Some(pid) != before)
    }) && nix::sys::signal::kill(master, None).is_ok()
}

#[test]
fn fd_binds_serve_on_an_inherited_socket() {
    let l = inheritable_listener();
    let addr = l.local_addr().unwrap().to_string();
    let bind = format!("fd://{}", l.as_raw_fd());
    let server = start(Bin::TestApp, &["-w", "1", "-b", &bind]);
    drop(l);
    let mut c = Conn::open(&Addr::Tcp(addr.clone())).unwrap();
    assert_eq!(c.request("GET", "/pid", &[], b"").unwrap().status, 200);
    // A reload reuses the socket it holds: it must not adopt the descriptor a second time.
    assert!(
        reload_keeps_serving_at(server.master, &addr),
        "{}",
        server.log()
    );
    let mut s = Spawn::new(Bin::TestApp, &["-b", "fd://987"]).spawn();
    assert_eq!(s.wait_exit(PATIENCE).and_then(|st| st.code()), Some(1));
    assert!(s.log().contains("cannot use fd://987"), "{}", s.log());
}

#[test]
fn systemd_socket_activation_is_accepted() {
    let l = inheritable_listener();
    let addr = l.local_addr().unwrap().to_string();
    // As systemd does: the socket at fd 3, LISTEN_PID naming the process, LISTEN_FDS=1.
    let fd = l.as_raw_fd();
    let moved = if fd == 3 {
        String::new()
    } else {
        format!("3<&{fd} {fd}<&-")
    };
    let script = format!("export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" -w 1 {moved}");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .arg(Bin::TestApp.path())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    drop(l);
    let answered = common::wait_until(PATIENCE, || worker_at(&addr).is_some());
    let master = child.id() as i32;
    // systemctl reload: the passed socket is kept, whatever the configuration binds.
    let reloaded = answered && reload_keeps_serving_at(master, &addr);
    for p in procs::descendants(master) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let mut log = String::new();
    let _ = child.wait();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(answered, "{log}");
    assert!(
        log.contains("Using 1 sockets passed by systemd (LISTEN_FDS)"),
        "{log}"
    );
    assert!(reloaded, "{log}");
}

#[test]
fn name_sets_the_process_titles() {
    let server = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "-n", "iris-api"],
    );
    assert_eq!(
        procs::comm(server.master).as_deref(),
        Some("iris-api: maste")
    );
    let w = procs::children_named(server.master, "iris-api: worke");
    assert_eq!(w.len(), 1, "comm is cut at 15 bytes by the kernel");
}

#[test]
fn reuse_port_lets_a_second_server_bind_the_same_address() {
    let first = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "--reuse-port"],
    );
    let Addr::Tcp(addr) = first.addr().clone() else {
        unreachable!()
    };
    let second = start(Bin::TestApp, &["-w", "1", "-b", &addr, "--reuse-port"]);
    assert_eq!(second.get("/pid").status, 200);
    let mut without = Spawn::new(Bin::TestApp, &["-w", "1", "-b", &addr]).spawn();
    assert_eq!(without.wait_exit(PATIENCE).and_then(|s| s.code()), Some(1));
}

#[test]
fn worker_connections_caps_what_a_worker_accepts() {
    let server = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "--worker-connections", "1"],
    );
    let mut a = Conn::open(server.addr()).unwrap();
    assert_eq!(a.request("GET", "/pid", &[], b"").unwrap().status, 200);
    // A second connection waits in the queue while the first is open...
    let addr = server.addr().clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut b = Conn::open(&addr).unwrap();
        tx.send(b.request("GET", "/pid", &[], b"").map(|r| r.status).ok())
            .unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "served past the limit"
    );
    // ...and is served once it closes.
    drop(a);
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), Some(200));
}

#[test]
fn as_pid_1_it_stops_on_term_and_refuses_to_upgrade() {
    // A container's init: run the master as PID 1 of a new pid namespace.
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        println!("[skipped] no pid namespaces here (unshare --pid needs root)");
        return;
    }
    let path = Bin::TestApp.path();
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"])
        .arg(&path)
        .args(["-w", "1", "-b", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let log = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    let text = || log.lock().unwrap().clone();
    assert!(
        common::wait_until(PATIENCE, || text().contains("workers booted")),
        "{}",
        text()
    );
    assert!(
        text().contains("[1] [INFO] Listening at:"),
        "the master is PID 1: {}",
        text()
    );
    let master = common::wait_until(PATIENCE, || {
        procs::descendants(child.id() as i32)
            .iter()
            .any(|p| procs::comm(*p).as_deref() == Some("serve: master"))
    });
    assert!(master);
    let master = procs::descendants(child.id() as i32)
        .into_iter()
        .find(|p| procs::comm(*p).as_deref() == Some("serve: master"))
        .unwrap();
    let kill = |sig| nix::sys::signal::kill(nix::unistd::Pid::from_raw(master), sig).unwrap();
    kill(nix::sys::signal::Signal::SIGUSR2);
    assert!(
        common::wait_until(PATIENCE, || text()
            .contains("Upgrade refused: this master is PID 1")),
        "{}",
        text()
    );
    kill(nix::sys::signal::Signal::SIGTERM);
    let status = common::wait_until(PATIENCE, || matches!(child.try_wait(), Ok(Some(_))));
    assert!(status, "PID 1 must stop on TERM: {}", text());
    assert!(text().contains("Shutting down: Master"));
}

/// A server whose `NOTIFY_SOCKET` is a datagram socket of this test.
struct Notified {
    server: common::Server,
    socket: std::os::unix::net::UnixDatagram,
    _dir: tempfile::TempDir,
}

impl Notified {
    fn start() -> Notified {
        let dir = common::tempdir();
        let path = dir.path().join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        let server = Spawn::new(Bin::TestApp, &["-w", "1", "-b", "127.0.0.1:0"])
            .env("NOTIFY_SOCKET", path.to_str().unwrap())
            .start();
        Notified {
            server,
            socket,
            _dir: dir,
        }
    }

    /// The next message, as systemd would read it.
    fn next(&self) -> String {
        let mut buf = [0u8; 512];
        let n = self.socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[test]
fn systemd_is_told_when_the_server_is_ready_reloads_and_stops() {
    let mut n = Notified::start();
    let ready = n.next();
    assert!(ready.starts_with("READY=1\nMAINPID="), "{ready}");
    n.server.signal(nix::sys::signal::Signal::SIGHUP);
    assert_eq!(n.next(), "RELOADING=1");
    assert!(n.next().starts_with("READY=1"));
    n.server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(n.next(), "STOPPING=1");
    assert!(n.server.wait_exit(PATIENCE).is_some());
}

#[test]
fn an_upgrade_hands_systemd_over_to_the_new_master() {
    let mut n = Notified::start();
    let old = n.server.master;
    assert_eq!(
        n.next(),
        format!("READY=1\nMAINPID={old}\nSTATUS=1 workers")
    );
    n.server.signal(nix::sys::signal::Signal::SIGUSR2);
    // The new master says it is ready, with its own pid (systemd heeds it only once it is
    // the main pid, or with NotifyAccess=all).
    let ready = n.next();
    let new: i32 = ready
        .strip_prefix("READY=1\nMAINPID=")
        .and_then(|rest| rest.lines().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("the new master's READY=1: {ready:?}"));
    assert_ne!(new, old);
    // The old master retires: it names its successor instead of saying the service stops.
    n.server.signal(nix::sys::signal::Signal::SIGTERM);
    let handover = n.next();
    assert!(
        handover.starts_with(&format!("MAINPID={new}\n")),
        "{handover:?}\n{}",
        n.server.log()
    );
    assert_eq!(n.server.wait_exit(PATIENCE).and_then(|s| s.code()), Some(0));
    // The new master serves on, and says STOPPING=1 when it stops.
    let new = nix::unistd::Pid::from_raw(new);
    nix::sys::signal::kill(new, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(n.next(), "STOPPING=1");
    assert!(common::wait_until(PATIENCE, || nix::sys::signal::kill(
        new, None
    )
    .is_err()));
}
