//! The settings table: each setting is one line of `settings!`, from which come its flag
//! (and so its config-file key and its `SERVE_CMD_ARGS` word), its `--help` text with the
//! default, the default itself, how its value is parsed and checked (its [`Kind`]), its field
//! in [`Values`], the layer merge and its `--print-config` line.
//!
//! Every layer carries the text as given (`Option<String>`), so a layer that does not set a
//! value is told apart from one that sets the default, and every value is checked once, with
//! one message, whichever layer it came from.

use clap::ArgAction;

use crate::config::ConfigError;
use crate::kinds::*;

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
                    allow_negative_numbers = true,
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
    grpc_bind: Optional<Listen> = None, "Server",
        "Serve gRPC alone on this address too (repeatable), for clients or a Kubernetes \
         Service that route gRPC to a port of its own; gRPC is always served on the --bind \
         addresses as well. [default: none]";
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
    http2_keepalive_interval: Seconds = Some("60"), "Timeouts",
        "Ping an HTTP/2 connection (gRPC's channels) that has been quiet this long, and close \
         it if the ping is not answered within --http2-keepalive-timeout; while pings are on, \
         an idle HTTP/2 connection is kept (it is not closed after --keep-alive), as gRPC \
         clients expect of their channels. 0: no pings, and --keep-alive closes idle ones.";
    http2_keepalive_timeout: PositiveSeconds = Some("20"), "Timeouts",
        "How long an HTTP/2 keep-alive ping may go unanswered before the connection is closed.";
    header_timeout: PositiveSeconds = Some("30"), "Timeouts",
        "Longest time to receive a request's head (slowloris).";
    body_timeout: PositiveSeconds = Some("60"), "Timeouts",
        "Longest time to receive a request's body.";
    min_rate: Rate = Some("500"), "Timeouts",
        "The slowest a request head, a TLS handshake or a body may arrive, past its first \
         second: slower, the head or handshake is dropped and the body answered 408, so \
         that a trickle cannot hold a connection for all of --header-timeout or \
         --body-timeout (Apache's mod_reqtimeout MinRate); 0 disables.";
    request_timeout: Seconds = Some("0"), "Timeouts",
        "Answer 504 to an inference that runs longer; 0 disables.";
    max_requests: Requests = Some("0"), "Workers",
        "Requests after which a worker is replaced (drained first); 0 disables.";
    max_requests_jitter: Requests = Some("0"), "Workers",
        "A random 0..=N added to --max-requests per worker, so workers do not restart together.";
    max_worker_memory: Size = Some("0"), "Workers",
        "A worker whose own memory (RssAnon: not the pages it shares with the master or the \
         binary's) passes this, read every heartbeat, finishes its requests and is replaced, \
         as after --max-requests; 0 disables. A limit that a worker passes as soon as it has \
         served is logged once by that worker and not applied.";
    limit_request_line: Bytes = Some("4094"), "Limits",
        "Longest request line; 414 past it; 0 is unlimited.";
    limit_request_fields: Count = Some("100"), "Limits",
        "Most header fields in a request; 431 past it; 0 is unlimited.";
    limit_request_field_size: Bytes = Some("8190"), "Limits",
        "Longest header field; 431 past it; 0 is unlimited.";
    max_body_size: Size = Some("64M"), "Limits",
        "Largest request body, after decompression; 413 past it (a gRPC message: \
         RESOURCE_EXHAUSTED); 0 is unlimited.";
    http2_max_concurrent_streams: AtLeastOne = Some("200"), "Limits",
        "Most requests (gRPC calls, streams) one HTTP/2 connection may have under way at \
         once; the client waits to start more.";
    compress_min_size: Size = Some("1K"), "Limits",
        "Answers at least this large are gzip- or deflate-compressed when the request's \
         Accept-Encoding takes one (with Vary: Accept-Encoding); 0 never compresses.";
    max_queue: AtLeastOne = Some("1024"), "Models",
        "Requests waiting per model in a worker; past it, 503 with Retry-After.";
    max_batch_size: Rows = Some("64"), "Models",
        "Dynamic batching: most rows merged into one model call; 1 disables.";
    batch_timeout_us: Micros = Some("0"), "Models",
        "Dynamic batching: how long a batch may wait for more requests; 0 merges only the \
         requests already waiting, adding no delay.";
    model_name: Optional<ModelName> = None, "Models",
        "The name the model of a single-model start (a file, a Triton model directory, a \
         repository or directory holding one model) is served under, whatever its file or \
         directory is called: KServe names a model after its InferenceService. Refused with \
         two or more models, or with an app.toml (which names its models). \
         [default: from the file]";
    model_control: ModelControl = Some("none"), "Models",
        "Triton's model control: none serves every model of APP, and load and unload answer \
         501 (change the files, then HUP); explicit serves only the models of the repository \
         APP that --load-model names or a load request (REST POST \
         /v2/repository/models/NAME/load, gRPC RepositoryModelLoad) asks for, each load or \
         unload proven and served by a new generation of workers, as a reload.";
    model_load_timeout: PositiveSeconds = Some("300"), "Models",
        "How long a load or unload request waits for the generation that serves it (its \
         turn behind earlier ones, the proof and the workers' boot) before it is answered \
         504; the change goes on.";
    engine: Engine = Some("tract"), "Models",
        "The engine of the models whose app.toml entry names none: tract (in the binary) or \
         onnxruntime (its library loaded at run time, for CNNs, RNNs and transformers, which \
         it runs about 3x faster).";
    onnxruntime: Optional<File> = None, "Models",
        "The onnxruntime library (libonnxruntime.so) for models on that engine. Without it: \
         ORT_DYLIB_PATH, then the `onnxruntime` Python package of the environment serve is \
         installed in. [default: found]";
    model_threads: AtLeastOne = Some("1"), "Models",
        "onnxruntime's intra-op threads per worker, shared by its models (so -w = cores \
         stays the sizing rule). tract ignores it: it runs a call on one thread.";
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
    certfile: Optional<File> = None, "TLS and tokens",
        "The server's certificate chain (PEM, the server's first): TLS on every TCP address \
         that serves requests (--bind, --grpc-bind, fd://, systemd's), not on --metrics-bind \
         nor unix: sockets. Read at start and on HUP, and again when its file changes. \
         [default: none, cleartext]";
    keyfile: Optional<File> = None, "TLS and tokens",
        "The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).";
    ca_certs: Optional<File> = None, "TLS and tokens",
        "CA certificates (PEM) that client certificates are checked against (--cert-reqs).";
    cert_reqs: CertReqs = Some("0"), "TLS and tokens",
        "Client certificates, as gunicorn: 0 not asked, 1 checked against --ca-certs when a \
         client sends one, 2 required.";
    ciphers: Optional<Ciphers> = None, "TLS and tokens",
        "The cipher suites offered, by rustls' names, comma- or colon-separated \
         (TLS13_AES_256_GCM_SHA384,TLS13_CHACHA20_POLY1305_SHA256). [default: rustls' own]";
    tls_min_version: TlsVersion = Some("1.2"), "TLS and tokens",
        "The oldest TLS version accepted: 1.2 or 1.3.";
    auth_token_file: Optional<File> = None, "TLS and tokens",
        "Bearer tokens, one per line (optionally followed by a name for the access log's \
         %(u)s; blank lines and # comments allowed): every API request then needs \
         Authorization: Bearer TOKEN (gRPC: the authorization metadata), else 401 (gRPC \
         UNAUTHENTICATED). Open without one: the server's health, / and /openapi.json, and \
         --metrics-bind's listeners. Read at start, on HUP and when the file changes. \
         [default: none, open]";
    access_logfile: Optional<LogFile> = None, "Logging",
        "The access log: a file, or `-` for stdout. [default: none]";
    access_log_format: AccessLogFormat = Some(serve_log::DEFAULT_FORMAT), "Logging",
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
    use std::time::Duration;

    use super::*;

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
