//! What the state files written under the poller table's lock share: who a poller is, how the
//! base config is written in a profile column, how long a record is kept, and the checksum
//! their headers carry. The poller table ([`super::pollers`]), the history
//! ([`super::history`]) and the steady memory ([`super::steady`]) build on it, and on nothing
//! of each other's format.

pub use crate::hash::checksum;

/// How the base config (no `agent-send` profile) is written in the profile column; `*` is not
/// a character profile names may use.
pub const BASE: &str = "*";

/// A poller not seen for this long is forgotten (it is new, so owed, if it comes back), and a
/// steady average not moved for this long is dropped.
pub const FORGET_AFTER_MS: u64 = 86_400_000;

/// One load balancer asking about one backend.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Poller {
    /// The peer's address, canonical (`::ffff:10.0.0.1` is `10.0.0.1`), or `unknown`.
    pub peer: String,
    /// The `agent-send` profile, `None` for the base config.
    pub profile: Option<String>,
}

impl Poller {
    pub fn new(peer: Option<std::net::IpAddr>, profile: Option<&str>) -> Poller {
        Poller {
            peer: peer.map_or_else(|| "unknown".into(), |ip| ip.to_canonical().to_string()),
            profile: profile.map(str::to_string),
        }
    }
}
