//! The bytes on the socket: upstream's 32-byte handshake, and our 8-byte extension frames (hello, answer, refusal).

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use crate::error::{Error, Result};
use crate::shm::layout::{self, FLAG_RPC, HANDSHAKE_SIZE};
use crate::shm::liveness::PeerWatch;

use super::{
    process_of, Deadline, ListenSpec, Offered, Peer, EXT_ACCEPTED, EXT_ACCEPTED_FAST, EXT_MAGIC,
    EXT_REJECTED, EXT_VERSION, EXT_VERSION_FAST,
};

/// Which kind of bus a handshake describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// One arena, one direction.
    Spsc,
    /// Two arenas: `fwd` (caller to callee) and `rev` (callee to caller).
    Rpc,
}

/// The 32-byte bootstrap struct: eight native-endian u32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Ring capacity of the first (or only) arena.
    pub capacity_fwd: u32,
    /// `768 + capacity_fwd`.
    pub shm_size_fwd: u32,
    /// Ring capacity of the RPC reverse arena (0 for SPSC).
    pub capacity_rev: u32,
    /// `768 + capacity_rev` (0 for SPSC).
    pub shm_size_rev: u32,
    /// SPSC or RPC (flags bit 0).
    pub kind: BusKind,
}

impl Handshake {
    /// The handshake for an SPSC bus of `capacity` bytes.
    pub fn spsc(capacity: usize) -> Self {
        Self {
            capacity_fwd: capacity as u32,
            shm_size_fwd: layout::shm_size(capacity) as u32,
            capacity_rev: 0,
            shm_size_rev: 0,
            kind: BusKind::Spsc,
        }
    }

    #[cfg(any(feature = "rpc", test, feature = "test-hooks"))]
    /// The handshake for an RPC bus.
    pub fn rpc(cap_fwd: usize, cap_rev: usize) -> Self {
        Self {
            capacity_fwd: cap_fwd as u32,
            shm_size_fwd: layout::shm_size(cap_fwd) as u32,
            capacity_rev: cap_rev as u32,
            shm_size_rev: layout::shm_size(cap_rev) as u32,
            kind: BusKind::Rpc,
        }
    }

    /// The wire bytes.
    pub fn encode(&self) -> [u8; HANDSHAKE_SIZE] {
        let flags = match self.kind {
            BusKind::Spsc => 0,
            BusKind::Rpc => FLAG_RPC,
        };
        let words = [
            layout::MAGIC,
            layout::VERSION,
            self.capacity_fwd,
            self.shm_size_fwd,
            self.capacity_rev,
            self.shm_size_rev,
            layout::MSG_ALIGNMENT,
            flags,
        ];
        let mut out = [0u8; HANDSHAKE_SIZE];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        out
    }

    /// Parses and validates wire bytes: magic, version, alignment and flags must match
    /// exactly, as upstream requires.
    ///
    /// # Errors
    /// [`Error::AbiMismatch`] naming the first field that differs.
    pub fn decode(bytes: &[u8; HANDSHAKE_SIZE]) -> Result<Self> {
        let w = |i: usize| {
            u32::from_ne_bytes([bytes[i * 4], bytes[i * 4 + 1], bytes[i * 4 + 2], bytes[i * 4 + 3]])
        };
        let mismatch = |what: &str, got: u32, want: u32| {
            Err(Error::AbiMismatch(format!("handshake {what} is {got:#x}, expected {want:#x}")))
        };
        if w(0) != layout::MAGIC {
            return mismatch("magic", w(0), layout::MAGIC);
        }
        if w(1) != layout::VERSION {
            return mismatch("version", w(1), layout::VERSION);
        }
        if w(6) != layout::MSG_ALIGNMENT {
            return mismatch("msg_alignment", w(6), layout::MSG_ALIGNMENT);
        }
        let kind = match w(7) {
            0 => BusKind::Spsc,
            FLAG_RPC => BusKind::Rpc,
            f => return mismatch("flags", f, 0),
        };
        Ok(Self {
            capacity_fwd: w(2),
            shm_size_fwd: w(3),
            capacity_rev: w(4),
            shm_size_rev: w(5),
            kind,
        })
    }

