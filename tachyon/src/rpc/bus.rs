//! [`RpcBus`]: a request ring and a reply ring between a caller and a callee, with
//! correlation ids, byte-compatible with upstream's RPC.
//!
//! The listener is the callee and formats both arenas: `fwd` carries requests
//! (caller to callee), `rev` carries replies. Beyond upstream, many calls can be in
//! flight and their replies may come back in any order. A reply for another call is
//! kept for that call's waiter instead of being fatal.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::rpc::error::{RpcError, MSG_TYPE_ERROR, ONEWAY_CID};
use crate::rpc::in_flight::InFlight;
use crate::rpc::stream::{StreamQueue, StreamSource, MSG_TYPE_STREAM_END};
use crate::shm::arena::Arena;
use crate::shm::bootstrap::{self, Accepted, BusKind, Handshake, ListenSpec, Offered};
use crate::shm::halves::{ParkedRx, ParkedTx, RxGuard, RxHalf, RxReadiness, TxGuard, TxHalf};
use crate::shm::liveness::{Closer, PeerLink, PeerWatch};
use crate::shm::options::{ConnectOptions, ListenOptions};
use crate::shm::wait::Wait;

/// Which end of the RPC bus this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The listener: serves requests, sends replies.
    Callee,
    /// The connector: sends requests, waits for replies.
    Caller,
}

/// A reply that arrived while another call was being waited for.
#[derive(Debug)]
struct Stashed {
    msg_type: u16,
    data: Vec<u8>,
}

/// One end of a bidirectional RPC bus.
///
/// ```no_run
/// use std::time::Duration;
/// use tachyon::rpc::RpcBus;
/// # fn main() -> tachyon::Result<()> {
/// // callee process
/// let callee = RpcBus::listen("/tmp/rpc.sock", 1 << 16, 1 << 16)?;
/// let req = callee.serve()?;
/// let (cid, mt, echo) = (req.correlation_id(), req.msg_type(), req.data().to_vec());
/// drop(req);
/// callee.reply(cid, &echo, mt)?;
///
/// // caller process
/// let caller = RpcBus::connect("/tmp/rpc.sock")?;
/// let cid = caller.call(b"ping", 1)?;
/// let reply = caller.wait_timeout(cid, Duration::from_secs(1))?;
/// assert_eq!(reply.data(), b"ping");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RpcBus {
    role: Role,
    tx: TxHalf,
    rx: RxHalf,
    link: Arc<PeerLink>,
    arenas: [Arc<Arena>; 2],
    in_flight: RefCell<InFlight>,
    stash: RefCell<HashMap<u64, Stashed>>,
    /// Replies for correlation ids never issued (or already answered), dropped.
    strays: std::cell::Cell<u64>,
    /// Server-streaming calls in flight: items kept for their readers.
    streams: RefCell<HashMap<u64, StreamQueue>>,
}

impl RpcBus {
    fn new(role: Role, fwd: Arena, rev: Arena, watch: PeerWatch, fast: bool) -> Self {
        // Before the halves exist: they read the ring protocol once.
        fwd.set_fast(fast);
        rev.set_fast(fast);
        Self::on_arenas(role, Arc::new(fwd), Arc::new(rev), watch)
    }

    /// A caller over `fwd` and a reply ring shared with a hostile callee (fuzzing).
    pub(crate) fn for_fuzzing(fwd: Arena, rev: &Arc<Arena>) -> Self {
        Self::on_arenas(Role::Caller, Arc::new(fwd), rev.clone(), PeerWatch::Nothing)
    }

    fn on_arenas(role: Role, fwd: Arc<Arena>, rev: Arc<Arena>, watch: PeerWatch) -> Self {
        let (tx, rx, rx_arena) = match role {
            Role::Callee => (TxHalf::new(rev.clone()), RxHalf::new(fwd.clone()), &fwd),
            Role::Caller => (TxHalf::new(fwd.clone()), RxHalf::new(rev.clone()), &rev),
        };
        let link = Arc::new(PeerLink::new(watch, rx_arena, &[&fwd, &rev]));
        Self {
            role,
            tx,
            rx,
            link,
            arenas: [fwd, rev],
            in_flight: RefCell::new(InFlight::default()),
            stash: RefCell::new(HashMap::new()),
            strays: std::cell::Cell::new(0),
            streams: RefCell::new(HashMap::new()),
        }
    }

    /// Creates both arenas and waits, without limit, for one caller at `socket_path`.
    /// One-shot, like upstream; see [`crate::rpc::RpcServer`] for many callers.
    ///
    /// # Errors
    /// [`Error::InvalidCapacity`], [`Error::InvalidPath`], [`Error::AbiMismatch`],
    /// [`Error::Io`].
    pub fn listen(socket_path: &str, cap_fwd: usize, cap_rev: usize) -> Result<Self> {
        Self::listen_with(socket_path, cap_fwd, cap_rev, Wait::new())
    }

    /// Like [`RpcBus::listen`], failing with [`Error::Timeout`] if nobody connects.
    ///
    /// # Errors
    /// As [`RpcBus::listen`], plus [`Error::Timeout`].
    pub fn listen_timeout(
        socket_path: &str,
        cap_fwd: usize,
        cap_rev: usize,
        timeout: Duration,
    ) -> Result<Self> {
        Self::listen_with(socket_path, cap_fwd, cap_rev, Wait::new().timeout(timeout))
    }

