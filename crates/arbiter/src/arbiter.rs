//! The master: one `Arbiter` whose methods read like the signals table.
//!
//! The loop waits on the signal pipe with a short tick, handles the queued signals by name,
//! then reaps children, checks heartbeats, advances a reload, keeps the worker count and
//! notices when an upgrade's old master is gone. No behaviour hides in a signal handler, and
//! nothing here starts a thread: every fork happens from a single-threaded process.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serve_app::{App, AppError};
use serve_worker::{ExitCode, Listener, Role};

use crate::control::{Control, Loaded};
use crate::process::{self, PidFile};
use crate::scoreboard::Scoreboard;
use serve_settings::Bind;

use crate::settings::Settings;
use crate::signals::SignalPipe;
use crate::sockets::{self, BindOptions, Bound};
use crate::supervise::{Backoff, Worker};
use crate::upgrade::Reload;

/// Reads the configuration again, for a reload; under `--model-control explicit`, with the
/// models to load (those the running generation serves, or a load or unload request's
/// change of them) in place of `--load-model`'s.
pub type Reloader = Box<dyn FnMut(Option<&Loaded>) -> Result<Settings, String>>;

/// Why the master could not start: an exit code and a one-line message.
#[derive(Debug)]
pub struct StartError {
    /// How the process exits: [`ExitCode::Config`] (configuration, bind) or
    /// [`ExitCode::AppLoad`].
    pub code: ExitCode,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl StartError {
    pub(crate) fn config(message: impl Into<String>) -> Self {
        StartError {
            code: ExitCode::Config,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The first generation is booting: a worker that cannot boot halts the server.
    Booting(Instant),
    Running,
    /// Stopping: no more spawning; exit with `code` once every worker is gone.
    Stopping {
        graceful: bool,
        deadline: Instant,
        code: ExitCode,
    },
}

/// The master process.
pub struct Arbiter {
    pub(crate) settings: Settings,
    pub(crate) reloader: Reloader,
    pub(crate) listeners: Vec<Bound>,
    pub(crate) board: Scoreboard,
    pub(crate) pipe: SignalPipe,
    pub(crate) workers: BTreeMap<Pid, Worker>,
    /// The generation being served (kept by manage_workers).
    pub(crate) generation: u64,
    /// The highest generation ever started.
    pub(crate) last_generation: u64,
    /// Workers wanted now: `--workers`, moved by TTIN/TTOU/WINCH.
    pub(crate) num_workers: usize,
    pub(crate) preloaded: Option<Arc<dyn App>>,
    pub(crate) pidfile: Option<PidFile>,
    pub(crate) exe: CString,
    pub(crate) argv: Vec<CString>,
    pub(crate) pid: Pid,
    /// When this master was started by an upgrade: the old master, until it exits.
    pub(crate) old_master: Option<Pid>,
    /// The new master forked by an upgrade (USR2), while it lives.
    pub(crate) upgrade_child: Option<Pid>,
    /// The listeners came from systemd (LISTEN_FDS): a reload keeps them all.
    pub(crate) systemd_sockets: bool,
    pub(crate) phase: Phase,
    pub(crate) reload: Reload,
    pub(crate) pending_hup: bool,
    pub(crate) backoff: Backoff,
    pub(crate) rng: u64,
    /// Load and unload requests from the workers (`--model-control explicit`).
    pub(crate) control: Option<Control>,
    /// The TLS and token files, watched for a change (a rotated Secret sends no HUP).
    pub(crate) watched: FileWatch,
}

/// Files whose change reloads the server as HUP does: the certificate, its key, the CA
/// file and the token file. Looked at once a second; Kubernetes replaces a Secret's files by swapping a
/// symbolic link, so each is followed to the file it names.
pub(crate) struct FileWatch {
    files: Vec<(std::path::PathBuf, Option<FileState>)>,
    looked: Instant,
}

/// What tells a file changed: its modification time, inode and size.
type FileState = (std::time::SystemTime, u64, u64);

fn file_state(path: &std::path::Path) -> Option<FileState> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).ok()?;
    Some((md.modified().ok()?, md.ino(), md.len()))
}

impl FileWatch {
    /// The files `settings` read, as they are now.
    pub(crate) fn of(settings: &Settings) -> FileWatch {
        let files = settings
            .tls
            .iter()
            .flat_map(|t| t.files())
            .map(PathBuf::as_path)
            .chain(settings.tokens.as_ref().map(|t| t.file()))
            .map(|f| (f.to_path_buf(), file_state(f)))
            .collect();
        FileWatch {
            files,
            looked: Instant::now(),
        }
    }

