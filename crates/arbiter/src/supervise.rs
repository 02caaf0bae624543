//! Keeping workers: spawn, reap, murder (heartbeat timeouts) and manage (the count).

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serve_metrics::Cause;
use serve_worker::{ExitCode, State, WorkerArgs, scoreboard::now_ms};

use crate::arbiter::{Arbiter, Phase, kill, signal_name};
use crate::control::Control;
use crate::process;
use crate::upgrade::Reload;

/// A worker that dies this soon after its fork counts towards a crash loop.
const EARLY_DEATH: Duration = Duration::from_secs(5);
/// Between SIGABRT and SIGKILL for a hung worker.
const ABORT_GRACE: Duration = Duration::from_secs(1);
/// The longest wait between two spawns in a crash loop.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the master remembers of a worker.
pub(crate) struct Worker {
    pub(crate) slot: usize,
    pub(crate) generation: u64,
    pub(crate) spawned: Instant,
    /// When it was asked to stop, or was seen draining on its own (`--max-requests`).
    pub(crate) stopping_since: Option<Instant>,
    /// When SIGABRT was sent for a missed heartbeat.
    pub(crate) aborted_at: Option<Instant>,
    /// SIGKILL was sent.
    pub(crate) killed: bool,
}

/// Crash-loop protection: a single death respawns at once; deaths in a row soon after boot
/// wait longer and longer, so a broken worker never becomes a fork bomb.
#[derive(Default)]
pub(crate) struct Backoff {
    early_deaths: u32,
    not_before: Option<Instant>,
    last_death: Option<Instant>,
}

impl Backoff {
    fn died_early(&mut self) -> Duration {
        self.early_deaths += 1;
        let delay = match self.early_deaths {
            0 | 1 => Duration::ZERO,
            n => (Duration::from_millis(100) * 2u32.saturating_pow(n - 2)).min(MAX_BACKOFF),
        };
        let now = Instant::now();
        self.not_before = Some(now + delay);
        self.last_death = Some(now);
        delay
    }

    /// A worker spawned at `spawned` lived past the early-death window and is ready. It ends
    /// the crash loop only if it was spawned after the last early death: healthy older workers
    /// beside a slot that keeps crashing prove nothing about it.
    fn survived(&mut self, spawned: Instant) {
        if self.last_death.is_none_or(|death| spawned >= death) {
            *self = Backoff::default();
        }
    }

    fn may_spawn(&self) -> bool {
        self.not_before.is_none_or(|t| Instant::now() >= t)
    }
}

/// A seed for the max-requests jitter.
pub(crate) fn seed() -> u64 {
    now_ms() ^ (u64::from(std::process::id()) << 32) | 1
}

