//! What a worker needs to know, resolved by the `serve` binary from flags and the config file.

use std::net::IpAddr;
use std::time::Duration;

/// A worker's settings. Sizes are bytes; 0 disables a limit where gunicorn allows it.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Runtime threads: 1 runs a current-thread runtime (one core per worker, the default),
    /// more runs a multi-thread runtime (`--threads`).
    pub threads: usize,
    /// Most simultaneous connections per worker (`--worker-connections`).
    pub worker_connections: usize,
    /// How long an idle keep-alive connection is kept (`--keep-alive`); 0 closes each
    /// connection after its response.
    pub keep_alive: Duration,
    /// Keep-alive connections older than this (±10%) are asked to reconnect
    /// (`--max-connection-age`); zero: never.
    pub max_connection_age: Duration,
    /// Longest time to receive a request's head once its first byte arrived (slowloris).
    pub header_timeout: Duration,
    /// Longest time to receive a request's body once its head arrived.
    pub body_timeout: Duration,
    /// How long a draining worker waits for its connections before giving up.
    pub graceful_timeout: Duration,
    /// Longest request line (`--limit-request-line`), 414 past it.
    pub limit_request_line: usize,
    /// Most header fields (`--limit-request-fields`), 431 past it.
    pub limit_request_fields: usize,
    /// Longest header field, name and value (`--limit-request-field-size`), 431 past it.
    pub limit_request_field_size: usize,
    /// Largest request body after decompression (`--max-body-size`), 413 past it.
    pub max_body_size: u64,
    /// Peers whose `X-Forwarded-For` is believed (`--forwarded-allow-ips`).
    pub forwarded_allow_ips: ForwardedAllow,
    /// How often the worker proves it is alive; a fraction of `--timeout`.
    pub heartbeat_interval: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            threads: 1,
            worker_connections: 1000,
            keep_alive: Duration::from_secs(2),
            max_connection_age: Duration::ZERO,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            graceful_timeout: Duration::from_secs(30),
            limit_request_line: 4094,
            limit_request_fields: 100,
            limit_request_field_size: 8190,
            max_body_size: 64 << 20,
            forwarded_allow_ips: ForwardedAllow::default(),
            heartbeat_interval: Duration::from_secs(1),
        }
    }
}

/// The peers trusted to say who the client is, as gunicorn's `forwarded_allow_ips`:
/// a comma-separated list of addresses, or `*` for every peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardedAllow {
    /// Every peer (`*`): only behind a proxy that overwrites the header.
    All,
    /// These peers.
    Ips(Vec<IpAddr>),
}

impl Default for ForwardedAllow {
    fn default() -> Self {
        ForwardedAllow::Ips(vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ])
    }
}

impl ForwardedAllow {
    /// Whether this peer may set the client address.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        match self {
            ForwardedAllow::All => true,
            ForwardedAllow::Ips(ips) => ips.iter().any(|ip| *ip == peer.to_canonical()),
        }
    }
}

/// An entry of `--forwarded-allow-ips` that is not an IP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address; expected a comma-separated list of addresses or *")]
pub struct NotAnAddress(pub String);

impl std::str::FromStr for ForwardedAllow {
    type Err = NotAnAddress;
    fn from_str(s: &str) -> Result<Self, NotAnAddress> {
        if s.trim() == "*" {
            return Ok(ForwardedAllow::All);
        }
        let ips = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<IpAddr>().map_err(|_| NotAnAddress(p.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ForwardedAllow::Ips(ips))
    }
}

impl std::fmt::Display for ForwardedAllow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardedAllow::All => f.write_str("*"),
            ForwardedAllow::Ips(ips) => {
                let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forwarded_allow_ips() {
        let a: ForwardedAllow = "127.0.0.1, 10.0.0.1".parse().unwrap();
        assert!(a.trusts("10.0.0.1".parse().unwrap()));
        assert!(a.trusts("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!a.trusts("10.0.0.2".parse().unwrap()));
        assert_eq!("*".parse::<ForwardedAllow>().unwrap(), ForwardedAllow::All);
        let e = "localhost".parse::<ForwardedAllow>().unwrap_err();
        assert_eq!(e, NotAnAddress("localhost".into()));
        assert!(e.to_string().contains("\"localhost\""), "{e}");
    }
}