    /// Like [`RpcBus::listen`], with the timeout and interrupt check of `wait`.
    ///
    /// # Errors
    /// As [`RpcBus::listen_timeout`], plus [`Error::Interrupted`].
    pub fn listen_with(
        socket_path: &str,
        cap_fwd: usize,
        cap_rev: usize,
        wait: Wait<'_>,
    ) -> Result<Self> {
        Self::listen_opts(socket_path, cap_fwd, cap_rev, &ListenOptions::default(), wait)
    }

    /// Like [`RpcBus::listen_with`], with the access rules of `opts` (socket mode, which
    /// users may connect, handshake timeout).
    ///
    /// # Errors
    /// As [`RpcBus::listen_with`], plus [`Error::AddrInUse`].
    pub fn listen_opts(
        socket_path: &str,
        cap_fwd: usize,
        cap_rev: usize,
        opts: &ListenOptions,
        mut wait: Wait<'_>,
    ) -> Result<Self> {
        let (fwd, rev) = (
            Arena::create_named(cap_fwd, crate::shm::layout::memfd_name::RPC_FWD)?,
            Arena::create_named(cap_rev, crate::shm::layout::memfd_name::RPC_REV)?,
        );
        let timeout = wait.timeout_value();
        let mut check = || wait.check_interrupt();
        let spec = ListenSpec { timeout, interrupt: Some(&mut check) };
        let peer = bootstrap::listen(
            socket_path,
            &Handshake::rpc(cap_fwd, cap_rev),
            &[fwd.shm().fd(), rev.shm().fd()],
            opts,
            spec,
            &mut |e| tracing::warn!(target: "tachyon", "{e}"),
        )?;
        Ok(Self::new(Role::Callee, fwd, rev, peer.watch, peer.fast))
    }

    /// Offers a fresh pair of arenas to an accepted connection (multi-client server).
    /// `None` if the connector left before the handshake.
    pub(crate) fn offer(
        conn: Accepted,
        cap_fwd: usize,
        cap_rev: usize,
        handshake_timeout: Duration,
        fast: bool,
    ) -> Result<Option<Self>> {
        let (fwd, rev) = (
            Arena::create_named(cap_fwd, crate::shm::layout::memfd_name::RPC_FWD)?,
            Arena::create_named(cap_rev, crate::shm::layout::memfd_name::RPC_REV)?,
        );
        let offered = conn.offer(
            &Handshake::rpc(cap_fwd, cap_rev),
            &[fwd.shm().fd(), rev.shm().fd()],
            handshake_timeout,
            fast,
        )?;
        match offered {
            Offered::Taken(p) => Ok(Some(Self::new(Role::Callee, fwd, rev, p.watch, p.fast))),
            Offered::Left => Ok(None),
            Offered::Stalled => Err(Error::Timeout(handshake_timeout)),
        }
    }

    /// Connects as the caller to a callee listening at `socket_path`, within the default
    /// 10 s. Fails at once if nobody listens.
    ///
    /// # Errors
    /// [`Error::Connect`] if nobody listens there, [`Error::PermissionDenied`] for a
    /// listener of another user, [`Error::AbiMismatch`] if the listener is not an RPC
    /// v0x04 bus, [`Error::Refused`] if a server is at its client limit,
    /// [`Error::Timeout`], [`Error::CapacityLimit`].
    pub fn connect(socket_path: &str) -> Result<Self> {
        Self::connect_with(socket_path, &ConnectOptions::default(), Wait::new())
    }

    /// Like [`RpcBus::connect`], giving up after `timeout`.
    ///
    /// # Errors
    /// As [`RpcBus::connect`].
    pub fn connect_timeout(socket_path: &str, timeout: Duration) -> Result<Self> {
        Self::connect_with(socket_path, &ConnectOptions::default().timeout(timeout), Wait::new())
    }

    /// Like [`RpcBus::connect`], with `opts` and the interrupt check of `wait` (a timeout
    /// in `wait` overrides the one in `opts`).
    ///
    /// # Errors
    /// As [`RpcBus::connect`], plus [`Error::Interrupted`].
    pub fn connect_with(
        socket_path: &str,
        opts: &ConnectOptions,
        mut wait: Wait<'_>,
    ) -> Result<Self> {
        let timeout = wait.timeout_value();
        let mut check = || wait.check_interrupt();
        let spec = ListenSpec { timeout, interrupt: Some(&mut check) };
        let conn = bootstrap::connect(socket_path, BusKind::Rpc, opts, spec)?;
        let hs = conn.handshake;
        let mut fds = conn.fds.into_iter();
        let (Some(fwd), Some(rev)) = (fds.next(), fds.next()) else {
            return Err(Error::AbiMismatch("the listener sent fewer than two fds".to_owned()));
        };
        let fwd = Arena::attach(fwd, hs.shm_size_fwd as usize)?;
        let rev = Arena::attach(rev, hs.shm_size_rev as usize)?;
        if fwd.capacity() != hs.capacity_fwd as usize || rev.capacity() != hs.capacity_rev as usize
        {
            return Err(Error::AbiMismatch(
                "handshake capacities differ from the arenas'".to_owned(),
            ));
        }
        Ok(Self::new(Role::Caller, fwd, rev, conn.watch, conn.fast))
    }

