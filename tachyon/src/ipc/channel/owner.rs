//! Who holds what in a channel file, and whether they are still alive.
//!
//! A channel is shared by processes that may die at any instruction (`kill -9`). Two
//! things can be left behind: the append lock, held by a dead process, and an entry
//! reserved by a dead process and never published. Both record their owner as a pid
//! and the process's start time (field 22 of `/proc/PID/stat`, in clock ticks since
//! boot), so a pid the kernel has reused for another process is not mistaken for the
//! owner. A process counts as dead when `/proc/PID/stat` is gone, names another start
//! time, or shows a zombie (killed, not yet reaped by its parent).
//!
//! Pids are those of the reading process's pid namespace: processes sharing a channel
//! must see each other's pids (the same namespace, as on one machine without
//! containers between them). A holder in another namespace would look dead.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Once;

/// A process: pid and start time (0 when unknown: only the pid is checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid: u32,
    pub start: u64,
}

/// This process, cached: `getpid` is a system call, and every append names its writer.
/// A fork clears the cache in the child (a `pthread_atfork` hook), which then looks
/// itself up again.
static PID: AtomicU32 = AtomicU32::new(0);
static START: AtomicU64 = AtomicU64::new(0);
static FORK_HOOK: Once = Once::new();

extern "C" fn forked_child() {
    PID.store(0, Ordering::Relaxed);
}

/// This process.
pub(crate) fn me() -> Owner {
    let pid = PID.load(Ordering::Acquire);
    if pid != 0 {
        return Owner { pid, start: START.load(Ordering::Relaxed) };
    }
    FORK_HOOK.call_once(|| {
        // SAFETY: registers a child handler that only stores to an atomic (async-signal
        // safe, as a handler run after fork must be); the function lives for ever.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
    let pid = std::process::id();
    let start = stat(pid).map_or(0, |s| s.start);
    START.store(start, Ordering::Relaxed);
    // Release: a thread that sees the pid sees the start time stored before it.
    PID.store(pid, Ordering::Release);
    Owner { pid, start }
}

struct Stat {
    state: u8,
    start: u64,
}

/// `/proc/PID/stat`: the state letter and the start time. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.bytes().next()?;
    // After the name: state is field 3, starttime field 22, so 18 more to skip.
    let start = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start })
}

/// What `/proc` says of an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// It runs.
    Alive,
    /// No such process, or a zombie.
    Dead,
    /// A process with that pid runs, but started at another time: the pid was reused,
    /// or the start time recorded beside the pid is not this owner's yet (a lock holder
    /// records its start just after taking the lock).
    OtherStart,
}

/// Whether `owner` still runs.
pub(crate) fn liveness(owner: Owner) -> Liveness {
    if owner.pid == 0 {
        return Liveness::Dead;
    }
    if owner.pid == me().pid {
        return Liveness::Alive;
    }
    match stat(owner.pid) {
        None => Liveness::Dead,
        Some(s) if matches!(s.state, b'Z' | b'X' | b'x') => Liveness::Dead,
        Some(s) if owner.start == 0 || s.start == owner.start => Liveness::Alive,
        Some(_) => Liveness::OtherStart,
    }
}

/// Whether `owner` still runs (a mismatched start time counts as dead).
pub(crate) fn alive(owner: Owner) -> bool {
    liveness(owner) == Liveness::Alive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(me().pid > 0 && me().start > 0);
        assert!(alive(me()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let owner = Owner { pid: child.id(), start: 0 };
        child.wait().unwrap();
        assert!(!alive(owner));
        // Our pid with another start time is a reused pid: not us.
        assert!(!alive(Owner { pid: 1, start: u64::MAX }));
    }
}
