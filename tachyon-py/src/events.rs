//! The core's connection events (`tachyon::events`) for Python's `tachyon` logger.
//!
//! Events happen on any thread, some of them waiting in a call with the GIL released
//! and a bus locked; taking the GIL there could deadlock. So the forwarder only queues
//! them, and a Python thread (`tachyon._events`) takes them with `next_events` and logs
//! them.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tachyon::events::{Kind, Record};

/// Records not yet logged; the oldest are dropped beyond this many.
const MAX_QUEUED: usize = 4096;

/// The queued records, the count dropped, and whether the logging thread was told to end.
struct Queue {
    records: Mutex<(VecDeque<Record>, u64, bool)>,
    ready: Condvar,
}

fn queue() -> &'static Queue {
    static Q: OnceLock<Queue> = OnceLock::new();
    Q.get_or_init(|| Queue {
        records: Mutex::new((VecDeque::new(), 0, false)),
        ready: Condvar::new(),
    })
}

/// Ends the logging thread's wait at once: from now on `next_events` returns `None`.
/// Called at interpreter exit, so the thread ends before finalization (a daemon thread
/// that takes the GIL back during finalization would crash the process).
#[pyfunction]
pub(crate) fn stop_events(py: Python<'_>) {
    py.detach(|| {
        let q = queue();
        q.records.lock().unwrap_or_else(PoisonError::into_inner).2 = true;
        q.ready.notify_all();
    });
}

/// Starts queueing the core's events (idempotent). False if another tracing subscriber
/// already owns the process (then nothing is forwarded).
#[pyfunction]
pub(crate) fn forward_events() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        tachyon::events::forward(tachyon::events::Level::DEBUG, |r| {
            let q = queue();
            let mut g = q.records.lock().unwrap_or_else(PoisonError::into_inner);
            if g.2 {
                return; // the interpreter is exiting: nobody will log it
            }
            if g.0.len() >= MAX_QUEUED {
                g.0.pop_front();
                g.1 += 1;
            }
            g.0.push_back(r);
            drop(g);
            q.ready.notify_one();
        })
        .is_ok()
    })
}

/// Python's logging level of a tracing level.
fn levelno(level: tachyon::events::Level) -> i32 {
    match level {
        tachyon::events::Level::ERROR => 40,
        tachyon::events::Level::WARN => 30,
        tachyon::events::Level::INFO => 20,
        tachyon::events::Level::DEBUG => 10,
        tachyon::events::Level::TRACE => 5,
    }
}

/// Waits up to `timeout` seconds (GIL released) for queued events; returns them as
/// `(levelno, kind, name, message, fields)` and the count dropped since the last call,
/// or `None` once `stop_events` was called.
#[pyfunction]
#[allow(clippy::type_complexity)] // the tuple is the Python-facing shape
pub(crate) fn next_events(
    py: Python<'_>,
    timeout: f64,
) -> PyResult<Option<(Vec<(i32, &'static str, &'static str, String, Bound<'_, PyDict>)>, u64)>> {
    let wait = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::from_secs(1));
    let taken = py.detach(|| {
        let q = queue();
        let g = q.records.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut g, _) = q
            .ready
            .wait_timeout_while(g, wait, |g| g.0.is_empty() && !g.2)
            .unwrap_or_else(PoisonError::into_inner);
        (!g.2).then(|| (g.0.drain(..).collect::<Vec<_>>(), std::mem::take(&mut g.1)))
    });
    let Some((records, dropped)) = taken else { return Ok(None) };
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let fields = PyDict::new(py);
        for (k, v) in &r.fields {
            fields.set_item(k, v)?;
        }
        let kind = match r.kind {
            Kind::Span => "span",
            Kind::Event => "event",
        };
        out.push((levelno(r.level), kind, r.name, r.message, fields));
    }
    Ok(Some((out, dropped)))
}
