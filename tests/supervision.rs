//! The master keeps its workers: a killed worker is replaced at once, a hung one is killed
//! after --timeout and named in the log, TTIN/TTOU move the count, a crash loop backs off.

mod common;

use std::time::{Duration, Instant};

use common::http::Conn;
use common::{Bin, PATIENCE, load, procs, report, serial, start};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn a_killed_worker_is_replaced_and_the_other_keeps_answering() {
    let _serial = serial();
    let server = start(Bin::TestApp, &["-w", "2", "-b", "127.0.0.1:0"]);
    let workers = server.wait_workers(2);
    let (victim, survivor) = (workers[0], workers[1]);

    // Load that must never fail, pinned to the survivor: keep-alive connections are shared
    // between the workers, so open them until the survivor owns four, and keep the victim's
    // open meanwhile (a closed one would leave the victim with fewer, and the next ones to
    // it).
    let addr = server.addr().clone();
    let (mut pinned, mut victims) = (Vec::new(), Vec::new());
    let opened = common::wait_until(PATIENCE, || {
        let mut c = Conn::open(&addr).unwrap();
        if c.request("GET", "/pid", &[], b"").unwrap().pid() == survivor {
            pinned.push(c);
        } else {
            victims.push(c);
        }
        pinned.len() >= 4
    });
    assert!(opened);

    let killed_at = Instant::now();
    kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    let mut replacement = None;
    let mut survivor_answers = 0;
    let replaced = common::wait_until(PATIENCE, || {
        for c in &mut pinned {
            let res = c
                .request("GET", "/pid", &[], b"")
                .expect("the survivor must never fail");
            assert_eq!(res.pid(), survivor);
            survivor_answers += 1;
        }
        let now = server.workers();
        replacement = now.into_iter().find(|p| *p != survivor && *p != victim);
        replacement.is_some()
    });
    assert!(replaced, "no replacement; log:\n{}", server.log());
    let replacement = replacement.unwrap();
    // The replacement answers: ask until it does.
    let answered = common::wait_until(PATIENCE, || server.get("/pid").pid() == replacement);
    assert!(answered);
    report(
        "respawn: SIGKILL to a new worker answering",
        format!("{:?}", killed_at.elapsed()),
    );
    report(
        "survivor answers during the respawn (all 200)",
        survivor_answers,
    );
    assert!(server.log().contains(&format!(
        "Worker (pid:{victim}) was sent SIGKILL! Perhaps out of memory?"
    )));
}

#[test]
fn a_hung_worker_is_killed_after_the_timeout_and_named() {
    let _serial = serial();
    let server = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "--timeout", "1"],
    );
    let hung = server.wait_workers(1)[0];
    let addr = server.addr().clone();
    let hanging = std::thread::spawn(move || {
        let mut c = Conn::open(&addr).unwrap();
        c.request("GET", "/hang", &[], b"")
    });
    let started = Instant::now();
    let timed_out = server.wait_log(&format!("WORKER TIMEOUT (pid:{hung})"), PATIENCE);
    assert!(timed_out, "{}", server.log());
    let detected = started.elapsed();
    assert!(common::wait_until(PATIENCE, || !procs::alive(hung)));
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("WORKER TIMEOUT"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("\"GET /hang\""),
        "the log must say what it was doing: {line}"
    );
    assert!(line.contains("--timeout 1 s"), "{line}");
    // The hung request's connection dies with its worker; a new worker serves.
    assert!(hanging.join().unwrap().is_err());
    let fresh = server.wait_workers(1)[0];
    assert_ne!(fresh, hung);
    assert_eq!(server.get("/pid").pid(), fresh);
    server.assert_metrics(&["serve_worker_restarts_total{cause=\"timeout\"} 1"]);
    report(
        "hung worker: request start to WORKER TIMEOUT (--timeout 1)",
        format!("{detected:?}"),
    );
}

#[test]
fn a_long_request_does_not_starve_the_heartbeat() {
    // /sleep awaits without blocking the event loop: the worker stays alive past --timeout.
    let server = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "--timeout", "1"],
    );
    let worker = server.wait_workers(1)[0];
    let res = server.get("/sleep?ms=2500");
    assert_eq!((res.status, res.pid()), (200, worker));
    assert!(!server.log().contains("WORKER TIMEOUT"));
}

