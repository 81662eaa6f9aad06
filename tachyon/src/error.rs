//! The one error type of the crate.

use std::time::Duration;

/// Everything that can go wrong on a Tachyon bus. Match on the variant; the `Display`
/// text says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ring has no room for the slot right now. Nothing was written.
    #[error(
        "ring buffer is full: {needed} bytes needed, {free} free; let the consumer catch up, \
         or use a blocking send with a timeout"
    )]
    Full {
        /// Bytes the slot (and any wrap-around skip) needs.
        needed: usize,
        /// Bytes free in the ring when it was checked.
        free: usize,
    },

    /// A message can never fit this ring, however empty it gets.
    #[error("a {size}-byte payload exceeds this ring's largest message of {max} bytes; listen with a larger capacity")]
    MessageTooLarge {
        /// The payload size asked for.
        size: usize,
        /// The largest payload this ring can hold (`capacity - 64`).
        max: usize,
    },

    /// A commit named more bytes than the slot reserved.
    #[error("committed size {size} exceeds the {max} bytes reserved for this slot")]
    InvalidSize {
        /// The size passed to commit.
        size: usize,
        /// The size reserved at acquire.
        max: usize,
    },

    /// The peer speaks another ABI (version, alignment, bus kind) or rejected ours.
    #[error("abi mismatch: {0}; both sides must use Tachyon ABI v0x04 and the same bus kind (SPSC or RPC)")]
    AbiMismatch(String),

    /// The peer is gone: the arena is in the `FatalError` state, or the peer process
    /// exited or closed its end. Messages already in the ring were delivered first.
    #[error("peer is dead: {0}; reconnect to a new peer")]
    PeerDead(&'static str),

    /// The peer left cleanly: it dropped or closed its bus. Everything it sent before
    /// was delivered first.
    #[error("the peer closed the bus; everything it sent was delivered")]
    PeerClosed,

    /// This side's bus was closed (from another thread) while the call waited.
    #[error("the bus was closed while this call waited")]
    Closed,

    /// Nobody accepts connections at this path (no socket, or a stale one).
    #[error("cannot connect to {path}: {source}; is a listener running there?")]
    Connect {
        /// The socket path.
        path: String,
        /// What `stat` or `connect` said.
        #[source]
        source: std::io::Error,
    },

    /// The other side runs as a user this side does not trust, or refused ours.
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// Another process is listening on this socket path.
    #[error("another process is listening on {path}; stop it or choose another path")]
    AddrInUse {
        /// The socket path.
        path: String,
    },

    /// The listener offered a ring larger than this connector accepts.
    #[error(
        "the listener offers a ring of {offered} bytes, above this connector's limit of \
         {limit}; raise it with ConnectOptions::max_capacity if you trust the listener"
    )]
    CapacityLimit {
        /// What the listener offered.
        offered: usize,
        /// The connector's limit.
        limit: usize,
    },

    /// An address is not `tcp://host:port`, `unix://path` or a path.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The address given.
        address: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// This machine cannot do what was asked (io_uring forbidden, an old kernel).
    #[error("not supported here: {0}")]
    Unsupported(String),

    /// An argument is out of its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The peer wrote a header or index that breaks the ABI. The arena is now in the
    /// `FatalError` state and the bus is unusable.
    #[error(
        "peer corrupted the shared ring ({0}); the bus is now in the FatalError state, reconnect"
    )]
    Corrupted(&'static str),

    /// The deadline passed before the operation could complete.
    #[error("timed out after {0:?}; the peer may be slow or gone")]
    Timeout(Duration),

    /// A blocking call was interrupted (a signal, or the caller's interrupt check).
    #[error("interrupted while waiting; retry the call if you still want it")]
    Interrupted,

    /// A server turned this connector away (client limit reached, shutting down).
    #[error("connection refused: {0}")]
    Refused(&'static str),

    /// TLS failed: a certificate or key that does not load, a handshake the peer
    /// refused (a client without a valid certificate, a server the CA did not sign), or a
    /// peer that does not speak TLS at all.
    #[error("tls: {0}")]
    Tls(String),

    /// The peer broke the RPC protocol (a request without a correlation id, a reply for
    /// a call that is not in flight). The offending message was consumed; the bus is
    /// still usable.
    #[error("rpc protocol violation by the peer: {0}")]
    Protocol(String),

    /// The remote handler failed: an unknown `msg_type`, a handler error or panic, or a
    /// request it could not decode. Carries the structured 0xFFFF error reply.
    #[cfg(feature = "rpc")]
    #[error(transparent)]
    Rpc(#[from] crate::rpc::RpcError),

    /// A typed payload could not be encoded or decoded with MessagePack.
    #[error("messagepack codec error: {0}; check both sides use the same types for this msg_type")]
    Codec(String),

    /// The ring capacity is not a power of two between 64 bytes and 2 GiB.
    #[error("invalid capacity {0}: must be a power of two between 64 and 2147483648 bytes")]
    InvalidCapacity(usize),

    /// The socket path cannot be used for a UNIX socket.
    #[error("invalid socket path {path:?}: {reason}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A method name, client id or channel name cannot be used (see [`crate::rpc::tiga`]).
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A channel file is not a valid channel: not one at all, another layout version,
    /// truncated, or with impossible indices or entries.
    #[error("{path} is not a usable channel: {reason}")]
    CorruptChannel {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A guard of this kind is still alive on the bus; drop or commit it first.
    #[error("a {0} guard is already open on this bus; commit or drop it before acquiring another")]
    Busy(&'static str),

    /// `set_numa_node` was given a node outside `0..64`.
    #[error("invalid NUMA node {0}: must be in 0..64 and online")]
    InvalidNumaNode(i32),

    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// An error is cloned to tell every waiter of one failure (each call in flight when the
/// peer died). An OS error keeps its OS code where it has one, else its kind and text.
impl Clone for Error {
    fn clone(&self) -> Self {
        fn io(e: &std::io::Error) -> std::io::Error {
            e.raw_os_error().map_or_else(
                || std::io::Error::new(e.kind(), e.to_string()),
                std::io::Error::from_raw_os_error,
            )
        }
        match self {
            Self::Full { needed, free } => Self::Full { needed: *needed, free: *free },
            Self::MessageTooLarge { size, max } => Self::MessageTooLarge { size: *size, max: *max },
            Self::InvalidSize { size, max } => Self::InvalidSize { size: *size, max: *max },
            Self::AbiMismatch(m) => Self::AbiMismatch(m.clone()),
            Self::PeerDead(m) => Self::PeerDead(m),
            Self::PeerClosed => Self::PeerClosed,
            Self::Closed => Self::Closed,
            Self::Connect { path, source } => {
                Self::Connect { path: path.clone(), source: io(source) }
            }
            Self::PermissionDenied(m) => Self::PermissionDenied(m.clone()),
            Self::AddrInUse { path } => Self::AddrInUse { path: path.clone() },
            Self::CapacityLimit { offered, limit } => {
                Self::CapacityLimit { offered: *offered, limit: *limit }
            }
            Self::InvalidAddress { address, reason } => {
                Self::InvalidAddress { address: address.clone(), reason }
            }
            Self::Unsupported(m) => Self::Unsupported(m.clone()),
            Self::InvalidArgument(m) => Self::InvalidArgument(m.clone()),
            Self::Corrupted(m) => Self::Corrupted(m),
            Self::Timeout(d) => Self::Timeout(*d),
            Self::Interrupted => Self::Interrupted,
            Self::Refused(m) => Self::Refused(m),
            Self::Tls(m) => Self::Tls(m.clone()),
            Self::Protocol(m) => Self::Protocol(m.clone()),
            #[cfg(feature = "rpc")]
            Self::Rpc(e) => Self::Rpc(e.clone()),
            Self::Codec(m) => Self::Codec(m.clone()),
            Self::InvalidCapacity(c) => Self::InvalidCapacity(*c),
            Self::InvalidPath { path, reason } => Self::InvalidPath { path: path.clone(), reason },
            Self::InvalidName { name, reason } => Self::InvalidName { name: name.clone(), reason },
            Self::CorruptChannel { path, reason } => {
                Self::CorruptChannel { path: path.clone(), reason: reason.clone() }
            }
            Self::Busy(m) => Self::Busy(m),
            Self::InvalidNumaNode(n) => Self::InvalidNumaNode(*n),
            Self::Io { context, source } => Self::Io { context, source: io(source) },
        }
    }
}

impl Error {
    /// Wraps an OS error with what was being attempted.
    pub(crate) fn io(context: &'static str, source: impl Into<std::io::Error>) -> Self {
        Self::Io { context, source: source.into() }
    }

    /// Whether retrying the same call later can succeed (`Full`, `Timeout`, `Interrupted`).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Full { .. } | Self::Timeout(_) | Self::Interrupted)
    }

    /// Whether the peer is gone, cleanly ([`Error::PeerClosed`]) or not
    /// ([`Error::PeerDead`]).
    pub fn is_peer_gone(&self) -> bool {
        matches!(self, Self::PeerDead(_) | Self::PeerClosed)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn a_clone_says_the_same_and_keeps_the_os_error() {
        let e = Error::io("open the thing", std::io::Error::from_raw_os_error(libc::ENOENT));
        let c = e.clone();
        assert_eq!(c.to_string(), e.to_string());
        match c {
            Error::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
        let e = Error::PeerDead("gone");
        assert!(matches!(e.clone(), Error::PeerDead("gone")));
    }
}