    /// Number of fds that travel with this handshake.
    pub fn fd_count(&self) -> usize {
        match self.kind {
            BusKind::Spsc => 1,
            BusKind::Rpc => 2,
        }
    }
}

pub(super) fn send_handshake(
    conn: &OwnedFd,
    hs: &Handshake,
    fds: &[BorrowedFd<'_>],
) -> std::result::Result<(), Errno> {
    let bytes = hs.encode();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Errno::NOBUFS);
    }
    loop {
        // A fresh connection's send buffer is empty: 32 bytes never block.
        match rustix::net::sendmsg(conn, &[IoSlice::new(&bytes)], &mut control, SendFlags::NOSIGNAL)
        {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(_) => return Err(Errno::PIPE),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

pub(super) fn ext_frame(word: u32) -> [u8; 8] {
    let mut f = [0u8; 8];
    f[..4].copy_from_slice(&EXT_MAGIC);
    f[4..].copy_from_slice(&word.to_ne_bytes());
    f
}

pub(super) fn negotiate_as_listener(
    conn: OwnedFd,
    timeout: Duration,
    fast: bool,
) -> Result<Offered> {
    // The peer may be upstream and gone already: a failed send just means "no link".
    let fallback = Peer { watch: process_of(&conn), fast: false };
    // The fast mode's wake protocol needs membarrier (see `wait::Barrier`).
    let fast = fast && crate::shm::wait::membarrier_registered();
    let hello = if fast { EXT_VERSION_FAST } else { EXT_VERSION };
    if rustix::net::send(&conn, &ext_frame(hello), SendFlags::NOSIGNAL).is_err() {
        return Ok(Offered::Taken(fallback));
    }
    let mut spec = ListenSpec { timeout: Some(timeout), interrupt: None };
    match read_frame(&conn, &mut Deadline::start(&mut spec))? {
        Frame::Word(EXT_ACCEPTED) => {
            Ok(Offered::Taken(Peer { watch: PeerWatch::Socket(conn), fast: false }))
        }
        // Only an offered fast mode can be accepted; anything else is a confused peer,
        // served as an upstream one.
        Frame::Word(EXT_ACCEPTED_FAST) if fast => {
            Ok(Offered::Taken(Peer { watch: PeerWatch::Socket(conn), fast: true }))
        }
        Frame::Word(EXT_REJECTED) => Err(Error::AbiMismatch(
            "the connector rejected the handshake (other bus kind, or too large)".to_owned(),
        )),
        // EOF: an upstream connector, which reads 32 bytes and closes.
        Frame::Eof | Frame::Word(_) | Frame::Foreign => Ok(Offered::Taken(fallback)),
        // Neither ours (which answers at once) nor upstream's (which closes at once):
        // a connector that stalls must not hold the listener.
        Frame::TimedOut => Ok(Offered::Stalled),
    }
}

/// What [`read_frame`] found.
pub(super) enum Frame {
    /// One of our extension frames, with its word.
    Word(u32),
    /// The peer closed (or reset) the socket.
    Eof,
    /// Eight bytes that are not ours.
    Foreign,
    /// Nothing came in time.
    TimedOut,
}

/// Reads one 8-byte extension frame.
pub(super) fn read_frame(sock: &OwnedFd, deadline: &mut Deadline<'_, '_>) -> Result<Frame> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        match deadline.poll(sock.as_fd(), PollFlags::IN) {
            Ok(_) => {}
            Err(Error::Timeout(_)) => return Ok(Frame::TimedOut),
            Err(e) => return Err(e),
        }
        match rustix::net::recv(sock, &mut buf[got..], RecvFlags::DONTWAIT) {
            Ok((0, _)) => return Ok(Frame::Eof),
            Ok((n, _)) => got += n,
            Err(Errno::INTR | Errno::AGAIN) => {}
            Err(_) => return Ok(Frame::Eof),
        }
    }
    if buf[..4] != EXT_MAGIC {
        return Ok(Frame::Foreign);
    }
    Ok(Frame::Word(u32::from_ne_bytes(buf[4..].try_into().expect("4 bytes"))))
}
