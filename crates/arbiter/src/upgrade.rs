//! Changing what runs without dropping a request: reload (HUP) and upgrade (USR2).
//!
//! Reload proves the new configuration and app before any old worker retires: the config is
//! read again, new addresses are bound, the app is checked and then built and warmed once,
//! in the master with `--preload` or else in a short-lived child (so the master never holds
//! a model it does not serve). Only then is a new generation started, and the old one is
//! asked to drain once every new worker is ready. Any failure on the way abandons the reload
//! and the old generation keeps serving.
//!
//! Upgrade forks a child that execs the binary again (the path resolved at start) with the
//! listeners' descriptors in `SERVE_FDS`: both masters then serve on the same sockets until
//! the operator stops the old one.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serve_app::http::StatusCode;
use serve_app::{App, ChangeRefused};
use serve_worker::{Role, State};

use crate::arbiter::{Arbiter, Phase, StartError, bind_options, kill, preload};
use crate::control::Loaded;
use crate::process;
use crate::settings::Settings;
use crate::sockets::{self, Bound};
use serve_metrics::ReloadResult;
use serve_worker::ExitCode;

/// Forks a short-lived child that builds and warms `settings`' app (every model's plan, as a
/// worker would on its first requests) and exits 0, or writes why it could not to the pipe
/// it returns and exits with [`ExitCode::AppLoad`]. `forget` runs first in the child, to drop
/// what belongs to the master. The master never builds a model it does not serve itself
/// (without `--preload`), so its memory stays that of a supervisor.
pub(crate) fn fork_prover(
    settings: &Settings,
    master: Pid,
    name: &str,
    forget: impl FnOnce(),
) -> std::io::Result<(Pid, OwnedFd)> {
    let (reader, writer) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let pid = process::fork_child(|| {
        forget();
        // The proof's model builds are not the server's: they count nowhere.
        serve_metrics::record_into(serve_metrics::Target::Nowhere);
        process::follow_parent(master);
        process::set_name(name);
        let proved = process::drop_privileges(settings.uid(), settings.gid())
            .map_err(serve_app::AppError::from)
            .and_then(|()| settings.app.build())
            .and_then(|app| app.warm());
        match proved {
            Ok(()) => 0,
            Err(e) => {
                let _ = nix::unistd::write(&writer, e.to_string().as_bytes());
                ExitCode::of_app_error(&e).code()
            }
        }
    })?;
    drop(writer);
    Ok((pid, reader))
}

