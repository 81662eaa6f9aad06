//! `NativeBus`: the SPSC bus for the JS layer's `Bus`. Blocking calls block the JS
//! thread (as upstream's do) and take an optional timeout in milliseconds; the `*Async`
//! calls wait on the pump thread instead.

use std::time::Duration;

use napi::bindgen_prelude::{AsyncTask, BufferSlice, Object};
use napi::Env;
use napi_derive::napi;
use tachyon::Wait;

use crate::endpoint::{Endpoint, ListenTask};
use crate::errors::{arg, timeout, BindError, JsError, NapiExt};
use crate::pump::{Deferred, Packed, Receives};
use crate::slots::{NativeRxSlot, NativeTxSlot};

/// A message `recv` copied into a JS-owned Buffer.
#[napi(object)]
pub struct Message<'e> {
    /// The payload.
    pub data: BufferSlice<'e>,
    /// `route << 16 | msg_type`.
    pub type_id: u32,
}

/// The native half of `Bus`.
#[napi]
pub struct NativeBus {
    ep: Endpoint<Receives>,
    stats: tachyon::StatsReader,
}

fn wait_for(spin: Option<u32>, t: Option<Duration>) -> Wait<'static> {
    let w = Wait::new().timeout_opt(t);
    match spin {
        Some(s) => w.spin(s),
        None => w,
    }
}

impl NativeBus {
    fn new(bus: tachyon::Bus) -> Self {
        Self { stats: bus.stats_reader(), ep: Endpoint::new(bus) }
    }

    fn with<R>(&self, f: impl FnOnce(&tachyon::Bus) -> Result<R, BindError>) -> Result<R, JsError> {
        self.ep.with(f)
    }
}

/// A bus the JS side dropped without `close()` is closed when it is collected, so the
/// pump thread ends and the peer sees it gone.
impl Drop for NativeBus {
    fn drop(&mut self) {
        self.ep.close();
    }
}

#[napi]
impl NativeBus {
    /// Creates a ring of `capacity` bytes at `socketPath` and waits for one peer.
    #[napi(factory)]
    pub fn listen(
        socket_path: String,
        capacity: u32,
        timeout_ms: Option<f64>,
    ) -> Result<Self, JsError> {
        let t = timeout(timeout_ms)?;
        let bus =
            tachyon::Bus::listen_with(&socket_path, capacity as usize, Wait::new().timeout_opt(t))
                .map_err(crate::errors::core)?;
        Ok(Self::new(bus))
    }

    /// `listen` on a libuv worker thread.
    #[napi(ts_return_type = "Promise<NativeBus | ErrInfo>")]
    pub fn listen_async(
        socket_path: String,
        capacity: u32,
        timeout_ms: Option<f64>,
        cancel: Option<&crate::endpoint::NativeCancel>,
    ) -> Result<AsyncTask<ListenTask<tachyon::Bus, NativeBus>>, JsError> {
        let t = timeout(timeout_ms)?;
        let flag = crate::endpoint::NativeCancel::flag(cancel);
        let open = move || {
            let mut cancelled = || flag.load(std::sync::atomic::Ordering::SeqCst);
            let wait = Wait::new().timeout_opt(t).interrupt(&mut cancelled);
            tachyon::Bus::listen_with(&socket_path, capacity as usize, wait)
        };
        Ok(AsyncTask::new(ListenTask::new(open, NativeBus::new)))
    }

    /// Connects to the listener at `socketPath`, waiting at most `timeoutMs` (default
    /// 10 s) for it to answer.
    #[napi(factory)]
    pub fn connect(socket_path: String, timeout_ms: Option<f64>) -> Result<Self, JsError> {
        let opts = connect_options(timeout_ms)?;
        let bus = tachyon::Bus::connect_with(&socket_path, &opts, Wait::new());
        Ok(Self::new(bus.map_err(crate::errors::core)?))
    }

    /// `connect` on a libuv worker thread; `cancel` ends the wait.
    #[napi(ts_return_type = "Promise<NativeBus | ErrInfo>")]
    pub fn connect_async(
        socket_path: String,
        timeout_ms: Option<f64>,
        cancel: Option<&crate::endpoint::NativeCancel>,
    ) -> Result<AsyncTask<ListenTask<tachyon::Bus, NativeBus>>, JsError> {
        let opts = connect_options(timeout_ms)?;
        let flag = crate::endpoint::NativeCancel::flag(cancel);
        let open = move || {
            let mut cancelled = || flag.load(std::sync::atomic::Ordering::SeqCst);
            tachyon::Bus::connect_with(&socket_path, &opts, Wait::new().interrupt(&mut cancelled))
        };
        Ok(AsyncTask::new(ListenTask::new(open, NativeBus::new)))
    }

    /// Closes the bus (idempotent). Pending async receives get `ERR_TACHYON_CLOSED`.
    #[napi]
    pub fn close(&self) {
        self.ep.close();
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.ep.cell.is_closed()
    }

    /// This side's counters (never waits for a receive in progress).
    #[napi]
    pub fn stats(&self) -> crate::stats::BusStats {
        self.stats.read().into()
    }

    /// Ring capacity in bytes.
    #[napi(getter)]
    pub fn capacity(&self) -> Result<u32, JsError> {
        self.with(|b| Ok(b.capacity() as u32))
    }

