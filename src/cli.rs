//! The command line, as gunicorn's: the same flag names, the same meanings.
//!
//! Every field is optional here so that the layers (command line, `SERVE_CMD_ARGS`, the config
//! file) can be told apart and merged by precedence in [`crate::config`]; the defaults live in
//! [`crate::config::Defaults`] and are shown in `--help` (a test keeps the two in step).
//!
//! The flags' doc comments are clap's `--help` text, written for a terminal: `[IPV6]:PORT` is
//! an address form there, not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{ArgAction, Parser};

/// The flags; also what a config file's keys and `SERVE_CMD_ARGS` are parsed into.
#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "serve",
    version,
    about = "Serve machine-learning models: a pre-fork, multi-worker server speaking KServe V2, \
             TF-Serving V1 and your app's own routes.",
    long_about = None,
    after_help = "APP is an .onnx file, a model repository directory, or an app directory with an \
                  app.toml; without APP, the iris model embedded in the binary is served.\n\
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

    /// Worker processes, or `auto` for one per CPU. [default: $WEB_CONCURRENCY or 1]
    #[arg(short = 'w', long, value_name = "N", help_heading = "Server")]
    pub workers: Option<String>,

    /// Runtime threads per worker: 1 runs a single-threaded event loop. [default: 1]
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub threads: Option<usize>,

    /// Most simultaneous connections per worker. [default: 1000]
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub worker_connections: Option<usize>,

    /// Length of the listen queue. [default: 2048]
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub backlog: Option<i32>,

    /// Set SO_REUSEPORT on the listeners, so that another server may bind the same address.
    #[arg(long, help_heading = "Server")]
    pub reuse_port: bool,

    /// Load the app once in the master before forking; workers share its memory.
    #[arg(long, help_heading = "Server")]
    pub preload: bool,

    /// A worker whose event loop is silent this long is killed and replaced; 0 disables.
    /// [default: 30]
    #[arg(short = 't', long, value_name = "SECONDS", help_heading = "Timeouts")]
    pub timeout: Option<String>,

    /// How long stopping workers may take to finish their requests. [default: 30]
    #[arg(long, value_name = "SECONDS", help_heading = "Timeouts")]
    pub graceful_timeout: Option<String>,

    /// How long an idle keep-alive connection is kept; 0 closes after each response.
    /// [default: 2]
    #[arg(long, value_name = "SECONDS", help_heading = "Timeouts")]
    pub keep_alive: Option<String>,

    /// Longest time to receive a request's head (slowloris). [default: 30]
    #[arg(long, value_name = "SECONDS", help_heading = "Timeouts")]
    pub header_timeout: Option<String>,

    /// Longest time to receive a request's body. [default: 60]
    #[arg(long, value_name = "SECONDS", help_heading = "Timeouts")]
    pub body_timeout: Option<String>,

    /// Answer 504 to an inference that runs longer; 0 disables. [default: 0]
    #[arg(long, value_name = "SECONDS", help_heading = "Timeouts")]
    pub request_timeout: Option<String>,

    /// Requests after which a worker is replaced (drained first); 0 disables. [default: 0]
    #[arg(long, value_name = "N", help_heading = "Workers")]
    pub max_requests: Option<u64>,

    /// A random 0..=N added to --max-requests per worker, so workers do not restart together.
    /// [default: 0]
    #[arg(long, value_name = "N", help_heading = "Workers")]
    pub max_requests_jitter: Option<u64>,

    /// Longest request line; 414 past it; 0 is unlimited. [default: 4094]
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    pub limit_request_line: Option<usize>,

    /// Most header fields in a request; 431 past it; 0 is unlimited. [default: 100]
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub limit_request_fields: Option<usize>,

    /// Longest header field; 431 past it; 0 is unlimited. [default: 8190]
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    pub limit_request_field_size: Option<usize>,

    /// Largest request body, after decompression; 413 past it; 0 is unlimited. [default: 64M]
    #[arg(long, value_name = "SIZE", help_heading = "Limits")]
    pub max_body_size: Option<String>,

    /// Requests waiting per model in a worker; past it, 503 with Retry-After. [default: 1024]
    #[arg(long, value_name = "N", help_heading = "Models")]
    pub max_queue: Option<usize>,

    /// Dynamic batching: most rows merged into one model call; 1 disables. [default: 64]
    #[arg(long, value_name = "ROWS", help_heading = "Models")]
    pub max_batch_size: Option<usize>,

    /// Dynamic batching: how long a batch may wait for more requests; 0 merges only the
    /// requests already waiting, adding no delay. [default: 0]
    #[arg(long, value_name = "MICROSECONDS", help_heading = "Models")]
    pub batch_timeout_us: Option<u64>,

    /// Write the master's pid to this file.
    #[arg(short = 'p', long, value_name = "FILE", help_heading = "Process")]
    pub pid: Option<PathBuf>,

    /// Workers run as this user (name or uid); the master keeps its user to rebind and upgrade.
    #[arg(short = 'u', long, value_name = "USER", help_heading = "Process")]
    pub user: Option<String>,

    /// Workers run as this group (name or gid).
    #[arg(short = 'g', long, value_name = "GROUP", help_heading = "Process")]
    pub group: Option<String>,

    /// The umask for unix sockets and files serve creates (octal as 0o22 or 022). [default: 0]
    #[arg(long, value_name = "MASK", help_heading = "Process")]
    pub umask: Option<String>,

    /// The process name shown by ps: NAME: master, NAME: worker. [default: serve]
    #[arg(short = 'n', long, value_name = "NAME", help_heading = "Process")]
    pub name: Option<String>,

    /// Peers trusted to set X-Forwarded-For: comma-separated addresses, or `*`.
    /// [default: 127.0.0.1,::1]
    #[arg(long, value_name = "IPS", help_heading = "Process")]
    pub forwarded_allow_ips: Option<String>,

    /// The access log: a file, or `-` for stdout. [default: none]
    #[arg(long, value_name = "FILE", help_heading = "Logging")]
    pub access_logfile: Option<String>,

    /// The access log's format, gunicorn's atoms.
    /// [default: %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"]
    #[arg(long, value_name = "FORMAT", help_heading = "Logging")]
    pub access_log_format: Option<String>,

    /// The error log: a file, or `-` for stderr. [default: -]
    #[arg(
        long,
        alias = "log-file",
        value_name = "FILE",
        help_heading = "Logging"
    )]
    pub error_logfile: Option<String>,

    /// debug, info, warning, error or critical. [default: info]
    #[arg(long, value_name = "LEVEL", help_heading = "Logging")]
    pub log_level: Option<String>,

    /// text (gunicorn's lines) or json (one object per line), for both logs. [default: text]
    #[arg(long, value_name = "FORMAT", help_heading = "Logging")]
    pub log_format: Option<String>,
}
