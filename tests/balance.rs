//! Every worker takes its share of the connections: keep-alive connections that arrive
//! together spread over the workers in every fresh start, after a reload, on unix sockets, and
//! again over time with `--max-connection-age`.
//!
//! The counts come from `/status` on a `--metrics-bind` listener, whose connections are not
//! counted (nor balanced), so that reading them does not change them. Nothing here measures
//! time: a load runs for a while, then the counts are read while its connections are open.

mod common;

use std::time::{Duration, Instant};

use common::http::Conn;
use common::{Addr, Bin, PATIENCE, Server, Spawn, load, wait_until};
use nix::sys::signal::Signal;

const IRIS_V1: &str = r#"{"instances":[[6.7,3.0,5.2,2.3]]}"#;
const PREDICT: &str = "/v1/models/iris:predict";

/// How long the 64 connections of a spread check send requests before their counts are read.
const LOAD_FOR: Duration = Duration::from_secs(2);

/// A server started for a spread check, and where its `/status` is.
struct Balanced {
    server: Server,
    admin: Addr,
}

/// One worker as `/status` lists it.
#[derive(Debug, Clone)]
struct Worker {
    generation: i64,
    state: String,
    connections: i64,
    requests: i64,
}

impl Balanced {
    /// `serve -w N` on the embedded iris, `/status` on a listener of its own, once every
    /// worker serves.
    fn start(workers: usize, bind: &str, extra: &[&str]) -> Balanced {
        let w = workers.to_string();
        let mut args = vec!["-w", &w, "-b", bind, "--metrics-bind", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut server = Spawn::new(Bin::Serve, &args).spawn();
        server.wait_booted();
        let b = Balanced {
            admin: server.metrics_addr(),
            server,
        };
        b.wait_serving(workers, 1);
        b
    }

    fn status(&self) -> serde_json::Value {
        Conn::open(&self.admin)
            .and_then(|mut c| c.request("GET", "/status", &[("Accept", "application/json")], b""))
            .unwrap_or_else(|e| panic!("GET /status: {e}; log:\n{}", self.server.log()))
            .json()
    }

    fn metrics(&self) -> String {
        Conn::open(&self.admin)
            .and_then(|mut c| c.request("GET", "/metrics", &[], b""))
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
            .text()
    }

    fn workers(&self) -> Vec<Worker> {
        let status = self.status();
        status["workers"]
            .as_array()
            .expect("a workers list")
            .iter()
            .map(|w| Worker {
                generation: w["generation"].as_i64().unwrap(),
                state: w["state"].as_str().unwrap().to_string(),
                connections: w["connections"].as_i64().unwrap(),
                requests: w["requests"].as_i64().unwrap(),
            })
            .collect()
    }

    /// Waits until exactly `n` workers are listed, all of `generation` and serving.
    fn wait_serving(&self, n: usize, generation: i64) -> Vec<Worker> {
        let mut last = Vec::new();
        let ok = wait_until(PATIENCE, || {
            last = self.workers();
            last.len() == n
                && last
                    .iter()
                    .all(|w| w.state == "serving" && w.generation == generation)
        });
        assert!(
            ok,
            "expected {n} serving workers of generation {generation}: {last:?}\n{}",
            self.server.log()
        );
        last
    }

    /// Waits until the workers hold `total` connections between them.
    fn wait_connections(&self, total: i64) -> Vec<Worker> {
        let mut last = Vec::new();
        let ok = wait_until(PATIENCE, || {
            last = self.workers();
            last.iter().map(|w| w.connections).sum::<i64>() == total
        });
        assert!(ok, "expected {total} connections in all: {last:?}");
        last
    }
}

/// Whether every worker's connection count is within max(2, 25%) of a fair share.
fn fair(workers: &[Worker], total: i64) -> bool {
    let share = total as f64 / workers.len() as f64;
    let slack = (share / 4.0).max(2.0);
    workers
        .iter()
        .all(|w| (w.connections as f64 - share).abs() <= slack)
}

fn connections(workers: &[Worker]) -> Vec<i64> {
    workers.iter().map(|w| w.connections).collect()
}

/// Sends iris requests on `conns` keep-alive connections opened together, for `load_for`;
/// returns what `/status` says while they are open, and checks that no request failed.
fn spread_once(b: &Balanced, conns: usize, load_for: Duration) -> Vec<Worker> {
    let started = Instant::now();
    let l = load::start_post(b.server.addr(), PREDICT, IRIS_V1, conns);
    assert!(l.wait_for(conns as u64, PATIENCE), "{}", b.server.log());
    std::thread::sleep(load_for.saturating_sub(started.elapsed()));
    let workers = b.wait_connections(conns as i64);
    let stats = l.finish();
    assert_eq!(stats.failed, 0, "{:?}", stats.errors);
    workers
}

/// 20 fresh starts of `-w workers` under 64 connections: every start spreads them fairly and
/// every worker serves. All starts run before the verdict, so a failure shows the whole
/// distribution.
fn spreads_in_every_fresh_start(workers: usize) {
    let _serial = common::serial();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let b = Balanced::start(workers, "127.0.0.1:0", &[]);
        let during = spread_once(&b, 64, LOAD_FOR);
        let after = b.workers();
        let serves = after.iter().all(|w| w.requests > 0);
        seen.push((connections(&during), fair(&during, 64) && serves));
    }
    let bad: Vec<_> = seen.iter().filter(|(_, ok)| !ok).collect();
    assert!(
        bad.is_empty(),
        "-w {workers}: {} of 20 starts unfair; every start's connections per worker: {:?}",
        bad.len(),
        seen.iter().map(|(c, _)| c).collect::<Vec<_>>()
    );
}