/// The first boot's proof: the app is built and warmed once in a child before any worker
/// forks, as a reload proves its new app, so that a model tract cannot build stops the start
/// (exit 4, naming it) instead of passing every check and failing the first request.
pub(crate) fn prove_at_boot(settings: &Settings, master: Pid) -> Result<(), StartError> {
    let started = Instant::now();
    let name = format!("{}: proof", settings.name);
    let (pid, reader) = fork_prover(settings, master, &name, || {})
        .map_err(|e| StartError::config(format!("cannot fork to prove the app: {e}")))?;
    let status = loop {
        match nix::sys::wait::waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    let mut message = String::new();
    let _ = std::fs::File::from(reader).read_to_string(&mut message);
    use nix::sys::wait::WaitStatus;
    match (status, message.trim()) {
        (Ok(WaitStatus::Exited(_, 0)), _) => {
            tracing::info!(
                "Proved the app in a child (pid {pid}) in {:.1} ms: every model builds",
                started.elapsed().as_secs_f64() * 1000.0
            );
            Ok(())
        }
        (status, m) if !m.is_empty() => Err(StartError {
            // The child exits as the start should: 1 when the host is at fault.
            code: match status {
                Ok(WaitStatus::Exited(_, code)) => {
                    ExitCode::from_code(code).unwrap_or(ExitCode::AppLoad)
                }
                _ => ExitCode::AppLoad,
            },
            message: format!("cannot load the app: {m}"),
        }),
        (Ok(WaitStatus::Signaled(_, sig, _)), _) => Err(StartError {
            code: ExitCode::AppLoad,
            message: format!("cannot load the app: its proof was killed by {sig}"),
        }),
        (other, _) => Err(StartError {
            code: ExitCode::AppLoad,
            message: format!("cannot load the app: its proof ended with {other:?}"),
        }),
    }
}

/// Whose fault a failed reload is, for the load or unload request it was making: the new
/// app's (400, the client asked for a model that cannot be served) or the server's (500).
#[derive(Clone, Copy)]
enum Fault {
    App,
    Server,
}

/// How long the proof of a new app may take.
const PROOF_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a reload stands.
pub(crate) enum Reload {
    Idle,
    /// A child builds the new app.
    Proving {
        pid: Pid,
        reader: OwnedFd,
        next: Box<Next>,
        /// With `--preload`, the app the master built, but for what the child proves.
        preloaded: Option<Arc<dyn App>>,
        started: Instant,
    },
    /// The new generation boots; the old one serves until it is ready.
    Starting {
        generation: u64,
        previous: Box<Previous>,
        started: Instant,
    },
}

/// What a reload will switch to.
pub(crate) struct Next {
    settings: Settings,
    listeners: Vec<Bound>,
}

/// What an abandoned reload goes back to.
pub(crate) struct Previous {
    settings: Settings,
    listeners: Vec<Bound>,
    preloaded: Option<Arc<dyn App>>,
    generation: u64,
    num_workers: usize,
}

impl Arbiter {
    /// HUP: read the configuration again and prove it before switching. Under explicit
    /// model control, the models loaded stay loaded.
    pub(crate) fn reload(&mut self) {
        if !matches!(self.reload, Reload::Idle) {
            tracing::info!("A reload is under way; another one follows it");
            self.pending_hup = true;
            return;
        }
        self.reload_with(self.loaded_now());
    }

    /// A reload with these models loaded (explicit model control; `None` without it).
    pub(crate) fn reload_with(&mut self, loaded: Option<Loaded>) {
        let started = Instant::now();
        crate::notify::notify("RELOADING=1");
        let settings = match (self.reloader)(loaded.as_ref()) {
            Ok(s) => s,
            Err(e) => return self.reload_failed(&e, Fault::Server),
        };
        if let Err(e) = settings.app.check() {
            return self.reload_failed(&format!("the new app does not load: {e}"), Fault::App);
        }
        crate::arbiter::register_models(&settings);
        let listeners = match self.rebind(&settings) {
            Ok(l) => l,
            Err(e) => return self.reload_failed(&e, Fault::Server),
        };
        let next = Box::new(Next {
            settings,
            listeners,
        });
        let mut preloaded = None;
        if next.settings.preload {
            match preload(&next.settings) {
                Ok((app, left)) if left.is_empty() => {
                    return self.switch(*next, Some(app), started);
                }
                // What the master could not build, a child proves.
                Ok((app, _)) => preloaded = Some(app),
                Err(e) => return self.reload_failed(&e.message, Fault::App),
            }
        }
        match self.fork_proof(&next.settings) {
            Ok((pid, reader)) => {
                tracing::info!("Reloading: proving the new app in a child (pid {pid})");
                self.reload = Reload::Proving {
                    pid,
                    reader,
                    next,
                    preloaded,
                    started,
                };
            }
            Err(e) => self.reload_failed(
                &format!("cannot fork to prove the new app: {e}"),
                Fault::Server,
            ),
        }
    }

    fn reload_failed(&mut self, why: &str, fault: Fault) {
        tracing::error!("Reload failed: {why}; the current workers keep serving");
        self.change_ended(Err(ChangeRefused {
            status: match fault {
                Fault::App => StatusCode::BAD_REQUEST,
                Fault::Server => StatusCode::INTERNAL_SERVER_ERROR,
            },
            message: why.to_owned(),
        }));
        self.board.metrics().reloaded(ReloadResult::Failed);
        crate::notify::notify("READY=1\nSTATUS=reload failed; the previous generation serves");
        self.after_reload();
    }

    fn after_reload(&mut self) {
        if std::mem::take(&mut self.pending_hup) {
            self.reload();
        }
    }

    /// The listeners the new settings ask for: those already open are kept, others bound.
    ///
    /// Sockets systemd passed (socket activation) are the service's addresses whatever the
    /// configuration says, as at start: they are all kept (`--metrics-bind`'s follow the new
    /// configuration, as without systemd). An open listener is matched by the
    /// bind it was opened for, never by the descriptor number of a copy, so `fd://N` is not
    /// adopted twice.
    fn rebind(&self, settings: &Settings) -> Result<Vec<Bound>, String> {
        let keep = |b: &Bound| {
            let listener = b
                .listener
                .try_clone()
                .map_err(|e| format!("cannot reuse {}: {e}", b.listener))?;
            Ok(Bound {
                bind: b.bind.clone(),
                listener,
                role: b.role,
            })
        };
        let opts = bind_options(settings);
        // Each bind is matched among the open listeners of its own role, so that the same
        // address in two lists (two `:0`) is never one socket.
        let reuse = |binds: &[serve_settings::Bind], role: Role| {
            binds
                .iter()
                .map(|bind| {
                    match self
                        .listeners
                        .iter()
                        .find(|b| b.role == role && &b.bind == bind)
                    {
                        Some(open) => keep(open),
                        None => sockets::bind_one(bind, &opts).map(|listener| Bound {
                            bind: bind.clone(),
                            listener,
                            role,
                        }),
                    }
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let mut listeners = if self.systemd_sockets {
            self.listeners
                .iter()
                .filter(|b| b.role == Role::Main)
                .map(keep)
                .collect::<Result<Vec<_>, String>>()?
        } else {
            reuse(&settings.binds, Role::Main)?
        };
        listeners.extend(
            reuse(settings.grpc_binds(), Role::Grpc).map_err(|e| format!("--grpc-bind: {e}"))?,
        );
        listeners.extend(
            reuse(settings.metrics_binds(), Role::Metrics)
                .map_err(|e| format!("--metrics-bind: {e}"))?,
        );
        Ok(listeners)
    }

    fn fork_proof(&mut self, settings: &Settings) -> std::io::Result<(Pid, OwnedFd)> {
        let name = format!("{}: reload", settings.name);
        fork_prover(settings, self.pid, &name, || self.forget_master_state())
    }

    /// The proof child exited.
    pub(crate) fn proof_finished(&mut self, code: Option<i32>, signal: Option<Signal>) {
        let Reload::Proving {
            reader,
            next,
            preloaded,
            started,
            ..
        } = std::mem::replace(&mut self.reload, Reload::Idle)
        else {
            return;
        };
        if code == Some(0) {
            return self.switch(*next, preloaded, started);
        }
        let mut message = String::new();
        let _ = std::fs::File::from(reader).read_to_string(&mut message);
        let (why, fault) = match (message.trim(), signal) {
            ("", Some(sig)) => (
                format!("the new app's proof was killed by {sig}"),
                Fault::Server,
            ),
            ("", None) => (
                format!("the new app's proof exited with code {code:?}"),
                Fault::Server,
            ),
            (m, _) => (format!("the new app does not load: {m}"), Fault::App),
        };
        self.reload_failed(&why, fault);
    }

    /// Switches to the proven settings: a new generation starts; the old one serves on.
    fn switch(&mut self, next: Next, preloaded: Option<Arc<dyn App>>, started: Instant) {
        if let Err(e) = serve_log::configure(&next.settings.log()) {
            return self.reload_failed(
                &format!("cannot open the new log files: {e}"),
                Fault::Server,
            );
        }
        let previous = Box::new(Previous {
            settings: std::mem::replace(&mut self.settings, next.settings),
            listeners: std::mem::replace(&mut self.listeners, next.listeners),
            preloaded: std::mem::replace(&mut self.preloaded, preloaded),
            generation: self.generation,
            num_workers: self.num_workers,
        });
        self.last_generation += 1;
        self.generation = self.last_generation;
        self.board.metrics().set_generation(self.generation);
        self.num_workers = self.settings.workers;
        tracing::info!(
            "Reloading: the new configuration and app are proven; starting generation {} ({} workers)",
            self.generation,
            self.num_workers
        );
        crate::arbiter::log_tls(&self.settings);
        self.watched = crate::arbiter::FileWatch::of(&self.settings);
        self.reload = Reload::Starting {
            generation: self.generation,
            previous,
            started,
        };
    }

    /// Moves a reload on: a proof that takes too long is killed; a new generation that is
    /// fully ready retires the old one.
    pub(crate) fn advance_reload(&mut self) {
        match &self.reload {
            Reload::Idle => {}
            Reload::Proving { pid, started, .. } => {
                if started.elapsed() > PROOF_TIMEOUT {
                    tracing::error!(
                        "The new app's proof (pid {pid}) took more than {} s; killing it",
                        PROOF_TIMEOUT.as_secs()
                    );
                    kill(*pid, Signal::SIGKILL);
                }
            }
            Reload::Starting {
                generation,
                started,
                ..
            } => {
                let (generation, started) = (*generation, *started);
                let ready = self
                    .workers
                    .values()
                    .filter(|w| {
                        w.generation == generation
                            && self.board.slot(w.slot).state() == State::Ready
                    })
                    .count();
                if ready < self.num_workers {
                    if started.elapsed() > PROOF_TIMEOUT {
                        self.abandon_reload("the new workers did not all become ready in time");
                    }
                    return;
                }
                let now = Instant::now();
                let mut retiring = Vec::new();
                for (pid, w) in &mut self.workers {
                    if w.generation != generation && w.stopping_since.is_none() {
                        w.stopping_since = Some(now);
                        kill(*pid, Signal::SIGTERM);
                        retiring.push(*pid);
                    }
                }
                let retired = retiring.len();
                // A load or unload is answered once the old workers take no more requests.
                self.change_served(retiring);
                tracing::info!(
                    "Reload complete in {} ms: generation {generation} serves with {ready} workers; {retired} old workers drain",
                    started.elapsed().as_millis()
                );
                crate::notify::notify(&format!(
                    "READY=1\nSTATUS={ready} workers, generation {generation}"
                ));
                self.board.metrics().reloaded(ReloadResult::Ok);
                self.reload = Reload::Idle;
                self.after_reload();
            }
        }
    }

    /// Gives up a reload under way; the generation that served before it serves on.
    pub(crate) fn abandon_reload(&mut self, why: &str) {
        if !matches!(self.reload, Reload::Idle) {
            let status = if matches!(self.phase, Phase::Stopping { .. }) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            self.change_ended(Err(ChangeRefused {
                status,
                message: why.to_owned(),
            }));
        }
        match std::mem::replace(&mut self.reload, Reload::Idle) {
            Reload::Idle => return,
            Reload::Proving { pid, .. } => {
                kill(pid, Signal::SIGKILL);
                tracing::error!("Reload abandoned: {why}");
            }
            Reload::Starting {
                generation,
                previous,
                ..
            } => {
                let Previous {
                    settings,
                    listeners,
                    preloaded,
                    generation: old,
                    num_workers,
                } = *previous;
                self.settings = settings;
                self.listeners = listeners;
                self.preloaded = preloaded;
                self.generation = old;
                self.board.metrics().set_generation(old);
                self.num_workers = num_workers;
                let _ = serve_log::configure(&self.settings.log());
                let now = Instant::now();
                for (pid, w) in &mut self.workers {
                    if w.generation == generation {
                        w.stopping_since = Some(now);
                        kill(*pid, Signal::SIGQUIT);
                    }
                }
                if !matches!(self.phase, Phase::Stopping { .. }) {
                    tracing::error!("Reload abandoned: {why}; generation {old} keeps serving");
                    crate::notify::notify(
                        "READY=1\nSTATUS=reload abandoned; the previous generation serves",
                    );
                }
            }
        }
        self.board.metrics().reloaded(ReloadResult::Failed);
    }

    /// USR2: start a new master, from the binary on disk, on the same sockets.
    pub(crate) fn handle_usr2(&mut self) {
        if self.pid.as_raw() == 1 {
            tracing::error!(
                "Upgrade refused: this master is PID 1 (a container's init), and a new master \
                 would be its child and die with it; roll out a new container instead"
            );
            return;
        }
        if let Some(pid) = self.upgrade_child {
            tracing::warn!(
                "Upgrade refused: the new master (pid {pid}) of the last upgrade still runs"
            );
            return;
        }
        if let Some(old) = self.old_master {
            tracing::warn!(
                "Upgrade refused: this master is itself an upgrade and the old master (pid {old}) still runs; stop it first"
            );
            return;
        }
        let fds: Vec<_> = self
            .listeners
            .iter()
            .map(|b| sockets::fd_of(&b.listener))
            .collect();
        if let Some(p) = self.pidfile.as_mut() {
            let old = process::with_suffix(p.path(), ".oldbin");
            p.rename(old);
        }
        let master = self.pid;
        let exe = self.exe.clone();
        let argv = self.argv.clone();
        let forked = process::fork_child(|| {
            let e = process::exec_upgrade(&exe, &argv, &fds, master);
            tracing::error!(
                "Upgrade failed: cannot execute {}: {e}",
                exe.to_string_lossy()
            );
            1
        });
        match forked {
            Ok(pid) => {
                tracing::info!(
                    "Upgrading: started a new master (pid {pid}) from {} on the same sockets",
                    self.exe.to_string_lossy()
                );
                self.upgrade_child = Some(pid);
            }
            Err(e) => {
                tracing::error!("Upgrade failed: cannot fork: {e}");
                self.restore_pidfile();
            }
        }
    }

    /// The new master of an upgrade exited: this master stays in charge.
    pub(crate) fn upgrade_child_died(
        &mut self,
        pid: Pid,
        code: Option<i32>,
        signal: Option<Signal>,
    ) {
        tracing::warn!(
            "The new master (pid {pid}) exited (code {code:?}, signal {signal:?}); this master stays in charge"
        );
        self.upgrade_child = None;
        self.restore_pidfile();
    }

    fn restore_pidfile(&mut self) {
        if let (Some(p), Some(path)) = (self.pidfile.as_mut(), self.settings.pid.clone()) {
            p.rename(path);
        }
    }

    /// A master started by an upgrade takes over the pid file once the old master is gone.
    pub(crate) fn maybe_promote_master(&mut self) {
        let Some(old) = self.old_master else { return };
        if nix::unistd::getppid() == old {
            return;
        }
        tracing::info!("Master has been promoted: the old master (pid {old}) exited");
        self.old_master = None;
        if let (Some(p), Some(path)) = (self.pidfile.as_mut(), self.settings.pid.clone()) {
            p.rename(path);
        }
    }
}
