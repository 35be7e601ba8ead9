//! Resource bounds of the coordinator (`[limits]` in the config file): no
//! caller, slow or hostile, can make it buffer without limit or hold its
//! descriptors. Defaults fit a national centre's largest feeds and fleets on
//! a small machine; each is documented with its reason.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Entries one import may carry. The largest public C&C and drop feeds
    /// list well under 100,000; 2,000,000 leaves room for aggregated sets.
    pub import_max_entries: usize,
    /// Encoded bytes one import may carry (about 3 KB per entry at most).
    pub import_max_bytes: usize,
    /// An import stream that sends no chunk for this long is abandoned,
    /// nothing committed.
    pub import_idle_seconds: u64,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// Connections from one address at once (an ISP's agents each use one;
    /// NAT and operators' tools need a few).
    pub max_connections_per_peer: usize,
    /// Of those, connections without a client certificate (token callers and
    /// anyone who completed TLS without identifying).
    pub max_unidentified_per_peer: usize,
    /// A connection that moves no byte either way for this long is closed
    /// (agent streams carry a heartbeat every few seconds, so only a dead or
    /// stalled peer, or one that stopped reading, stays silent this long).
    pub idle_connection_seconds: u64,
    /// Concurrent streams on one connection (an agent uses two, a CLI one):
    /// with HTTP/2 buffering up to ~400 KiB per stream for a peer that does
    /// not read, this bounds what one connection can hold.
    pub max_streams_per_connection: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            import_max_entries: 2_000_000,
            import_max_bytes: 512 << 20,
            import_idle_seconds: 30,
            max_connections: 4096,
            max_connections_per_peer: 64,
            max_unidentified_per_peer: 16,
            idle_connection_seconds: 120,
            max_streams_per_connection: 32,
        }
    }
}

impl Limits {
    pub fn import_idle(&self) -> Duration {
        Duration::from_secs(self.import_idle_seconds)
    }
    pub fn idle_connection(&self) -> Duration {
        Duration::from_secs(self.idle_connection_seconds)
    }
    /// Refuses zeros (a zero limit would refuse everything).
    pub fn check(&self) -> Result<(), String> {
        let zero = [
            ("import_max_entries", self.import_max_entries as u64),
            ("import_max_bytes", self.import_max_bytes as u64),
            ("import_idle_seconds", self.import_idle_seconds),
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_peer",
                self.max_connections_per_peer as u64,
            ),
            (
                "max_unidentified_per_peer",
                self.max_unidentified_per_peer as u64,
            ),
            ("idle_connection_seconds", self.idle_connection_seconds),
            (
                "max_streams_per_connection",
                self.max_streams_per_connection as u64,
            ),
        ];
        match zero.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(format!("[limits] {name} must be at least 1")),
            None => Ok(()),
        }
    }
}
