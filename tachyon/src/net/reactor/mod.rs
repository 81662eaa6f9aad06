//! The generic TCP reactors: accept, receive and send for any [`service::Service`],
//! with no idea of what the bytes mean. [`uring`] drives io_uring (multishot accept and
//! receive into a provided buffer ring, [`bufring`]), [`epoll`] the fallback; [`probe`]
//! says which the kernel allows; [`socket`] binds listeners and tunes connections;
//! [`waker`] wakes a reactor from another thread. Uses only [`crate::error`],
//! [`crate::address`] and [`crate::observe`]: the RPC layer and the raw byte streams sit
//! on it, never the reverse.

pub(crate) mod bufring;
pub(crate) mod epoll;
pub(crate) mod probe;
pub(crate) mod service;
pub(crate) mod socket;
pub(crate) mod uring;
pub(crate) mod waker;
