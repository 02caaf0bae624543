//! The error log: a minimal `tracing` subscriber writing gunicorn's
//! `[2026-11-22 03:07:04 +0000] [1234] [INFO] message key=value` lines.
//!
//! Spans are not used by serve; events carry their context as fields. The level is a global
//! so that a reload can change it; callsites re-ask after a change.

use std::fmt::{self, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::{Interest, Subscriber};
use tracing_core::{Event, LevelFilter, Metadata};

use crate::Format;
use crate::time::Utc;

/// gunicorn's log levels (`critical` is ERROR here: tracing has no higher level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Everything, including per-connection details.
    Debug = 1,
    /// Lifecycle: boot, reload, worker births and deaths. The default.
    Info = 2,
    /// Something the operator should look at.
    Warning = 3,
    /// Failures.
    Error = 4,
}

/// A log level serve does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?}; expected debug, info, warning, error or critical")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warning" | "warn" => Ok(Level::Warning),
            "error" | "critical" => Ok(Level::Error),
            _ => Err(UnknownLevel(s.to_string())),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

fn rank(level: &tracing_core::Level) -> u8 {
    match *level {
        tracing_core::Level::TRACE | tracing_core::Level::DEBUG => Level::Debug as u8,
        tracing_core::Level::INFO => Level::Info as u8,
        tracing_core::Level::WARN => Level::Warning as u8,
        tracing_core::Level::ERROR => Level::Error as u8,
    }
}

fn label(level: &tracing_core::Level) -> &'static str {
    match *level {
        tracing_core::Level::TRACE | tracing_core::Level::DEBUG => "DEBUG",
        tracing_core::Level::INFO => "INFO",
        tracing_core::Level::WARN => "WARNING",
        tracing_core::Level::ERROR => "ERROR",
    }
}

/// Sets the level and installs the subscriber the first time.
pub(crate) fn install(level: Level) {
    let old = LEVEL.swap(level as u8, Ordering::Relaxed);
    // Fails when already installed, which is fine: the level is read from LEVEL.
    let fresh = tracing::subscriber::set_global_default(ErrorLog).is_ok();
    if !fresh && old != level as u8 {
        tracing_core::callsite::rebuild_interest_cache();
    }
}

struct ErrorLog;

impl Subscriber for ErrorLog {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.enabled(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        rank(meta.level()) >= LEVEL.load(Ordering::Relaxed)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match LEVEL.load(Ordering::Relaxed) {
            1 => LevelFilter::DEBUG,
            2 => LevelFilter::INFO,
            3 => LevelFilter::WARN,
            _ => LevelFilter::ERROR,
        })
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        crate::write_error_line(|format, line| match format {
            Format::Text => render_text(event, meta, line),
            Format::Json => render_json(event, meta, line),
        });
    }
}

fn render_text(event: &Event<'_>, meta: &Metadata<'_>, line: &mut String) {
    line.push('[');
    Utc::now().write_error_log(line);
    let _ = write!(
        line,
        "] [{}] [{}] ",
        std::process::id(),
        label(meta.level())
    );
    let mut v = TextFields { line };
    event.record(&mut v);
}

struct TextFields<'a> {
    line: &'a mut String,
}

impl Visit for TextFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.line.push_str(value);
        } else {
            let _ = write!(self.line, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.line, "{value:?}");
        } else {
            let _ = write!(self.line, " {}={value:?}", field.name());
        }
    }
}

fn render_json(event: &Event<'_>, meta: &Metadata<'_>, line: &mut String) {
    let mut obj = serde_json::Map::new();
    let mut ts = String::with_capacity(24);
    Utc::now().write_rfc3339(&mut ts);
    obj.insert("time".into(), ts.into());
    obj.insert("pid".into(), std::process::id().into());
    obj.insert("level".into(), label(meta.level()).into());
    let mut v = JsonFields(&mut obj);
    event.record(&mut v);
    line.push_str(&serde_json::Value::Object(obj).to_string());
}

struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
