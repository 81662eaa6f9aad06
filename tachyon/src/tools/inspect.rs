//! Finds the Tachyon arenas that processes hold and reads their headers, never writing
//! to them: what `tachyon inspect` prints.
//!
//! An arena is a memfd; a process holding one shows it in `/proc/PID/fd` as
//! `/memfd:NAME (deleted)`. Each memfd is opened read-only through that link and its
//! 768-byte header read with `pread`; one whose magic and version are not ABI v0x04 is
//! skipped. The memfd's name says what the ring is for (`tachyon_arena` for an SPSC bus,
//! `tachyon_rpc_fwd` and `tachyon_rpc_rev` for an RPC bus);
//! the fast protocol marks its rings in the header's padding. Only processes of this
//! user are looked at (the kernel refuses the others' descriptors anyway).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

use crate::shm::layout::{self, arena_off, memfd_name, sleep, state, ARENA_HEADER_SIZE};

/// One arena a process holds, as its header says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArenaInfo {
    /// The process holding it.
    pub pid: i32,
    /// Its descriptor in that process.
    pub fd: i32,
    /// The memfd's inode (the same arena in two processes has the same one).
    pub inode: u64,
    /// `"spsc"`, `"rpc requests"`, `"rpc replies"`, or `"arena"` (made by another
    /// implementation, such as upstream's).
    pub kind: &'static str,
    /// The ring's capacity in bytes.
    pub capacity: u64,
    /// `"ready"`, `"disconnected"`, `"fatal"`, `"initializing"`, `"uninitialized"`.
    pub state: &'static str,
    /// Bytes the producer has published.
    pub head: u64,
    /// Bytes the consumer has released.
    pub tail: u64,
    /// `head - tail`: bytes written and not yet released (the consumer publishes its
    /// tail in batches, so a busy ring reads a little fuller than it is).
    pub fill: u64,
    /// The consumer: `"awake"`, `"sleeping"` (in the futex) or `"polling"` (pure spin).
    pub consumer: &'static str,
    /// `"fast"` (two peers of ours) or `"compatible"` (ABI v0x04).
    pub mode: &'static str,
    /// Fast mode: the messages the producer has published, as it last stored the count
    /// beside its head (`None` on a compatible ring, whose bytes are upstream's).
    pub published_messages: Option<u64>,
    /// Fast mode: the messages the consumer has received, as of its last tail store.
    pub consumed_messages: Option<u64>,
    /// Fast mode: the consumer's futex sleeps, as of its last tail store.
    pub consumer_sleeps: Option<u64>,
    /// The other processes (of this user) holding the same arena.
    pub peers: Vec<i32>,
}

/// The pids of this user's processes.
fn own_pids() -> Vec<i32> {
    let me = rustix::process::getuid().as_raw();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == me))
        .collect()
}

/// The memfds `pid` holds: (fd, memfd name, inode).
fn memfds(pid: i32) -> Vec<(i32, String, u64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse::<i32>().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            let target = target.to_str()?;
            let name = target.strip_prefix("/memfd:")?;
            let name = name.strip_suffix(" (deleted)").unwrap_or(name).to_owned();
            let inode = std::fs::metadata(e.path()).ok()?.ino();
            Some((fd, name, inode))
        })
        .collect()
}

