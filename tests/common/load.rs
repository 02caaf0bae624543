//! A closed-loop load generator: N keep-alive connections, opened at the same moment (the
//! burst a proxy's pool or a client restarting makes), each sending the next request as soon
//! as the last was answered, counting every failure: a reset, an early close, a refused
//! connection or a status other than 200. A connection the server marked `Connection: close`
//! is replaced by a new one, as every HTTP client does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Addr;
use super::http::Conn;

/// What a load run saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub ok: u64,
    pub failed: u64,
    /// A sample of the failures, with what the client saw.
    pub errors: Vec<String>,
    /// Answers per worker pid (from the test app's `pid` field).
    pub by_pid: BTreeMap<i32, u64>,
    pub elapsed: Duration,
    pub max_latency: Duration,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Stats>>,
    started: Instant,
}

/// Starts `conns` connections sending `GET path` in a loop.
pub fn start(addr: &Addr, path: &str, conns: usize) -> Load {
    start_request(addr, "GET", path, "", conns)
}

/// Starts `conns` connections sending `POST path` with this JSON body in a loop.
pub fn start_post(addr: &Addr, path: &str, body: &str, conns: usize) -> Load {
    start_request(addr, "POST", path, body, conns)
}

fn start_request(addr: &Addr, method: &str, path: &str, body: &str, conns: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let together = Arc::new(Barrier::new(conns));
    let threads = (0..conns)
        .map(|_| {
            let (addr, stop, answered) = (addr.clone(), stop.clone(), answered.clone());
            let (method, path, body) = (method.to_string(), path.to_string(), body.to_string());
            let together = together.clone();
            std::thread::spawn(move || {
                together.wait();
                run(&addr, (&method, &path, &body), &stop, &answered)
            })
        })
        .collect();
    Load {
        stop,
        answered,
        threads,
        started: Instant::now(),
    }
}

impl Load {
    /// Requests answered so far, across connections.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` more requests were answered (proof the load flows).
    pub fn wait_for(&self, n: u64, within: Duration) -> bool {
        let target = self.answered() + n;
        super::wait_until(within, || self.answered() >= target)
    }

    /// Stops sending; each connection finishes its request under way; returns the totals.
    pub fn finish(self) -> Stats {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Stats::default();
        for t in self.threads {
            let s = t.join().expect("a load thread");
            total.ok += s.ok;
            total.failed += s.failed;
            total.errors.extend(s.errors);
            for (pid, n) in s.by_pid {
                *total.by_pid.entry(pid).or_default() += n;
            }
            total.max_latency = total.max_latency.max(s.max_latency);
        }
        total.errors.truncate(20);
        total.elapsed = self.started.elapsed();
        total
    }
}

fn run(
    addr: &Addr,
    (method, path, body): (&str, &str, &str),
    stop: &AtomicBool,
    answered: &AtomicU64,
) -> Stats {
    let mut stats = Stats::default();
    let mut conn: Option<Conn> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match Conn::open(addr) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    fail(&mut stats, format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let c = conn.as_mut().unwrap();
        let sent = Instant::now();
        match c.request(method, path, &[], body.as_bytes()) {
            Ok(res) if res.status == 200 => {
                stats.ok += 1;
                stats.max_latency = stats.max_latency.max(sent.elapsed());
                answered.fetch_add(1, Ordering::Relaxed);
                if let Some(pid) = serde_json::from_slice::<serde_json::Value>(&res.body)
                    .ok()
                    .and_then(|v| v["pid"].as_i64())
                {
                    *stats.by_pid.entry(pid as i32).or_default() += 1;
                }
                if c.closed {
                    conn = None;
                }
            }
            Ok(res) => {
                fail(&mut stats, format!("status {}: {}", res.status, res.text()));
                conn = None;
            }
            Err(e) => {
                fail(&mut stats, format!("request: {e}"));
                conn = None;
            }
        }
    }
    stats
}

fn fail(stats: &mut Stats, what: String) {
    stats.failed += 1;
    if stats.errors.len() < 20 {
        stats.errors.push(what);
    }
}
