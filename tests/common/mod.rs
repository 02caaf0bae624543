//! Shared helpers for the black-box tests: start the real binary, read its log, list its
//! process tree from /proc, speak HTTP/1.1 on real sockets, and generate load.
//!
//! Nothing here sleeps for a fixed time to let something happen: every wait polls for the
//! condition with a generous deadline, so the tests hold on a loaded 2-core machine.
#![allow(dead_code)]

pub mod h2;
pub mod http;
pub mod load;
pub mod procs;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Generous: a loaded CI machine may be slow, a correct server is never this slow.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Tests that put load on the machine take this lock, so that they run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which binary to run.
#[derive(Clone, Copy, Debug)]
pub enum Bin {
    /// The real `serve`.
    Serve,
    /// The test-only app (tests/support/testapp.rs) under the same master.
    TestApp,
    /// examples/custom-app: a Rust app written against the App trait.
    CustomApp,
}

impl Bin {
    pub fn path(self) -> PathBuf {
        match self {
            Bin::Serve => PathBuf::from(env!("CARGO_BIN_EXE_serve")),
            Bin::TestApp | Bin::CustomApp => {
                let name = match self {
                    Bin::TestApp => "serve-testapp",
                    _ => "custom-app",
                };
                // target/<profile>/deps/<test> → target/<profile>/examples/<name>
                let exe = std::env::current_exe().unwrap();
                let profile = exe.parent().unwrap().parent().unwrap();
                let p = profile.join("examples").join(name);
                assert!(
                    p.exists(),
                    "{} is missing: `cargo test` builds it; with a target filter run \
                     `cargo build --examples` first",
                    p.display()
                );
                p
            }
        }
    }
}

/// Where the server listens.
#[derive(Clone, Debug)]
pub enum Addr {
    Tcp(String),
    Unix(PathBuf),
}

/// A running server: the master process, its log, its address.
pub struct Server {
    pub child: Child,
    pub master: i32,
    log: Arc<Mutex<String>>,
    log_eof: Arc<AtomicBool>,
    stdout: Arc<Mutex<String>>,
    pub addr: Option<Addr>,
    pub started: Instant,
}

pub struct Spawn<'a> {
    pub bin: Bin,
    pub args: Vec<String>,
    pub env: Vec<(&'a str, String)>,
    pub dir: Option<&'a Path>,
}

impl<'a> Spawn<'a> {
    pub fn new(bin: Bin, args: &[&str]) -> Self {
        Spawn {
            bin,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            dir: None,
        }
    }

    pub fn env(mut self, k: &'a str, v: impl Into<String>) -> Self {
        self.env.push((k, v.into()));
        self
    }

    /// Starts the process without waiting for anything.
    pub fn spawn(self) -> Server {
        let mut cmd = Command::new(self.bin.path());
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("PORT")
            .env_remove("WEB_CONCURRENCY")
            .env_remove("SERVE_CMD_ARGS")
            .env_remove("SERVE_FDS");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = self.dir {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().expect("start the server binary");
        let log = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let log_eof = Arc::new(AtomicBool::new(false));
        pump(child.stderr.take().unwrap(), log.clone(), log_eof.clone());
        pump(
            child.stdout.take().unwrap(),
            stdout.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        Server {
            master: child.id() as i32,
            child,
            log,
            log_eof,
            stdout,
            addr: None,
            started: Instant::now(),
        }
    }

    /// Starts the server and waits until its workers booted; panics with the log otherwise.
    pub fn start(self) -> Server {
        let mut s = self.spawn();
        s.wait_booted();
        s
    }
}

/// Copies a pipe's lines into `into`; sets `eof` once the writers are all gone.
fn pump(
    stream: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<String>>,
    eof: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
        eof.store(true, Ordering::SeqCst);
    });
}

/// Starts a binary with these arguments and waits until it serves.
pub fn start(bin: Bin, args: &[&str]) -> Server {
    Spawn::new(bin, args).start()
}