    /// A handle that ends this bus's blocked calls from another thread (they fail with
    /// [`Error::Closed`]).
    pub fn closer(&self) -> Closer {
        self.link.closer()
    }

    /// A handle that wakes this bus's receive from another thread of this process (see
    /// [`crate::Nudge`]); a server loop that also sends replies finished elsewhere
    /// waits with it.
    pub fn nudge(&self) -> crate::Nudge {
        self.link.nudge()
    }

    /// Replies that arrived for correlation ids this caller never issued or already
    /// finished. Each was logged and dropped; the waits went on.
    pub fn stray_replies(&self) -> u64 {
        self.strays.get()
    }

    /// Whether this end is the caller or the callee.
    pub fn role(&self) -> Role {
        self.role
    }

    fn expect_role(&self, want: Role, what: &'static str) -> Result<()> {
        if self.role == want {
            Ok(())
        } else {
            Err(Error::Protocol(format!(
                "{what} is for the {want:?}, but this end is the {:?}",
                self.role
            )))
        }
    }

    // ---- caller -------------------------------------------------------------------

    /// Sends a request and returns its correlation id. Does not wait: a full request
    /// ring fails with [`Error::Full`] (see [`RpcBus::call_timeout`]).
    ///
    /// # Errors
    /// [`Error::Full`], [`Error::MessageTooLarge`], [`Error::PeerDead`],
    /// [`Error::Protocol`] on the callee end.
    #[inline]
    pub fn call(&self, payload: &[u8], msg_type: u16) -> Result<u64> {
        self.expect_role(Role::Caller, "call")?;
        let mut tx = self.tx.acquire(payload.len())?;
        tx.bytes_mut().copy_from_slice(payload);
        self.commit_call(tx, payload.len(), msg_type)
    }

    /// Sends a oneway request ([`ONEWAY_CID`]): the callee runs its handler and sends no
    /// reply, so nothing is left in flight here. Does not wait: a full request ring fails
    /// with [`Error::Full`] (see [`RpcBus::notify_with`]).
    ///
    /// # Errors
    /// As [`RpcBus::call`].
    pub fn notify(&self, payload: &[u8], msg_type: u16) -> Result<()> {
        self.notify_with(payload, msg_type, Wait::new().timeout(Duration::ZERO))
    }

    /// Like [`RpcBus::notify`], waiting for room in the request ring as `wait` says.
    ///
    /// # Errors
    /// As [`RpcBus::call_timeout`].
    pub fn notify_with(&self, payload: &[u8], msg_type: u16, wait: Wait<'_>) -> Result<()> {
        self.expect_role(Role::Caller, "notify")?;
        if msg_type == MSG_TYPE_ERROR {
            return Err(Error::InvalidArgument("msg_type 0xFFFF is the error sentinel".into()));
        }
        let mut tx = self.tx.acquire_with(payload.len(), &self.link, wait)?;
        tx.bytes_mut().copy_from_slice(payload);
        tx.commit_inner(payload.len(), u32::from(msg_type), Some(ONEWAY_CID))?.flush();
        Ok(())
    }

    /// Commits a request slot with the next correlation id and publishes it.
    #[inline]
    fn commit_call(&self, tx: TxGuard<'_>, len: usize, msg_type: u16) -> Result<u64> {
        let mut in_flight = self.in_flight.borrow_mut();
        let cid = in_flight.issue();
        match tx.commit_inner(len, u32::from(msg_type), Some(cid)) {
            Ok(mut producer) => {
                producer.flush();
                Ok(cid)
            }
            Err(e) => {
                in_flight.finish(cid);
                Err(e)
            }
        }
    }

    /// Like [`RpcBus::call`], waiting up to `timeout` for room in the request ring.
    ///
    /// # Errors
    /// As [`RpcBus::call`], with [`Error::Timeout`] in place of `Full`.
    pub fn call_timeout(&self, payload: &[u8], msg_type: u16, timeout: Duration) -> Result<u64> {
        let mut tx = self.acquire_call_with(payload.len(), Wait::new().timeout(timeout))?;
        tx.bytes_mut().copy_from_slice(payload);
        tx.commit(payload.len(), msg_type)
    }

