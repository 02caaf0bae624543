//! What the master is told to do: the resolved configuration and the app, built by the
//! `serve` binary, and built again on every reload.

use std::ops::Deref;
use std::sync::Arc;

use serve_app::AppFactory;
use serve_settings::Config;

/// The master's settings: every setting (reached through `Deref`: `settings.timeout`) and
/// the app.
#[derive(Clone)]
pub struct Settings {
    /// Every setting, resolved; the workers get the same.
    pub config: Arc<Config>,
    /// The application.
    pub app: Arc<dyn AppFactory>,
    /// TLS, its files read and checked (`--certfile`); `None`: cleartext.
    pub tls: Option<Arc<serve_tls::Tls>>,
    /// The bearer tokens the API needs (`--auth-token-file`); `None`: open.
    pub tokens: Option<Arc<serve_worker::auth::Tokens>>,
}

impl Deref for Settings {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

impl Settings {
    /// The addresses that serve only `/metrics` and `/status` (`--metrics-bind`); when there
    /// are some, the other listeners no longer serve them. Bound after the others.
    pub fn metrics_binds(&self) -> &[serve_settings::Bind] {
        self.metrics_bind.as_deref().unwrap_or_default()
    }

    /// The addresses that serve gRPC only (`--grpc-bind`); gRPC is served on the `--bind`
    /// addresses too. Bound after those.
    pub fn grpc_binds(&self) -> &[serve_settings::Bind] {
        self.grpc_bind.as_deref().unwrap_or_default()
    }

    /// The user the workers switch to (`--user`).
    pub fn uid(&self) -> Option<nix::unistd::Uid> {
        self.user.as_ref().map(|u| u.1)
    }

    /// The group the workers switch to (`--group`).
    pub fn gid(&self) -> Option<nix::unistd::Gid> {
        self.group.as_ref().map(|g| g.1)
    }
}
