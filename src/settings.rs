//! The settings table: each setting is one line of `settings!`, from which come its flag
//! (and so its config-file key and its `SERVE_CMD_ARGS` word), its `--help` text with the
//! default, the default itself, how its value is parsed and checked, its field in
//! [`Values`], the layer merge and its `--print-config` line.
//!
//! A setting's kind (a type implementing [`Kind`]) says what a value looks like: how it is
//! parsed, what a wrong one is told, and how it is written back as TOML. Every layer carries
//! the text as given (`Option<String>`), so a layer that does not set a value is told apart
//! from one that sets the default, and every value is checked once, with one message,
//! whichever layer it came from.
//!
//! Outside the table are what is not a plain value: the app path, the actions (`--config`,
//! `--check-config`, `--print-config`, `--probe`), and the two settings whose default comes
//! from the environment (`--bind` from `$PORT`, `--workers` from `$WEB_CONCURRENCY`); see
//! [`crate::cli`].

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use clap::ArgAction;
use clap::builder::ValueRange;
use nix::unistd::{Gid, Group, Uid, User};
use serve_log::{AccessFormat, Format, Level};
use serve_worker::ForwardedAllow;

use crate::config::ConfigError;

/// What a setting's value looks like.
pub trait Kind {
    /// The resolved value.
    type Value: Clone + Debug;
    /// The placeholder `--help` shows (`SECONDS`, `N`...).
    const VALUE_NAME: &'static str;
    /// True for an on/off setting: `--preload` alone means true, `--preload=false` false.
    const SWITCH: bool = false;
    /// The value from its text; the error says what was wrong and what is expected (the
    /// caller puts the flag in front).
    fn parse(text: &str) -> Result<Self::Value, String>;
    /// The value as a config file writes it; `None` leaves the key out.
    fn to_toml(value: &Self::Value) -> Option<toml::Value>;
    /// The value when nobody gave one and the table has no default: only an optional
    /// setting has one (absent).
    fn absent() -> Option<Self::Value> {
        None
    }
}

/// How many words a setting takes after its flag.
pub fn num_args<K: Kind>() -> ValueRange {
    if K::SWITCH {
        ValueRange::new(0..=1)
    } else {
        ValueRange::SINGLE
    }
}

/// What a switch given alone means.
pub fn missing_value<K: Kind>() -> Option<&'static str> {
    K::SWITCH.then_some("true")
}

/// A setting's `--help` line: its text and its default.
pub fn help(text: &str, default: Option<&str>) -> String {
    match default {
        Some(d) => format!("{text} [default: {d}]"),
        None => text.to_string(),
    }
}

fn int(n: u64) -> Option<toml::Value> {
    Some(toml::Value::Integer(n.min(i64::MAX as u64) as i64))
}

/// On or off.
pub struct Switch;

impl Kind for Switch {
    type Value = bool;
    const VALUE_NAME: &'static str = "BOOL";
    const SWITCH: bool = true;
    fn parse(text: &str) -> Result<bool, String> {
        match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("{text:?} is not a switch; expected true or false")),
        }
    }
    fn to_toml(value: &bool) -> Option<toml::Value> {
        Some((*value).into())
    }
}

/// Seconds, fractions allowed (`30`, `0.5`, `2s`).
pub struct Seconds;

impl Kind for Seconds {
    type Value = Duration;
    const VALUE_NAME: &'static str = "SECONDS";
    fn parse(text: &str) -> Result<Duration, String> {
        let t = text.trim().trim_end_matches('s');
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => Ok(Duration::from_secs_f64(v)),
            _ => Err(format!(
                "{text:?} is not a duration; expected a number of seconds, as 30 or 0.5"
            )),
        }
    }
    fn to_toml(value: &Duration) -> Option<toml::Value> {
        Some(toml::Value::Float(value.as_secs_f64()))
    }
}

/// Seconds, more than zero.
pub struct PositiveSeconds;