    /// Reserves a request slot for zero-copy writing; [`RpcTxGuard::commit`] returns the
    /// correlation id.
    ///
    /// # Errors
    /// As [`RpcBus::call`].
    pub fn acquire_call(&self, max_size: usize) -> Result<RpcTxGuard<'_>> {
        self.expect_role(Role::Caller, "acquire_call")?;
        Ok(RpcTxGuard { bus: self, tx: self.tx.acquire(max_size)?, cid: None })
    }

    /// Like [`RpcBus::acquire_call`], waiting for room as `wait` says.
    ///
    /// # Errors
    /// As [`RpcBus::call_timeout`].
    pub fn acquire_call_with(&self, max_size: usize, wait: Wait<'_>) -> Result<RpcTxGuard<'_>> {
        self.expect_role(Role::Caller, "acquire_call")?;
        Ok(RpcTxGuard {
            bus: self,
            tx: self.tx.acquire_with(max_size, &self.link, wait)?,
            cid: None,
        })
    }

    /// Waits for the reply to call `cid`, without a timeout (it still ends with
    /// [`Error::PeerDead`] if the callee dies).
    ///
    /// # Errors
    /// As [`RpcBus::wait_with`].
    pub fn wait(&self, cid: u64) -> Result<RpcReply<'_>> {
        self.wait_with(cid, Wait::new())
    }

    /// Waits at most `timeout` for the reply to call `cid`.
    ///
    /// # Errors
    /// As [`RpcBus::wait_with`].
    pub fn wait_timeout(&self, cid: u64, timeout: Duration) -> Result<RpcReply<'_>> {
        self.wait_with(cid, Wait::new().timeout(timeout))
    }

    /// Waits for the reply to call `cid` as `wait` says. Replies to other calls in
    /// flight that arrive first are kept for their own waiters. On a timeout the call
    /// stays in flight: wait again, or [`RpcBus::abandon`] it.
    ///
    /// # Errors
    /// [`Error::Rpc`] if the callee answered with the 0xFFFF error sentinel;
    /// [`Error::Timeout`], [`Error::PeerDead`], [`Error::Interrupted`];
    /// [`Error::Protocol`] if `cid` is not in flight or the callee replied to a call that
    /// is not.
    pub fn wait_with(&self, cid: u64, wait: Wait<'_>) -> Result<RpcReply<'_>> {
        self.expect_role(Role::Caller, "wait")?;
        let stashed = {
            let mut stash = self.stash.borrow_mut();
            if stash.is_empty() {
                None
            } else {
                stash.remove(&cid)
            }
        };
        if let Some(s) = stashed {
            self.in_flight.borrow_mut().finish(cid);
            if s.msg_type == MSG_TYPE_ERROR {
                return Err(Error::Rpc(RpcError::decode(&s.data)));
            }
            return Ok(RpcReply { inner: ReplyInner::Stashed(s), cid });
        }
        if !self.in_flight.borrow().is_waiting(cid) {
            return Err(Error::Protocol(format!(
                "correlation id {cid} is not in flight on this bus"
            )));
        }
        if self.is_stream(cid) {
            return Err(Error::Protocol(format!(
                "correlation id {cid} is a stream: read it with next_stream_item_with"
            )));
        }
        let guard = self.rx.acquire_filtered_with(
            &self.link,
            wait,
            |slot| slot.correlation_id == cid,
            |slot, data| self.keep_aside(slot.correlation_id, crate::msg_type(slot.type_id), data),
        )?;
        self.in_flight.borrow_mut().finish(cid);
        if crate::msg_type(guard.type_id()) == MSG_TYPE_ERROR {
            return Err(Error::Rpc(RpcError::decode(guard.data())));
        }
        Ok(RpcReply { inner: ReplyInner::InPlace(guard), cid })
    }

    /// Waits for the reply to whichever call in flight is answered first, as `wait` says
    /// (replies kept aside earlier come first). Unlike [`RpcBus::wait_with`], an error
    /// reply is returned as it is, with msg_type 0xFFFF, so the caller learns which call
    /// failed: decode it with [`RpcError::decode`]. For event loops that wait for many
    /// calls at once.
    ///
    /// # Errors
    /// [`Error::Protocol`] if no call is in flight; as [`RpcBus::wait_with`] otherwise.
    pub fn next_reply_with(&self, wait: Wait<'_>) -> Result<RpcReply<'_>> {
        self.expect_role(Role::Caller, "wait")?;
        let stashed = {
            let mut stash = self.stash.borrow_mut();
            let first = stash.keys().next().copied();
            first.and_then(|cid| stash.remove(&cid).map(|s| (cid, s)))
        };
        if let Some((cid, s)) = stashed {
            self.in_flight.borrow_mut().finish(cid);
            return Ok(RpcReply { inner: ReplyInner::Stashed(s), cid });
        }
        if self.in_flight.borrow().len() <= self.streams.borrow().len() {
            return Err(Error::Protocol("no call is in flight on this bus".into()));
        }
        let guard = self.rx.acquire_filtered_with(
            &self.link,
            wait,
            |slot| {
                self.in_flight.borrow().is_waiting(slot.correlation_id)
                    && !self.is_stream(slot.correlation_id)
            },
            |slot, data| self.keep_aside(slot.correlation_id, crate::msg_type(slot.type_id), data),
        )?;
        let cid = guard.correlation_id();
        self.in_flight.borrow_mut().finish(cid);
        Ok(RpcReply { inner: ReplyInner::InPlace(guard), cid })
    }

    /// A reply for another call arrived first: keep a copy for its waiter, drop it if
    /// that call was abandoned, or log and drop a reply nobody asked for (a stray never
    /// ends an unrelated wait: the real reply may still come).
    #[allow(clippy::unnecessary_wraps)] // the shape `acquire_filtered_with` takes
    fn keep_aside(&self, got: u64, msg_type: u16, data: &[u8]) -> Result<()> {
        if self.keep_for_stream(got, msg_type, data) {
            return Ok(());
        }
        let mut in_flight = self.in_flight.borrow_mut();
        if in_flight.is_abandoned(got) {
            in_flight.finish(got); // the caller gave up on this call: drop its late reply
            return Ok(());
        }
        let mut stash = self.stash.borrow_mut();
        if !in_flight.is_waiting(got) || stash.contains_key(&got) {
            self.strays.set(self.strays.get() + 1);
            tracing::warn!(
                target: "tachyon",
                correlation_id = got,
                msg_type,
                "dropped a reply for a call that is not in flight (the peer broke the protocol)"
            );
            return Ok(());
        }
        stash.insert(got, Stashed { msg_type, data: data.to_vec() });
        Ok(())
    }

    /// Correlation ids sent and not yet answered (waited for).
    pub fn in_flight(&self) -> usize {
        self.in_flight.borrow().len()
    }

    /// Server-streaming calls among [`RpcBus::in_flight`] (each counts until its end).
    pub fn streams_in_flight(&self) -> usize {
        self.streams.borrow().len()
    }

    pub(crate) fn in_flight_contains(&self, cid: u64) -> bool {
        self.in_flight.borrow().is_waiting(cid)
    }

    /// Gives up on call `cid`: its reply, if it ever comes, is dropped. After a
    /// [`Error::Timeout`] from `wait`, the call stays in flight so you can wait again;
    /// abandon it instead if you will not.
    pub fn abandon(&self, cid: u64) {
        if self.is_stream(cid) {
            return self.cancel_stream(cid);
        }
        let mut in_flight = self.in_flight.borrow_mut();
        if self.stash.borrow_mut().remove(&cid).is_some() {
            in_flight.finish(cid);
        } else {
            in_flight.abandon(cid);
        }
    }

    // ---- streams (caller) -----------------------------------------------------------

    /// Starts a server-streaming call, waiting for room in the request ring as `wait`
    /// says. Read its items with [`RpcBus::next_stream_item_with`] (or through
    /// [`crate::rpc::Caller::open_stream`], which wraps this).
    ///
    /// # Errors
    /// As [`RpcBus::call_timeout`].
    pub fn call_stream_with(&self, payload: &[u8], msg_type: u16, wait: Wait<'_>) -> Result<u64> {
        let mut tx = self.acquire_call_with(payload.len(), wait)?;
        tx.bytes_mut().copy_from_slice(payload);
        let cid = tx.commit(payload.len(), msg_type)?;
        self.streams.borrow_mut().insert(cid, StreamQueue::default());
        Ok(cid)
    }

    /// The next item of stream `cid`, waiting as `wait` says; `Ok(None)` when the server
    /// ended it. Items that arrived while other calls were waited for come first, in
    /// order.
    ///
    /// # Errors
    /// [`Error::Rpc`] when the server ended the stream with an error (the stream is then
    /// over); [`Error::Timeout`] (the stream stays open), [`Error::PeerDead`];
    /// [`Error::Protocol`] if `cid` is not a stream in flight.
    pub fn next_stream_item_with(&self, cid: u64, wait: Wait<'_>) -> Result<Option<RpcReply<'_>>> {
        self.expect_role(Role::Caller, "wait")?;
        let queued = {
            let mut streams = self.streams.borrow_mut();
            let q = streams.get_mut(&cid).ok_or_else(|| {
                Error::Protocol(format!(
                    "correlation id {cid} is not a stream in flight on this bus"
                ))
            })?;
            q.items.pop_front()
        };
        let (msg_type, inner) = if let Some((msg_type, data)) = queued {
            (msg_type, ReplyInner::Stashed(Stashed { msg_type, data }))
        } else {
            let guard = self.rx.acquire_filtered_with(
                &self.link,
                wait,
                |slot| slot.correlation_id == cid,
                |slot, data| {
                    self.keep_aside(slot.correlation_id, crate::msg_type(slot.type_id), data)
                },
            )?;
            (crate::msg_type(guard.type_id()), ReplyInner::InPlace(guard))
        };
        let reply = RpcReply { inner, cid };
        match msg_type {
            MSG_TYPE_STREAM_END => {
                self.end_stream(cid);
                Ok(None)
            }
            MSG_TYPE_ERROR => {
                self.end_stream(cid);
                Err(Error::Rpc(RpcError::decode(reply.data())))
            }
            _ => Ok(Some(reply)),
        }
    }

    /// Cancels stream `cid`: tells the server (a oneway cancel request) and drops every
    /// item still to come; the call leaves the window when the server's end arrives.
    pub fn cancel_stream(&self, cid: u64) {
        let ended = {
            let mut streams = self.streams.borrow_mut();
            let Some(q) = streams.get_mut(&cid) else { return };
            if q.cancelled {
                return;
            }
            q.cancelled = true;
            let ended =
                q.items.iter().any(|(mt, _)| *mt == MSG_TYPE_STREAM_END || *mt == MSG_TYPE_ERROR);
            q.items.clear();
            ended
        };
        if ended {
            self.end_stream(cid);
            return;
        }
        // If the request ring stays full, the server streams on; its items are dropped
        // here as they come.
        let _ = self.notify_with(
            &cid.to_le_bytes(),
            MSG_TYPE_STREAM_END,
            Wait::new().timeout(Duration::from_millis(100)),
        );
    }

    fn is_stream(&self, cid: u64) -> bool {
        let streams = self.streams.borrow();
        !streams.is_empty() && streams.contains_key(&cid)
    }

    fn end_stream(&self, cid: u64) {
        self.streams.borrow_mut().remove(&cid);
        self.in_flight.borrow_mut().finish(cid);
    }

    /// A reply of a stream that is not being read right now: queue it (or drop it, for a
    /// cancelled stream). Whether `got` was a stream.
    fn keep_for_stream(&self, got: u64, msg_type: u16, data: &[u8]) -> bool {
        let mut streams = self.streams.borrow_mut();
        if streams.is_empty() {
            return false;
        }
        let Some(q) = streams.get_mut(&got) else { return false };
        let end = msg_type == MSG_TYPE_STREAM_END || msg_type == MSG_TYPE_ERROR;
        if !q.cancelled {
            q.items.push_back((msg_type, data.to_vec()));
        } else if end {
            streams.remove(&got);
            drop(streams);
            self.in_flight.borrow_mut().finish(got);
        }
        true
    }

    // ---- callee -------------------------------------------------------------------

    /// Waits, without a timeout, for the next request (it still ends with
    /// [`Error::PeerDead`] when the caller is gone).
    ///
    /// # Errors
    /// As [`RpcBus::serve_with`].
    pub fn serve(&self) -> Result<RpcRequest<'_>> {
        self.serve_with(Wait::new())
    }

    /// Waits at most `timeout` for the next request.
    ///
    /// # Errors
    /// As [`RpcBus::serve_with`].
    pub fn serve_timeout(&self, timeout: Duration) -> Result<RpcRequest<'_>> {
        self.serve_with(Wait::new().timeout(timeout))
    }

    /// Waits for the next request as `wait` says. The request is read in place; release
    /// it (drop) when done.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::PeerDead`], [`Error::Interrupted`],
    /// [`Error::Corrupted`]. A request with [`ONEWAY_CID`] is a oneway one: a reply to it
    /// is dropped.
    pub fn serve_with(&self, wait: Wait<'_>) -> Result<RpcRequest<'_>> {
        self.expect_role(Role::Callee, "serve")?;
        let guard = self.rx.acquire_with(&self.link, wait)?;
        Ok(RpcRequest { guard })
    }

    /// Sends the reply to request `cid`. Does not wait for room (see
    /// [`RpcBus::reply_timeout`]).
    ///
    /// # Errors
    /// [`Error::Full`], [`Error::MessageTooLarge`], [`Error::PeerDead`],
    /// [`Error::Protocol`] on the caller end. A reply to [`ONEWAY_CID`] is dropped.
    #[inline]
    pub fn reply(&self, cid: u64, payload: &[u8], msg_type: u16) -> Result<()> {
        if self.is_oneway(cid)? {
            return Ok(());
        }
        self.check_reply(cid)?;
        let mut tx = self.tx.acquire(payload.len())?;
        tx.bytes_mut().copy_from_slice(payload);
        tx.commit_inner(payload.len(), u32::from(msg_type), Some(cid))?.flush();
        Ok(())
    }

    /// Like [`RpcBus::reply`], waiting up to `timeout` for room in the reply ring.
    ///
    /// # Errors
    /// As [`RpcBus::reply`], with [`Error::Timeout`] in place of `Full`.
    pub fn reply_timeout(
        &self,
        cid: u64,
        payload: &[u8],
        msg_type: u16,
        timeout: Duration,
    ) -> Result<()> {
        self.reply_with(cid, payload, msg_type, Wait::new().timeout(timeout))
    }

    /// Like [`RpcBus::reply`], waiting for room as `wait` says.
    ///
    /// # Errors
    /// As [`RpcBus::reply_timeout`], plus [`Error::Interrupted`].
    pub fn reply_with(
        &self,
        cid: u64,
        payload: &[u8],
        msg_type: u16,
        wait: Wait<'_>,
    ) -> Result<()> {
        if self.is_oneway(cid)? {
            return Ok(());
        }
        let mut tx = self.acquire_reply_with(cid, payload.len(), wait)?;
        tx.bytes_mut().copy_from_slice(payload);
        tx.commit(payload.len(), msg_type).map(drop)
    }

    /// Sends a structured error reply (msg_type 0xFFFF) to request `cid`.
    ///
    /// # Errors
    /// As [`RpcBus::reply_with`].
    pub fn reply_error(&self, cid: u64, error: &RpcError, wait: Wait<'_>) -> Result<()> {
        self.reply_with(cid, &error.encode(), MSG_TYPE_ERROR, wait)
    }

    /// Reserves a reply slot for zero-copy writing.
    ///
    /// # Errors
    /// As [`RpcBus::reply`].
    pub fn acquire_reply(&self, cid: u64, max_size: usize) -> Result<RpcTxGuard<'_>> {
        self.check_reply(cid)?;
        Ok(RpcTxGuard { bus: self, tx: self.tx.acquire(max_size)?, cid: Some(cid) })
    }

    /// Like [`RpcBus::acquire_reply`], waiting for room as `wait` says.
    ///
    /// # Errors
    /// As [`RpcBus::reply_with`].
    pub fn acquire_reply_with(
        &self,
        cid: u64,
        max_size: usize,
        wait: Wait<'_>,
    ) -> Result<RpcTxGuard<'_>> {
        self.check_reply(cid)?;
        Ok(RpcTxGuard {
            bus: self,
            tx: self.tx.acquire_with(max_size, &self.link, wait)?,
            cid: Some(cid),
        })
    }

    fn check_reply(&self, cid: u64) -> Result<()> {
        self.expect_role(Role::Callee, "reply")?;
        if cid == ONEWAY_CID {
            return Err(Error::InvalidArgument(
                "correlation id 0 is a oneway request: it takes no reply".to_owned(),
            ));
        }
        Ok(())
    }

    /// Whether a reply to `cid` is to be dropped: [`ONEWAY_CID`] asks for none.
    fn is_oneway(&self, cid: u64) -> Result<bool> {
        self.expect_role(Role::Callee, "reply")?;
        Ok(cid == ONEWAY_CID)
    }

    // ---- both ---------------------------------------------------------------------

    /// Releases a request or reply parked by [`RpcRequest::park`] or [`RpcReply::park`].
    ///
    /// # Errors
    /// [`Error::Busy`] if a receive is in progress, [`Error::Protocol`] if the message
    /// belongs to another bus.
    #[allow(clippy::needless_pass_by_value)] // consumes the token so it cannot be reused
    pub fn commit_parked(&self, parked: ParkedRx) -> Result<()> {
        self.rx.commit_parked(parked)
    }

    /// Takes back a slot parked by [`RpcTxGuard::park`].
    ///
    /// # Errors
    /// [`Error::Busy`] if a send is in progress, [`Error::Protocol`] if the slot belongs
    /// to another bus.
    pub fn resume(&self, parked: ParkedRpcTx) -> Result<RpcTxGuard<'_>> {
        Ok(RpcTxGuard { bus: self, tx: self.tx.resume(parked.tx)?, cid: parked.cid })
    }

    /// What this side has sent and received on both rings (requests one way, replies
    /// the other), and the waits, timeouts and dead peers it met (see
    /// [`crate::BusStats`]).
    pub fn stats(&self) -> crate::BusStats {
        self.arenas[0].stats().snapshot() + self.arenas[1].stats().snapshot()
    }

    /// A `Send + Sync` handle that reads [`RpcBus::stats`] from any thread.
    pub fn stats_reader(&self) -> crate::StatsReader {
        crate::StatsReader::new(self.arenas.to_vec())
    }

    /// Pure-spin mode on both arenas, as upstream's `set_polling_mode` (and unlike it,
    /// it stays set).
    pub fn set_polling_mode(&self, enabled: bool) {
        for a in &self.arenas {
            a.set_polling(enabled);
        }
    }

    /// See `RxHalf::settle`: after taking the last reply, lets the readiness see an
    /// empty ring.
    pub(crate) fn settle_rx(&self) {
        self.rx.settle();
    }

    /// A handle that waits for a request (callee) or reply (caller) to arrive, without
    /// borrowing the bus: for event loops that wait on one thread and receive on another.
    pub fn rx_readiness(&self) -> RxReadiness {
        self.rx.readiness(&self.link)
    }

    /// The inode of the request arena's memfd (to look for it in the peer's `/proc`).
    pub(crate) fn request_arena_inode(&self) -> Option<u64> {
        self.arenas[0].shm().inode()
    }

    /// Whether the peer negotiated a liveness link (it is a Tachyon peer).
    pub fn has_peer_link(&self) -> bool {
        self.link.is_linked()
    }

    /// The ring protocol both rings run: [`crate::RingMode::Fast`] when both peers are
    /// ours and agreed on it, [`crate::RingMode::Compat`] (upstream's ABI v0x04) otherwise.
    pub fn ring_mode(&self) -> crate::RingMode {
        // Each ring decides for itself (a small ring stays compatible); report fast only
        // when both are.
        match (self.arenas[0].mode(), self.arenas[1].mode()) {
            (crate::RingMode::Fast, crate::RingMode::Fast) => crate::RingMode::Fast,
            _ => crate::RingMode::Compat,
        }
    }

    /// Checks now whether the peer is known to be gone.
    ///
    /// # Errors
    /// [`Error::PeerDead`].
    pub fn check_peer(&self) -> Result<()> {
        self.link.check()
    }
}