#[test]
fn sixty_four_connections_spread_over_two_workers_in_every_start() {
    spreads_in_every_fresh_start(2);
}

#[test]
fn sixty_four_connections_spread_over_four_workers_in_every_start() {
    spreads_in_every_fresh_start(4);
}

#[test]
fn two_connections_on_two_workers_take_one_each_in_every_start() {
    let _serial = common::serial();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let b = Balanced::start(2, "127.0.0.1:0", &[]);
        let during = spread_once(&b, 2, Duration::from_millis(500));
        seen.push(connections(&during));
    }
    assert!(
        seen.iter().all(|c| c == &[1, 1]),
        "connections per worker, each start: {seen:?}"
    );
}

#[test]
fn connections_that_arrive_while_the_workers_boot_spread_too() {
    let _serial = common::serial();
    for workers in [2, 4] {
        for _ in 0..3 {
            // A fixed port, so that the load can connect before the log says where: the
            // master binds before it proves the model and forks, and the connections wait in
            // the queue until the workers take them.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let bind = format!("127.0.0.1:{port}");
            let w = workers.to_string();
            let args = ["-w", &w, "-b", &bind, "--metrics-bind", "127.0.0.1:0"];
            let mut server = Spawn::new(Bin::Serve, &args).spawn();
            let bound = wait_until(PATIENCE, || std::net::TcpStream::connect(&bind).is_ok());
            assert!(bound, "{}", server.log());
            let l = load::start_post(&Addr::Tcp(bind.clone()), PREDICT, IRIS_V1, 64);
            server.wait_booted();
            let b = Balanced {
                admin: server.metrics_addr(),
                server,
            };
            assert!(l.wait_for(640, PATIENCE), "{}", b.server.log());
            let during = b.wait_connections(64);
            let stats = l.finish();
            assert_eq!(stats.failed, 0, "{:?}", stats.errors);
            assert!(
                fair(&during, 64),
                "-w {workers}: {:?}",
                connections(&during)
            );
        }
    }
}

#[test]
fn unix_socket_connections_spread_too() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let sock = dir.path().join("serve.sock");
    let bind = format!("unix:{}", sock.display());
    for _ in 0..5 {
        let b = Balanced::start(2, &bind, &[]);
        let during = spread_once(&b, 64, LOAD_FOR);
        assert!(fair(&during, 64), "{:?}", connections(&during));
    }
}

#[test]
fn after_a_reload_under_load_the_new_generation_is_balanced_the_same_way() {
    let _serial = common::serial();
    for workers in [2, 4] {
        let b = Balanced::start(workers, "127.0.0.1:0", &[]);
        let l = load::start_post(b.server.addr(), PREDICT, IRIS_V1, 64);
        assert!(l.wait_for(640, PATIENCE), "{}", b.server.log());
        let old = b.wait_connections(64);
        assert!(fair(&old, 64), "{:?}", connections(&old));
        b.server.signal(Signal::SIGHUP);
        // The old generation drains: each of its connections is told to close on its next
        // answer, and its client reconnects, onto the new generation.
        b.wait_serving(workers, 2);
        let new = b.wait_connections(64);
        assert!(l.wait_for(640, PATIENCE), "the load flows after the reload");
        let stats = l.finish();
        assert_eq!(stats.failed, 0, "{:?}", stats.errors);
        assert!(
            fair(&new, 64),
            "-w {workers}, new generation: {:?} (old: {:?})",
            connections(&new),
            connections(&old)
        );
    }
}