    /// A file that changed since it was last looked at (at most once a second); each
    /// change is told once, whether or not the reload it starts succeeds.
    fn changed(&mut self) -> Option<std::path::PathBuf> {
        if self.files.is_empty() || self.looked.elapsed() < Duration::from_secs(1) {
            return None;
        }
        self.looked = Instant::now();
        let mut changed = None;
        for (path, state) in &mut self.files {
            let now = file_state(path);
            if now != *state {
                *state = now;
                changed.get_or_insert_with(|| path.clone());
            }
        }
        changed
    }
}

impl Arbiter {
    /// Prepares the master: checks the app, binds or inherits the listeners, writes the pid
    /// file, and proves the app: preloads it when asked, else builds it once in a short-lived
    /// child. No worker is forked yet.
    pub fn start(settings: Settings, reloader: Reloader) -> Result<Arbiter, StartError> {
        process::tune_allocator();
        let pid = nix::unistd::getpid();
        let exe = std::env::current_exe()
            .map_err(|e| StartError::config(format!("cannot resolve the serve executable: {e}")))?;
        let exe = CString::new(exe.as_os_str().as_bytes())
            .map_err(|_| StartError::config("the executable path contains a NUL byte"))?;
        let argv = std::env::args_os()
            .filter_map(|a| CString::new(a.as_bytes()).ok())
            .collect();

        settings.app.check().map_err(|e| StartError {
            code: ExitCode::of_app_error(&e),
            message: format!("cannot load the app: {e}"),
        })?;

        process::raise_nofile(settings.worker_connections as u64 + 64);
        let (mut inherited, source) = sockets::inherited().map_err(StartError::config)?;
        let old_master = match source {
            Some(sockets::SERVE_FDS) => std::env::var("SERVE_MASTER_PID")
                .ok()
                .and_then(|p| p.parse().ok())
                .map(Pid::from_raw),
            _ => None,
        };
        let systemd_sockets = source == Some("LISTEN_FDS");
        let listeners = if systemd_sockets {
            tracing::info!(
                "Using {} sockets passed by systemd (LISTEN_FDS)",
                inherited.len()
            );
            inherited
                .drain(..)
                .map(|listener| Bound {
                    bind: Bind::Fd(sockets::fd_of(&listener)),
                    listener,
                    role: Role::Main,
                })
                .collect()
        } else {
            sockets::bind_all(
                &settings.binds,
                Role::Main,
                &mut inherited,
                &bind_options(&settings),
            )
            .map_err(StartError::config)?
        };
        let mut listeners = listeners;
        listeners.extend(
            sockets::bind_all(
                settings.grpc_binds(),
                Role::Grpc,
                &mut inherited,
                &bind_options(&settings),
            )
            .map_err(|e| StartError::config(format!("--grpc-bind: {e}")))?,
        );
        listeners.extend(
            sockets::bind_all(
                settings.metrics_binds(),
                Role::Metrics,
                &mut inherited,
                &bind_options(&settings),
            )
            .map_err(|e| StartError::config(format!("--metrics-bind: {e}")))?,
        );
        for stale in inherited {
            tracing::info!("Closing an inherited socket no --bind asks for: {stale}");
        }

        let pidfile = match &settings.pid {
            None => None,
            Some(path) => {
                let path = match old_master {
                    Some(_) => process::with_suffix(path, ".2"),
                    None => path.clone(),
                };
                Some(PidFile::create(&path).map_err(StartError::config)?)
            }
        };

        let board = Scoreboard::new()
            .map_err(|e| StartError::config(format!("cannot map the scoreboard: {e}")))?;
        let metrics = board.metrics();
        serve_metrics::install(metrics);
        serve_metrics::record_into(serve_metrics::Target::Master);
        metrics.master_started(pid.as_raw() as u32);
        metrics.set_generation(1);
        register_models(&settings);

        let preloaded = if settings.preload {
            let (app, left) = preload(&settings)?;
            if !left.is_empty() {
                crate::upgrade::prove_at_boot(&settings, pid)?;
            }
            Some(app)
        } else {
            crate::upgrade::prove_at_boot(&settings, pid)?;
            None
        };

        // Made whatever the mode, so that a reload may turn explicit control on.
        let control = Control::new().map_err(|e| {
            StartError::config(format!("cannot make the repository control channel: {e}"))
        })?;
        let pipe = SignalPipe::install()
            .map_err(|e| StartError::config(format!("cannot install signal handlers: {e}")))?;
        process::set_name(&format!("{}: master", settings.name));

        for l in &listeners {
            let at = address(l, settings.tls.is_some());
            match l.role {
                Role::Main => tracing::info!("Listening at: {at} ({pid})"),
                Role::Grpc => tracing::info!("gRPC at: {at} ({pid})"),
                Role::Metrics => tracing::info!("Metrics and status at: {at} ({pid})"),
            }
        }
        log_tls(&settings);
        let threads = settings.threads;
        if threads > 1 {
            tracing::info!("Using worker: tokio multi-thread runtime, {threads} threads");
        } else {
            tracing::info!("Using worker: tokio current-thread runtime");
        }
        tracing::info!(
            "App: {}{}",
            settings.app.describe(),
            if settings.preload { " (preloaded)" } else { "" }
        );
        for line in settings.app.summary() {
            tracing::info!("  {line}");
        }

        let num_workers = settings.workers;
        let settings_for_watch = settings.clone();
        Ok(Arbiter {
            settings,
            reloader,
            listeners,
            board,
            pipe,
            workers: BTreeMap::new(),
            generation: 1,
            last_generation: 1,
            num_workers,
            preloaded,
            pidfile,
            exe,
            argv,
            pid,
            old_master,
            upgrade_child: None,
            systemd_sockets,
            phase: Phase::Booting(Instant::now()),
            reload: Reload::Idle,
            pending_hup: false,
            backoff: Backoff::default(),
            rng: crate::supervise::seed(),
            control: Some(control),
            watched: FileWatch::of(&settings_for_watch),
        })
    }