    /// Sends one message, waiting for room up to `timeoutMs` (0: never wait).
    #[napi]
    pub fn send(&self, data: &[u8], type_id: u32, timeout_ms: Option<f64>) -> Result<(), JsError> {
        let t = timeout(timeout_ms)?;
        self.with(|b| {
            if t == Some(Duration::ZERO) {
                return Ok(b.send(data, type_id)?);
            }
            match b.send(data, type_id) {
                Err(tachyon::Error::Full { .. }) => {}
                other => return Ok(other?),
            }
            let mut tx = b.acquire_tx_with(data.len(), Wait::new().timeout_opt(t))?;
            tx.bytes_mut().copy_from_slice(data);
            Ok(tx.commit(data.len(), type_id)?)
        })
    }

    /// Publishes what was committed unflushed and wakes the consumer.
    #[napi]
    pub fn flush(&self) -> Result<(), JsError> {
        self.with(|b| {
            b.flush();
            Ok(())
        })
    }

    /// Waits for the next message and returns a copy in a JS-owned Buffer (one copy,
    /// no external buffer to finalize); `null` on a timeout.
    #[napi]
    pub fn recv<'e>(
        &self,
        env: &'e Env,
        spin_threshold: Option<u32>,
        timeout_ms: Option<f64>,
    ) -> Result<Option<Message<'e>>, JsError> {
        let t = timeout(timeout_ms)?;
        self.with(|b| match b.acquire_rx_with(wait_for(spin_threshold, t)) {
            Ok(m) => {
                let data = BufferSlice::copy_from(env, m.data())?;
                Ok(Some(Message { data, type_id: m.type_id() }))
            }
            Err(tachyon::Error::Timeout(_)) => Ok(None),
            Err(e) => Err(e.into()),
        })
    }

    /// Receives up to `maxMsgs` messages as heap copies without waiting; `null` if
    /// the ring is empty.
    #[napi]
    pub fn try_recv_packed(&self, max_msgs: u32) -> Result<Option<Packed>, JsError> {
        self.with(|b| Ok(Packed::take(b, max_msgs as usize)?))
    }

    /// Reserves `maxSize` bytes for zero-copy writing, waiting for room up to `timeoutMs`.
    #[napi]
    pub fn acquire_tx(
        &self,
        max_size: u32,
        timeout_ms: Option<f64>,
    ) -> Result<NativeTxSlot, JsError> {
        let t = timeout(timeout_ms)?;
        Ok(NativeTxSlot::acquire(&self.ep.cell, max_size as usize, Wait::new().timeout_opt(t))?)
    }

    /// Waits for one message and holds it in place; `null` on a timeout.
    #[napi]
    pub fn acquire_rx(
        &self,
        spin_threshold: Option<u32>,
        timeout_ms: Option<f64>,
    ) -> Result<Option<NativeRxSlot>, JsError> {
        let t = timeout(timeout_ms)?;
        Ok(NativeRxSlot::acquire(&self.ep.cell, wait_for(spin_threshold, t))?)
    }

    /// Waits for at least one message, then holds up to `maxMsgs` in place.
    #[napi]
    pub fn drain_batch(
        &self,
        max_msgs: u32,
        spin_threshold: Option<u32>,
        timeout_ms: Option<f64>,
    ) -> Result<NativeRxSlot, JsError> {
        if max_msgs == 0 {
            return Err(arg("maxMsgs must be at least 1"));
        }
        let t = timeout(timeout_ms)?;
        Ok(NativeRxSlot::drain(&self.ep.cell, max_msgs as usize, wait_for(spin_threshold, t))?)
    }

    /// Receives up to `maxMsgs` messages (at least one) off the JS thread.
    #[napi(ts_return_type = "Promise<Packed | ErrInfo>")]
    pub fn recv_async<'e>(
        &self,
        env: &'e Env,
        max_msgs: u32,
        timeout_ms: Option<f64>,
    ) -> Result<Object<'e>, JsError> {
        if max_msgs == 0 {
            return Err(arg("maxMsgs must be at least 1"));
        }
        let t = timeout(timeout_ms)?;
        let (d, promise): (Deferred<Packed>, Object<'e>) = env.create_deferred().js()?;
        if self.ep.cell.is_closed() {
            crate::pump::settle(d, Err(BindError::Closed.into()));
        } else {
            self.ep.pump(|p| p.receive(max_msgs as usize, t, d))?;
        }
        Ok(promise)
    }

    /// Spin-then-sleep (false) or spin only (true) when waiting.
    #[napi]
    pub fn set_polling_mode(&self, spin_only: bool) -> Result<(), JsError> {
        self.with(|b| {
            b.set_polling_mode(spin_only);
            Ok(())
        })
    }

    /// Binds the ring's memory to NUMA node `node`.
    #[napi]
    pub fn set_numa_node(&self, node: i32) -> Result<(), JsError> {
        self.with(|b| Ok(b.set_numa_node(node)?))
    }

    /// Fails with `ERR_TACHYON_PEER_DEAD` if the peer is gone.
    #[napi]
    pub fn check_peer(&self) -> Result<(), JsError> {
        self.with(|b| Ok(b.check_peer()?))
    }
}

/// Connect options with an optional timeout in milliseconds.
pub(crate) fn connect_options(timeout_ms: Option<f64>) -> Result<tachyon::ConnectOptions, JsError> {
    let opts = tachyon::ConnectOptions::default();
    Ok(match timeout(timeout_ms)? {
        Some(t) => opts.timeout(t),
        None => opts,
    })
}
