//! The master process: binds the listeners, forks the workers, and supervises them.
//!
//! # Layout
//! - [`settings`]: what the master is told to do, and gunicorn's `--bind` forms.
//! - [`arbiter`]: the `Arbiter` and its loop; signal handling by name; stop and halt.
//! - `supervise`: spawn, reap, murder (heartbeat timeouts), manage (the worker count),
//!   crash-loop backoff.
//! - `upgrade`: reload (HUP) with proof before switching, and upgrade (USR2) by re-exec.
//! - `sockets`: binding (socket2), and sockets inherited from an old master, systemd or fd://.
//! - `scoreboard`: the shared mapping through which workers report.
//! - `signals`: the self-pipe and raw `sigaction`s.
//! - `process`: fork, pid file, privileges, process names, limits, exec.
//! - `notify`: systemd's readiness notifications (READY=1, RELOADING=1, STOPPING=1).
//!
//! This is the only crate of serve with `unsafe` code: fork, mmap, sigaction, adopting
//! inherited descriptors. Each block says why it is sound.

#![deny(missing_docs)]

pub mod arbiter;
mod control;
mod notify;
mod process;
mod scoreboard;
pub mod settings;
mod signals;
mod sockets;
mod supervise;
mod upgrade;

pub use arbiter::{Arbiter, Reloader, StartError};
pub use control::Loaded;
pub use serve_worker::ExitCode;
pub use settings::Settings;
pub use sockets::accept_queue;