    /// The listeners' addresses as bound (port 0 resolved).
    pub fn addresses(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|l| l.listener.to_string())
            .collect()
    }

    /// Runs until the server stops; returns the process exit code.
    pub fn run(mut self) -> i32 {
        loop {
            let control = self.control.as_ref().map(Control::fd);
            for sig in self.pipe.wait(self.tick(), control) {
                self.handle(sig);
            }
            self.reap_workers();
            if let Some(code) = self.finished() {
                return self.exit(code);
            }
            self.murder_workers();
            self.notice_changed_files();
            self.advance_reload();
            self.advance_control();
            self.manage_workers();
            self.maybe_promote_master();
            self.note_boot();
        }
    }

    fn tick(&self) -> Duration {
        let busy = !matches!(self.phase, Phase::Running)
            || !matches!(self.reload, Reload::Idle)
            || self.control_busy();
        if busy {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(250)
        }
    }

    fn handle(&mut self, sig: Signal) {
        if sig != Signal::SIGCHLD {
            tracing::info!("Handling signal: {}", signal_name(sig));
        }
        match sig {
            Signal::SIGHUP => self.handle_hup(),
            Signal::SIGTERM => self.stop(true, ExitCode::Ok),
            Signal::SIGINT | Signal::SIGQUIT => self.stop(false, ExitCode::Ok),
            Signal::SIGTTIN => self.handle_ttin(),
            Signal::SIGTTOU => self.handle_ttou(),
            Signal::SIGUSR1 => self.handle_usr1(),
            Signal::SIGUSR2 => self.handle_usr2(),
            Signal::SIGWINCH => self.handle_winch(),
            _ => {} // SIGCHLD: the loop reaps right after.
        }
    }