impl Kind for PositiveSeconds {
    type Value = Duration;
    const VALUE_NAME: &'static str = "SECONDS";
    fn parse(text: &str) -> Result<Duration, String> {
        match Seconds::parse(text)? {
            d if d.is_zero() => Err("expected more than 0 seconds".into()),
            d => Ok(d),
        }
    }
    fn to_toml(value: &Duration) -> Option<toml::Value> {
        Seconds::to_toml(value)
    }
}

/// A number that may be 0.
pub struct Count;

impl Kind for Count {
    type Value = usize;
    const VALUE_NAME: &'static str = "N";
    fn parse(text: &str) -> Result<usize, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number; expected a whole number, as 100"))
    }
    fn to_toml(value: &usize) -> Option<toml::Value> {
        int(*value as u64)
    }
}

/// Declares a kind that parses and writes values as another does, under its own
/// placeholder in `--help`.
macro_rules! placeholder {
    ($(#[$doc:meta])* $name:ident = $like:ty, $value_name:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl Kind for $name {
            type Value = <$like as Kind>::Value;
            const VALUE_NAME: &'static str = $value_name;
            fn parse(text: &str) -> Result<Self::Value, String> {
                <$like>::parse(text)
            }
            fn to_toml(value: &Self::Value) -> Option<toml::Value> {
                <$like>::to_toml(value)
            }
        }
    };
}

placeholder!(
    /// A number of bytes that may be 0 (no limit).
    Bytes = Count, "BYTES"
);

/// A number from 1.
pub struct AtLeastOne;

impl Kind for AtLeastOne {
    type Value = usize;
    const VALUE_NAME: &'static str = "N";
    fn parse(text: &str) -> Result<usize, String> {
        match Count::parse(text)? {
            0 => Err("0 is not allowed here; expected 1 or more".into()),
            n => Ok(n),
        }
    }
    fn to_toml(value: &usize) -> Option<toml::Value> {
        Count::to_toml(value)
    }
}

/// A count of rows from 1.
pub struct Rows;

impl Kind for Rows {
    type Value = usize;
    const VALUE_NAME: &'static str = "ROWS";
    fn parse(text: &str) -> Result<usize, String> {
        match Count::parse(text)? {
            0 => Err("expected 1 (no batching) or more".into()),
            n => Ok(n),
        }
    }
    fn to_toml(value: &usize) -> Option<toml::Value> {
        Count::to_toml(value)
    }
}

/// A 64-bit count (requests), 0 meaning off.
pub struct Requests;

impl Kind for Requests {
    type Value = u64;
    const VALUE_NAME: &'static str = "N";
    fn parse(text: &str) -> Result<u64, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number; expected a whole number, as 1000"))
    }
    fn to_toml(value: &u64) -> Option<toml::Value> {
        int(*value)
    }
}

placeholder!(
    /// Microseconds.
    Micros = Requests, "MICROSECONDS"
);

/// The listen queue's length, as listen(2) takes it.
pub struct Backlog;

impl Kind for Backlog {
    type Value = i32;
    const VALUE_NAME: &'static str = "N";
    fn parse(text: &str) -> Result<i32, String> {
        match text.trim().parse::<i32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "{text:?} is not a queue length; expected a number from 1, as 2048"
            )),
        }
    }
    fn to_toml(value: &i32) -> Option<toml::Value> {
        int(*value as u64)
    }
}

/// Bytes with an optional K, M or G (powers of 1024).
pub struct Size;

impl Kind for Size {
    type Value = u64;
    const VALUE_NAME: &'static str = "SIZE";
    fn parse(text: &str) -> Result<u64, String> {
        let t = text.trim();
        let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
            Some('K') => (&t[..t.len() - 1], 1u64 << 10),
            Some('M') => (&t[..t.len() - 1], 1 << 20),
            Some('G') => (&t[..t.len() - 1], 1 << 30),
            _ => (t, 1),
        };
        num.trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a size; expected bytes with an optional K, M or G suffix, \
                     as 1048576 or 1M"
                )
            })
    }
    fn to_toml(value: &u64) -> Option<toml::Value> {
        int(*value)
    }
}