impl Server {
    /// The error log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The standard output so far (the access log goes there with `-`).
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (counting from the start).
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        wait_until(within, || self.log().contains(needle))
    }

    /// How many times `needle` appears in the log.
    pub fn count_log(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    pub fn wait_booted(&mut self) {
        let booted = wait_until(PATIENCE, || {
            self.log().contains("workers booted") || self.has_exited()
        });
        assert!(
            booted && !self.has_exited(),
            "the server did not boot; its log:\n{}",
            self.log()
        );
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("Listening at: "))
            .expect("a Listening at: line");
        let at = line.split("Listening at: ").nth(1).unwrap();
        let at = at.rsplit_once(" (").map_or(at, |(a, _)| a);
        self.addr = Some(if let Some(u) = at.strip_prefix("unix:") {
            Addr::Unix(PathBuf::from(u))
        } else {
            let at = at.trim_start_matches("http://");
            Addr::Tcp(at.trim_start_matches("https://").to_string())
        });
    }

    pub fn addr(&self) -> &Addr {
        self.addr.as_ref().expect("the server has booted")
    }

    /// The `--metrics-bind` address, as the log names it.
    pub fn metrics_addr(&self) -> Addr {
        Addr::Tcp(self.logged_addr("Metrics and status at"))
    }

    /// The first `host:port` the start log gives after `label: http://`.
    pub fn logged_addr(&self, label: &str) -> String {
        let log = self.log();
        log.lines()
            .find_map(|l| l.split(&format!("{label}: http://")).nth(1))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("no {label:?} address in the log:\n{log}"))
            .to_string()
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends a signal to the master.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.master), sig).unwrap();
    }

    /// The master's live worker processes.
    pub fn workers(&self) -> Vec<i32> {
        procs::children_named(self.master, "serve: worker")
    }

    /// Waits until the master has exactly `n` workers, all of them answering or not.
    pub fn wait_workers(&self, n: usize) -> Vec<i32> {
        let mut last = Vec::new();
        let ok = wait_until(PATIENCE, || {
            last = self.workers();
            last.len() == n
        });
        assert!(
            ok,
            "expected {n} workers, have {last:?}; log:\n{}",
            self.log()
        );
        last
    }

    /// Waits for the master to exit, and for its last log lines to be read.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                wait_until(Duration::from_secs(5), || {
                    self.log_eof.load(Ordering::SeqCst)
                });
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts that one scrape of `/metrics` has each of these sample lines, exactly.
    pub fn assert_metrics(&self, lines: &[&str]) {
        let metrics = self.get("/metrics").text();
        for line in lines {
            assert!(
                metrics.contains(&format!("{line}\n")),
                "no {line} in:\n{metrics}"
            );
        }
    }

    /// `serve_worker_restarts_total{cause="CAUSE"}`, from one scrape of `/metrics`.
    pub fn restarts(&self, cause: &str) -> u64 {
        let metrics = self.get("/metrics").text();
        let prefix = format!("serve_worker_restarts_total{{cause=\"{cause}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {cause} restarts counter in:\n{metrics}"))
    }

    /// One GET on a fresh connection.
    pub fn get(&self, path: &str) -> http::Response {
        http::Conn::open(self.addr())
            .and_then(|mut c| c.request("GET", path, &[], b""))
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log:\n{}", self.log()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Kill the whole tree, whatever state the test left it in, and wait until every
        // process of it is dead: a worker that is still exiting holds the listeners, so the
        // next test to bind the same address (a unix socket's path) would find it in use.
        // The master goes first: killed after its workers, it could notice them dead and
        // fork new ones, which no snapshot of the tree holds (they would keep the listeners a
        // moment, and reset the connections of the next test that reaches the address).
        let tree = procs::descendants(self.master);
        let _ = self.child.kill();
        let _ = self.child.wait();
        for &pid in &tree {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        wait_until(Duration::from_secs(10), || {
            tree.iter().all(|&pid| !procs::running(pid))
        });
    }
}

/// A path under the repository's examples/ folder, as an argument for the binary.
pub fn examples(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(p)
        .display()
        .to_string()
}

/// Polls `cond` every 20 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory for config files, sockets and pid files.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Prints a measured figure so that `cargo test -- --nocapture` shows it.
pub fn report(what: &str, value: impl std::fmt::Display) {
    println!("[figure] {what}: {value}");
}

/// The onnxruntime library for tests that need it: `ORT_DYLIB_PATH`. Without it the test
/// says it did not run (`SERVE_REQUIRE_ONNXRUNTIME=1`, set where CI installs the library,
/// makes its absence a failure instead).
pub fn onnxruntime_library(test: &str) -> Option<String> {
    match std::env::var("ORT_DYLIB_PATH") {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var("SERVE_REQUIRE_ONNXRUNTIME").is_ok_and(|v| v == "1") => {
            panic!("{test}: SERVE_REQUIRE_ONNXRUNTIME=1, but ORT_DYLIB_PATH is not set")
        }
        _ => {
            // Straight to stderr: the test harness shows it even though the test passes.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "[not run] {test}: set ORT_DYLIB_PATH to libonnxruntime.so to run it"
            );
            None
        }
    }
}
