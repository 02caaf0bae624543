//! `serve`: gunicorn rebuilt for machine-learning models, as one binary.
//!
//! This crate is thin: it reads the configuration and hands it to the parts that do the work.
//!
//! # Layout
//! - [`cli`]: the flags, named as gunicorn's; the table's are `serve-settings`'s.
//! - [`config`]: the layers (command line, `SERVE_CMD_ARGS`, config file) and their merge.
//! - [`settings`] (the `serve-settings` crate): the settings table, each setting declared once
//!   (flag, default, help, kind), resolved into one [`Config`] that every crate reads.
//! - [`main_with`]: the one place where errors become messages and exit codes.
//!
//! The work is done by the library crates, in one direction:
//! `serve` → `serve-arbiter` (the master) → `serve-worker` (a worker) → `serve-app` (the App
//! trait) ← `serve-model` (ONNX models over KServe V2, V1 and manifest routes), all reading
//! `serve-settings`.
//!
//! A Rust user writes their own app against `serve_app::App` and runs it with the same
//! master and flags by calling [`main_with`] from their own `main` (see examples/custom-app).
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod probe;

use std::sync::Arc;

pub use serve_app as app;
use serve_app::AppFactory;
use serve_arbiter::{Arbiter, ExitCode, Settings};
pub use serve_settings as settings;
pub use serve_settings::Config;
use serve_settings::Env;
use serve_settings::kinds::ModelControlMode;

use crate::config::{LoadError, Sources};

/// Builds the app factory from the resolved configuration; called at start and on every reload.
pub type MakeApp = fn(&Config) -> Result<Arc<dyn AppFactory>, String>;

/// The version printed at start and by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs serve with this app and returns the exit code: 0, 1 (configuration or bind), 2 (usage),
/// 3 (a worker could not boot), 4 (the app could not load).
pub fn main_with(make_app: MakeApp) -> i32 {
    let sources = Sources::from_env();
    let config = match load(&sources) {
        Ok(c) => c,
        Err(Exit(code)) => return code.code(),
    };
    if config.print_config {
        print!("{}", config.config.to_toml());
        return ExitCode::Ok.code();
    }
    if config.probe {
        return probe::run(&config.config);
    }
    let check_config = config.check_config;
    let config = config.config;
    if let Err(e) = serve_log::configure(&config.log()) {
        eprintln!("serve: error: {e}");
        return ExitCode::Config.code();
    }
    install_panic_hook();
    let settings = match build_settings(&config, make_app) {
        Ok(s) => s,
        Err(e) => return fail(&config, ExitCode::Config, &e),
    };
    if check_config {
        // The same proof as the first boot's: every model is built, not only read.
        let proved = settings
            .app
            .check()
            .and_then(|()| settings.app.build())
            .and_then(|app| app.warm());
        return match proved {
            Ok(()) => {
                println!("Config OK: {}", settings.app.describe());
                ExitCode::Ok.code()
            }
            Err(e) => fail(
                &config,
                ExitCode::of_app_error(&e),
                &format!("cannot load the app: {e}"),
            ),
        };
    }

    tracing::info!("Starting serve {VERSION}");
    let reload_sources = sources.clone();
    let reloader = Box::new(
        move |loaded: Option<&serve_arbiter::Loaded>| -> Result<Settings, String> {
            let opts = reload_sources.load().map_err(|e| match e {
                LoadError::Info(_) => "the configuration asks for help or version".to_string(),
                LoadError::Config(e) => e.message,
            })?;
            let mut config =
                Config::resolve(opts.given(), &Env::from_process()).map_err(|e| e.message)?;
            // Explicit model control: what is loaded now (or a request's change of it), not
            // --load-model, which names what a start loads.
            if let Some(loaded) =
                loaded.filter(|_| config.model_control == ModelControlMode::Explicit)
            {
                config.load_model = loaded.models.clone();
                config.model_configs = loaded.configs.clone();
            }
            build_settings(&config, make_app)
        },
    );
    match Arbiter::start(settings, reloader) {
        Ok(arbiter) => arbiter.run(),
        Err(e) => fail(&config, e.code, &e.message),
    }
}

struct Loaded {
    config: Config,
    print_config: bool,
    check_config: bool,
    probe: bool,
}

struct Exit(ExitCode);

fn load(sources: &Sources) -> Result<Loaded, Exit> {
    let opts = match sources.load() {
        Ok(o) => o,
        Err(LoadError::Info(text)) => {
            print!("{text}");
            return Err(Exit(ExitCode::Ok));
        }
        Err(LoadError::Config(e)) => {
            eprintln!("serve: error: {}", e.message);
            return Err(Exit(if e.usage {
                ExitCode::Usage
            } else {
                ExitCode::Config
            }));
        }
    };
    let (print_config, check_config, probe) = (opts.print_config, opts.check_config, opts.probe);
    match Config::resolve(opts.given(), &Env::from_process()) {
        Ok(config) => Ok(Loaded {
            config,
            print_config,
            check_config,
            probe,
        }),
        Err(e) => {
            eprintln!("serve: error: {}", e.message);
            Err(Exit(ExitCode::Config))
        }
    }
}

/// The master's settings for this configuration.
fn build_settings(config: &Config, make_app: MakeApp) -> Result<Settings, String> {
    Ok(Settings {
        app: make_app(config)?,
        tls: serve_tls::Tls::from_values(&config.values)?.map(Arc::new),
        tokens: match &config.values.auth_token_file {
            Some(file) => Some(Arc::new(serve_worker::auth::Tokens::read(file)?)),
            None => None,
        },
        config: Arc::new(config.clone()),
    })
}

/// Reports a fatal error on one line: in the error log, and on stderr when the log is a file.
fn fail(config: &Config, code: ExitCode, message: &str) -> i32 {
    tracing::error!("{message}");
    if !matches!(config.log().error_log, serve_log::Target::Stderr) {
        eprintln!("serve: error: {message}");
    }
    code.code()
}

/// Panics are logged as error lines (with their location) rather than raw stderr text. A
/// panic inside an app is also caught and answered 500 by the worker.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = serve_app::panic_message(info.payload());
        match info.location() {
            Some(l) => tracing::error!("panic at {}:{}: {what}", l.file(), l.line()),
            None => tracing::error!("panic: {what}"),
        }
    }));
}

/// The model app: the `serve` binary's app, built from APP and the model flags.
pub fn model_app(config: &Config) -> Result<Arc<dyn AppFactory>, String> {
    // The model app answers REST; gRPC (KServe V2's, tritonclient's) is answered beside it
    // on the same listeners, its messages bounded by --max-body-size as REST bodies are.
    Ok(Arc::new(serve_grpc::GrpcAppFactory::new(
        serve_model::ModelAppFactory::new(config.app.clone(), &config.values)
            .loading(&config.load_model, &config.model_configs),
        config.values.max_body_size,
    )))
}