/// A file mode mask, octal as `0o22` or `022`.
pub struct Umask;

impl Kind for Umask {
    type Value = u32;
    const VALUE_NAME: &'static str = "MASK";
    fn parse(text: &str) -> Result<u32, String> {
        let t = text.trim();
        let parsed = if let Some(o) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
            u32::from_str_radix(o, 8).ok()
        } else if let Some(h) = t.strip_prefix("0x") {
            u32::from_str_radix(h, 16).ok()
        } else if t.len() > 1 && t.starts_with('0') {
            u32::from_str_radix(&t[1..], 8).ok()
        } else {
            t.parse().ok()
        };
        match parsed {
            Some(m) if m <= 0o777 => Ok(m),
            _ => Err(format!(
                "{text:?} is not a umask; expected octal as 0o22 or 022"
            )),
        }
    }
    fn to_toml(value: &u32) -> Option<toml::Value> {
        Some(format!("0o{value:o}").into())
    }
}

/// Text, taken as given.
pub struct Text;

impl Kind for Text {
    type Value = String;
    const VALUE_NAME: &'static str = "TEXT";
    fn parse(text: &str) -> Result<String, String> {
        Ok(text.to_string())
    }
    fn to_toml(value: &String) -> Option<toml::Value> {
        Some(value.clone().into())
    }
}

placeholder!(
    /// A name, as `ps` shows it.
    ProcessName = Text, "NAME"
);

placeholder!(
    /// A file, or `-` for the standard stream.
    LogFile = Text, "FILE"
);

/// A path.
pub struct File;

impl Kind for File {
    type Value = PathBuf;
    const VALUE_NAME: &'static str = "FILE";
    fn parse(text: &str) -> Result<PathBuf, String> {
        Ok(PathBuf::from(text))
    }
    fn to_toml(value: &PathBuf) -> Option<toml::Value> {
        Some(value.display().to_string().into())
    }
}

/// An address to listen on, as `--bind` takes it (`HOST:PORT`, `[::1]:PORT`, `:PORT`,
/// `unix:PATH`, `fd://N`); a host name may give several.
pub struct Listen;

impl Kind for Listen {
    type Value = Vec<serve_arbiter::Bind>;
    const VALUE_NAME: &'static str = "ADDRESS";
    fn parse(text: &str) -> Result<Self::Value, String> {
        serve_arbiter::Bind::parse(text).map_err(|e| e.to_string())
    }
    fn to_toml(value: &Self::Value) -> Option<toml::Value> {
        let text: Vec<String> = value.iter().map(ToString::to_string).collect();
        Some(text.join(",").into())
    }
}

/// A user of this machine, by name or uid.
pub struct UserName;

impl Kind for UserName {
    type Value = (String, Uid);
    const VALUE_NAME: &'static str = "USER";
    fn parse(text: &str) -> Result<(String, Uid), String> {
        let found = match text.parse::<u32>() {
            Ok(n) => Some(
                User::from_uid(Uid::from_raw(n))
                    .ok()
                    .flatten()
                    .map_or((text.to_string(), Uid::from_raw(n)), |u| (u.name, u.uid)),
            ),
            Err(_) => User::from_name(text)
                .ok()
                .flatten()
                .map(|u| (u.name, u.uid)),
        };
        found.ok_or_else(|| format!("no user {text:?} on this machine; pass a user name or uid"))
    }
    fn to_toml(value: &(String, Uid)) -> Option<toml::Value> {
        Some(value.0.clone().into())
    }
}

/// A group of this machine, by name or gid.
pub struct GroupName;

impl Kind for GroupName {
    type Value = (String, Gid);
    const VALUE_NAME: &'static str = "GROUP";
    fn parse(text: &str) -> Result<(String, Gid), String> {
        let found = match text.parse::<u32>() {
            Ok(n) => Some((text.to_string(), Gid::from_raw(n))),
            Err(_) => Group::from_name(text)
                .ok()
                .flatten()
                .map(|g| (g.name, g.gid)),
        };
        found.ok_or_else(|| format!("no group {text:?} on this machine; pass a group name or gid"))
    }
    fn to_toml(value: &(String, Gid)) -> Option<toml::Value> {
        Some(value.0.clone().into())
    }
}

