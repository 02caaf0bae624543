//! The command line, as gunicorn's: the same flag names, the same meanings.
//!
//! Every field is optional here so that the layers (command line, `SERVE_CMD_ARGS`, the config
//! file) can be told apart and merged by precedence in [`crate::config`]. The settings that
//! are plain values are declared once each in [`serve_settings::table`], their defaults with them;
//! here are the app, the actions and the two settings whose defaults come from the
//! environment.
//!
//! The flags' doc comments are clap's `--help` text, written for a terminal: `[IPV6]:PORT` is
//! an address form there, not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{ArgAction, Parser};

use serve_settings::Table;

/// The flags; also what a config file's keys and `SERVE_CMD_ARGS` are parsed into.
#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "serve",
    version,
    about = "Serve machine-learning models: a pre-fork, multi-worker server speaking KServe V2, \
             TF-Serving V1 and your app's own routes.",
    long_about = None,
    after_help = "APP is an .onnx file, a model repository directory (NAME.onnx, NAME/model.onnx, \
                  or Triton's NAME/VERSION/model.onnx with an optional NAME/config.pbtxt), or an \
                  app directory with an app.toml; without APP, the iris model embedded in the \
                  binary is served.\n\
                  Durations are seconds; sizes are bytes with an optional K, M or G suffix.\n\
                  Precedence: command line > SERVE_CMD_ARGS > config file (-c) > $PORT and \
                  $WEB_CONCURRENCY > defaults.\n\
                  Signals to the master: TERM graceful stop, INT/QUIT quick stop, HUP reload, \
                  TTIN/TTOU one worker more/fewer, USR1 reopen logs, USR2 upgrade the binary, \
                  WINCH stop the workers."
)]
pub struct Opts {
    /// The model or app to serve: an .onnx file, a model repository, or an app directory.
    #[arg(value_name = "APP")]
    pub app: Option<PathBuf>,

    /// A TOML config file whose keys are the long flag names with `_` (keep_alive = 5).
    #[arg(short = 'c', long, value_name = "FILE", help_heading = "Config")]
    pub config: Option<PathBuf>,

    /// Check the configuration and prove the app (build every model), then exit.
    #[arg(long, help_heading = "Config")]
    pub check_config: bool,

    /// Print the resolved configuration as TOML, then exit.
    #[arg(long, help_heading = "Config")]
    pub print_config: bool,

    /// Ask GET /v2/health/ready of the server at the first address this configuration binds,
    /// then exit 0 when it answers 200, 1 otherwise (a container's HEALTHCHECK, no curl needed).
    #[arg(long, help_heading = "Config")]
    pub probe: bool,

    /// Address to listen on: HOST:PORT, :PORT, [IPV6]:PORT, unix:PATH or fd://N; repeatable.
    /// Port 0 picks a free port. [default: 127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set]
    #[arg(short = 'b', long, value_name = "ADDRESS", action = ArgAction::Append, help_heading = "Server")]
    pub bind: Vec<String>,

    /// Under --model-control explicit: a model of the repository to load at start (its
    /// name; `*` for every model); repeatable. Without it the server starts with no model
    /// and loads what load requests ask for. [default: none]
    #[arg(long, value_name = "NAME", action = ArgAction::Append, help_heading = "Models")]
    pub load_model: Vec<String>,

    /// Worker processes, or `auto` for one per CPU. [default: $WEB_CONCURRENCY or 1]
    #[arg(
        short = 'w',
        long,
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Server"
    )]
    pub workers: Option<String>,

    // Every other setting: declared in serve_settings::table.
    #[command(flatten)]
    pub settings: Table,
}