    /// A TLS or token file changed on disk: read everything again, as HUP does.
    fn notice_changed_files(&mut self) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        if let Some(file) = self.watched.changed() {
            tracing::info!("{} changed: reloading, as on HUP", file.display());
            self.reload();
        }
    }

    fn handle_hup(&mut self) {
        if matches!(self.phase, Phase::Stopping { .. }) {
            return;
        }
        self.reload();
    }

    fn handle_ttin(&mut self) {
        if self.num_workers >= crate::scoreboard::CAPACITY {
            tracing::warn!(
                "Not adding a worker: {} is the most a master runs",
                self.num_workers
            );
            return;
        }
        self.num_workers += 1;
        tracing::info!("Number of workers: {}", self.num_workers);
    }

    fn handle_ttou(&mut self) {
        if self.num_workers <= 1 {
            tracing::info!(
                "Number of workers stays at 1 (TTOU never goes below one; WINCH stops all)"
            );
            return;
        }
        self.num_workers -= 1;
        tracing::info!("Number of workers: {}", self.num_workers);
    }

    fn handle_usr1(&mut self) {
        if let Err(e) = serve_log::reopen() {
            tracing::error!("Cannot reopen the log files: {e}");
        }
        self.signal_workers(Signal::SIGUSR1);
    }

    fn handle_winch(&mut self) {
        tracing::info!("Stopping all workers gracefully; the master stays (HUP starts them again)");
        self.num_workers = 0;
        self.mark_server_stopping();
    }

    /// Stops the server: closes the listeners, asks every worker to stop (TERM: finish what
    /// you have; QUIT: now), and exits once they are gone or the graceful timeout ran out.
    pub(crate) fn stop(&mut self, graceful: bool, code: ExitCode) {
        let deadline = Instant::now() + self.settings.graceful_timeout;
        match self.phase {
            Phase::Stopping {
                graceful: was_graceful,
                deadline: d,
                code: c,
            } => {
                if was_graceful && !graceful {
                    self.signal_workers(Signal::SIGQUIT);
                    self.phase = Phase::Stopping {
                        graceful,
                        deadline: d,
                        code: c,
                    };
                }
                return;
            }
            _ => {
                self.phase = Phase::Stopping {
                    graceful,
                    deadline,
                    code,
                }
            }
        }
        match self.upgrade_child {
            // An upgrade's old master retires; the service goes on in the new master, which
            // systemd follows from now on (with NotifyAccess=main it heeds only the main pid).
            Some(new) => crate::notify::notify(&format!(
                "MAINPID={new}\nSTATUS=handed over to the new master (pid {new})"
            )),
            None => crate::notify::notify("STOPPING=1"),
        }
        self.abandon_reload("the server is stopping");
        let closing = self.seal_listeners();
        self.close_listeners();
        let sig = if graceful {
            Signal::SIGTERM
        } else {
            Signal::SIGQUIT
        };
        self.mark_server_stopping();
        for w in self.workers.values() {
            self.board.slot(w.slot).mark_listeners_closing(closing);
        }
        let now = Instant::now();
        for (pid, w) in &mut self.workers {
            w.stopping_since.get_or_insert(now);
            kill(*pid, sig);
        }
    }

    /// Tells every worker that the server stops, so that readiness turns 503 (a worker
    /// retired while the server serves on stays ready).
    fn mark_server_stopping(&self) {
        for w in self.workers.values() {
            self.board.slot(w.slot).mark_server_stopping();
        }
    }

    /// Stops at once with this exit code (first boot failures).
    pub(crate) fn halt(&mut self, code: ExitCode, reason: &str) {
        tracing::error!("{reason}");
        self.stop(false, code);
    }

    /// The listeners this server alone owns, which close for good when it stops: bit `i` for
    /// listener `i`. The workers empty their queues before they let go of them, since the
    /// kernel resets what a socket's queue holds when its last descriptor closes. Sockets
    /// that live on after us are left alone: systemd's and `fd://` ones, and those an upgrade
    /// shares with the other master.
    ///
    /// Where the kernel allows it, new handshakes stop first (see
    /// [`sockets::stop_handshakes`]), so that the queue only shrinks; a unix socket takes no
    /// new connection once its file is removed.
    fn seal_listeners(&self) -> u32 {
        if self.systemd_sockets || self.upgrade_child.is_some() || self.old_master.is_some() {
            return 0;
        }
        let mut closing = 0;
        for (i, l) in self.listeners.iter().enumerate().take(32) {
            if matches!(l.bind, Bind::Fd(_)) {
                continue;
            }
            if let Listener::Tcp(t) = &l.listener
                && let Err(e) = sockets::stop_handshakes(t)
            {
                // EPERM without CAP_NET_ADMIN on some kernels: the queue is still emptied,
                // but a connection that arrives between the last accept and the close is
                // reset, as in any server that closes its listener.
                tracing::debug!("cannot stop new handshakes on {}: {e}", l.bind);
            }
            closing |= 1 << i;
        }
        closing
    }

    fn close_listeners(&mut self) {
        // During an upgrade the other master still serves on these sockets: closing our
        // descriptors is fine, removing the unix socket's file is not.
        let shared = self.upgrade_child.is_some() || self.old_master.is_some();
        for l in self.listeners.drain(..) {
            if !shared {
                sockets::unlink(&l);
            }
        }
    }

    fn finished(&mut self) -> Option<ExitCode> {
        let Phase::Stopping { deadline, code, .. } = self.phase else {
            return None;
        };
        if self.workers.is_empty() {
            return Some(code);
        }
        if Instant::now() >= deadline {
            for (pid, w) in &mut self.workers {
                if !w.killed {
                    tracing::warn!(
                        "Worker (pid:{pid}) did not stop within the graceful timeout; killing it"
                    );
                    kill(*pid, Signal::SIGKILL);
                    w.killed = true;
                }
            }
        }
        None
    }

    fn exit(mut self, code: ExitCode) -> i32 {
        if let Some(p) = self.pidfile.take() {
            p.remove();
        }
        tracing::info!("Shutting down: Master");
        code.code()
    }

    pub(crate) fn signal_workers(&self, sig: Signal) {
        for pid in self.workers.keys() {
            kill(*pid, sig);
        }
    }

    fn note_boot(&mut self) {
        let Phase::Booting(started) = self.phase else {
            return;
        };
        let ready = self
            .workers
            .values()
            .filter(|w| self.board.slot(w.slot).state() == serve_worker::State::Ready)
            .count();
        if ready >= self.num_workers {
            tracing::info!(
                "{ready} workers booted in {} ms",
                started.elapsed().as_millis()
            );
            self.phase = Phase::Running;
            crate::notify::notify(&format!(
                "READY=1\nMAINPID={}\nSTATUS={ready} workers",
                self.pid
            ));
        }
    }

    /// What a worker's exit code means at first boot.
    pub(crate) fn boot_failure_code(code: Option<i32>) -> ExitCode {
        match code.and_then(ExitCode::from_code) {
            Some(code @ (ExitCode::AppLoad | ExitCode::Config)) => code,
            _ => ExitCode::WorkerBoot,
        }
    }
}