/// Peers trusted with `X-Forwarded-For`.
pub struct Peers;

impl Kind for Peers {
    type Value = ForwardedAllow;
    const VALUE_NAME: &'static str = "IPS";
    fn parse(text: &str) -> Result<ForwardedAllow, String> {
        text.parse()
            .map_err(|e: serve_worker::NotAnAddress| e.to_string())
    }
    fn to_toml(value: &ForwardedAllow) -> Option<toml::Value> {
        Some(value.to_string().into())
    }
}

/// The access log's format.
pub struct AccessLogFormat;

impl Kind for AccessLogFormat {
    type Value = AccessFormat;
    const VALUE_NAME: &'static str = "FORMAT";
    fn parse(text: &str) -> Result<AccessFormat, String> {
        AccessFormat::parse(text).map_err(|e| e.to_string())
    }
    fn to_toml(value: &AccessFormat) -> Option<toml::Value> {
        Some(value.to_string().into())
    }
}

/// A log level.
pub struct LogLevel;

impl Kind for LogLevel {
    type Value = Level;
    const VALUE_NAME: &'static str = "LEVEL";
    fn parse(text: &str) -> Result<Level, String> {
        text.parse()
            .map_err(|e: serve_log::UnknownLevel| e.to_string())
    }
    fn to_toml(value: &Level) -> Option<toml::Value> {
        Some(value.to_string().into())
    }
}

/// `text` or `json`.
pub struct LogFormat;

impl Kind for LogFormat {
    type Value = Format;
    const VALUE_NAME: &'static str = "FORMAT";
    fn parse(text: &str) -> Result<Format, String> {
        match text {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(format!(
                "{other:?} is not a log format; expected text or json"
            )),
        }
    }
    fn to_toml(value: &Format) -> Option<toml::Value> {
        Some(
            match value {
                Format::Text => "text",
                Format::Json => "json",
            }
            .into(),
        )
    }
}

/// A setting without a default: absent unless given.
pub struct Optional<K>(std::marker::PhantomData<K>);

impl<K: Kind> Kind for Optional<K> {
    type Value = Option<K::Value>;
    const VALUE_NAME: &'static str = K::VALUE_NAME;
    fn parse(text: &str) -> Result<Self::Value, String> {
        K::parse(text).map(Some)
    }
    fn to_toml(value: &Self::Value) -> Option<toml::Value> {
        value.as_ref().and_then(K::to_toml)
    }
    fn absent() -> Option<Self::Value> {
        Some(None)
    }
}

/// Resolves one setting: the text given, else its default, else its kind's absent value.
fn resolve<K: Kind>(
    flag: &str,
    given: Option<&str>,
    default: Option<&str>,
) -> Result<K::Value, ConfigError> {
    match given.or(default) {
        Some(text) => K::parse(text).map_err(|e| ConfigError::new(format!("--{flag}: {e}"))),
        None => K::absent().ok_or_else(|| {
            ConfigError::new(format!(
                "--{flag}: no value, and the setting has no default"
            ))
        }),
    }
}

