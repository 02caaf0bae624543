//! `--forwarded-allow-ips`: the peers trusted to say who the client is.

use std::net::IpAddr;

/// The peers trusted to say who the client is, as gunicorn's `forwarded_allow_ips`:
/// a comma-separated list of addresses, or `*` for every peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardedAllow {
    /// Every peer (`*`): only behind a proxy that overwrites the header.
    All,
    /// These peers.
    Ips(Vec<IpAddr>),
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
