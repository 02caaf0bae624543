//! `serve -w 2` runs a master with exactly two worker children that answer HTTP, on IPv4,
//! IPv6 and a unix socket.

mod common;

use std::collections::BTreeSet;

use common::http::Conn;
use common::{Bin, PATIENCE, procs, start};

/// Asks until every worker answered at least once (the kernel picks who accepts).
fn answering_pids(server: &common::Server, want: usize) -> BTreeSet<i32> {
    let mut seen = BTreeSet::new();
    common::wait_until(PATIENCE, || {
        let res = server.get("/pid");
        assert_eq!(res.status, 200);
        seen.insert(res.pid());
        seen.len() >= want
    });
    seen
}

fn two_workers_answer(args: &[&str]) {
    let server = start(Bin::TestApp, args);
    let workers = server.wait_workers(2);
    assert_eq!(procs::comm(server.master).as_deref(), Some("serve: master"));
    let answering = answering_pids(&server, 2);
    assert_eq!(
        answering,
        workers.iter().copied().collect::<BTreeSet<_>>(),
        "the answers must come from the master's two workers"
    );
    // Every child of the master is a worker: no stray process.
    let children: Vec<i32> = procs::all()
        .into_iter()
        .filter(|p| p.1 == server.master)
        .map(|p| p.0)
        .collect();
    assert_eq!(children.len(), 2, "children: {children:?}");
}

#[test]
fn two_workers_on_ipv4() {
    two_workers_answer(&["-w", "2", "-b", "127.0.0.1:0"]);
}

#[test]
fn two_workers_on_ipv6() {
    two_workers_answer(&["-w", "2", "-b", "[::1]:0"]);
}

#[test]
fn two_workers_on_a_unix_socket() {
    let dir = common::tempdir();
    let sock = dir.path().join("serve.sock");
    let bind = format!("unix:{}", sock.display());
    two_workers_answer(&["-w", "2", "-b", &bind, "--umask", "0o077"]);
    // The socket file is gone after a graceful stop.
    let mut server = start(Bin::TestApp, &["-w", "1", "-b", &bind]);
    let mode = std::fs::metadata(&sock).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert!(mode.is_ok());
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server.wait_exit(PATIENCE).is_some_and(|s| s.success()));
    assert!(!sock.exists(), "the socket file must be removed at stop");
}

#[test]
fn several_binds_all_answer() {
    let server = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "-b", "[::1]:0"],
    );
    let log = server.log();
    let addrs: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("Listening at: http://").nth(1))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(addrs.len(), 2, "{log}");
    for a in addrs {
        let mut c = Conn::open(&common::Addr::Tcp(a.to_string())).unwrap();
        assert_eq!(c.request("GET", "/pid", &[], b"").unwrap().status, 200);
    }
}

#[test]
fn the_startup_log_reads_like_gunicorns() {
    let server = start(Bin::TestApp, &["-w", "2", "-b", "127.0.0.1:0"]);
    let log = server.log();
    let master = server.master;
    for needle in [
        "[INFO] Starting serve ".to_string(),
        format!("[{master}] [INFO] Listening at: http://127.0.0.1:"),
        "[INFO] Using worker: tokio current-thread runtime".to_string(),
        "[INFO] Booting worker with pid: ".to_string(),
        "[INFO] 2 workers booted in ".to_string(),
    ] {
        assert!(log.contains(&needle), "missing {needle:?} in:\n{log}");
    }
    // [2026-11-22 03:07:04 +0000] [pid] [LEVEL] message
    let first = log.lines().next().unwrap();
    assert!(
        first.starts_with('[') && first.contains(" +0000] ["),
        "{first}"
    );
}