/// Declares the table. Each line: `field: Kind = default, "Heading", "help"`, with
/// `short 'x'` or `alias "name"` before the `=` where the flag has them; `default` is a
/// string as typed on the command line (`Some("30")`) or `None` for a setting absent unless
/// given (its kind is then `Optional<_>`).
macro_rules! settings {
    ($(
        $field:ident : $kind:ty $(, short $short:literal)? $(, alias $alias:literal)?
            = $default:expr, $heading:literal, $help:literal;
    )*) => {
        /// The settings as one layer gives them: the text of each, or `None` when this layer
        /// does not set it.
        #[derive(clap::Args, Debug, Default, Clone)]
        pub struct Table {
            $(
                #[arg(
                    long $(, short = $short)? $(, alias = $alias)?,
                    value_name = <$kind as Kind>::VALUE_NAME,
                    num_args = num_args::<$kind>(),
                    require_equals = <$kind as Kind>::SWITCH,
                    default_missing_value = missing_value::<$kind>(),
                    action = ArgAction::Set,
                    help_heading = $heading,
                    help = help($help, $default),
                )]
                pub $field: Option<String>,
            )*
        }

        /// Every setting of the table, resolved.
        #[derive(Clone, Debug)]
        pub struct Values {
            $(
                #[doc = $help]
                pub $field: <$kind as Kind>::Value,
            )*
        }

        impl Table {
            /// Each setting from `self`, or from `lower` where `self` has none.
            pub fn over(self, lower: Table) -> Table {
                Table {
                    $($field: self.$field.or(lower.$field),)*
                }
            }

            /// Every setting: given, or its default; checked.
            pub fn resolve(&self) -> Result<Values, ConfigError> {
                Ok(Values {
                    $(
                        $field: {
                            let flag = stringify!($field).replace('_', "-");
                            resolve::<$kind>(&flag, self.$field.as_deref(), $default)?
                        },
                    )*
                })
            }
        }

        impl Values {
            /// Writes every setting as a config file says it (`--print-config`).
            pub fn to_toml(&self, t: &mut toml::Table) {
                $(
                    if let Some(v) = <$kind as Kind>::to_toml(&self.$field) {
                        t.insert(stringify!($field).into(), v);
                    }
                )*
            }
        }
    };
}