/// A listener's address as the start log says it: `https://` where TLS applies (the TCP
/// listeners that serve requests).
fn address(l: &Bound, tls: bool) -> String {
    let text = l.listener.to_string();
    match text.strip_prefix("http://") {
        Some(rest) if tls && l.role != Role::Metrics => format!("https://{rest}"),
        _ => text,
    }
}

/// The certificate served (its subject and expiry) and how clients are checked; logged at
/// start and by each reload.
pub(crate) fn log_tls(settings: &Settings) {
    let Some(tls) = &settings.tls else { return };
    let c = tls.certificate();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let clients = match settings.cert_reqs {
        serve_settings::kinds::ClientCerts::None => "not asked".to_owned(),
        serve_settings::kinds::ClientCerts::Optional => "checked when sent".to_owned(),
        serve_settings::kinds::ClientCerts::Required => "required".to_owned(),
    };
    tracing::info!(
        "TLS: certificate {} ({}), expires {} (in {} days); client certificates {clients}",
        c.subject,
        c.file.display(),
        c.not_after_text,
        (c.not_after - now) / 86_400
    );
}

/// Gives each model of the app its metrics index before anything that serves it forks.
pub(crate) fn register_models(settings: &Settings) {
    let Some(region) = serve_metrics::region() else {
        return;
    };
    for name in settings.app.models() {
        let id = region.register_model(&name);
        if let Some(engine) = settings.app.engine_of(&name) {
            region.set_engine(id, &engine);
        }
        for version in settings.app.versions_of(&name) {
            if region.register_version(id, &version).is_none() {
                tracing::warn!(
                    "model {name} version {version}: no statistics of its own (more than {} \
                     model versions, or a version longer than {} bytes); its metrics count as \
                     ever",
                    serve_metrics::region::MAX_VERSIONS,
                    serve_metrics::region::MAX_VERSION
                );
            }
        }
        if id == serve_metrics::ModelId::OVERFLOW {
            tracing::warn!(
                "model {name}: its metrics count under model=\"_overflow\" (more than {} models, or a name longer than {} bytes)",
                serve_metrics::region::MAX_MODELS - 2,
                serve_metrics::region::MAX_NAME
            );
        }
    }
}

