//! The shared-memory plane: everything between two processes on one machine.
//!
//! - [`layout`]: upstream's ABI v0x04 (and our fast mode's words), every offset checked;
//! - [`region`]: sealed memfd regions, attached with size and seal checks (unsafe);
//! - [`arena`]: typed, bounds-checked access to a mapping's header and slots (unsafe);
//! - [`ring`]: the SPSC producer and consumer over an arena;
//! - [`wait`]: the one wait loop (spin, futex sleep, the 200 ms watchdog);
//! - [`liveness`]: the peer link and the watcher that wakes sleepers when it breaks;
//! - [`options`], [`bootstrap`]: how two processes meet over a UNIX socket;
//! - [`halves`], [`bus`]: the TX and RX halves and the [`Bus`](crate::Bus) over them;
//! - [`type_id`]: the `route << 16 | msg_type` scheme; [`recv_async`]: awaitable receives.
//!
//! It uses only [`crate::error`] and [`crate::observe`] (counters and events): nothing
//! of RPC or TCP.

pub(crate) mod arena;
pub(crate) mod bootstrap;
pub(crate) mod bus;
pub(crate) mod halves;
pub(crate) mod layout;
pub(crate) mod liveness;
pub(crate) mod options;
pub(crate) mod recv_async;
pub(crate) mod region;
pub(crate) mod ring;
pub(crate) mod type_id;
pub(crate) mod wait;
