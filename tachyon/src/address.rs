//! One address syntax for both transports, parsed in one place: `tcp://host:port` for
//! the TCP transport, and `unix:///path/to.sock` or a plain path for shared memory.
//!
//! ```
//! use tachyon::Address;
//! assert!(matches!(Address::parse("tcp://127.0.0.1:7000"), Ok(Address::Tcp { .. })));
//! assert!(matches!(Address::parse("tcp://[::1]:7000"), Ok(Address::Tcp { .. })));
//! assert!(matches!(Address::parse("unix:///tmp/q.sock"), Ok(Address::Unix(p)) if p == "/tmp/q.sock"));
//! assert!(matches!(Address::parse("/tmp/q.sock"), Ok(Address::Unix(_))));
//! assert!(Address::parse("tcp://nohost").is_err());
//! ```

use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::{Error, Result};

/// Where a server listens or a client connects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// The TCP transport: a host name or IP literal, and a port.
    Tcp {
        /// The host (name, IPv4 literal, or IPv6 literal without brackets).
        host: String,
        /// The port.
        port: u16,
    },
    /// Shared memory, bootstrapped over the UNIX socket at this path.
    Unix(String),
}

impl Address {
    /// Parses `tcp://host:port`, `unix://path` or a plain path.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] naming what is wrong.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &'static str| Error::InvalidAddress { address: s.to_owned(), reason };
        if let Some(rest) = s.strip_prefix("tcp://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                let (h, p) =
                    v6.split_once("]:").ok_or_else(|| bad("expected tcp://[v6-address]:port"))?;
                (h, p)
            } else {
                rest.rsplit_once(':').ok_or_else(|| bad("expected tcp://host:port"))?
            };
            if host.is_empty() {
                return Err(bad("the host is empty"));
            }
            let port =
                port.parse::<u16>().map_err(|_| bad("the port is not a number in 0..=65535"))?;
            return Ok(Self::Tcp { host: host.to_owned(), port });
        }
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(bad("the path is empty"));
            }
            return Ok(Self::Unix(path.to_owned()));
        }
        if s.contains("://") {
            return Err(bad("unknown scheme: use tcp:// or unix://"));
        }
        if s.is_empty() {
            return Err(bad("the address is empty"));
        }
        Ok(Self::Unix(s.to_owned()))
    }

    /// Resolves a TCP address to socket addresses (IP literals need no lookup).
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] for a shared-memory address, [`Error::Io`] if the name
    /// does not resolve.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>> {
        match self {
            Self::Tcp { host, port } => {
                let addrs: Vec<SocketAddr> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| Error::io("resolve the TCP address", e))?
                    .collect();
                if addrs.is_empty() {
                    return Err(Error::io(
                        "resolve the TCP address",
                        std::io::Error::other(format!("{host} has no address")),
                    ));
                }
                Ok(addrs)
            }
            Self::Unix(p) => Err(Error::InvalidAddress {
                address: p.clone(),
                reason: "a shared-memory path has no TCP address",
            }),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Self::Unix(p) => write!(f, "unix://{p}"),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_prints_back() {
        for (s, want) in [
            ("tcp://localhost:1", Address::Tcp { host: "localhost".into(), port: 1 }),
            ("tcp://10.0.0.2:65535/", Address::Tcp { host: "10.0.0.2".into(), port: 65535 }),
            ("tcp://[::1]:80", Address::Tcp { host: "::1".into(), port: 80 }),
            ("unix:///tmp/a.sock", Address::Unix("/tmp/a.sock".into())),
            ("/tmp/b.sock", Address::Unix("/tmp/b.sock".into())),
            ("rel.sock", Address::Unix("rel.sock".into())),
        ] {
            let a = Address::parse(s).unwrap();
            assert_eq!(a, want, "{s}");
            assert_eq!(Address::parse(&a.to_string()).unwrap(), a);
        }
        for bad in
            ["tcp://:1", "tcp://h", "tcp://h:99999", "tcp://[::1]80", "http://x:1", "", "unix://"]
        {
            assert!(matches!(Address::parse(bad), Err(Error::InvalidAddress { .. })), "{bad}");
        }
    }
}