/// A reserved request or reply slot. Commit returns the correlation id; dropping it
/// rolls back.
#[derive(Debug)]
pub struct RpcTxGuard<'bus> {
    bus: &'bus RpcBus,
    tx: TxGuard<'bus>,
    /// `Some` for a reply (the id it answers), `None` for a request (assigned at commit).
    cid: Option<u64>,
}

impl RpcTxGuard<'_> {
    /// The writable slot in shared memory.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.tx.bytes_mut()
    }

    /// The most payload bytes this slot can take.
    pub fn max_size(&self) -> usize {
        self.tx.max_size()
    }

    /// Commits `actual_size` bytes as `msg_type` and publishes. A request gets the next
    /// correlation id, which is returned; a reply returns the id it answers.
    ///
    /// # Errors
    /// [`Error::InvalidSize`] if `actual_size` exceeds the slot.
    #[inline]
    pub fn commit(self, actual_size: usize, msg_type: u16) -> Result<u64> {
        match self.cid {
            Some(cid) => {
                self.tx.commit_inner(actual_size, u32::from(msg_type), Some(cid))?.flush();
                Ok(cid)
            }
            None => self.bus.commit_call(self.tx, actual_size, msg_type),
        }
    }
}

impl RpcTxGuard<'_> {
    /// Detaches the slot from this borrow of the bus, for a language binding whose guard
    /// object cannot hold one; [`RpcBus::resume`] takes it back. Meanwhile every other
    /// send on this bus fails with [`Error::Busy`].
    pub fn park(self) -> ParkedRpcTx {
        ParkedRpcTx { tx: self.tx.park(), cid: self.cid }
    }
}

