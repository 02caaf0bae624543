//! Layers of configuration, merged by precedence: the command line, then `SERVE_CMD_ARGS`,
//! then the config file (`-c`), then `$PORT` / `$WEB_CONCURRENCY`, then the defaults.
//!
//! The config file and `SERVE_CMD_ARGS` are turned into command-line arguments and parsed by
//! the same clap parser, so every setting means exactly the same wherever it is given.

use std::ffi::OsString;
use std::path::Path;

use clap::{CommandFactory, Parser};

use serve_settings::kinds::toml_text;
use serve_settings::{ConfigError, Given};

use crate::cli::Opts;

/// What `serve` was started with, kept so that a reload (HUP) can read it all again.
#[derive(Clone)]
pub struct Sources {
    /// The command line, without the program name.
    pub args: Vec<OsString>,
    /// `SERVE_CMD_ARGS`, when set.
    pub env_args: Option<String>,
}

impl Sources {
    /// This process's command line and environment.
    pub fn from_env() -> Sources {
        Sources {
            args: std::env::args_os().skip(1).collect(),
            env_args: std::env::var("SERVE_CMD_ARGS").ok(),
        }
    }

    /// Parses and merges every layer. Help and version requests come back as errors whose
    /// message is what to print, with `usage` false and an exit code of 0 left to the caller.
    pub fn load(&self) -> Result<Opts, LoadError> {
        let cli = parse_args(&self.args, "the command line")?;
        let env = match &self.env_args {
            Some(s) => {
                let words = shlex::split(s).ok_or_else(|| {
                    LoadError::Config(ConfigError::new(
                        "SERVE_CMD_ARGS: unbalanced quotes; it is split like a shell command line",
                    ))
                })?;
                let words: Vec<OsString> = words.into_iter().map(OsString::from).collect();
                parse_args(&words, "SERVE_CMD_ARGS")?
            }
            None => Opts::default(),
        };
        let merged = cli.over(env);
        let file = match &merged.config {
            Some(path) => read_file(path)?,
            None => Opts::default(),
        };
        Ok(merged.over(file))
    }
}

/// Why loading stopped.
#[derive(Debug)]
pub enum LoadError {
    /// `--help` or `--version`: print this and exit 0.
    Info(String),
    /// A problem.
    Config(ConfigError),
}

impl From<ConfigError> for LoadError {
    fn from(e: ConfigError) -> Self {
        LoadError::Config(e)
    }
}

fn parse_args(args: &[OsString], origin: &str) -> Result<Opts, LoadError> {
    let argv = std::iter::once(OsString::from("serve")).chain(args.iter().cloned());
    Opts::try_parse_from(argv).map_err(|e| {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => LoadError::Info(e.to_string()),
            _ => {
                let rendered = e.to_string();
                let first = rendered
                    .lines()
                    .next()
                    .unwrap_or("bad arguments")
                    .trim_start_matches("error: ");
                // clap's suggestion, kept: "did you mean '--workers'?".
                let hint = match e.get(clap::error::ContextKind::SuggestedArg) {
                    Some(clap::error::ContextValue::String(s)) => format!("; did you mean '{s}'?"),
                    _ => String::new(),
                };
                let message = if origin == "the command line" {
                    format!("{first}{hint}; see serve --help")
                } else {
                    format!("{origin}: {first}{hint}; see serve --help")
                };
                LoadError::Config(ConfigError {
                    message,
                    usage: true,
                })
            }
        }
    })
}

impl Opts {
    /// What this layer gives, for [`serve_settings::Config::resolve`].
    pub fn given(self) -> Given {
        Given {
            app: self.app,
            bind: self.bind,
            workers: self.workers,
            load_model: self.load_model,
            table: self.settings,
        }
    }

    /// Takes each setting from `self`, or from `lower` where `self` has none.
    pub fn over(self, lower: Opts) -> Opts {
        Opts {
            app: self.app.or(lower.app),
            config: self.config.or(lower.config),
            check_config: self.check_config || lower.check_config,
            print_config: self.print_config || lower.print_config,
            probe: self.probe || lower.probe,
            bind: if self.bind.is_empty() {
                lower.bind
            } else {
                self.bind
            },
            workers: self.workers.or(lower.workers),
            load_model: if self.load_model.is_empty() {
                lower.load_model
            } else {
                self.load_model
            },
            settings: self.settings.over(lower.settings),
        }
    }
}

/// Keys that make no sense inside a config file.
const NOT_IN_FILE: [&str; 4] = ["config", "check_config", "print_config", "probe"];

/// Reads a TOML config file into the same options as the command line.
pub fn read_file(path: &Path) -> Result<Opts, ConfigError> {
    let where_ = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(format!(
            "cannot read config file {where_}: {e}; pass -c with a readable TOML file"
        ))
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let msg = e.to_string().replace('\n', " ");
        ConfigError::new(format!(
            "config file {where_} is not valid TOML: {}",
            msg.trim()
        ))
    })?;
    let known: Vec<String> = Opts::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
        .collect();
    let mut args: Vec<OsString> = Vec::new();
    let mut app: Option<&str> = None;
    for (key, value) in &table {
        if key == "app" {
            app = Some(value.as_str().ok_or_else(|| {
                ConfigError::new(format!(
                    "config file {where_}: app must be a string (a path)"
                ))
            })?);
            continue;
        }
        if NOT_IN_FILE.contains(&key.as_str()) || !known.contains(key) {
            let hint = known
                .iter()
                .filter(|k| !NOT_IN_FILE.contains(&k.as_str()))
                .map(|k| (strsim::jaro(k, key), k))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, k)| format!(" (did you mean {k}?)"))
                .unwrap_or_default();
            return Err(ConfigError::new(format!(
                "config file {where_}: unknown setting {key:?}{hint}; settings are the long flag \
                 names with _ (keep_alive, max_requests, bind = [...]), see serve --help"
            )));
        }
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            // `--flag=VALUE`, so that a value is never read as a flag (`-1`, `-`).
            let text = toml_text(v).ok_or_else(|| {
                ConfigError::new(format!(
                    "config file {where_}: {key} = {v}: expected a string, number or boolean"
                ))
            })?;
            args.push(format!("--{}={text}", key.replace('_', "-")).into());
        }
    }
    // `app` goes last, after `--`, so that its path is never read as a flag.
    if let Some(app) = app {
        args.push("--".into());
        args.push(app.into());
    }
    match parse_args(&args, &format!("config file {where_}")) {
        Ok(opts) => Ok(opts),
        Err(LoadError::Config(e)) => Err(ConfigError::new(e.message)),
        Err(LoadError::Info(_)) => Err(ConfigError::new(format!(
            "config file {where_}: help and version are not settings"
        ))),
    }
}
