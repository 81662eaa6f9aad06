//! What a running process can tell about itself: [`stats`] (counters each side keeps
//! in its own memory), [`events`] (connection spans and events through `tracing`, and the
//! forwarder the bindings log through) and, with the `metrics` feature, [`metrics`] (the
//! counters through the metrics facade). Every layer above reports here; this layer
//! uses nothing but [`crate::error`] and the arena it counts for.

pub mod events;
#[cfg(feature = "metrics")]
pub mod metrics;
pub(crate) mod stats;
