//! Zero-copy slots: JS `ArrayBuffer`s over shared memory, and the rule that keeps them
//! safe. This is the only module of the addon with `unsafe` code.
//!
//! A slot (a reserved TX slot, or received messages) is *parked*
//! ([`tachyon::ParkedTx`], [`tachyon::ParkedRx`]) while JS holds it: it stays reserved
//! or unreleased, and its memory stays mapped even if the bus closes. Each slot gets
//! exactly one external `ArrayBuffer`, handed out once. Before the slot is committed or
//! rolled back, that `ArrayBuffer` is **detached**: every view of it (the `Buffer`
//! returned by `bytes()`, any `subarray`) then has length 0 and throws or reads nothing,
//! so no JS reference can ever see the ring reuse the memory.
//!
//! Each `ArrayBuffer` keeps the slot's state alive (its finalizer holds an `Arc`), so a
//! slot that JS drops without committing is released only once both the guard and every
//! buffer are garbage: a TX slot is then rolled back, an RX slot released.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{ArrayBuffer, Uint32Array};
use napi::Env;
use napi_derive::napi;

use crate::cell::Cell;
use crate::errors::{BindError, JsError, NapiExt};
use crate::lock;

fn guard_err(m: impl Into<String>) -> crate::errors::JsError {
    BindError::Guard(m.into()).into()
}

/// One payload in shared memory: where it is, how long, its type id.
#[derive(Debug, Clone, Copy)]
struct Span {
    addr: usize,
    len: usize,
    type_id: u32,
}

/// Creates the one external `ArrayBuffer` over `span`, keeping `keep` alive until the
/// buffer is collected.
///
/// # Safety
/// `span` must be a live payload of a parked slot held (through `keep`) until the
/// buffer is detached, and no other `ArrayBuffer` may cover it.
unsafe fn external<K: Send + 'static>(
    env: &Env,
    span: Span,
    keep: Arc<K>,
) -> Result<ArrayBuffer<'_>, JsError> {
    if span.len == 0 {
        // Nothing of the ring is exposed: an ordinary empty buffer.
        return ArrayBuffer::from_data(env, Vec::new()).js();
    }
    // SAFETY: the caller guarantees `addr..addr + len` is a parked, mapped payload that
    // no other buffer covers; `keep` (moved into the finalizer) holds the parked slot
    // until this buffer is collected, and the slot is only released after `detach`.
    let ab = unsafe {
        ArrayBuffer::from_external(env, span.addr as *mut u8, span.len, keep, |_, keep| drop(keep))
    }
    .js()?;
    Ok(ab)
}

/// Detaches the buffers JS got for `spans`, checking each one is the buffer this slot
/// handed out (so a stray buffer cannot stand in for it).
fn detach(spans: &[Span], buffers: Vec<ArrayBuffer<'_>>) -> Result<(), JsError> {
    let exposed: Vec<&Span> = spans.iter().filter(|s| s.len > 0).collect();
    let given: Vec<ArrayBuffer<'_>> = buffers.into_iter().filter(|b| !b.is_empty()).collect();
    let matches = exposed.len() == given.len()
        && exposed
            .iter()
            .zip(&given)
            .all(|(s, b)| b.as_ptr() as usize == s.addr && b.len() == s.len);
    if !matches {
        return Err(guard_err("these are not the buffers this slot handed out"));
    }
    for b in given {
        b.detach().js()?;
    }
    Ok(())
}

