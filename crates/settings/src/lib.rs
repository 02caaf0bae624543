//! serve's settings, at the bottom of the house: the table (each setting declared once:
//! flag, default, help, kind), the kinds that parse and check values, and [`Config`], the one
//! resolved value that the master, the workers, the app and the runtime read.
//!
//! - [`table`]: the `settings!` table, its layer type [`Table`] (the text each layer gives)
//!   and its resolved [`Values`].
//! - [`kinds`]: what a value looks like ([`Kind`]); also used by a manifest's per-model keys.
//! - [`config`]: [`Config`] (the table's values with the app, the addresses and the worker
//!   count, whose defaults come from the environment) and [`ConfigError`].
//! - [`bind`] and [`forwarded`]: the value types of `--bind` and `--forwarded-allow-ips`.
//!
//! Adding a setting is one line of the table and the code that reads it.
#![forbid(unsafe_code)]

pub mod bind;
pub mod config;
pub mod forwarded;
pub mod kinds;
pub mod table;

pub use bind::{Bind, BindError, DEFAULT_PORT};
pub use config::{Config, ConfigError, Defaults, Env, Given};
pub use forwarded::{ForwardedAllow, NotAnAddress};
pub use kinds::Kind;
pub use table::{Table, Values};
