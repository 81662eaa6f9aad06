//! Tachyon: lock-free single-producer, single-consumer IPC over shared memory,
//! byte-compatible with upstream Tachyon ABI v0x04.
//!
//! Two processes on one machine meet over a UNIX socket. The listener creates a sealed
//! memfd, formats a ring in it and passes the fd with `SCM_RIGHTS`; from then on messages
//! go through the ring at memory speed, with no system call per message.
//!
//! ```no_run
//! use std::time::Duration;
//! use tachyon::Bus;
//!
//! # fn main() -> tachyon::Result<()> {
//! // Process A (consumer):
//! let bus = Bus::listen("/tmp/tachyon-demo.sock", 1 << 20)?;
//! let msg = bus.recv_timeout(Duration::from_secs(5))?;
//! println!("type {} carried {} bytes", msg.type_id(), msg.len());
//!
//! // Process B (producer):
//! let bus = Bus::connect("/tmp/tachyon-demo.sock")?;
//! bus.send(b"hello", tachyon::make_type_id(0, 1))?;
//! # Ok(()) }
//! ```
//!
//! Every value read from shared memory is treated as untrusted: a peer that writes
//! garbage moves the bus to the `FatalError` state and gets a typed [`Error`], never a
//! panic or an out-of-bounds access.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::print_stdout)]

// The layers, from the bottom: shm, then ipc and observe beside it, rpc, net, tools
// (ARCHITECTURE.md draws them); each folder's mod.rs says what it holds and may use.
mod address;
mod error;
#[cfg(feature = "test-hooks")]
mod fuzzing;
mod ipc;
#[cfg(feature = "tcp")]
pub mod net;
mod observe;
#[cfg(feature = "rpc")]
pub mod rpc;
mod shm;
mod sync;
mod tools;

pub use address::Address;
pub use error::{Error, Result};
pub use ipc::buffer::{BufferKind, SharedBuffer, SharedBufferOptions};
pub use ipc::channel;
pub use observe::events;
#[cfg(feature = "metrics")]
pub use observe::metrics;
pub use observe::stats::{BusStats, ServerStats, ServerStatsReader, StatsReader};
pub use shm::bus::{Bus, BusState};
pub use shm::halves::{
    ParkedRx, ParkedTx, RxBatch, RxBatchIter, RxGuard, RxMsg, RxReadiness, TxGuard,
};
pub use shm::layout::RingMode;
pub use shm::liveness::{Closer, Nudge, PeerLink, PeerWatch};
pub use shm::options::{
    ConnectOptions, ListenOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_CAPACITY,
};
pub use shm::recv_async::{Messages, OwnedMessage, RecvFuture};
pub use shm::type_id::{make_type_id, msg_type, route_id};
pub use shm::wait::{Wait, WATCHDOG};
pub use tools::{doctor, inspect};

/// The README's examples, compiled as doctests so they cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(feature = "macros")]
pub use tachyon_macros::{dispatcher, include_schema, tachyon_rpc};

/// Items used by code that `tachyon-macros` generates; not a stable API.
#[cfg(feature = "rpc")]
#[doc(hidden)]
pub mod __private {
    pub use crate::rpc::{decode_request, encode_response, handle_typed};
    pub use serde;
    pub use serde_bytes;
}

#[doc(hidden)]
#[cfg(feature = "test-hooks")]
pub mod __fuzz {
    //! Entry points for `cargo fuzz` and the corpus replay; not a stable API.
    pub use crate::fuzzing::*;
    pub use crate::shm::ring::{fuzz_consumer, fuzz_consumer_fast};
}

#[doc(hidden)]
#[cfg(all(feature = "tcp", feature = "test-hooks"))]
pub mod __bench {
    //! The provided-buffer ring, for the benchmark's raw io_uring anchor. Not a stable API.
    pub use crate::net::reactor::bufring::BufRing;
}

#[doc(hidden)]
#[cfg(feature = "test-hooks")]
pub mod __testing {
    //! The low-level pieces tests use to play a hostile or odd peer: the handshake, the
    //! one-shot bootstrap, raw shared memory and the byte layout. Not a stable API.
    pub use crate::shm::bootstrap::{listen, BusKind, Handshake, ListenSpec};
    pub use crate::shm::layout::{
        max_payload, shm_size, slot_size, ARENA_HEADER_SIZE, MSG_HEADER_SIZE,
    };
    pub use crate::shm::region::SharedMemory;
}