/// Groups received payloads into runs of ring memory: a run goes from one payload to
/// the end of a later one, as long as addresses only grow (a wrap-around starts a new
/// run). One `ArrayBuffer` per run instead of one per message: V8 takes microseconds to
/// create each external buffer. Returns the runs and, per message, its run and offset.
fn runs(spans: &[Span]) -> (Vec<Span>, Vec<(u32, u32)>) {
    let mut runs: Vec<Span> = Vec::new();
    let mut place = Vec::with_capacity(spans.len());
    for s in spans {
        let last = runs.len().wrapping_sub(1) as u32;
        match runs.last_mut() {
            Some(r) if s.addr >= r.addr + r.len && s.addr - r.addr < u32::MAX as usize => {
                place.push((last, (s.addr - r.addr) as u32));
                r.len = s.addr + s.len - r.addr;
            }
            _ => {
                place.push((runs.len() as u32, 0));
                runs.push(Span { addr: s.addr, len: s.len, type_id: 0 });
            }
        }
    }
    (runs, place)
}

/// A parked TX slot and what JS was given of it.
struct TxState {
    bus: Arc<Cell<tachyon::Bus>>,
    parked: Mutex<Option<tachyon::ParkedTx>>,
    span: Span,
    exported: AtomicBool,
}

impl Drop for TxState {
    fn drop(&mut self) {
        // Dropped by JS without commit: roll back. A closed bus has no ring left.
        if let Some(p) = lock(&self.parked).take() {
            self.bus.soon(move |b| drop(b.resume_tx(p)));
        }
    }
}

/// A reserved TX slot (the native half of the JS `TxGuard`).
#[napi]
pub struct NativeTxSlot {
    state: Arc<TxState>,
}

impl NativeTxSlot {
    /// Reserves `max_size` bytes on `bus` as `wait` says, and parks the slot.
    pub(crate) fn acquire(
        cell: &Arc<Cell<tachyon::Bus>>,
        max_size: usize,
        wait: tachyon::Wait<'_>,
    ) -> Result<Self, BindError> {
        let (parked, span) = cell.with(|b| {
            // No waiting allowed: say the ring is full (as upstream does), not "timeout".
            let mut g = if wait.is_immediate() {
                b.acquire_tx(max_size)?
            } else {
                b.acquire_tx_with(max_size, wait)?
            };
            let bytes = g.bytes_mut();
            let span = Span { addr: bytes.as_mut_ptr() as usize, len: bytes.len(), type_id: 0 };
            Ok((g.park(), span))
        })?;
        let state = TxState {
            bus: cell.clone(),
            parked: Mutex::new(Some(parked)),
            span,
            exported: AtomicBool::new(false),
        };
        Ok(Self { state: Arc::new(state) })
    }

    fn finish(&self, buffer: Option<ArrayBuffer<'_>>) -> Result<tachyon::ParkedTx, JsError> {
        let mut parked = lock(&self.state.parked);
        if parked.is_none() {
            return Err(guard_err("this TX slot was already committed or rolled back"));
        }
        if self.state.exported.load(Ordering::Acquire) {
            let b = buffer.ok_or_else(|| guard_err("pass the slot's buffer back to detach it"))?;
            detach(&[self.state.span], vec![b])?;
        }
        parked.take().ok_or_else(|| guard_err("already finished"))
    }
}

#[napi]
impl NativeTxSlot {
    /// Bytes reserved.
    #[napi(getter)]
    pub fn max_size(&self) -> u32 {
        self.state.span.len as u32
    }

