//! The master's signals, through a self-pipe.
//!
//! The handler only writes the signal's number into a non-blocking pipe; the master's loop
//! reads the pipe and acts by name (`handle_hup`, `handle_term`...), never inside the handler.
//! A raw `sigaction` is used rather than signal-hook's registry on purpose: the registry is a
//! process-global table that a forked worker would inherit and that tokio shares, whereas a
//! worker must start from default dispositions before its runtime installs its own. With raw
//! handlers the child resets each signal to `SIG_DFL` and the registry never existed in it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// The signals the master acts on.
pub const HANDLED: [Signal; 10] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
];
// SIGPIPE stays ignored, as Rust's runtime set it: in the master and in the workers, a
// write to a closed connection must be an error, not the end of the process.

/// The write end of the pipe, for the handler; -1 before installation.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let byte = sig as u8;
    // SAFETY: errno access and write(2) are async-signal-safe; the buffer is a local byte.
    // errno is saved and restored so that the interrupted code never sees a changed errno.
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        // A full pipe means the loop already has plenty to wake up for: dropping is fine.
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *errno = saved;
    }
}

/// The read end of the signal pipe, owned by the master's loop.
pub struct SignalPipe {
    read: OwnedFd,
    /// Kept open for the handler, which writes it by number.
    _write: OwnedFd,
}

impl SignalPipe {
    /// Creates the pipe and installs the handlers.
    pub fn install() -> io::Result<SignalPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        PIPE_WRITE.store(write.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        for sig in HANDLED {
            // SAFETY: the handler only calls async-signal-safe functions (see on_signal).
            unsafe { sigaction(sig, &action) }?;
        }
        Ok(SignalPipe {
            read,
            _write: write,
        })
    }

    /// Waits up to `timeout` for signals, or for `also` to become readable (the repository
    /// control socket), and returns the signals received, in order.
    pub fn wait(&self, timeout: Duration, also: Option<BorrowedFd<'_>>) -> Vec<Signal> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [
            PollFd::new(self.read.as_fd(), PollFlags::POLLIN),
            PollFd::new(also.unwrap_or(self.read.as_fd()), PollFlags::POLLIN),
        ];
        let n = if also.is_some() { 2 } else { 1 };
        let _ = poll(
            &mut fds[..n],
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        );
        let mut buf = [0u8; 64];
        let mut out = Vec::new();
        while let Ok(n) = nix::unistd::read(&self.read, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend(
                buf[..n]
                    .iter()
                    .filter_map(|&b| Signal::try_from(i32::from(b)).ok()),
            );
            if n < buf.len() {
                break;
            }
        }
        out
    }
}

/// In a freshly forked child, before anything else: forget the pipe and give every signal
/// back its default action, then unblock them all (they were blocked across the fork, see
/// [`block_all`]), so that the child's own code starts from a clean slate. A signal sent to
/// the child in between is delivered now, with its default action.
pub fn reset_in_child() {
    PIPE_WRITE.store(-1, Ordering::Relaxed);
    reset_dispositions();
}

/// Blocks every signal and returns the previous mask. Forking with signals blocked closes a
/// race: the child inherits the master's handler, which writes into the pipe the master
/// reads, so a signal meant for a child that has not yet reset its handlers (a QUIT to a
/// worker still booting) would otherwise be taken by the master as its own.
pub fn block_all() -> std::io::Result<SigSet> {
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    Ok(old)
}

/// Restores a mask saved by [`block_all`].
pub fn restore(mask: &SigSet) {
    let _ =
        nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(mask), None);
}

/// Default dispositions and an empty mask for every signal the master handles.
pub fn reset_dispositions() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in HANDLED {
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { sigaction(sig, &default) };
    }
    let _ = SigSet::all().thread_unblock();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_arrives_through_the_pipe() {
        let pipe = SignalPipe::install().unwrap();
        nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
        nix::sys::signal::raise(Signal::SIGTTIN).unwrap();
        let got = pipe.wait(Duration::from_secs(5), None);
        assert!(
            got.contains(&Signal::SIGUSR1) && got.contains(&Signal::SIGTTIN),
            "{got:?}"
        );
        reset_dispositions();
    }
}
