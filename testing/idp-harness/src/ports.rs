//! Ports for servers that a test starts in another process (or must name before they start).
//!
//! Binding `127.0.0.1:0`, reading the port and closing the listener races: the kernel hands the
//! just-freed port to the next `bind(:0)` (another test of the same binary, running in parallel)
//! and to outgoing connections, so the child process that was meant to bind it then fails with
//! "Address already in use". [`free_port`] avoids both:
//!
//! - ports come from below the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`,
//!   32768 when unreadable), which neither `bind(:0)` nor outgoing connections use;
//! - a process-wide counter walks that range from an offset derived from the process id, so a
//!   port is never handed out twice in one process and concurrently running test binaries start
//!   far apart;
//! - a port that cannot be bound right now (a leftover server, another program) is skipped.
//!
//! A test that only needs a listener in its own process should keep the listener bound to
//! `127.0.0.1:0` instead.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out (above the registered ports most local services use).
pub const LOWEST: u16 = 10_000;

/// Where the kernel's ephemeral range starts when `/proc` does not say (the Linux default).
const EPHEMERAL_FALLBACK: u16 = 32_768;

/// The first port of the kernel's ephemeral range: ports at or above it may be given to
/// `bind(:0)` and to outgoing connections at any time.
pub fn ephemeral_low() -> u16 {
    static LOW: OnceLock<u16> = OnceLock::new();
    *LOW.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
            // A range that leaves too little room below it: use the default split.
            .filter(|&low| low >= LOWEST + 1_000)
            .unwrap_or(EPHEMERAL_FALLBACK)
    })
}

/// How many candidates one process has taken so far.
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// A 127.0.0.1 port below the ephemeral range that was bindable when handed out and that this
/// process has not handed out before. Fails when every port of `[LOWEST, ephemeral_low())` has
/// been tried.
pub fn try_free_port() -> std::io::Result<u16> {
    let low = u32::from(ephemeral_low());
    let span = low - u32::from(LOWEST);
    // Consecutive process ids (test binaries run one after another) start far apart.
    let offset = std::process::id().wrapping_mul(7_919) % span;
    loop {
        let n = TAKEN.fetch_add(1, Ordering::Relaxed);
        if n >= span {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("no bindable port left in [{LOWEST}, {low})"),
            ));
        }
        let port = u16::try_from(u32::from(LOWEST) + (offset + n) % span)
            .expect("below the ephemeral range");
        if TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
}

/// [`try_free_port`], panicking when the range is exhausted (for tests).
pub fn free_port() -> u16 {
    try_free_port().expect("a free 127.0.0.1 port below the ephemeral range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;

    /// The two tests share the process-wide counter: one at a time, so neither holds a port the
    /// other was just handed.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn concurrent_callers_get_distinct_bindable_ports_outside_the_ephemeral_range() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let low = ephemeral_low();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..50)
                        .map(|_| {
                            let port = free_port();
                            // Bindable at hand-out (nothing else in this process got it).
                            let bound = TcpListener::bind(("127.0.0.1", port)).is_ok();
                            (port, bound)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<(u16, bool)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let distinct: HashSet<u16> = all.iter().map(|(p, _)| *p).collect();
        assert_eq!(distinct.len(), all.len(), "a port was handed out twice");
        for (port, bound) in &all {
            assert!(
                (LOWEST..low).contains(port),
                "{port} outside [{LOWEST}, {low})"
            );
            assert!(bound, "{port} was not bindable when handed out");
        }
    }

    #[test]
    fn a_port_that_is_in_use_is_skipped() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // Occupy the next candidates, then ask: the answer is none of them.
        let low = u32::from(ephemeral_low());
        let span = low - u32::from(LOWEST);
        let offset = std::process::id().wrapping_mul(7_919) % span;
        let next = TAKEN.load(Ordering::Relaxed);
        let held: Vec<TcpListener> = (0..3)
            .filter_map(|i| {
                let port = u16::try_from(u32::from(LOWEST) + (offset + next + i) % span).unwrap();
                TcpListener::bind(("127.0.0.1", port)).ok()
            })
            .collect();
        let held_ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert!(!held_ports.is_empty(), "could not occupy any candidate");
        let port = free_port();
        assert!(!held_ports.contains(&port), "{port} is held by this test");
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
