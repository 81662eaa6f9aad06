//! Primitives for many processes beside the ring: log [`channel`]s (append by many,
//! read by many, bounded) and [`buffer`]s (shared objects mapped by name, with futex
//! wait and notify). They use [`crate::shm`]'s owner checks and waits and
//! [`crate::error`], nothing above.

pub(crate) mod buffer;
pub mod channel;
