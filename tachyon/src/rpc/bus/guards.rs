//! The slots and messages an [`RpcBus`] hands out: a reserved request or reply, a
//! request being served, a reply, and their parked forms; and the caller's side of a
//! stream.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::rpc::stream::StreamSource;
use crate::shm::halves::{ParkedRx, ParkedTx, RxGuard, TxGuard};
use crate::shm::wait::Wait;

use super::{RpcBus, Stashed};

/// A reserved request or reply slot. Commit returns the correlation id; dropping it
/// rolls back.
#[derive(Debug)]
pub struct RpcTxGuard<'bus> {
    pub(super) bus: &'bus RpcBus,
    pub(super) tx: TxGuard<'bus>,
    /// `Some` for a reply (the id it answers), `None` for a request (assigned at commit).
    pub(super) cid: Option<u64>,
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
    pub(super) tx: ParkedTx,
    pub(super) cid: Option<u64>,
}

/// A request being served, read in place. Dropping it releases the slot.
#[derive(Debug)]
pub struct RpcRequest<'bus> {
    pub(super) guard: RxGuard<'bus>,
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
pub(super) enum ReplyInner<'bus> {
    InPlace(RxGuard<'bus>),
    Stashed(Stashed),
}

/// A reply: read in place from the ring, or kept aside because it arrived while another
/// call was being waited for.
#[derive(Debug)]
pub struct RpcReply<'bus> {
    pub(super) inner: ReplyInner<'bus>,
    pub(super) cid: u64,
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