impl Arbiter {
    fn random(&mut self) -> u64 {
        // xorshift64: plenty for spreading worker restarts.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// In a forked child: let go of what only the master needs, above all the descriptors it
    /// holds for a reload under way (the previous generation's listeners, a proof's pipe), so
    /// that a socket the master closes is closed for good rather than kept open by a child.
    pub(crate) fn forget_master_state(&mut self) {
        self.reload = Reload::Idle;
        self.upgrade_child = None;
        self.control = None;
    }

    /// Forks `n` workers of the current generation. Their slots are all claimed first, so
    /// that the first to boot already counts the others among the workers that share the
    /// connections (and leaves them theirs), rather than taking the share of workers not
    /// forked yet.
    pub(crate) fn spawn_workers(&mut self, n: usize) {
        let mut claimed = Vec::with_capacity(n);
        for _ in 0..n {
            match self.board.claim(self.generation) {
                Some(slot) => claimed.push(slot),
                None => {
                    tracing::error!("Cannot spawn a worker: every scoreboard slot is taken");
                    break;
                }
            }
        }
        for (slot_index, slot) in claimed {
            self.spawn_worker(slot_index, slot);
        }
    }

    /// Forks one worker of the current generation into a slot claimed for it.
    fn spawn_worker(&mut self, slot_index: usize, slot: &'static serve_worker::Slot) {
        let generation = self.generation;
        let max_requests = match self.settings.max_requests {
            0 => 0,
            n => n + self.random() % (self.settings.max_requests_jitter + 1),
        };
        let master = self.pid;
        let forked = process::fork_child(|| {
            let control = self.control.take().map(Control::into_workers_end);
            self.forget_master_state();
            process::follow_parent(master);
            process::set_name(&format!("{}: worker", self.settings.name));
            if let Err(e) = process::drop_privileges(self.settings.uid(), self.settings.gid()) {
                tracing::error!("Worker failed to boot: {e}");
                return ExitCode::WorkerBoot.code();
            }
            tracing::info!("Booting worker with pid: {}", std::process::id());
            slot.set_pid(std::process::id() as i32);
            serve_metrics::record_into(serve_metrics::Target::Slot(slot_index));
            let roles = self.listeners.iter().map(|b| b.role).collect();
            let listeners = std::mem::take(&mut self.listeners)
                .into_iter()
                .map(|b| b.listener)
                .collect();
            serve_worker::run(WorkerArgs {
                listeners,
                slot,
                config: self.settings.config.clone(),
                factory: self.settings.app.clone(),
                preloaded: self.preloaded.clone(),
                max_requests,
                board: self.board.board(),
                roles,
                queue_len: crate::sockets::accept_queue,
                control,
                tls: self.settings.tls.clone(),
                tokens: self.settings.tokens.clone(),
            })
        });
        match forked {
            Ok(pid) => {
                slot.set_pid(pid.as_raw());
                self.workers.insert(
                    pid,
                    Worker {
                        slot: slot_index,
                        generation,
                        spawned: Instant::now(),
                        stopping_since: None,
                        aborted_at: None,
                        killed: false,
                    },
                );
            }
            Err(e) => {
                self.board.release(slot_index);
                tracing::error!("Cannot fork a worker: {e}");
                self.backoff.died_early();
            }
        }
    }

    /// Collects every child that exited: workers, the reload proof, the upgrade's new master,
    /// and, as PID 1 in a container, orphans adopted from anywhere.
    pub(crate) fn reap_workers(&mut self) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!("waitpid failed: {e}");
                    return;
                }
                Ok(s) => s,
            };
            let Some(pid) = status.pid() else { continue };
            let (code, signal) = match status {
                WaitStatus::Exited(_, code) => (Some(code), None),
                WaitStatus::Signaled(_, sig, _) => (None, Some(sig)),
                _ => continue, // stopped or continued: still alive
            };
            if let Some(w) = self.workers.remove(&pid) {
                self.worker_died(pid, w, code, signal);
            } else if self.upgrade_child == Some(pid) {
                self.upgrade_child_died(pid, code, signal);
            } else if matches!(self.reload, Reload::Proving { pid: p, .. } if p == pid) {
                self.proof_finished(code, signal);
            } else {
                tracing::debug!("Reaped child {pid} (not a worker)");
            }
        }
    }

    fn worker_died(&mut self, pid: Pid, w: Worker, code: Option<i32>, signal: Option<Signal>) {
        let slot = self.board.slot(w.slot);
        let was_ready = slot.state() != State::Booting;
        let asked = w.stopping_since.is_some() || w.aborted_at.is_some() || w.killed;
        if let Some(cause) = self.restart_cause(&w, code) {
            self.board.metrics().worker_restarted(cause);
        }
        self.board.release(w.slot);
        match (code, signal) {
            (Some(0), _) => tracing::info!("Worker exited (pid: {pid})"),
            (Some(c), _) => tracing::error!("Worker (pid:{pid}) exited with code {c}"),
            (_, Some(Signal::SIGKILL)) if !w.killed => {
                tracing::error!("Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory?")
            }
            (_, Some(sig)) if !asked => tracing::error!(
                "Worker (pid:{pid}) was killed by signal {}",
                signal_name(sig)
            ),
            (_, Some(sig)) => {
                tracing::info!("Worker (pid:{pid}) ended by signal {}", signal_name(sig))
            }
            _ => {}
        }
        if asked || code == Some(0) {
            return;
        }
        if !was_ready {
            if let Phase::Booting(_) = self.phase {
                let exit = Arbiter::boot_failure_code(code);
                let why = if exit == ExitCode::AppLoad {
                    "App failed to load."
                } else {
                    "Worker failed to boot."
                };
                self.halt(exit, why);
                return;
            }
            if matches!(self.reload, Reload::Starting { generation, .. } if generation == w.generation)
            {
                self.abandon_reload(&format!(
                    "a new worker (pid {pid}) died while booting (code {code:?}, signal {signal:?})"
                ));
                return;
            }
        }
        if w.spawned.elapsed() < EARLY_DEATH {
            let delay = self.backoff.died_early();
            if !delay.is_zero() {
                tracing::warn!(
                    "Workers keep dying within {} s of their start; next spawn in {:.1} s",
                    EARLY_DEATH.as_secs(),
                    delay.as_secs_f64()
                );
            }
        }
    }

    /// Why a worker that died is replaced, for `serve_worker_restarts_total`; `None` when it
    /// is not (the server stops, or TTOU or WINCH asked for fewer workers).
    fn restart_cause(&self, w: &Worker, code: Option<i32>) -> Option<Cause> {
        if matches!(self.phase, Phase::Stopping { .. }) {
            return None;
        }
        if w.aborted_at.is_some() {
            return Some(Cause::Timeout);
        }
        // Even when it had to be killed at the end of its graceful timeout.
        if let Some(cause) = self.board.metrics().retired_itself(w.slot) {
            return Some(cause);
        }
        let asked = w.stopping_since.is_some() || w.killed;
        if !asked && code != Some(0) {
            return Some(Cause::Crash);
        }
        // An older generation retired by a reload; not the newer one of an abandoned reload
        // (the generation number goes back to the old one), whose workers never served.
        (w.generation < self.generation).then_some(Cause::Reload)
    }

    /// Kills workers whose heartbeat stopped (SIGABRT, then SIGKILL) and workers that did not
    /// finish draining within the graceful timeout.
    pub(crate) fn murder_workers(&mut self) {
        let timeout = self.settings.timeout;
        let graceful = self.settings.graceful_timeout;
        let now = Instant::now();
        let clock = now_ms();
        for (pid, w) in &mut self.workers {
            let slot = self.board.slot(w.slot);
            if w.killed {
                continue;
            }
            if let Some(at) = w.aborted_at {
                if now.duration_since(at) >= ABORT_GRACE {
                    kill(*pid, Signal::SIGKILL);
                    w.killed = true;
                }
                continue;
            }
            if slot.state() == State::Draining && w.stopping_since.is_none() {
                w.stopping_since = Some(now);
            }
            if w.stopping_since
                .is_some_and(|t| now.duration_since(t) > graceful)
            {
                tracing::warn!(
                    "Worker (pid:{pid}) did not finish draining within the graceful timeout ({} s); killing it",
                    graceful.as_secs_f64()
                );
                kill(*pid, Signal::SIGKILL);
                w.killed = true;
                continue;
            }
            let silence = slot.silence_ms(clock);
            if !timeout.is_zero() && silence > timeout.as_millis() as u64 {
                let doing = match slot.current_request(clock) {
                    Some((line, ago)) if slot.in_flight() > 0 => format!(
                        "{} requests in flight, the latest {line:?} started {:.1} s ago",
                        slot.in_flight(),
                        ago as f64 / 1000.0
                    ),
                    _ if slot.state() == State::Booting => "still booting".to_string(),
                    _ => "no request in flight".to_string(),
                };
                tracing::error!(
                    "WORKER TIMEOUT (pid:{pid}): no heartbeat for {:.1} s (--timeout {} s); {doing}; sending SIGABRT",
                    silence as f64 / 1000.0,
                    timeout.as_secs_f64()
                );
                kill(*pid, Signal::SIGABRT);
                w.aborted_at = Some(now);
            }
        }
    }

    /// Keeps `num_workers` workers of the current generation: spawns the missing ones (unless
    /// a crash loop asks to wait) and retires the oldest surplus.
    pub(crate) fn manage_workers(&mut self) {
        if matches!(self.phase, Phase::Stopping { .. }) {
            return;
        }
        let mut current: Vec<(Instant, Pid)> = self
            .workers
            .iter()
            .filter(|(_, w)| {
                w.generation == self.generation
                    && w.stopping_since.is_none()
                    && w.aborted_at.is_none()
                    && !w.killed
                    && self.board.slot(w.slot).state() != State::Draining
            })
            .map(|(pid, w)| (w.spawned, *pid))
            .collect();
        let survivor = current
            .iter()
            .filter(|(spawned, pid)| {
                spawned.elapsed() > EARLY_DEATH
                    && self.board.slot(self.workers[pid].slot).state() == State::Ready
            })
            .map(|(spawned, _)| *spawned)
            .max();
        if let Some(spawned) = survivor {
            self.backoff.survived(spawned);
        }
        if current.len() < self.num_workers {
            let missing = self.num_workers - current.len();
            if !self.backoff.may_spawn() {
                return;
            }
            // In a crash loop, one at a time; otherwise all at once.
            let n = if self.backoff.early_deaths > 1 {
                1
            } else {
                missing
            };
            self.spawn_workers(n);
        } else if current.len() > self.num_workers {
            current.sort();
            let surplus = current.len() - self.num_workers;
            let now = Instant::now();
            for (_, pid) in current.into_iter().take(surplus) {
                tracing::info!("Retiring worker (pid:{pid})");
                if let Some(w) = self.workers.get_mut(&pid) {
                    w.stopping_since = Some(now);
                }
                kill(pid, Signal::SIGTERM);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_never_waits_for_one_death_and_grows_after() {
        let mut b = Backoff::default();
        assert_eq!(b.died_early(), Duration::ZERO);
        assert!(b.may_spawn());
        assert_eq!(b.died_early(), Duration::from_millis(100));
        assert_eq!(b.died_early(), Duration::from_millis(200));
        assert_eq!(b.died_early(), Duration::from_millis(400));
        for _ in 0..40 {
            b.died_early();
        }
        assert_eq!(b.died_early(), MAX_BACKOFF);
        b.survived(Instant::now());
        assert!(b.may_spawn());
        assert_eq!(b.died_early(), Duration::ZERO);
    }

    #[test]
    fn a_worker_older_than_the_crashes_does_not_end_the_backoff() {
        let mut b = Backoff::default();
        let old = Instant::now();
        b.died_early();
        b.died_early();
        // A healthy worker beside the crashing slot, spawned before the deaths.
        b.survived(old);
        assert_eq!(b.died_early(), Duration::from_millis(200));
        // A worker spawned after them survived: the loop is over.
        b.survived(Instant::now());
        assert_eq!(b.died_early(), Duration::ZERO);
    }
}
