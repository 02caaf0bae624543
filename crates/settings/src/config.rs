//! Everything `serve` runs with, resolved once from every layer: [`Config`]. The master, the
//! workers, the app and the runtime read their settings from it (or from its [`Values`]), so
//! a setting is declared once, in the table, and read where it is used.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use serve_log::{LogConfig, Target};

use crate::bind::Bind;
use crate::kinds::ModelControlMode;
use crate::table::{Table, Values};

/// A configuration problem, shown as one line. `usage` errors (a bad flag) exit 2, others 1.
#[derive(Debug)]
pub struct ConfigError {
    pub message: String,
    pub usage: bool,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            usage: false,
        }
    }
}

/// The defaults of the two settings outside the table, whose defaults come from the
/// environment first; `--help` says them.
pub struct Defaults;

impl Defaults {
    pub const BIND: &'static str = "127.0.0.1:8000";
    pub const WORKERS: usize = 1;
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

/// What the layers gave, merged: the settings outside the table as given, and the table's
/// text.
#[derive(Clone, Debug, Default)]
pub struct Given {
    /// The app path.
    pub app: Option<PathBuf>,
    /// `--bind`, as given (empty: not given).
    pub bind: Vec<String>,
    /// `--workers`, as given.
    pub workers: Option<String>,
    /// `--load-model`, every time it was given (`*`: every model of the repository).
    pub load_model: Vec<String>,
    /// Every setting of the table, as given.
    pub table: Table,
}

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
    /// The models of the repository to serve under `--model-control explicit` (`*`: every
    /// one): `--load-model`'s at start; after a load or unload request, or a reload, the
    /// master's own list of what is loaded.
    pub load_model: Vec<String>,
    /// Model configurations that load requests gave (their `config` parameter, in
    /// `config.pbtxt`'s text form or Triton's JSON form), by model: each replaces that
    /// model's `config.pbtxt`. Empty at start.
    pub model_configs: BTreeMap<String, String>,
    /// Every setting of the table.
    pub values: Values,
}

impl Deref for Config {
    type Target = Values;

    fn deref(&self) -> &Values {
        &self.values
    }
}

impl Config {
    /// Resolves what the layers gave against the environment and the defaults.
    pub fn resolve(given: Given, env: &Env) -> Result<Config, ConfigError> {
        let bind = if !given.bind.is_empty() {
            given.bind
        } else if let Some(port) = &env.port {
            vec![format!("0.0.0.0:{port}")]
        } else {
            vec![Defaults::BIND.to_string()]
        };
        let mut binds = Vec::new();
        for b in &bind {
            binds.extend(Bind::parse(b).map_err(|e| ConfigError::new(e.to_string()))?);
        }
        let workers = match (&given.workers, &env.web_concurrency) {
            (Some(w), _) => workers(w, "--workers")?,
            (None, Some(w)) => workers(w, "WEB_CONCURRENCY")?,
            (None, None) => Defaults::WORKERS,
        };
        let values = given.table.resolve()?;
        if !given.load_model.is_empty() && values.model_control != ModelControlMode::Explicit {
            return Err(ConfigError::new(format!(
                "--load-model {}: models are loaded by name only under --model-control \
                 explicit; without it every model of APP is served: add --model-control \
                 explicit, or drop --load-model",
                given.load_model.join(", ")
            )));
        }
        if let Some((name, uid)) = &values.user {
            let me = nix::unistd::geteuid();
            if !me.is_root() && me != *uid {
                return Err(ConfigError::new(format!(
                    "--user {name}: switching users needs root, and serve runs as uid {me}; run it as root or drop --user"
                )));
            }
        }
        Ok(Config {
            app: given.app,
            bind,
            binds,
            workers,
            load_model: given.load_model,
            model_configs: BTreeMap::new(),
            values,
        })
    }

    /// The configuration as a TOML config file would say it (`--print-config`).
    pub fn to_toml(&self) -> String {
        let mut t = toml::Table::new();
        if let Some(app) = &self.app {
            t.insert("app".into(), app.display().to_string().into());
        }
        t.insert(
            "bind".into(),
            toml::Value::Array(self.bind.iter().map(|b| b.clone().into()).collect()),
        );
        t.insert(
            "workers".into(),
            toml::Value::Integer(i64::try_from(self.workers).unwrap_or(i64::MAX)),
        );
        if !self.load_model.is_empty() {
            t.insert(
                "load_model".into(),
                toml::Value::Array(self.load_model.iter().map(|m| m.clone().into()).collect()),
            );
        }
        self.values.to_toml(&mut t);
        toml::to_string(&t).unwrap_or_default()
    }
}

impl Values {
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

    /// How often a worker proves it is alive: well within `--timeout`, five beats per
    /// timeout, at most one a second, at least one every 50 ms.
    pub fn heartbeat_interval(&self) -> Duration {
        if self.timeout.is_zero() {
            return Duration::from_secs(1);
        }
        (self.timeout / 5).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// Every setting at its default: what a test or an embedding builds its configuration from.
impl Default for Values {
    fn default() -> Values {
        Table::default()
            .resolve()
            .expect("every default of the table resolves (a unit test checks it)")
    }
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
        let c = Config::resolve(Given::default(), &env(Some("9000"), Some("3"))).unwrap();
        assert_eq!(c.bind, vec!["0.0.0.0:9000"]);
        assert_eq!(c.workers, 3);
        let g = Given {
            bind: vec!["127.0.0.1:1".into()],
            workers: Some("2".into()),
            ..Given::default()
        };
        let c = Config::resolve(g, &env(Some("9000"), Some("3"))).unwrap();
        assert_eq!((c.bind[0].as_str(), c.workers), ("127.0.0.1:1", 2));
        let c = Config::resolve(Given::default(), &env(None, None)).unwrap();
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
        let beat = |secs: f64| {
            Values {
                timeout: Duration::from_secs_f64(secs),
                ..Values::default()
            }
            .heartbeat_interval()
        };
        assert_eq!(beat(30.0), Duration::from_secs(1));
        assert_eq!(beat(1.0), Duration::from_millis(200));
        assert_eq!(beat(0.0), Duration::from_secs(1));
    }
}