#[test]
fn ttin_and_ttou_change_the_count_by_one() {
    let server = start(Bin::TestApp, &["-w", "2", "-b", "127.0.0.1:0"]);
    server.wait_workers(2);
    server.signal(Signal::SIGTTIN);
    server.wait_workers(3);
    server.signal(Signal::SIGTTIN);
    server.wait_workers(4);
    server.signal(Signal::SIGTTOU);
    server.wait_workers(3);
    // Signals of one kind sent at once may merge into one (POSIX does not queue them): send
    // each after the last one took effect.
    server.signal(Signal::SIGTTOU);
    server.wait_workers(2);
    server.signal(Signal::SIGTTOU);
    server.wait_workers(1);
    // Never below one.
    server.signal(Signal::SIGTTOU);
    assert!(server.wait_log("Number of workers stays at 1", PATIENCE));
    assert_eq!(server.workers().len(), 1);
    // Fewer workers asked for is no restart.
    server.assert_metrics(&[
        "serve_worker_restarts_total{cause=\"crash\"} 0",
        "serve_worker_restarts_total{cause=\"timeout\"} 0",
        "serve_worker_restarts_total{cause=\"max_requests\"} 0",
        "serve_worker_restarts_total{cause=\"reload\"} 0",
    ]);
}

#[test]
fn a_worker_that_exits_is_respawned_without_waiting() {
    let server = start(Bin::TestApp, &["-w", "1", "-b", "127.0.0.1:0"]);
    let first = server.wait_workers(1)[0];
    let mut c = Conn::open(server.addr()).unwrap();
    assert!(c.request("GET", "/crash", &[], b"").is_err());
    assert!(server.wait_log(
        &format!("Worker (pid:{first}) exited with code 13"),
        PATIENCE
    ));
    let second = server.wait_workers(1)[0];
    assert_ne!(first, second);
    assert_eq!(server.get("/pid").pid(), second);
    assert!(
        !server.log().contains("next spawn in"),
        "one death must not back off"
    );
    server.assert_metrics(&["serve_worker_restarts_total{cause=\"crash\"} 1"]);
}

#[test]
fn a_crash_loop_backs_off_instead_of_forking_without_end() {
    let _serial = serial();
    let server = start(Bin::TestApp, &["-w", "1", "-b", "127.0.0.1:0"]);
    server.wait_workers(1);
    // Crash the worker as soon as it answers, again and again.
    let started = Instant::now();
    let mut crashes = 0;
    while crashes < 6 && started.elapsed() < PATIENCE {
        let crashed = Conn::open(server.addr())
            .is_ok_and(|mut c| c.request("GET", "/crash", &[], b"").is_err());
        if crashed {
            crashes += 1;
        }
    }
    assert!(
        server.wait_log("next spawn in", PATIENCE),
        "{}",
        server.log()
    );
    let spawned = server.count_log("Booting worker with pid");
    report(
        "crash loop: workers forked for 6 quick crashes",
        format!("{spawned} in {:?}", started.elapsed()),
    );
    assert!(spawned <= 8, "{spawned} workers forked for 6 crashes");
    // It recovers: a worker comes back and serves.
    let ok = common::wait_until(PATIENCE, || {
        Conn::open(server.addr())
            .and_then(|mut c| c.request("GET", "/pid", &[], b""))
            .is_ok_and(|r| r.status == 200)
    });
    assert!(ok);
}

#[test]
fn the_app_is_built_lazily_and_panics_are_500() {
    let server = start(Bin::TestApp, &["-w", "1", "-b", "127.0.0.1:0"]);
    let worker = server.wait_workers(1)[0];
    let res = server.get("/panic");
    assert_eq!(res.status, 500);
    assert!(res.json()["error"].as_str().unwrap().contains("panicked"));
    // Same worker, still serving.
    assert_eq!(server.get("/pid").pid(), worker);
    let load = load::start(server.addr(), "/pid", 2);
    assert!(load.wait_for(50, PATIENCE));
    let stats = load.finish();
    assert_eq!(stats.failed, 0, "{:?}", stats.errors);
    assert_eq!(server.workers(), vec![worker]);
}

#[test]
fn a_worker_notices_its_master_died() {
    let server = start(Bin::TestApp, &["-w", "2", "-b", "127.0.0.1:0"]);
    let workers = server.wait_workers(2);
    kill(Pid::from_raw(server.master), Signal::SIGKILL).unwrap();
    let gone = common::wait_until(PATIENCE, || workers.iter().all(|w| !procs::alive(*w)));
    assert!(gone, "orphaned workers must exit: {workers:?}");
    let _ = Duration::ZERO;
}