fn u32_at(h: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(h[off..off + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(h: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(h[off..off + 8].try_into().unwrap_or([0; 8]))
}

/// Reads one memfd's header, read-only; `None` if it is not an ABI v0x04 arena.
fn read_header(pid: i32, fd: i32) -> Option<[u8; ARENA_HEADER_SIZE]> {
    let f = File::open(format!("/proc/{pid}/fd/{fd}")).ok()?;
    if f.metadata().ok()?.len() < ARENA_HEADER_SIZE as u64 {
        return None;
    }
    let mut h = [0u8; ARENA_HEADER_SIZE];
    f.read_exact_at(&mut h, 0).ok()?;
    let ok = u32_at(&h, arena_off::MAGIC) == layout::MAGIC
        && u32_at(&h, arena_off::VERSION) == layout::VERSION;
    ok.then_some(h)
}

fn describe(pid: i32, fd: i32, name: &str, inode: u64, h: &[u8]) -> ArenaInfo {
    let kind = match name {
        memfd_name::SPSC => "spsc",
        memfd_name::RPC_FWD => "rpc requests",
        memfd_name::RPC_REV => "rpc replies",
        _ => "arena",
    };
    let state = match u32_at(h, arena_off::STATE) {
        state::UNINITIALIZED => "uninitialized",
        state::INITIALIZING => "initializing",
        state::READY => "ready",
        state::DISCONNECTED => "disconnected",
        state::FATAL_ERROR => "fatal",
        _ => "unknown",
    };
    let consumer = match u32_at(h, arena_off::CONSUMER_SLEEPING) {
        sleep::AWAKE => "awake",
        sleep::SLEEPING => "sleeping",
        sleep::POLLING => "polling",
        _ => "unknown",
    };
    let mode =
        if u32_at(h, arena_off::MODE_MARK) == layout::FAST_MARK { "fast" } else { "compatible" };
    let (head, tail) = (u64_at(h, arena_off::HEAD), u64_at(h, arena_off::TAIL));
    // Numbers a peer wrote: shown, never trusted for anything else.
    let fast = |off| (mode == "fast").then(|| u64_at(h, off));
    ArenaInfo {
        pid,
        fd,
        inode,
        kind,
        capacity: u64::from(u32_at(h, arena_off::CAPACITY)),
        state,
        head,
        tail,
        fill: head.saturating_sub(tail),
        consumer,
        mode,
        published_messages: fast(arena_off::PUBLISHED_MESSAGES),
        consumed_messages: fast(arena_off::CONSUMED_MESSAGES),
        consumer_sleeps: fast(arena_off::CONSUMER_SLEEPS),
        peers: Vec::new(),
    }
}

/// The arenas the given processes hold (each process of this user when `pids` is
/// `None`), with the other processes holding each.
pub fn arenas(pids: Option<&[i32]>) -> Vec<ArenaInfo> {
    let everyone = own_pids();
    // Who holds which memfd, over every process of this user (for the peers).
    let mut holders: HashMap<u64, Vec<i32>> = HashMap::new();
    let mut held: Vec<(i32, i32, String, u64)> = Vec::new();
    for &pid in &everyone {
        for (fd, name, inode) in memfds(pid) {
            let list = holders.entry(inode).or_default();
            if !list.contains(&pid) {
                list.push(pid);
            }
            held.push((pid, fd, name, inode));
        }
    }
    let wanted = |pid: i32| pids.is_none_or(|p| p.contains(&pid));
    let mut out: Vec<ArenaInfo> = held
        .iter()
        .filter(|(pid, ..)| wanted(*pid))
        .filter_map(|(pid, fd, name, inode)| {
            let h = read_header(*pid, *fd)?;
            let mut a = describe(*pid, *fd, name, *inode, &h);
            a.peers = holders[inode].iter().copied().filter(|p| p != pid).collect();
            Some(a)
        })
        .collect();
    out.sort_by_key(|a| (a.pid, a.fd));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_s_arena_and_reads_it_without_changing_it() {
        let a = crate::shm::arena::Arena::create(4096).unwrap();
        a.set_fast(false);
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let found = arenas(Some(&[me]));
        let mine: Vec<_> = found.iter().filter(|i| i.kind == "spsc").collect();
        assert!(!mine.is_empty(), "{found:?}");
        let i = mine.last().unwrap();
        assert_eq!((i.capacity, i.state, i.fill, i.mode), (4096, "ready", 0, "compatible"));
        assert_eq!(i.consumer, "awake");
    }
}
