//! `--flag value` parsing (no dependency needed for a handful of flags).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;

/// Parsed flags: `--name value`, `--name=value`, or a bare `--name` (value "true").
pub struct Args {
    flags: HashMap<String, String>,
}

impl Args {
    /// Parses `argv` (after the subcommand).
    pub fn parse(argv: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut flags = HashMap::new();
        let mut argv = argv.peekable();
        while let Some(arg) = argv.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            if let Some((k, v)) = name.split_once('=') {
                flags.insert(k.to_owned(), v.to_owned());
            } else if argv.peek().is_some_and(|next| !next.starts_with("--")) {
                let value = argv.next().unwrap_or_default();
                flags.insert(name.to_owned(), value);
            } else {
                flags.insert(name.to_owned(), "true".to_owned());
            }
        }
        Ok(Args { flags })
    }

    /// A string flag, when given.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    /// A required string flag.
    pub fn req(&self, name: &str) -> Result<&str, String> {
        self.opt(name)
            .ok_or_else(|| format!("--{name} is required"))
    }

    /// A parsed flag with a default.
    pub fn num<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot parse {v:?}")),
        }
    }

    /// A boolean switch.
    pub fn flag(&self, name: &str) -> bool {
        self.opt(name).is_some_and(|v| v != "false" && v != "0")
    }

    /// A loopback socket address.
    pub fn loopback(&self, name: &str) -> Result<SocketAddr, String> {
        let raw = self.req(name)?;
        let addr: SocketAddr = raw.parse().map_err(|e| format!("--{name} {raw:?}: {e}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("--{name} must be a loopback address, not {addr}"));
        }
        Ok(addr)
    }
}

/// Checks that `url` is `http://` on a loopback host.
pub fn loopback_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// on loopback is allowed"))?;
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        Ok(())
    } else {
        Err(format!("{url:?} is not a loopback URL"))
    }
}
