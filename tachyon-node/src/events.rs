//! The core's connection events (`tachyon::events`) handed to JS, which publishes them
//! on `diagnostics_channel` (`lib/events.js`).
//!
//! Events happen on any thread; each goes through a weak threadsafe function (it never
//! keeps the process alive) in non-blocking mode, so the emitting thread never waits.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use tachyon::events::{Kind, Level, Record};

use crate::errors::{JsError, NapiExt};

/// One span or event of the core, as JS sees it.
#[napi(object)]
pub struct EventRecord {
    /// `span` or `event`.
    pub kind: String,
    /// `connect`, `accept`, `handshake`, `connected`, `accepted`, `refused`,
    /// `handshake_failed`, `peer_dead`, `connect_failed`.
    pub name: String,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// The event's message (empty for a span).
    pub message: String,
    /// Its fields, as text.
    pub fields: HashMap<String, String>,
}

type Sink = ThreadsafeFunction<EventRecord, (), EventRecord, Status, false, true>;

fn sink() -> &'static Mutex<Option<Sink>> {
    static SINK: OnceLock<Mutex<Option<Sink>>> = OnceLock::new();
    SINK.get_or_init(|| Mutex::new(None))
}

fn to_js(r: Record) -> EventRecord {
    let level = match r.level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    };
    EventRecord {
        kind: match r.kind {
            Kind::Span => "span",
            Kind::Event => "event",
        }
        .to_owned(),
        name: r.name.to_owned(),
        level: level.to_owned(),
        message: r.message,
        fields: r.fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

/// Hands every core event to `onEvent` from now on (the first caller's function is
/// kept). False if another tracing subscriber owns the process.
#[napi]
pub fn forward_events(on_event: Function<'_, EventRecord, ()>) -> Result<bool, JsError> {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let mut slot = sink().lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_none() {
        let f: Sink = on_event
            .build_threadsafe_function()
            .callee_handled::<false>()
            .weak::<true>()
            .build()
            .js()?;
        *slot = Some(f);
    }
    drop(slot);
    Ok(*INSTALLED.get_or_init(|| {
        tachyon::events::forward(Level::DEBUG, |r| {
            if let Some(f) = sink().lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
                f.call(to_js(r), ThreadsafeFunctionCallMode::NonBlocking);
            }
        })
        .is_ok()
    }))
}
