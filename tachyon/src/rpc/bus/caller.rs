//! The caller's half of an [`RpcBus`]: requests out, replies (and stream items) in,
//! and the one-shot calls built on them.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::rpc::error::{RpcError, MSG_TYPE_ERROR, ONEWAY_CID};
use crate::rpc::stream::{StreamQueue, MSG_TYPE_STREAM_END};
use crate::shm::halves::TxGuard;
use crate::shm::wait::Wait;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::rpc::codec;

use super::{ReplyInner, Role, RpcBus, RpcReply, RpcTxGuard, Stashed};

impl RpcBus {
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
    pub(super) fn commit_call(&self, tx: TxGuard<'_>, len: usize, msg_type: u16) -> Result<u64> {
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
    pub(super) fn keep_aside(&self, got: u64, msg_type: u16, data: &[u8]) -> Result<()> {
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

    pub(super) fn is_stream(&self, cid: u64) -> bool {
        let streams = self.streams.borrow();
        !streams.is_empty() && streams.contains_key(&cid)
    }

    pub(super) fn end_stream(&self, cid: u64) {
        self.streams.borrow_mut().remove(&cid);
        self.in_flight.borrow_mut().finish(cid);
    }

    /// A reply of a stream that is not being read right now: queue it (or drop it, for a
    /// cancelled stream). Whether `got` was a stream.
    pub(super) fn keep_for_stream(&self, got: u64, msg_type: u16, data: &[u8]) -> bool {
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
}

/// What is left of an optional overall timeout.
fn remaining(start: Instant, timeout: Option<Duration>) -> Result<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) => match t.checked_sub(start.elapsed()) {
            Some(left) => Ok(Some(left)),
            None => Err(Error::Timeout(t)),
        },
    }
}

impl RpcBus {
    /// Waits for `cid` within what is left of `timeout`; a one-shot call that gives up
    /// abandons its reply.
    pub(super) fn wait_or_abandon(
        &self,
        cid: u64,
        start: Instant,
        timeout: Option<Duration>,
    ) -> Result<crate::rpc::RpcReply<'_>> {
        let result = remaining(start, timeout)
            .and_then(|left| self.wait_with(cid, Wait::new().timeout_opt(left)));
        if result.is_err() && self.in_flight_contains(cid) {
            self.abandon(cid);
        }
        result
    }

    /// Calls `msg_type` with raw bytes and waits for the reply, all within `timeout`
    /// (`None`: as long as the callee lives). Waits for room in the request ring too.
    ///
    /// # Errors
    /// [`Error::Rpc`] for an error reply, [`Error::Timeout`], [`Error::PeerDead`], and the
    /// errors of [`RpcBus::call`].
    pub fn invoke(
        &self,
        payload: &[u8],
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>> {
        let start = Instant::now();
        let mut tx = self.acquire_call_with(payload.len(), Wait::new().timeout_opt(timeout))?;
        tx.bytes_mut().copy_from_slice(payload);
        let cid = tx.commit(payload.len(), msg_type)?;
        let reply = self.wait_or_abandon(cid, start, timeout)?;
        Ok(reply.data().to_vec())
    }

    /// Calls a typed handler: `req` goes out as MessagePack, the reply is decoded as
    /// `Resp`. This is what `#[tachyon_rpc]`'s generated `call` uses.
    ///
    /// # Errors
    /// As [`RpcBus::invoke`], plus [`Error::Codec`].
    pub fn invoke_typed<Req, Resp>(
        &self,
        req: &Req,
        msg_type: u16,
        timeout: Option<Duration>,
    ) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let start = Instant::now();
        let payload = codec::encode(req)?;
        let mut tx = self.acquire_call_with(payload.len(), Wait::new().timeout_opt(timeout))?;
        tx.bytes_mut().copy_from_slice(&payload);
        let cid = tx.commit(payload.len(), msg_type)?;
        let reply = self.wait_or_abandon(cid, start, timeout)?;
        codec::decode(reply.data())
    }
}
