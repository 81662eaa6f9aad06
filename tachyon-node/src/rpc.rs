//! `NativeRpcBus`: request/reply over two rings for the JS layer's `RpcBus`. Replies are
//! returned raw: an error reply keeps msg_type 0xFFFF and its payload, which the JS
//! layer throws as `TachyonRpcError`.

use std::time::Duration;

use napi::bindgen_prelude::{AsyncTask, BufferSlice, Either, Either3, Object};
use napi::Env;
use napi_derive::napi;
use tachyon::rpc::{RpcBus, RpcError};
use tachyon::Wait;

use crate::endpoint::{Endpoint, ListenTask};
use crate::errors::{arg, msg_type, timeout, BindError, JsError, NapiExt};
use crate::pump::{Deferred, ErrInfo, Replies, Reply, RpcErrorInfo};

/// The native half of `RpcBus`.
#[napi]
pub struct NativeRpcBus {
    ep: Endpoint<Replies>,
    stats: tachyon::StatsReader,
}

/// A request as the callee sees it (a heap copy).
#[napi(object)]
pub struct Request {
    /// The payload.
    pub data: napi::bindgen_prelude::Buffer,
    /// The request's msg_type.
    pub msg_type: u32,
    /// Reply with this id.
    pub correlation_id: f64,
}

pub(crate) fn cid(v: f64) -> Result<u64, JsError> {
    if v.fract() == 0.0 && (1.0..=9_007_199_254_740_991.0).contains(&v) {
        Ok(v as u64)
    } else {
        Err(arg(format!("correlationId must be a positive integer, got {v}")))
    }
}

/// The outcome of waiting for call `cid`: its reply, the error reply decoded (once,
/// by the core), or the failure to get one.
fn reply_of(
    cid: u64,
    r: Result<tachyon::rpc::RpcReply<'_>, tachyon::Error>,
) -> Result<Reply, BindError> {
    match r {
        Ok(r) => Ok(Reply::new(cid, r.msg_type(), r.data())),
        Err(tachyon::Error::Rpc(e)) => Ok(Reply::failed(cid, e)),
        Err(e) => Err(e.into()),
    }
}

/// Copies `data` into `scratch` and returns its length, or, when it does not fit, a
/// Buffer of its own.
fn copy_out<'e, C>(
    env: &'e Env,
    data: &[u8],
    scratch: &mut [u8],
) -> Result<Either3<u32, BufferSlice<'e>, C>, BindError> {
    match scratch.get_mut(..data.len()) {
        Some(dst) => {
            dst.copy_from_slice(data);
            Ok(Either3::A(data.len() as u32))
        }
        None => Ok(Either3::B(BufferSlice::copy_from(env, data).map_err(BindError::from)?)),
    }
}