/// A request or reply slot detached by [`RpcTxGuard::park`].
#[derive(Debug)]
pub struct ParkedRpcTx {
    tx: ParkedTx,
    cid: Option<u64>,
}

/// A request being served, read in place. Dropping it releases the slot.
#[derive(Debug)]
pub struct RpcRequest<'bus> {
    guard: RxGuard<'bus>,
}

impl RpcRequest<'_> {
    /// The id to pass to [`RpcBus::reply`].
    pub fn correlation_id(&self) -> u64 {
        self.guard.correlation_id()
    }

    /// The request's msg_type (bits 15..0 of its type id).
    pub fn msg_type(&self) -> u16 {
        crate::msg_type(self.guard.type_id())
    }

    /// The full type id, route included.
    pub fn type_id(&self) -> u32 {
        self.guard.type_id()
    }

    /// The request payload, borrowed from shared memory.
    pub fn data(&self) -> &[u8] {
        self.guard.data()
    }

    /// Detaches the request from this borrow of the bus, unreleased, for a language
    /// binding whose guard object cannot hold one; [`RpcBus::commit_parked`] releases it.
    /// Meanwhile every other receive on this bus fails with [`Error::Busy`].
    pub fn park(self) -> ParkedRx {
        self.guard.park()
    }
}

#[derive(Debug)]
enum ReplyInner<'bus> {
    InPlace(RxGuard<'bus>),
    Stashed(Stashed),
}

