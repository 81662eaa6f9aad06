//! The callee's half of an [`RpcBus`]: requests in, replies out.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::rpc::error::{RpcError, MSG_TYPE_ERROR, ONEWAY_CID};
use crate::shm::wait::Wait;

use super::{Role, RpcBus, RpcRequest, RpcTxGuard};

impl RpcBus {
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

    pub(super) fn check_reply(&self, cid: u64) -> Result<()> {
        self.expect_role(Role::Callee, "reply")?;
        if cid == ONEWAY_CID {
            return Err(Error::InvalidArgument(
                "correlation id 0 is a oneway request: it takes no reply".to_owned(),
            ));
        }
        Ok(())
    }

    /// Whether a reply to `cid` is to be dropped: [`ONEWAY_CID`] asks for none.
    pub(super) fn is_oneway(&self, cid: u64) -> Result<bool> {
        self.expect_role(Role::Callee, "reply")?;
        Ok(cid == ONEWAY_CID)
    }
}
