//! How a bus is opened: who may connect, how long a handshake may take, and what a
//! connector accepts from a listener. Secure by default: a socket only its owner can
//! open, peers of the same user only, bounded waits everywhere.

use std::time::Duration;

/// Default bound on a whole connect (socket, handshake, extension exchange).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on a listener's wait for a connector to finish the handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default largest ring a connector maps: 1 GiB.
pub const DEFAULT_MAX_CAPACITY: usize = 1 << 30;
/// A connector pre-faults (populates) at most this much of a mapping; the rest faults
/// in as it is used, so a hostile listener's sparse memfd costs no memory up front.
pub(crate) const POPULATE_LIMIT: usize = 64 << 20;

/// How a listener (a one-shot `listen` or an `RpcServer`) accepts connectors.
///
/// ```
/// use std::time::Duration;
/// let opts = tachyon::ListenOptions::new()
///     .allow_uid(1001) // a deliberate cross-user setup
///     .socket_mode(0o660)
///     .handshake_timeout(Duration::from_secs(1));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct ListenOptions {
    pub(crate) socket_mode: u32,
    pub(crate) allowed_uids: Vec<u32>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) fast_mode: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            socket_mode: 0o600,
            allowed_uids: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            fast_mode: std::env::var_os("TACHYON_NO_FAST").is_none(),
        }
    }
}

impl ListenOptions {
    /// Socket mode 0600 whatever the umask, peers of this user only, 2 s handshakes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of the socket file (default `0o600`, set after `bind` whatever
    /// the umask). Widening them lets other users reach the socket; they are still
    /// refused unless their uid is allowed with [`ListenOptions::allow_uid`].
    #[must_use]
    pub fn socket_mode(mut self, mode: u32) -> Self {
        self.socket_mode = mode & 0o777;
        self
    }

    /// Accepts connectors running as `uid` besides this process's own effective uid
    /// (checked with `SO_PEERCRED`).
    #[must_use]
    pub fn allow_uid(mut self, uid: u32) -> Self {
        self.allowed_uids.push(uid);
        self
    }

    /// How long a connector may take to finish the handshake before it is dropped
    /// (default 2 s).
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Whether to offer the fast ring protocol to a connector of ours (default true). A
    /// peer of upstream's never sees the offer and always gets ABI v0x04; turning it off
    /// keeps peers of ours on ABI v0x04 too (for comparison and debugging).
    #[must_use]
    pub fn fast_mode(mut self, enabled: bool) -> Self {
        self.fast_mode = enabled;
        self
    }

    /// The socket file's permission bits.
    pub fn mode(&self) -> u32 {
        self.socket_mode
    }

    /// Whether a peer running as `uid` may connect.
    pub fn allows(&self, uid: u32) -> bool {
        allowed(uid, &self.allowed_uids)
    }
}

/// How a connector opens a bus.
///
/// ```
/// use std::time::Duration;
/// let opts = tachyon::ConnectOptions::new()
///     .timeout(Duration::from_secs(2))
///     .max_capacity(1 << 26);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub(crate) timeout: Duration,
    pub(crate) allowed_uids: Vec<u32>,
    pub(crate) max_capacity: usize,
    pub(crate) fast_mode: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_CONNECT_TIMEOUT,
            allowed_uids: Vec::new(),
            max_capacity: DEFAULT_MAX_CAPACITY,
            fast_mode: std::env::var_os("TACHYON_NO_FAST").is_none(),
        }
    }
}

impl ConnectOptions {
    /// 10 s timeout, listeners of this user only, rings up to 1 GiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bound on the whole connect, handshake included (default 10 s). A listener that
    /// accepts and never answers fails the connect with [`crate::Error::Timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts a listener running as `uid` (and a socket file owned by it) besides this
    /// process's own effective uid.
    #[must_use]
    pub fn allow_uid(mut self, uid: u32) -> Self {
        self.allowed_uids.push(uid);
        self
    }

    /// The largest ring capacity this connector maps (default 1 GiB); a listener that
    /// offers more is refused with [`crate::Error::CapacityLimit`].
    #[must_use]
    pub fn max_capacity(mut self, bytes: usize) -> Self {
        self.max_capacity = bytes;
        self
    }

    /// Whether to accept a listener's offer of the fast ring protocol (default true);
    /// see [`ListenOptions::fast_mode`].
    #[must_use]
    pub fn fast_mode(mut self, enabled: bool) -> Self {
        self.fast_mode = enabled;
        self
    }

    /// The connect timeout.
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }

    /// Whether a listener running as `uid` is trusted.
    pub fn allows(&self, uid: u32) -> bool {
        allowed(uid, &self.allowed_uids)
    }
}

fn allowed(uid: u32, extra: &[u32]) -> bool {
    uid == rustix::process::geteuid().as_raw() || extra.contains(&uid)
}