/// Builds and warms the app in the master (`--preload`). What it leaves unbuilt (models
/// whose engine starts threads) must be proven by a child, and each worker builds it after
/// the fork.
pub(crate) fn preload(settings: &Settings) -> Result<(Arc<dyn App>, Vec<String>), StartError> {
    let started = Instant::now();
    let failed = |e: AppError| StartError {
        code: ExitCode::of_app_error(&e),
        message: format!("cannot load the app: {e}"),
    };
    let app = settings.app.build().map_err(failed)?;
    let left = app.warm_before_fork().map_err(failed)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if left.is_empty() {
        tracing::info!("Preloaded the app in the master in {ms:.1} ms");
    } else {
        tracing::info!(
            "Preloaded the app in the master in {ms:.1} ms, but for {}: its engine starts \
             threads, so a child proves it and each worker builds it after the fork",
            left.join(", ")
        );
    }
    Ok((app, left))
}

pub(crate) fn bind_options(settings: &Settings) -> BindOptions {
    BindOptions {
        backlog: settings.backlog,
        reuse_port: settings.reuse_port,
        umask: settings.umask,
        owner: (settings.uid(), settings.gid()),
    }
}

pub(crate) fn kill(pid: Pid, sig: Signal) {
    let _ = nix::sys::signal::kill(pid, sig);
}

pub(crate) fn signal_name(sig: Signal) -> String {
    sig.as_str().trim_start_matches("SIG").to_ascii_lowercase()
}