/// A killed worker's clients reconnect at once, before the master has reaped it: until then
/// its slot still shows the connections it held, and the survivors take a share of the
/// reconnections as if it would keep its own. The replacement takes the rest, and every
/// connection after; `--max-connection-age` evens out the ones placed in that moment.
#[test]
fn the_clients_of_a_killed_worker_reconnect_to_its_replacement() {
    let _serial = common::serial();
    let b = Balanced::start(2, "127.0.0.1:0", &["--max-connection-age", "1"]);
    let l = load::start_post(b.server.addr(), PREDICT, IRIS_V1, 64);
    assert!(l.wait_for(640, PATIENCE), "{}", b.server.log());
    let before = b.wait_connections(64);
    let victim = b.server.workers()[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    // Its clients see their connections reset (failures of this load, not of serve's), and
    // reconnect: to the replacement, which holds fewer.
    assert!(wait_until(PATIENCE, || !b
        .server
        .workers()
        .contains(&victim)));
    b.wait_serving(2, 1);
    let mut last = Vec::new();
    let spread = wait_until(PATIENCE, || {
        last = b.workers();
        last.iter().map(|w| w.connections).sum::<i64>() == 64 && fair(&last, 64)
    });
    let _ = l.finish();
    assert!(
        spread,
        "after the respawn: {:?} (before: {:?})",
        connections(&last),
        connections(&before)
    );
}

#[test]
fn the_clients_of_a_worker_retired_by_ttou_spread_over_the_others() {
    let _serial = common::serial();
    let b = Balanced::start(3, "127.0.0.1:0", &[]);
    let l = load::start_post(b.server.addr(), PREDICT, IRIS_V1, 64);
    assert!(l.wait_for(640, PATIENCE), "{}", b.server.log());
    b.wait_connections(64);
    b.server.signal(Signal::SIGTTOU);
    b.wait_serving(2, 1);
    let mut last = Vec::new();
    let spread = wait_until(PATIENCE, || {
        last = b.workers();
        last.len() == 2 && last.iter().map(|w| w.connections).sum::<i64>() == 64 && fair(&last, 64)
    });
    let stats = l.finish();
    assert!(spread, "{:?}", connections(&last));
    assert_eq!(stats.failed, 0, "{:?}", stats.errors);
}

#[test]
fn max_connection_age_recycles_connections_without_a_failure_and_fills_a_new_worker() {
    let _serial = common::serial();
    let b = Balanced::start(2, "127.0.0.1:0", &["--max-connection-age", "1"]);
    let l = load::start_post(b.server.addr(), PREDICT, IRIS_V1, 64);
    assert!(l.wait_for(640, PATIENCE), "{}", b.server.log());
    // One worker more (TTIN): it starts with no connection, and only new ones can reach it.
    b.server.signal(Signal::SIGTTIN);
    b.wait_serving(3, 1);
    // As connections pass their age and reconnect, the new worker takes its share.
    let mut last = Vec::new();
    let spread = wait_until(PATIENCE, || {
        last = b.workers();
        last.iter().map(|w| w.connections).sum::<i64>() == 64 && fair(&last, 64)
    });
    assert!(spread, "{:?}", connections(&last));
    // And recycling goes on, every connection once and more, without a failed request.
    let recycled = || {
        b.metrics()
            .lines()
            .find_map(|l| l.strip_prefix("serve_connections_recycled_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_until(PATIENCE, || recycled() >= 128),
        "{}",
        b.metrics()
    );
    let stats = l.finish();
    assert_eq!(stats.failed, 0, "{:?}", stats.errors);
    let metrics = b.metrics();
    assert!(
        metrics.contains("serve_worker_connections{slot=\"2\"} "),
        "{metrics}"
    );
}

#[test]
fn an_http2_connection_past_its_age_gets_goaway_after_its_streams() {
    let b = Balanced::start(1, "127.0.0.1:0", &["--max-connection-age", "0.5"]);
    let Addr::Tcp(addr) = b.server.addr().clone() else {
        unreachable!()
    };
    let rt = common::h2::runtime();
    rt.block_on(async {
        use http_body_util::Empty;
        let (mut send, conn) = common::h2::connect(&addr).await;
        let req = hyper::Request::get(format!("http://{addr}/v2/health/ready"))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let res = send.send_request(req).await.expect("a first stream");
        assert_eq!(res.status(), 200);
        // Past its age the server sends GOAWAY, and the connection ends cleanly.
        let ended = tokio::time::timeout(PATIENCE, conn).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
    });
    let metrics = b.metrics();
    assert!(
        metrics.contains("serve_connections_recycled_total 1\n"),
        "{metrics}"
    );
}
