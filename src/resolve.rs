//! From merged options to resolved settings: defaults filled in, units parsed, names looked
//! up. Every error names the setting, what was given and what is expected.

use std::path::PathBuf;
use std::time::Duration;

use nix::unistd::{Gid, Group, Uid, User};
use serve_arbiter::Bind;
use serve_log::{AccessFormat, Format, Level, LogConfig, Target};
use serve_worker::{ForwardedAllow, WorkerConfig};

use crate::cli::Opts;
use crate::config::{ConfigError, Defaults};

/// Everything `serve` runs with, after every layer and default.
#[derive(Clone, Debug)]
pub struct Config {
    /// The app path (None: the embedded model).
    pub app: Option<PathBuf>,
    /// Listen addresses as given (after defaults).
    pub bind: Vec<String>,
    /// The same, parsed.
    pub binds: Vec<Bind>,
    pub workers: usize,
    pub threads: usize,
    pub worker_connections: usize,
    pub backlog: i32,
    pub reuse_port: bool,
    pub preload: bool,
    pub timeout: Duration,
    pub graceful_timeout: Duration,
    pub keep_alive: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub request_timeout: Duration,
    pub max_requests: u64,
    pub max_requests_jitter: u64,
    pub limit_request_line: usize,
    pub limit_request_fields: usize,
    pub limit_request_field_size: usize,
    pub max_body_size: u64,
    pub max_queue: usize,
    pub max_batch_size: usize,
    pub batch_timeout_us: u64,
    pub pid: Option<PathBuf>,
    pub user: Option<(String, Uid)>,
    pub group: Option<(String, Gid)>,
    pub umask: u32,
    pub name: String,
    pub forwarded_allow_ips: ForwardedAllow,
    pub access_logfile: Option<String>,
    pub access_log_format: AccessFormat,
    pub error_logfile: String,
    pub log_level: Level,
    pub log_format: Format,
}

/// The environment variables that set defaults, read once.
pub struct Env {
    pub port: Option<String>,
    pub web_concurrency: Option<String>,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            port: std::env::var("PORT").ok().filter(|p| !p.is_empty()),
            web_concurrency: std::env::var("WEB_CONCURRENCY")
                .ok()
                .filter(|p| !p.is_empty()),
        }
    }
}