/// A reply: read in place from the ring, or kept aside because it arrived while another
/// call was being waited for.
#[derive(Debug)]
pub struct RpcReply<'bus> {
    inner: ReplyInner<'bus>,
    cid: u64,
}

impl RpcReply<'_> {
    /// The reply payload.
    pub fn data(&self) -> &[u8] {
        match &self.inner {
            ReplyInner::InPlace(g) => g.data(),
            ReplyInner::Stashed(s) => &s.data,
        }
    }

    /// The reply's msg_type.
    pub fn msg_type(&self) -> u16 {
        match &self.inner {
            ReplyInner::InPlace(g) => crate::msg_type(g.type_id()),
            ReplyInner::Stashed(s) => s.msg_type,
        }
    }

    /// The correlation id this reply answers.
    pub fn correlation_id(&self) -> u64 {
        self.cid
    }

    /// Detaches the reply from this borrow of the bus: a reply read in place stays
    /// unreleased in the ring ([`ParkedReply::Slot`], released by
    /// [`RpcBus::commit_parked`]); one that was kept aside is handed over as it is.
    pub fn park(self) -> ParkedReply {
        match self.inner {
            ReplyInner::InPlace(g) => ParkedReply::Slot(g.park()),
            ReplyInner::Stashed(s) => ParkedReply::Copy(s.data),
        }
    }
}

/// A reply detached by [`RpcReply::park`].
#[derive(Debug)]
pub enum ParkedReply {
    /// Still in the ring, unreleased.
    Slot(ParkedRx),
    /// Arrived while another call was waited for, so already copied out.
    Copy(Vec<u8>),
}

/// The caller's side of a stream on an [`RpcBus`]: what [`crate::rpc::Caller::open_stream`]
/// returns for shared memory. Dropping it before the end cancels the stream.
#[derive(Debug)]
pub(crate) struct RpcStream<'bus> {
    pub bus: &'bus RpcBus,
    pub cid: u64,
    /// How long one item may take.
    pub timeout: Option<Duration>,
    pub done: bool,
}

impl StreamSource for RpcStream<'_> {
    fn next_item(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        match self.bus.next_stream_item_with(self.cid, Wait::new().timeout_opt(self.timeout)) {
            Ok(Some(item)) => Ok(Some(item.data().to_vec())),
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                // A timeout leaves the stream open; anything else ended it.
                if !matches!(e, Error::Timeout(_)) {
                    self.done = true;
                }
                Err(e)
            }
        }
    }
}

impl Drop for RpcStream<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.bus.cancel_stream(self.cid);
        }
    }
}
