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
use crate::rpc::in_flight::InFlight;
use crate::rpc::stream::StreamQueue;
use crate::shm::arena::Arena;
use crate::shm::bootstrap::{self, Accepted, BusKind, Handshake, ListenSpec, Offered};
use crate::shm::halves::{ParkedRx, RxHalf, RxReadiness, TxHalf};
use crate::shm::liveness::{Closer, PeerLink, PeerWatch};
use crate::shm::options::{ConnectOptions, ListenOptions};
use crate::shm::wait::Wait;

mod callee;
mod caller;
mod guards;

use guards::ReplyInner;
pub(crate) use guards::RpcStream;
pub use guards::{ParkedReply, ParkedRpcTx, RpcReply, RpcRequest, RpcTxGuard};

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
    #[cfg(feature = "test-hooks")]
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
