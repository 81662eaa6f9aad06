//! A hostile listener and connector for the fuzz target.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use crate::shm::layout::HANDSHAKE_SIZE;
use crate::shm::options::ConnectOptions;

use super::{
    handshake_over, negotiate_as_listener, refusal_or_short, BusKind, Deadline, ListenSpec, Offered,
};

/// Plays a hostile listener against our connector, and a hostile connector against our
/// listener's negotiation: `data` is what the other end writes (its first byte says how
/// many memfds travel with it and which bus kind is wanted). Never panics; errors are
/// the expected outcome. For `cargo fuzz` and the corpus replay.
///
/// # Panics
/// When a connection it accepts breaks an invariant (that is the bug it looks for).
#[doc(hidden)]
pub fn fuzz_bootstrap(data: &[u8]) {
    use crate::shm::region::SharedMemory;
    let Some((&control, bytes)) = data.split_first() else { return };
    let pair = || {
        rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .expect("socketpair works in tests")
    };
    let bytes = &bytes[..bytes.len().min(4096)];
    // Connector side: a listener that sends `bytes` (and 0 to 3 memfds), then closes.
    let (ours, theirs) = pair();
    let shms: Vec<SharedMemory> = (0..(control & 3))
        .map(|_| SharedMemory::create("fuzz", 768 + 4096).expect("memfd works in tests"))
        .collect();
    let fds: Vec<BorrowedFd<'_>> = shms.iter().map(SharedMemory::fd).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        let _ = cmsg.push(SendAncillaryMessage::ScmRights(&fds));
    }
    let _ = rustix::net::sendmsg(&theirs, &[IoSlice::new(bytes)], &mut cmsg, SendFlags::NOSIGNAL);
    drop(theirs);
    let want = if control & 4 == 0 { BusKind::Spsc } else { BusKind::Rpc };
    let opts = ConnectOptions::default().max_capacity(1 << 20);
    let mut spec = ListenSpec { timeout: Some(Duration::from_millis(50)), interrupt: None };
    if let Ok(conn) = handshake_over(ours, want, &opts, &mut Deadline::start(&mut spec)) {
        assert_eq!(conn.fds.len(), conn.handshake.fd_count(), "validated fd count");
    }
    // Listener side: a connector that answers with `bytes`, then closes.
    let (ours, theirs) = pair();
    let _ = rustix::net::send(&theirs, bytes, SendFlags::NOSIGNAL);
    // Half-close: our hello still goes out, then our read sees the bytes and EOF.
    let _ = rustix::net::shutdown(&theirs, rustix::net::Shutdown::Write);
    let offer_fast = control & 0x40 != 0;
    if let Ok(Offered::Taken(peer)) =
        negotiate_as_listener(ours, Duration::from_millis(50), offer_fast)
    {
        assert!(!peer.fast || offer_fast, "the fast mode was never offered");
    }
    drop(theirs);
    // And a refusal frame or short handshake.
    let _ = refusal_or_short(&bytes[..bytes.len().min(HANDSHAKE_SIZE - 1)]);
}
