//! What happens to connections, as `tracing` spans and events under the `tachyon`
//! target, and a forwarder that hands them to a language binding's own logging.
//!
//! Spans: `connect` (a caller opening a bus or a TCP connection), `accept` (a server
//! taking one), `handshake` (either side's exchange). Events, each with a `name`:
//!
//! | name | level | when |
//! |---|---|---|
//! | `connected` | info | a caller's bus or connection is ready |
//! | `accepted` | info | a server took a client |
//! | `refused` | warn | a server turned a client away (limit, uid, shutting down) |
//! | `handshake_failed` | warn | a handshake was rejected or broke off |
//! | `peer_dead` | info | a waiting call found its peer gone (the call fails with `PeerDead`) |
//! | `connect_failed` | debug | a connect failed (the caller gets the error) |
//!
//! A Rust program sees them through any `tracing` subscriber. Python and Node programs
//! see them through [`forward`]: Python's `tachyon` logger, Node's `diagnostics_channel`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Metadata, Subscriber};

/// The level of a record (`tracing`'s own type).
pub use tracing::Level;

use crate::error::{Error, Result};

/// Whether a forwarded record opened a span or is an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A span began (`connect`, `accept`, `handshake`).
    Span,
    /// An event (`connected`, `accepted`, ...).
    Event,
}

/// One span or event, as [`forward`] hands it on: owned, plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Span or event.
    pub kind: Kind,
    /// Its name (`connect`, `peer_dead`, ...).
    pub name: &'static str,
    /// Its level.
    pub level: Level,
    /// The event's message (empty for a span).
    pub message: String,
    /// Its other fields, as text, in the order written.
    pub fields: Vec<(&'static str, String)>,
}

impl Record {
    /// The field `key`, if the record has it.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }
}

/// Collects an event's or span's fields.
struct Fields<'a> {
    message: &'a mut String,
    fields: &'a mut Vec<(&'static str, String)>,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields.push((field.name(), format!("{value:?}")));
        }
    }
}

/// A `tracing` subscriber that hands every `tachyon` span and event at or above `level`
/// to a callback, and ignores everything else.
struct Forwarder<F> {
    level: Level,
    sink: F,
    next_span: AtomicU64,
}

impl<F: Fn(Record) + Send + Sync + 'static> Forwarder<F> {
    fn send(&self, kind: Kind, meta: &Metadata<'static>, record: impl FnOnce(&mut Fields<'_>)) {
        let (mut message, mut fields) = (String::new(), Vec::new());
        record(&mut Fields { message: &mut message, fields: &mut fields });
        (self.sink)(Record { kind, name: meta.name(), level: *meta.level(), message, fields });
    }
}

impl<F: Fn(Record) + Send + Sync + 'static> Subscriber for Forwarder<F> {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        // A more verbose level compares greater.
        *meta.level() <= self.level && meta.target().starts_with("tachyon")
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(self.level))
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.send(Kind::Span, span.metadata(), |f| span.record(f));
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed).max(1))
    }

    fn record(&self, _: &Id, _: &SpanRecord<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        self.send(Kind::Event, event.metadata(), |f| event.record(f));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Installs, as the process's global `tracing` subscriber, a forwarder that calls
/// `sink` with every `tachyon` span and event at `level` or above (more important).
/// The language bindings use it to reach their own logging; a Rust program would use
/// its own subscriber instead.
///
/// `sink` runs on whichever thread emitted the record, possibly while that thread waits
/// in a call: it must not block (queue the record and return).
///
/// # Errors
/// [`Error::Unsupported`] if the process already has a global subscriber.
pub fn forward(level: Level, sink: impl Fn(Record) + Send + Sync + 'static) -> Result<()> {
    let forwarder = Forwarder { level, sink, next_span: AtomicU64::new(1) };
    tracing::subscriber::set_global_default(forwarder).map_err(|_| {
        Error::Unsupported("this process already has a global tracing subscriber".into())
    })
}

/// Reports a waiting call's peer gone (`peer_dead`), once per wait.
pub(crate) fn peer_gone(e: &Error) {
    if matches!(e, Error::PeerDead(_)) {
        tracing::event!(name: "peer_dead", target: "tachyon", Level::INFO, reason = %e, "peer dead: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn spans_and_named_events_are_forwarded_with_their_fields() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let forwarder = Forwarder {
            level: Level::INFO,
            sink: move |r: Record| sink.lock().unwrap().push(r),
            next_span: AtomicU64::new(1),
        };
        tracing::subscriber::with_default(forwarder, || {
            let _span =
                tracing::info_span!(target: "tachyon", "connect", transport = "shm", address = "/x")
                    .entered();
            tracing::event!(name: "connected", target: "tachyon", Level::INFO, peer_pid = 7, "ready");
            tracing::debug!(target: "tachyon", "too verbose: not forwarded");
            tracing::warn!(target: "other", "another crate: not forwarded");
        });
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!((seen[0].kind, seen[0].name), (Kind::Span, "connect"));
        assert_eq!(seen[0].field("transport"), Some("shm"));
        assert_eq!(seen[0].field("address"), Some("/x"));
        assert_eq!(
            (seen[1].kind, seen[1].name, seen[1].level),
            (Kind::Event, "connected", Level::INFO)
        );
        assert_eq!((seen[1].message.as_str(), seen[1].field("peer_pid")), ("ready", Some("7")));
    }

    #[test]
    fn a_real_connect_opens_its_spans_and_reports_connected() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let forwarder = Forwarder {
            level: Level::DEBUG,
            sink: move |r: Record| sink.lock().unwrap().push(r),
            next_span: AtomicU64::new(1),
        };
        let path = format!("/tmp/tachyon-events-{}.sock", std::process::id());
        let p = path.clone();
        let listener = std::thread::spawn(move || crate::Bus::listen(&p, 1 << 12).unwrap());
        let bus = tracing::subscriber::with_default(forwarder, || loop {
            match crate::Bus::connect(&path) {
                Ok(b) => break b,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        });
        drop(listener.join().unwrap());
        drop(bus);
        let seen = seen.lock().unwrap();
        let names: Vec<_> = seen.iter().map(|r| (r.kind, r.name)).collect();
        assert!(names.contains(&(Kind::Span, "connect")), "{names:?}");
        assert!(names.contains(&(Kind::Span, "handshake")), "{names:?}");
        let connected = seen.iter().find(|r| r.name == "connected").expect("connected");
        assert_eq!(connected.field("transport"), Some("shm"));
        assert_eq!(connected.field("address"), Some(path.as_str()));
        assert_eq!(connected.field("linked"), Some("true"));
    }
}
