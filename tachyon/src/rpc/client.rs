//! One-shot calls on the caller end: send, wait, turn 0xFFFF into an error, decode.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::rpc::bus::RpcBus;
use crate::rpc::codec;
use crate::shm::wait::Wait;

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
    fn wait_or_abandon(
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
        msg_type: u16,
        payload: &[u8],
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
        msg_type: u16,
        req: &Req,
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