impl Config {
    /// Resolves merged options against the environment and the defaults.
    pub fn resolve(o: Opts, env: &Env) -> Result<Config, ConfigError> {
        let bind = if !o.bind.is_empty() {
            o.bind
        } else if let Some(port) = &env.port {
            vec![format!("0.0.0.0:{port}")]
        } else {
            vec![Defaults::BIND.to_string()]
        };
        let mut binds = Vec::new();
        for b in &bind {
            binds.extend(Bind::parse(b).map_err(ConfigError::new)?);
        }
        let workers = match (&o.workers, &env.web_concurrency) {
            (Some(w), _) => workers(w, "--workers")?,
            (None, Some(w)) => workers(w, "WEB_CONCURRENCY")?,
            (None, None) => Defaults::WORKERS,
        };
        let threads = o.threads.unwrap_or(Defaults::THREADS);
        if threads == 0 {
            return Err(ConfigError::new(
                "--threads: 0 is not a thread count; expected 1 or more",
            ));
        }
        let worker_connections = o.worker_connections.unwrap_or(Defaults::WORKER_CONNECTIONS);
        if worker_connections == 0 {
            return Err(ConfigError::new(
                "--worker-connections: 0 would accept nothing; expected 1 or more",
            ));
        }
        let user = o.user.as_deref().map(user).transpose()?;
        let group = o.group.as_deref().map(group).transpose()?;
        if let Some((name, uid)) = &user {
            let me = nix::unistd::geteuid();
            if !me.is_root() && me != *uid {
                return Err(ConfigError::new(format!(
                    "--user {name}: switching users needs root, and serve runs as uid {me}; run it as root or drop --user"
                )));
            }
        }
        Ok(Config {
            app: o.app,
            bind,
            binds,
            workers,
            threads,
            worker_connections,
            backlog: o.backlog.unwrap_or(Defaults::BACKLOG),
            reuse_port: o.reuse_port,
            preload: o.preload,
            timeout: seconds(o.timeout.as_deref(), "--timeout", Defaults::TIMEOUT)?,
            graceful_timeout: seconds(
                o.graceful_timeout.as_deref(),
                "--graceful-timeout",
                Defaults::GRACEFUL_TIMEOUT,
            )?,
            keep_alive: seconds(
                o.keep_alive.as_deref(),
                "--keep-alive",
                Defaults::KEEP_ALIVE,
            )?,
            header_timeout: positive(
                seconds(
                    o.header_timeout.as_deref(),
                    "--header-timeout",
                    Defaults::HEADER_TIMEOUT,
                )?,
                "--header-timeout",
            )?,
            body_timeout: positive(
                seconds(
                    o.body_timeout.as_deref(),
                    "--body-timeout",
                    Defaults::BODY_TIMEOUT,
                )?,
                "--body-timeout",
            )?,
            request_timeout: seconds(
                o.request_timeout.as_deref(),
                "--request-timeout",
                Defaults::REQUEST_TIMEOUT,
            )?,
            max_requests: o.max_requests.unwrap_or(0),
            max_requests_jitter: o.max_requests_jitter.unwrap_or(0),
            limit_request_line: o.limit_request_line.unwrap_or(Defaults::LIMIT_REQUEST_LINE),
            limit_request_fields: o
                .limit_request_fields
                .unwrap_or(Defaults::LIMIT_REQUEST_FIELDS),
            limit_request_field_size: o
                .limit_request_field_size
                .unwrap_or(Defaults::LIMIT_REQUEST_FIELD_SIZE),
            max_body_size: size(
                o.max_body_size
                    .as_deref()
                    .unwrap_or(Defaults::MAX_BODY_SIZE),
                "--max-body-size",
            )?,
            max_queue: o.max_queue.unwrap_or(Defaults::MAX_QUEUE),
            max_batch_size: match o.max_batch_size.unwrap_or(Defaults::MAX_BATCH_SIZE) {
                0 => {
                    return Err(ConfigError::new(
                        "--max-batch-size: expected 1 (no batching) or more",
                    ));
                }
                n => n,
            },
            batch_timeout_us: o.batch_timeout_us.unwrap_or(Defaults::BATCH_TIMEOUT_US),
            pid: o.pid,
            user,
            group,
            umask: umask(o.umask.as_deref())?,
            name: o.name.unwrap_or_else(|| Defaults::NAME.to_string()),
            forwarded_allow_ips: o
                .forwarded_allow_ips
                .as_deref()
                .unwrap_or(Defaults::FORWARDED_ALLOW_IPS)
                .parse()
                .map_err(|e: String| {
                    ConfigError::new(e.replacen("forwarded-allow-ips", "--forwarded-allow-ips", 1))
                })?,
            access_logfile: o.access_logfile,
            access_log_format: match o.access_log_format.as_deref() {
                Some(f) => AccessFormat::parse(f)
                    .map_err(|e| ConfigError::new(format!("--access-log-format: {e}")))?,
                None => AccessFormat::default(),
            },
            error_logfile: o
                .error_logfile
                .unwrap_or_else(|| Defaults::ERROR_LOGFILE.to_string()),
            log_level: o
                .log_level
                .as_deref()
                .unwrap_or(Defaults::LOG_LEVEL)
                .parse()
                .map_err(|e: String| ConfigError::new(format!("--log-level: {e}")))?,
            log_format: match o.log_format.as_deref().unwrap_or(Defaults::LOG_FORMAT) {
                "text" => Format::Text,
                "json" => Format::Json,
                other => {
                    return Err(ConfigError::new(format!(
                        "--log-format: {other:?} is not a log format; expected text or json"
                    )));
                }
            },
        })
    }

    /// The workers' settings.
    pub fn worker(&self) -> WorkerConfig {
        WorkerConfig {
            threads: self.threads,
            worker_connections: self.worker_connections,
            keep_alive: self.keep_alive,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            graceful_timeout: self.graceful_timeout,
            limit_request_line: self.limit_request_line,
            limit_request_fields: self.limit_request_fields,
            limit_request_field_size: self.limit_request_field_size,
            max_body_size: self.max_body_size,
            forwarded_allow_ips: self.forwarded_allow_ips.clone(),
            heartbeat_interval: heartbeat_interval(self.timeout),
        }
    }

