//! From merged options to resolved settings: defaults filled in, units parsed, names looked
//! up. Every error names the setting, what was given and what is expected.

use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use serve_arbiter::Bind;
use serve_log::{LogConfig, Target};
use serve_worker::WorkerConfig;

use crate::cli::Opts;
use crate::config::{ConfigError, Defaults};
use crate::settings::Values;

/// Everything `serve` runs with, after every layer and default: the settings outside the
/// table, and the table's [`Values`] (reached through `Deref`: `config.timeout`).
#[derive(Clone, Debug)]
pub struct Config {
    /// The app path (None: the embedded model).
    pub app: Option<PathBuf>,
    /// Listen addresses as given (after defaults).
    pub bind: Vec<String>,
    /// The same, parsed.
    pub binds: Vec<Bind>,
    /// Worker processes.
    pub workers: usize,
    /// Every setting of the table.
    pub values: Values,
}

impl Deref for Config {
    type Target = Values;

    fn deref(&self) -> &Values {
        &self.values
    }
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
            binds.extend(Bind::parse(b).map_err(|e| ConfigError::new(e.to_string()))?);
        }
        let workers = match (&o.workers, &env.web_concurrency) {
            (Some(w), _) => workers(w, "--workers")?,
            (None, Some(w)) => workers(w, "WEB_CONCURRENCY")?,
            (None, None) => Defaults::WORKERS,
        };
        let values = o.settings.resolve()?;
        if let Some((name, uid)) = &values.user {
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
            values,
        })
    }

    /// The workers' settings.
    pub fn worker(&self) -> WorkerConfig {
        WorkerConfig {
            threads: self.threads,
            worker_connections: self.worker_connections,
            keep_alive: self.keep_alive,
            max_connection_age: self.max_connection_age,
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
        let int = |n: u64| toml::Value::Integer(n.min(i64::MAX as u64) as i64);
        if let Some(app) = &self.app {
            t.insert("app".into(), app.display().to_string().into());
        }
        t.insert(
            "bind".into(),
            toml::Value::Array(self.bind.iter().map(|b| b.clone().into()).collect()),
        );
        t.insert("workers".into(), int(self.workers as u64));
        self.values.to_toml(&mut t);
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
    fn worker_counts_parse() {
        assert!(workers("0", "--workers").is_err());
        assert!(workers("auto", "--workers").unwrap() >= 1);
        assert_eq!(workers(" 3 ", "WEB_CONCURRENCY").unwrap(), 3);
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
