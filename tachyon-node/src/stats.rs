//! The core's counters as plain JS objects (numbers: exact up to 2^53).

use std::collections::HashMap;

use napi_derive::napi;

/// What `bus.stats()` returns: this side's counters.
#[napi(object)]
pub struct BusStats {
    /// Messages this side committed.
    pub sent_messages: f64,
    /// Their payload bytes.
    pub sent_bytes: f64,
    /// Messages this side received.
    pub received_messages: f64,
    /// Their payload bytes.
    pub received_bytes: f64,
    /// Times a send found the ring full (one per episode).
    pub full_waits: f64,
    /// Times a receive slept on the futex.
    pub sleeps: f64,
    /// Sleeps no wake-up ended (lost wake-ups the watchdog rescued); 0 when healthy.
    pub watchdog_rescues: f64,
    /// Times a send woke a sleeping receiver.
    pub wakes: f64,
    /// Calls that timed out.
    pub timeouts: f64,
    /// Times the peer was found dead.
    pub peer_deaths: f64,
    /// Corruption or protocol violations seen.
    pub protocol_errors: f64,
}

impl From<tachyon::BusStats> for BusStats {
    #[allow(clippy::cast_precision_loss)] // counts stay far below 2^53
    fn from(s: tachyon::BusStats) -> Self {
        let n = |v: u64| v as f64;
        Self {
            sent_messages: n(s.sent_messages),
            sent_bytes: n(s.sent_bytes),
            received_messages: n(s.received_messages),
            received_bytes: n(s.received_bytes),
            full_waits: n(s.full_waits),
            sleeps: n(s.sleeps),
            watchdog_rescues: n(s.watchdog_rescues),
            wakes: n(s.wakes),
            timeouts: n(s.timeouts),
            peer_deaths: n(s.peer_deaths),
            protocol_errors: n(s.protocol_errors),
        }
    }
}

/// What `server.stats()` returns.
#[napi(object)]
pub struct ServerStats {
    /// Clients (connections) accepted.
    pub accepted: f64,
    /// Clients turned away.
    pub refused: f64,
    /// Clients served now.
    pub active: f64,
    /// Requests answered.
    pub requests: f64,
    /// Clients dropped or requests skipped for breaking the protocol.
    pub protocol_errors: f64,
    /// Backpressure pauses (TCP).
    pub paused: f64,
    /// Error replies sent, by error code.
    pub errors: HashMap<String, f64>,
}

impl From<tachyon::ServerStats> for ServerStats {
    #[allow(clippy::cast_precision_loss)] // counts stay far below 2^53
    fn from(s: tachyon::ServerStats) -> Self {
        let n = |v: u64| v as f64;
        Self {
            accepted: n(s.accepted),
            refused: n(s.refused),
            active: n(s.active),
            requests: n(s.requests),
            protocol_errors: n(s.protocol_errors),
            paused: n(s.paused),
            errors: s.errors.iter().map(|(c, v)| (c.to_string(), n(*v))).collect(),
        }
    }
}