    /// The logs' settings.
    pub fn log(&self) -> LogConfig {
        LogConfig {
            level: self.log_level,
            format: self.log_format,
            error_log: Target::parse(&self.error_logfile, Target::Stderr),
            access_log: self
                .access_logfile
                .as_deref()
                .map(|t| Target::parse(t, Target::Stdout)),
            access_format: self.access_log_format.clone(),
        }
    }

    /// The configuration as a TOML config file would say it (`--print-config`).
    pub fn to_toml(&self) -> String {
        let mut t = toml::Table::new();
        let secs = |d: Duration| toml::Value::Float(d.as_secs_f64());
        let int = |n: u64| toml::Value::Integer(n.min(i64::MAX as u64) as i64);
        if let Some(app) = &self.app {
            t.insert("app".into(), app.display().to_string().into());
        }
        t.insert(
            "bind".into(),
            toml::Value::Array(self.bind.iter().map(|b| b.clone().into()).collect()),
        );
        t.insert("workers".into(), int(self.workers as u64));
        t.insert("threads".into(), int(self.threads as u64));
        t.insert(
            "worker_connections".into(),
            int(self.worker_connections as u64),
        );
        t.insert("backlog".into(), int(self.backlog as u64));
        t.insert("reuse_port".into(), self.reuse_port.into());
        t.insert("preload".into(), self.preload.into());
        t.insert("timeout".into(), secs(self.timeout));
        t.insert("graceful_timeout".into(), secs(self.graceful_timeout));
        t.insert("keep_alive".into(), secs(self.keep_alive));
        t.insert("header_timeout".into(), secs(self.header_timeout));
        t.insert("body_timeout".into(), secs(self.body_timeout));
        t.insert("request_timeout".into(), secs(self.request_timeout));
        t.insert("max_requests".into(), int(self.max_requests));
        t.insert("max_requests_jitter".into(), int(self.max_requests_jitter));
        t.insert(
            "limit_request_line".into(),
            int(self.limit_request_line as u64),
        );
        t.insert(
            "limit_request_fields".into(),
            int(self.limit_request_fields as u64),
        );
        t.insert(
            "limit_request_field_size".into(),
            int(self.limit_request_field_size as u64),
        );
        t.insert("max_body_size".into(), int(self.max_body_size));
        t.insert("max_queue".into(), int(self.max_queue as u64));
        t.insert("max_batch_size".into(), int(self.max_batch_size as u64));
        t.insert("batch_timeout_us".into(), int(self.batch_timeout_us));
        if let Some(p) = &self.pid {
            t.insert("pid".into(), p.display().to_string().into());
        }
        if let Some((name, _)) = &self.user {
            t.insert("user".into(), name.clone().into());
        }
        if let Some((name, _)) = &self.group {
            t.insert("group".into(), name.clone().into());
        }
        t.insert("umask".into(), format!("0o{:o}", self.umask).into());
        t.insert("name".into(), self.name.clone().into());
        t.insert(
            "forwarded_allow_ips".into(),
            self.forwarded_allow_ips.to_string().into(),
        );
        if let Some(a) = &self.access_logfile {
            t.insert("access_logfile".into(), a.clone().into());
        }
        t.insert(
            "access_log_format".into(),
            self.access_log_format.to_string().into(),
        );
        t.insert("error_logfile".into(), self.error_logfile.clone().into());
        t.insert("log_level".into(), self.log_level.to_string().into());
        let fmt = match self.log_format {
            Format::Text => "text",
            Format::Json => "json",
        };
        t.insert("log_format".into(), fmt.into());
        toml::to_string(&t).unwrap_or_default()
    }
}

/// The heartbeat must come well within `--timeout`: five beats per timeout, at most one a
/// second, at least one every 50 ms.
fn heartbeat_interval(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        return Duration::from_secs(1);
    }
    (timeout / 5).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

fn workers(s: &str, origin: &str) -> Result<usize, ConfigError> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ConfigError::new(format!(
            "{origin}: {s:?} is not a worker count; expected a number from 1, or auto"
        ))),
    }
}

fn seconds(s: Option<&str>, flag: &str, default: f64) -> Result<Duration, ConfigError> {
    let Some(s) = s else {
        return Ok(Duration::from_secs_f64(default));
    };
    let t = s.trim().trim_end_matches('s');
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(ConfigError::new(format!(
            "{flag}: {s:?} is not a duration; expected a number of seconds, as 30 or 0.5"
        ))),
    }
}

