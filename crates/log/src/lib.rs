//! Logs as gunicorn writes them: an error log of `[timestamp] [pid] [LEVEL] message` lines and
//! an access log in a configurable format; either as JSON lines on request.
//!
//! # Layout
//! - [`time`]: UTC timestamps in the two formats gunicorn uses, without a date crate.
//! - [`sink`]: where lines go (stderr, stdout or an append-only file) and how files are reopened
//!   after logrotate moved them (SIGUSR1).
//! - [`error_log`]: a minimal `tracing` subscriber that turns events into error-log lines. The
//!   level is a global that a reload can change.
//! - [`access`](mod@access): the access log: a format string compiled once into atoms, one line per request.
//!
//! Both logs are process globals. The master configures them before forking and the workers
//! inherit them; a reload (SIGHUP) reconfigures them in the master, and new workers inherit the
//! new configuration. Every line is written with a single `write(2)` on an `O_APPEND` file, so
//! lines from the master and the workers never interleave within a line.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod access;
pub mod error_log;
pub mod sink;
pub mod time;

pub use access::{AccessFormat, AccessRecord, DEFAULT_FORMAT, FormatError};
pub use error_log::{Level, UnknownLevel};
pub use sink::{Target, unwritable};

use std::io;
use std::sync::{Mutex, MutexGuard};

/// How lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// gunicorn's text lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything the logs need, as resolved from the command line and the config file.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Least severe level written to the error log.
    pub level: Level,
    /// Text or JSON lines, for both logs.
    pub format: Format,
    /// Where the error log goes (`-` is stderr).
    pub error_log: Target,
    /// Where the access log goes; `None` disables it (the default, as in gunicorn).
    pub access_log: Option<Target>,
    /// The access log's format, gunicorn's `%(h)s`-style atoms.
    pub access_format: AccessFormat,
}

struct Logs {
    format: Format,
    error: sink::Sink,
    access: Option<(sink::Sink, AccessFormat)>,
}

static LOGS: Mutex<Option<Logs>> = Mutex::new(None);

fn logs() -> MutexGuard<'static, Option<Logs>> {
    // A panic while holding the lock leaves plain data behind: keep logging.
    LOGS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the logs, or replaces their configuration when already installed (on reload).
/// Files are opened here, so an unwritable log file is an error at start, not a silent loss.
pub fn configure(cfg: &LogConfig) -> io::Result<()> {
    let error = sink::Sink::open(&cfg.error_log, "--error-logfile")?;
    let access = match &cfg.access_log {
        Some(t) => Some((
            sink::Sink::open(t, "--access-logfile")?,
            cfg.access_format.clone(),
        )),
        None => None,
    };
    *logs() = Some(Logs {
        format: cfg.format,
        error,
        access,
    });
    error_log::install(cfg.level);
    Ok(())
}

/// Reopens the log files (SIGUSR1), so that logrotate can move them away.
pub fn reopen() -> io::Result<()> {
    let mut guard = logs();
    if let Some(logs) = guard.as_mut() {
        logs.error.reopen()?;
        if let Some((sink, _)) = logs.access.as_mut() {
            sink.reopen()?;
        }
    }
    Ok(())
}

/// Whether an access log is configured; lets the worker skip building records when not.
pub fn access_enabled() -> bool {
    logs().as_ref().is_some_and(|l| l.access.is_some())
}

/// Writes one access-log line for this request.
pub fn access(rec: &AccessRecord<'_>) {
    let guard = logs();
    let Some(logs) = guard.as_ref() else { return };
    let Some((sink, fmt)) = logs.access.as_ref() else {
        return;
    };
    let mut line = String::with_capacity(256);
    match logs.format {
        Format::Text => fmt.render(rec, &mut line),
        Format::Json => access::render_json(rec, &mut line),
    }
    line.push('\n');
    sink.write_line(line.as_bytes());
}

/// Writes an error-log line; used by the `tracing` subscriber.
fn write_error_line(render: impl FnOnce(Format, &mut String)) {
    let guard = logs();
    let (format, sink) = match guard.as_ref() {
        Some(l) => (l.format, Some(&l.error)),
        None => (Format::Text, None),
    };
    let mut line = String::with_capacity(160);
    render(format, &mut line);
    line.push('\n');
    match sink {
        Some(s) => s.write_line(line.as_bytes()),
        None => sink::Sink::stderr().write_line(line.as_bytes()),
    }
}

/// Flushes nothing (every line is written at once) but takes the lock, so that a process about
/// to `_exit` never does so in the middle of a line written by another thread.
pub fn quiesce() {
    drop(logs());
}