    /// The slot's memory as an `ArrayBuffer` (once per slot).
    #[napi]
    pub fn buffer<'e>(&self, env: &'e Env) -> Result<ArrayBuffer<'e>, JsError> {
        if lock(&self.state.parked).is_none() {
            return Err(guard_err("this TX slot was already committed or rolled back"));
        }
        if self.state.exported.swap(true, Ordering::AcqRel) {
            return Err(guard_err("the slot's buffer was already handed out"));
        }
        // SAFETY: the slot is parked in `state` (checked above) and this is its only
        // buffer (`exported` was false); `state` travels with the buffer.
        unsafe { external(env, self.state.span, self.state.clone()) }
    }

    /// Detaches `buffer`, then publishes `actual_size` bytes with `type_id` (and wakes
    /// the consumer unless `flush` is false).
    #[napi]
    pub fn commit(
        &self,
        buffer: Option<ArrayBuffer<'_>>,
        actual_size: u32,
        type_id: u32,
        flush: bool,
    ) -> Result<(), JsError> {
        if actual_size as usize > self.state.span.len {
            return Err(crate::errors::core(tachyon::Error::InvalidSize {
                size: actual_size as usize,
                max: self.state.span.len,
            }));
        }
        let parked = self.finish(buffer)?;
        Ok(self.state.bus.with(|b| {
            let g = b.resume_tx(parked)?;
            if flush {
                g.commit(actual_size as usize, type_id)?;
            } else {
                g.commit_unflushed(actual_size as usize, type_id)?;
            }
            Ok(())
        })?)
    }

    /// Detaches `buffer` and gives the slot back unpublished.
    #[napi]
    pub fn rollback(&self, buffer: Option<ArrayBuffer<'_>>) -> Result<(), JsError> {
        let parked = self.finish(buffer)?;
        // A closed bus has nothing to roll back into.
        let _ = self.state.bus.with(|b| {
            drop(b.resume_tx(parked)?);
            Ok(())
        });
        Ok(())
    }

    /// Whether the slot is still held (not committed or rolled back).
    #[napi(getter)]
    pub fn open(&self) -> bool {
        lock(&self.state.parked).is_some()
    }
}

/// Parked received messages and what JS was given of them.
struct RxState {
    bus: Arc<Cell<tachyon::Bus>>,
    parked: Mutex<Option<tachyon::ParkedRx>>,
    spans: Vec<Span>,
    /// Contiguous ring memory covering the payloads; one buffer each.
    runs: Vec<Span>,
    /// Per message: its run and its offset in it.
    place: Vec<(u32, u32)>,
    exported: AtomicBool,
}

impl Drop for RxState {
    fn drop(&mut self) {
        if let Some(p) = lock(&self.parked).take() {
            self.bus.soon(move |b| drop(b.commit_parked(p)));
        }
    }
}

/// Received messages held in place (the native half of `RxGuard` and `RxBatch`).
#[napi]
pub struct NativeRxSlot {
    state: Arc<RxState>,
}

impl NativeRxSlot {
    /// Waits for one message as `wait` says and parks it; `None` on a timeout.
    pub(crate) fn acquire(
        cell: &Arc<Cell<tachyon::Bus>>,
        wait: tachyon::Wait<'_>,
    ) -> Result<Option<Self>, BindError> {
        let got = cell.with(|b| match b.acquire_rx_with(wait) {
            Ok(g) => {
                let d = g.data();
                let span = Span { addr: d.as_ptr() as usize, len: d.len(), type_id: g.type_id() };
                Ok(Some((g.park(), vec![span])))
            }
            Err(tachyon::Error::Timeout(_)) => Ok(None),
            Err(e) => Err(e.into()),
        })?;
        Ok(got.map(|(p, spans)| Self::new(cell, p, spans)))
    }

    /// Drains up to `max` messages (waiting for the first as `wait` says) and parks
    /// them; an empty batch on a timeout.
    pub(crate) fn drain(
        cell: &Arc<Cell<tachyon::Bus>>,
        max: usize,
        wait: tachyon::Wait<'_>,
    ) -> Result<Self, BindError> {
        let got = cell.with(|b| match b.drain_batch_with(max, wait) {
            Ok(batch) => {
                let spans = batch
                    .iter()
                    .map(|m| Span {
                        addr: m.data().as_ptr() as usize,
                        len: m.len(),
                        type_id: m.type_id(),
                    })
                    .collect();
                Ok(Some((batch.park(), spans)))
            }
            Err(tachyon::Error::Timeout(_)) => Ok(None),
            Err(e) => Err(e.into()),
        })?;
        Ok(match got {
            Some((p, spans)) => Self::new(cell, p, spans),
            None => Self {
                state: Arc::new(RxState {
                    bus: cell.clone(),
                    parked: Mutex::new(None),
                    spans: Vec::new(),
                    runs: Vec::new(),
                    place: Vec::new(),
                    exported: AtomicBool::new(false),
                }),
            },
        })
    }