fn positive(d: Duration, flag: &str) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::new(format!(
            "{flag}: expected more than 0 seconds"
        )));
    }
    Ok(d)
}

/// `1048576`, `1M`, `512K`, `2G` (powers of 1024).
pub fn size(s: &str, flag: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
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
            ConfigError::new(format!(
                "{flag}: {s:?} is not a size; expected bytes with an optional K, M or G suffix, as 1048576 or 1M"
            ))
        })
}

fn umask(s: Option<&str>) -> Result<u32, ConfigError> {
    let Some(s) = s else {
        return Ok(Defaults::UMASK);
    };
    let t = s.trim();
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
        _ => Err(ConfigError::new(format!(
            "--umask: {s:?} is not a umask; expected octal as 0o22 or 022"
        ))),
    }
}

fn user(s: &str) -> Result<(String, Uid), ConfigError> {
    let found = match s.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n))
            .ok()
            .flatten()
            .map_or(Some((s.to_string(), Uid::from_raw(n))), |u| {
                Some((u.name, u.uid))
            }),
        Err(_) => User::from_name(s).ok().flatten().map(|u| (u.name, u.uid)),
    };
    found.ok_or_else(|| {
        ConfigError::new(format!(
            "--user: no user {s:?} on this machine; pass a user name or uid"
        ))
    })
}

fn group(s: &str) -> Result<(String, Gid), ConfigError> {
    let found = match s.parse::<u32>() {
        Ok(n) => Some((s.to_string(), Gid::from_raw(n))),
        Err(_) => Group::from_name(s).ok().flatten().map(|g| (g.name, g.gid)),
    };
    found.ok_or_else(|| {
        ConfigError::new(format!(
            "--group: no group {s:?} on this machine; pass a group name or gid"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(port: Option<&str>, wc: Option<&str>) -> Env {
        Env {
            port: port.map(String::from),
            web_concurrency: wc.map(String::from),
        }
    }

    #[test]
    fn port_and_web_concurrency_are_defaults_below_flags() {
        let c = Config::resolve(Opts::default(), &env(Some("9000"), Some("3"))).unwrap();
        assert_eq!(c.bind, vec!["0.0.0.0:9000"]);
        assert_eq!(c.workers, 3);
        let o = Opts {
            bind: vec!["127.0.0.1:1".into()],
            workers: Some("2".into()),
            ..Opts::default()
        };
        let c = Config::resolve(o, &env(Some("9000"), Some("3"))).unwrap();
        assert_eq!((c.bind[0].as_str(), c.workers), ("127.0.0.1:1", 2));
        let c = Config::resolve(Opts::default(), &env(None, None)).unwrap();
        assert_eq!((c.bind[0].as_str(), c.workers), ("127.0.0.1:8000", 1));
    }

    #[test]
    fn units_parse_and_errors_name_the_flag() {
        assert_eq!(size("1M", "--x").unwrap(), 1 << 20);
        assert_eq!(size("1048576", "--x").unwrap(), 1 << 20);
        assert_eq!(size("2g", "--x").unwrap(), 2 << 30);
        assert!(
            size("1T", "--max-body-size")
                .unwrap_err()
                .message
                .contains("--max-body-size")
        );
        assert_eq!(
            seconds(Some("0.5"), "--t", 1.0).unwrap(),
            Duration::from_millis(500)
        );
        assert!(
            seconds(Some("abc"), "--timeout", 1.0)
                .unwrap_err()
                .message
                .contains("--timeout")
        );
        assert!(seconds(Some("-1"), "--timeout", 1.0).is_err());
        assert_eq!(umask(Some("0o22")).unwrap(), 0o22);
        assert_eq!(umask(Some("022")).unwrap(), 0o22);
        assert_eq!(umask(Some("18")).unwrap(), 18);
        assert!(workers("0", "--workers").is_err());
        assert!(workers("auto", "--workers").unwrap() >= 1);
    }

    #[test]
    fn heartbeat_is_a_fraction_of_the_timeout() {
        assert_eq!(
            heartbeat_interval(Duration::from_secs(30)),
            Duration::from_secs(1)
        );
        assert_eq!(
            heartbeat_interval(Duration::from_secs(1)),
            Duration::from_millis(200)
        );
        assert_eq!(heartbeat_interval(Duration::ZERO), Duration::from_secs(1));
    }
}