/// Waits for the next request; copies it into `scratch` (or a Buffer when larger) and
/// writes `[correlationId, msgType]` into `regs` (16 bytes: two native-endian f64, which
/// the JS layer reads through a Float64Array over the same memory). `None` on a timeout.
fn serve_one_into<'e>(
    env: &'e Env,
    b: &RpcBus,
    t: Option<Duration>,
    scratch: &mut [u8],
    regs: &mut [u8],
) -> Result<Option<Either<u32, BufferSlice<'e>>>, BindError> {
    if regs.len() < 16 {
        return Err(BindError::Arg("regs must hold 16 bytes".into()));
    }
    let r = match b.serve_with(Wait::new().timeout_opt(t)) {
        Ok(r) => r,
        Err(tachyon::Error::Timeout(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    regs[..8].copy_from_slice(&(r.correlation_id() as f64).to_ne_bytes());
    regs[8..16].copy_from_slice(&f64::from(r.msg_type()).to_ne_bytes());
    Ok(Some(match copy_out::<()>(env, r.data(), scratch)? {
        Either3::A(n) => Either::A(n),
        Either3::B(buf) => Either::B(buf),
        Either3::C(()) => unreachable!("copy_out never returns C"),
    }))
}

impl NativeRpcBus {
    fn new(bus: RpcBus) -> Self {
        Self { stats: bus.stats_reader(), ep: Endpoint::new(bus) }
    }

    fn with<R>(&self, f: impl FnOnce(&RpcBus) -> Result<R, BindError>) -> Result<R, JsError> {
        self.ep.with(f)
    }
}

/// A bus the JS side dropped without `close()` is closed when it is collected, so the
/// pump thread ends and the peer sees it gone.
impl Drop for NativeRpcBus {
    fn drop(&mut self) {
        self.ep.close();
    }
}

#[napi]
impl NativeRpcBus {
    /// The callee end: creates both rings at `socketPath` and waits for the caller.
    #[napi(factory)]
    pub fn listen(
        socket_path: String,
        cap_fwd: u32,
        cap_rev: u32,
        timeout_ms: Option<f64>,
    ) -> Result<Self, JsError> {
        let t = timeout(timeout_ms)?;
        let bus = RpcBus::listen_with(
            &socket_path,
            cap_fwd as usize,
            cap_rev as usize,
            Wait::new().timeout_opt(t),
        )
        .map_err(crate::errors::core)?;
        Ok(Self::new(bus))
    }

    /// `listen` on a libuv worker thread.
    #[napi(ts_return_type = "Promise<NativeRpcBus | ErrInfo>")]
    pub fn listen_async(
        socket_path: String,
        cap_fwd: u32,
        cap_rev: u32,
        timeout_ms: Option<f64>,
        cancel: Option<&crate::endpoint::NativeCancel>,
    ) -> Result<AsyncTask<ListenTask<RpcBus, NativeRpcBus>>, JsError> {
        let t = timeout(timeout_ms)?;
        let flag = crate::endpoint::NativeCancel::flag(cancel);
        let open = move || {
            let mut cancelled = || flag.load(std::sync::atomic::Ordering::SeqCst);
            let wait = Wait::new().timeout_opt(t).interrupt(&mut cancelled);
            RpcBus::listen_with(&socket_path, cap_fwd as usize, cap_rev as usize, wait)
        };
        Ok(AsyncTask::new(ListenTask::new(open, NativeRpcBus::new)))
    }

    /// The caller end: connects to a callee (or a multi-client server) at `socketPath`.
    #[napi(factory)]
    pub fn connect(socket_path: String, timeout_ms: Option<f64>) -> Result<Self, JsError> {
        let opts = crate::bus::connect_options(timeout_ms)?;
        let bus = RpcBus::connect_with(&socket_path, &opts, tachyon::Wait::new());
        Ok(Self::new(bus.map_err(crate::errors::core)?))
    }

    /// `connect` on a libuv worker thread; `cancel` ends the wait.
    #[napi(ts_return_type = "Promise<NativeRpcBus | ErrInfo>")]
    pub fn connect_async(
        socket_path: String,
        timeout_ms: Option<f64>,
        cancel: Option<&crate::endpoint::NativeCancel>,
    ) -> Result<AsyncTask<ListenTask<RpcBus, NativeRpcBus>>, JsError> {
        let opts = crate::bus::connect_options(timeout_ms)?;
        let flag = crate::endpoint::NativeCancel::flag(cancel);
        let open = move || {
            let mut cancelled = || flag.load(std::sync::atomic::Ordering::SeqCst);
            RpcBus::connect_with(&socket_path, &opts, Wait::new().interrupt(&mut cancelled))
        };
        Ok(AsyncTask::new(ListenTask::new(open, NativeRpcBus::new)))
    }

    /// Closes the bus (idempotent); pending async calls get `ERR_TACHYON_CLOSED`.
    #[napi]
    pub fn close(&self) {
        self.ep.close();
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.ep.cell.is_closed()
    }

    /// Sends a request; returns its correlation id. Waits for room up to `timeoutMs`.
    #[napi]
    pub fn call(
        &self,
        payload: &[u8],
        msg_type_: u32,
        timeout_ms: Option<f64>,
    ) -> Result<f64, JsError> {
        let (t, mt) = (timeout(timeout_ms)?, msg_type(msg_type_)?);
        self.with(|b| {
            let cid = match t {
                Some(t) => b.call_timeout(payload, mt, t)?,
                None => b.call(payload, mt)?,
            };
            Ok(cid as f64)
        })
    }

    /// Waits for the reply to `correlationId` (raw: 0xFFFF for an error reply).
    #[napi]
    pub fn wait(&self, correlation_id: f64, timeout_ms: Option<f64>) -> Result<Reply, JsError> {
        let (c, t) = (cid(correlation_id)?, timeout(timeout_ms)?);
        self.with(|b| reply_of(c, b.wait_with(c, Wait::new().timeout_opt(t))))
    }

    /// `call` + `wait` in one crossing: the reply's data (copied into a JS Buffer), or
    /// the decoded error reply. The timeout bounds the whole call; a call that times
    /// out is abandoned (its late reply is dropped).
    #[napi]
    pub fn invoke<'e>(
        &self,
        env: &'e Env,
        payload: &[u8],
        msg_type_: u32,
        timeout_ms: Option<f64>,
    ) -> Result<Either<BufferSlice<'e>, RpcErrorInfo>, JsError> {
        let (t, mt) = (timeout(timeout_ms)?, msg_type(msg_type_)?);
        let deadline = t.map(|t| std::time::Instant::now() + t);
        self.with(|b| {
            let c = match t {
                Some(t) => b.call_timeout(payload, mt, t)?,
                None => b.call(payload, mt)?,
            };
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            match b.wait_with(c, Wait::new().timeout_opt(left)) {
                Ok(r) => Ok(Either::A(BufferSlice::copy_from(env, r.data())?)),
                Err(tachyon::Error::Rpc(e)) => Ok(Either::B(e.into())),
                Err(e) => {
                    if matches!(e, tachyon::Error::Timeout(_)) {
                        b.abandon(c);
                    }
                    Err(e.into())
                }
            }
        })
    }

    /// Starts a server-streaming call; returns its correlation id. Waits up to
    /// `timeoutMs` for room in the request ring (none: as long as the callee lives).
    #[napi]
    pub fn call_stream(
        &self,
        payload: &[u8],
        msg_type_: u32,
        timeout_ms: Option<f64>,
    ) -> Result<f64, JsError> {
        let (t, mt) = (timeout(timeout_ms)?, msg_type(msg_type_)?);
        self.with(|b| Ok(b.call_stream_with(payload, mt, Wait::new().timeout_opt(t))? as f64))
    }

    /// The next item of stream `correlationId`, waiting up to `timeoutMs`: a Reply with
    /// the item, the end (msg_type 0xFFFE) or the error that ended it.
    #[napi]
    pub fn next_stream_item(
        &self,
        correlation_id: f64,
        timeout_ms: Option<f64>,
    ) -> Result<Reply, JsError> {
        let (c, t) = (cid(correlation_id)?, timeout(timeout_ms)?);
        self.with(|b| {
            crate::pump::stream_item(b, c, Wait::new().timeout_opt(t))?
                .ok_or_else(|| BindError::Core(tachyon::Error::Timeout(t.unwrap_or_default())))
        })
    }

    /// `nextStreamItem` off the JS thread: the item at once if it is there, else a
    /// Promise the pump settles (with `ErrInfo` for a failure).
    #[napi(ts_return_type = "Reply | Promise<Reply | ErrInfo>")]
    pub fn next_stream_item_async<'e>(
        &self,
        env: &'e Env,
        correlation_id: f64,
        timeout_ms: Option<f64>,
    ) -> Result<Either<Reply, Object<'e>>, JsError> {
        let (c, t) = (cid(correlation_id)?, timeout(timeout_ms)?);
        self.ep.pump(|_| ())?; // started before the bus lock is taken below
                               // Looking and registering under the bus lock: the pump cannot take the item in
                               // between (it delivers with the bus lock held).
        self.with(|b| {
            if let Some(r) =
                crate::pump::stream_item(b, c, Wait::new().spin(0).timeout(Duration::ZERO))?
            {
                return Ok(Either::A(r));
            }
            let (d, promise): (Deferred<Reply>, Object<'e>) =
                env.create_deferred().map_err(|e| BindError::Arg(e.reason.clone()))?;
            self.ep
                .pump(|p| p.await_stream_item(c, t, d))
                .map_err(|e| BindError::Arg(e.reason.clone()))?;
            Ok(Either::B(promise))
        })
    }

    /// Cancels stream `correlationId`: the callee stops, late items are dropped, and a
    /// pending `nextStreamItemAsync` settles as interrupted.
    #[napi]
    pub fn cancel_stream(&self, correlation_id: f64) -> Result<(), JsError> {
        let c = cid(correlation_id)?;
        let _ = self.ep.pump(|p| p.forget_stream(c));
        self.with(|b| {
            b.cancel_stream(c);
            Ok(())
        })
    }

    /// Sends a oneway request (correlation id 0): the callee runs its handler and sends
    /// no reply. Waits up to `timeout_ms` for room in the request ring (0: fails at once
    /// with ERR_TACHYON_FULL).
    #[napi]
    pub fn notify(&self, payload: &[u8], msg_type_: u32, timeout_ms: f64) -> Result<(), JsError> {
        let (t, mt) = (timeout(Some(timeout_ms))?, msg_type(msg_type_)?);
        self.with(|b| match t {
            Some(t) if !t.is_zero() => Ok(b.notify_with(payload, mt, Wait::new().timeout(t))?),
            _ => Ok(b.notify(payload, mt)?),
        })
    }

    /// `invoke` for the hot path: the reply is copied into `scratch` (a Buffer the JS
    /// layer keeps per bus) and its length returned, so no Buffer is created here (the
    /// JS layer takes a pooled one). A reply larger than `scratch` comes back as a
    /// Buffer; an error reply as its decoded info.
    #[napi]
    pub fn invoke_into<'e>(
        &self,
        env: &'e Env,
        payload: &[u8],
        msg_type_: u32,
        timeout_ms: Option<f64>,
        mut scratch: BufferSlice<'_>,
    ) -> Result<Either3<u32, BufferSlice<'e>, RpcErrorInfo>, JsError> {
        let (t, mt) = (timeout(timeout_ms)?, msg_type(msg_type_)?);
        let deadline = t.map(|t| std::time::Instant::now() + t);
        self.with(|b| {
            let c = match t {
                Some(t) => b.call_timeout(payload, mt, t)?,
                None => b.call(payload, mt)?,
            };
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            match b.wait_with(c, Wait::new().timeout_opt(left)) {
                Ok(r) => Ok(copy_out(env, r.data(), &mut scratch)?),
                Err(tachyon::Error::Rpc(e)) => Ok(Either3::C(e.into())),
                Err(e) => {
                    if matches!(e, tachyon::Error::Timeout(_)) {
                        b.abandon(c);
                    }
                    Err(e.into())
                }
            }
        })
    }

    /// `serve` for the hot path: the request is copied into `scratch` (its length
    /// returned; a larger one comes back as a Buffer) and `regs` gets
    /// `[correlationId, msgType]`. `null` on a timeout.
    #[napi]
    pub fn serve_into<'e>(
        &self,
        env: &'e Env,
        timeout_ms: Option<f64>,
        mut scratch: BufferSlice<'_>,
        mut regs: BufferSlice<'_>,
    ) -> Result<Option<Either<u32, BufferSlice<'e>>>, JsError> {
        let t = timeout(timeout_ms)?;
        self.with(|b| serve_one_into(env, b, t, &mut scratch, &mut regs))
    }

    /// Replies to `correlationId`, then serves the next request as `serveInto` does: one
    /// crossing per request for a JS serve loop.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn reply_serve_into<'e>(
        &self,
        env: &'e Env,
        correlation_id: f64,
        data: &[u8],
        msg_type_: u32,
        timeout_ms: Option<f64>,
        mut scratch: BufferSlice<'_>,
        mut regs: BufferSlice<'_>,
    ) -> Result<Option<Either<u32, BufferSlice<'e>>>, JsError> {
        let (c, mt, t) = (cid(correlation_id)?, msg_type(msg_type_)?, timeout(timeout_ms)?);
        self.with(|b| {
            b.reply_with(c, data, mt, Wait::new().timeout_opt(t))?;
            serve_one_into(env, b, t, &mut scratch, &mut regs)
        })
    }

    /// Sends a request and settles with its reply off the JS thread. When no other call
    /// is in flight and `spin` is more than 0, it first spins that many rounds (tens of
    /// nanoseconds each) for the reply: a fast callee's reply then comes back at once,
    /// without the pump's thread hops, and a slow one costs the event loop only the
    /// spin. Pipelined calls never spin.
    #[napi(ts_return_type = "Reply | Promise<Reply | ErrInfo>")]
    pub fn call_async<'e>(
        &self,
        env: &'e Env,
        payload: &[u8],
        msg_type_: u32,
        timeout_ms: Option<f64>,
        spin: Option<u32>,
    ) -> Result<Either<Reply, Object<'e>>, JsError> {
        let (t, mt) = (timeout(timeout_ms)?, msg_type(msg_type_)?);
        let spin = spin.unwrap_or(0);
        let sent = self.ep.cell.with(|b| {
            let alone = b.in_flight() == 0;
            let c = match t {
                Some(t) => b.call_timeout(payload, mt, t)?,
                None => b.call(payload, mt)?,
            };
            if alone && spin > 0 {
                match reply_of(c, b.wait_with(c, Wait::new().spin(spin).timeout(Duration::ZERO))) {
                    Ok(r) => return Ok((c, Some(r))),
                    Err(BindError::Core(tachyon::Error::Timeout(_))) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((c, None))
        });
        let (cid, error) = match sent {
            Ok((_, Some(reply))) => return Ok(Either::A(reply)),
            Ok((c, None)) => (c, None),
            Err(e) => (0, Some(e)),
        };
        let (d, promise): (Deferred<Reply>, Object<'e>) = env.create_deferred().js()?;
        if let Some(e) = error {
            let (code, message) = crate::errors::describe(&e);
            crate::pump::settle(d, Err(ErrInfo { code: code.to_owned(), message }));
        } else {
            self.ep.pump(|p| p.await_reply(cid, t, d))?;
        }
        Ok(Either::B(promise))
    }

    /// Settles with the reply to call `correlationId` off the JS thread (for a call made
    /// with `call`; `forget` cancels the wait).
    #[napi(ts_return_type = "Promise<Reply | ErrInfo>")]
    pub fn await_reply<'e>(
        &self,
        env: &'e Env,
        correlation_id: f64,
        timeout_ms: Option<f64>,
    ) -> Result<Object<'e>, JsError> {
        let (c, t) = (cid(correlation_id)?, timeout(timeout_ms)?);
        let (d, promise): (Deferred<Reply>, Object<'e>) = env.create_deferred().js()?;
        if self.ep.cell.is_closed() {
            crate::pump::settle(d, Err(BindError::Closed.into()));
        } else {
            self.ep.pump(|p| p.await_reply(c, t, d))?;
        }
        Ok(promise)
    }

    /// Gives up on call `correlationId`: a pending `awaitReply` settles with
    /// `ERR_TACHYON_INTERRUPTED`, and the reply, if it comes, is dropped.
    #[napi]
    pub fn forget(&self, correlation_id: f64) -> Result<(), JsError> {
        let c = cid(correlation_id)?;
        let _ = self.ep.pump(|p| p.forget(c));
        self.with(|b| {
            b.abandon(c);
            Ok(())
        })
    }

    /// Gives up on a call; its reply, if it comes, is dropped.
    #[napi]
    pub fn abandon(&self, correlation_id: f64) -> Result<(), JsError> {
        let c = cid(correlation_id)?;
        self.with(|b| {
            b.abandon(c);
            Ok(())
        })
    }

    /// Calls sent and not yet answered.
    /// This side's counters on both rings.
    #[napi]
    pub fn stats(&self) -> crate::stats::BusStats {
        self.stats.read().into()
    }

    #[napi(getter)]
    pub fn in_flight(&self) -> Result<u32, JsError> {
        self.with(|b| Ok(b.in_flight() as u32))
    }

    /// Waits for the next request (a copy); `null` on a timeout.
    #[napi]
    pub fn serve(&self, timeout_ms: Option<f64>) -> Result<Option<Request>, JsError> {
        let t = timeout(timeout_ms)?;
        self.with(|b| match b.serve_with(Wait::new().timeout_opt(t)) {
            Ok(r) => Ok(Some(Request {
                data: r.data().to_vec().into(),
                msg_type: u32::from(r.msg_type()),
                correlation_id: r.correlation_id() as f64,
            })),
            Err(tachyon::Error::Timeout(_)) => Ok(None),
            Err(e) => Err(e.into()),
        })
    }

    /// Sends the reply to `correlationId`, waiting for room up to `timeoutMs`.
    #[napi]
    pub fn reply(
        &self,
        correlation_id: f64,
        data: &[u8],
        msg_type_: u32,
        timeout_ms: Option<f64>,
    ) -> Result<(), JsError> {
        let (c, mt, t) = (cid(correlation_id)?, msg_type(msg_type_)?, timeout(timeout_ms)?);
        self.with(|b| Ok(b.reply_with(c, data, mt, Wait::new().timeout_opt(t))?))
    }

    /// Sends the structured 0xFFFF error reply to `correlationId`.
    #[napi]
    pub fn reply_error(
        &self,
        correlation_id: f64,
        failed_msg_type: u32,
        code: u32,
        message: String,
        timeout_ms: Option<f64>,
    ) -> Result<(), JsError> {
        let (c, mt, t) = (cid(correlation_id)?, msg_type(failed_msg_type)?, timeout(timeout_ms)?);
        let e = RpcError::new(mt, code, message);
        self.with(|b| Ok(b.reply_error(c, &e, Wait::new().timeout_opt(t))?))
    }

    /// Spin-then-sleep (false) or spin only (true) when waiting.
    #[napi]
    pub fn set_polling_mode(&self, spin_only: bool) -> Result<(), JsError> {
        self.with(|b| {
            b.set_polling_mode(spin_only);
            Ok(())
        })
    }
}