    fn new(cell: &Arc<Cell<tachyon::Bus>>, parked: tachyon::ParkedRx, spans: Vec<Span>) -> Self {
        let (runs, place) = runs(&spans);
        let state = RxState {
            bus: cell.clone(),
            parked: Mutex::new(Some(parked)),
            spans,
            runs,
            place,
            exported: AtomicBool::new(false),
        };
        Self { state: Arc::new(state) }
    }

    fn span(&self, i: u32) -> Result<Span, JsError> {
        self.state
            .spans
            .get(i as usize)
            .copied()
            .ok_or_else(|| crate::errors::arg(format!("index {i} out of range")))
    }
}

#[napi]
impl NativeRxSlot {
    /// How many messages the slot holds.
    #[napi(getter)]
    pub fn length(&self) -> u32 {
        self.state.spans.len() as u32
    }

    /// The type id of message `i`.
    #[napi]
    pub fn type_id(&self, i: u32) -> Result<u32, JsError> {
        Ok(self.span(i)?.type_id)
    }

    /// The payload size of message `i`.
    #[napi]
    pub fn size(&self, i: u32) -> Result<u32, JsError> {
        Ok(self.span(i)?.len as u32)
    }

    /// Per message, four numbers: its buffer (index into `buffers()`), its offset in
    /// it, its size and its type id.
    #[napi]
    pub fn layout(&self) -> Uint32Array {
        let mut out = Vec::with_capacity(self.state.spans.len() * 4);
        for (s, (run, off)) in self.state.spans.iter().zip(&self.state.place) {
            out.extend_from_slice(&[*run, *off, s.len as u32, s.type_id]);
        }
        Uint32Array::new(out)
    }

    /// The ring memory holding the payloads, as `ArrayBuffer`s over shared memory (one
    /// per contiguous run; once per slot). Between payloads a run also spans their
    /// message headers, which were already read and checked.
    #[napi]
    pub fn buffers<'e>(&self, env: &'e Env) -> Result<Vec<ArrayBuffer<'e>>, JsError> {
        if lock(&self.state.parked).is_none() {
            return Err(guard_err("these messages were already committed"));
        }
        if self.state.exported.swap(true, Ordering::AcqRel) {
            return Err(guard_err("the buffers were already handed out"));
        }
        self.state
            .runs
            .iter()
            // SAFETY: the messages are parked in `state` (checked above); each run lies
            // inside the mapped ring between the start of one parked payload and the end
            // of a later one, runs do not overlap, and these are their only buffers
            // (`exported` was false).
            .map(|&s| unsafe { external(env, s, self.state.clone()) })
            .collect()
    }

    /// Detaches `buffers` and releases the messages to the producer.
    #[napi]
    pub fn commit(&self, buffers: Option<Vec<ArrayBuffer<'_>>>) -> Result<(), JsError> {
        let mut parked = lock(&self.state.parked);
        if parked.is_none() {
            return Ok(()); // committed already, or an empty batch: idempotent
        }
        if self.state.exported.load(Ordering::Acquire) {
            let b =
                buffers.ok_or_else(|| guard_err("pass the slot's buffers back to detach them"))?;
            detach(&self.state.runs, b)?;
        }
        let p = parked.take().ok_or_else(|| guard_err("already committed"))?;
        drop(parked);
        // A closed bus already dropped its ring.
        let _ = self.state.bus.with(|b| Ok(b.commit_parked(p)?));
        Ok(())
    }

    /// Whether the messages are still held.
    #[napi(getter)]
    pub fn open(&self) -> bool {
        lock(&self.state.parked).is_some()
    }
}