settings! {
    threads: AtLeastOne = Some("1"), "Server",
        "Runtime threads per worker: 1 runs a single-threaded event loop.";
    worker_connections: AtLeastOne = Some("1000"), "Server",
        "Most simultaneous connections per worker.";
    backlog: Backlog = Some("2048"), "Server",
        "Length of the listen queue.";
    reuse_port: Switch = Some("false"), "Server",
        "Set SO_REUSEPORT on the listeners, so that another server may bind the same address.";
    preload: Switch = Some("false"), "Server",
        "Load the app once in the master before forking; workers share its memory.";
    metrics_bind: Optional<Listen> = None, "Server",
        "Serve /metrics and /status on this address only, and no longer on the --bind ones. \
         [default: on every --bind address]";
    timeout: Seconds, short 't' = Some("30"), "Timeouts",
        "A worker whose event loop is silent this long is killed and replaced; 0 disables.";
    graceful_timeout: Seconds = Some("30"), "Timeouts",
        "How long stopping workers may take to finish their requests.";
    keep_alive: Seconds = Some("2"), "Timeouts",
        "How long an idle keep-alive connection is kept; 0 closes after each response.";
    max_connection_age: Seconds = Some("0"), "Timeouts",
        "Ask a keep-alive connection older than this (give or take 10%) to reconnect: \
         Connection: close on its next HTTP/1.1 answer, GOAWAY on HTTP/2, so that a client \
         that holds its connections (a proxy's pool) spreads them over the workers again; \
         0 never does.";
    header_timeout: PositiveSeconds = Some("30"), "Timeouts",
        "Longest time to receive a request's head (slowloris).";
    body_timeout: PositiveSeconds = Some("60"), "Timeouts",
        "Longest time to receive a request's body.";
    request_timeout: Seconds = Some("0"), "Timeouts",
        "Answer 504 to an inference that runs longer; 0 disables.";
    max_requests: Requests = Some("0"), "Workers",
        "Requests after which a worker is replaced (drained first); 0 disables.";
    max_requests_jitter: Requests = Some("0"), "Workers",
        "A random 0..=N added to --max-requests per worker, so workers do not restart together.";
    limit_request_line: Bytes = Some("4094"), "Limits",
        "Longest request line; 414 past it; 0 is unlimited.";
    limit_request_fields: Count = Some("100"), "Limits",
        "Most header fields in a request; 431 past it; 0 is unlimited.";
    limit_request_field_size: Bytes = Some("8190"), "Limits",
        "Longest header field; 431 past it; 0 is unlimited.";
    max_body_size: Size = Some("64M"), "Limits",
        "Largest request body, after decompression; 413 past it; 0 is unlimited.";
    max_queue: AtLeastOne = Some("1024"), "Models",
        "Requests waiting per model in a worker; past it, 503 with Retry-After.";
    max_batch_size: Rows = Some("64"), "Models",
        "Dynamic batching: most rows merged into one model call; 1 disables.";
    batch_timeout_us: Micros = Some("0"), "Models",
        "Dynamic batching: how long a batch may wait for more requests; 0 merges only the \
         requests already waiting, adding no delay.";
    pid: Optional<File>, short 'p' = None, "Process",
        "Write the master's pid to this file.";
    user: Optional<UserName>, short 'u' = None, "Process",
        "Workers run as this user (name or uid); the master keeps its user to rebind and upgrade.";
    group: Optional<GroupName>, short 'g' = None, "Process",
        "Workers run as this group (name or gid).";
    umask: Umask = Some("0"), "Process",
        "The umask for unix sockets and files serve creates (octal as 0o22 or 022).";
    name: ProcessName, short 'n' = Some("serve"), "Process",
        "The process name shown by ps: NAME: master, NAME: worker.";
    forwarded_allow_ips: Peers = Some("127.0.0.1,::1"), "Process",
        "Peers trusted to set X-Forwarded-For: comma-separated addresses, or `*`.";
    access_logfile: Optional<LogFile> = None, "Logging",
        "The access log: a file, or `-` for stdout. [default: none]";
    access_log_format: AccessLogFormat
        = Some(r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#), "Logging",
        "The access log's format, gunicorn's atoms.";
    error_logfile: LogFile, alias "log-file" = Some("-"), "Logging",
        "The error log: a file, or `-` for stderr.";
    log_level: LogLevel = Some("info"), "Logging",
        "debug, info, warning, error or critical.";
    log_format: LogFormat = Some("text"), "Logging",
        "text (gunicorn's lines) or json (one object per line), for both logs.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_errors_say_what_is_expected() {
        assert_eq!(Size::parse("1M").unwrap(), 1 << 20);
        assert_eq!(Size::parse("1048576").unwrap(), 1 << 20);
        assert_eq!(Size::parse("2g").unwrap(), 2 << 30);
        assert!(Size::parse("1T").unwrap_err().contains("K, M or G"));
        assert_eq!(Seconds::parse("0.5").unwrap(), Duration::from_millis(500));
        assert!(Seconds::parse("abc").unwrap_err().contains("seconds"));
        assert!(Seconds::parse("-1").is_err());
        assert!(PositiveSeconds::parse("0").is_err());
        assert_eq!(Umask::parse("0o22").unwrap(), 0o22);
        assert_eq!(Umask::parse("022").unwrap(), 0o22);
        assert_eq!(Umask::parse("18").unwrap(), 18);
        assert!(AtLeastOne::parse("0").is_err());
        assert!(Switch::parse("yes").is_err());
    }

    #[test]
    fn every_default_resolves_and_an_error_names_the_flag() {
        let values = Table::default().resolve().unwrap();
        assert_eq!(values.timeout, Duration::from_secs(30));
        assert_eq!(values.max_body_size, 64 << 20);
        assert!(values.pid.is_none() && !values.preload);
        let bad = Table {
            max_body_size: Some("1T".into()),
            ..Table::default()
        };
        let e = bad.resolve().unwrap_err().message;
        assert!(
            e.starts_with("--max-body-size: \"1T\" is not a size"),
            "{e}"
        );
    }

    #[test]
    fn a_higher_layer_wins_setting_by_setting() {
        let cli = Table {
            timeout: Some("5".into()),
            ..Table::default()
        };
        let file = Table {
            timeout: Some("9".into()),
            preload: Some("true".into()),
            ..Table::default()
        };
        let merged = cli.over(file).resolve().unwrap();
        assert_eq!(merged.timeout, Duration::from_secs(5));
        assert!(merged.preload);
    }
}
