//! What this machine lets Tachyon use, found by trying each thing (never by reading a
//! kernel version): the `tachyon doctor` command prints it. Each [`Check`] says what was
//! found, why it matters, and how to fix it when it is missing. A [`Level::Missing`]
//! check is something Tachyon cannot run without; [`Level::Degraded`] runs, slower or
//! with less.

use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicU32;

use rustix::thread::futex;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Works.
    Ok,
    /// Works with less (a fallback, a low limit): Tachyon runs.
    Degraded,
    /// Required and missing: Tachyon cannot run here.
    Missing,
}

impl Level {
    /// `"ok"`, `"degraded"` or `"missing"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Missing => "missing",
        }
    }
}

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// A short stable name (`memfd`, `io_uring`, ...).
    pub name: &'static str,
    /// How it came out.
    pub level: Level,
    /// What was found.
    pub found: String,
    /// Why it matters.
    pub why: &'static str,
    /// What to do when it is not [`Level::Ok`].
    pub fix: Option<&'static str>,
}

impl Check {
    fn new(name: &'static str, why: &'static str) -> Self {
        Self { name, level: Level::Ok, found: String::new(), why, fix: None }
    }

    fn ok(mut self, found: impl Into<String>) -> Self {
        self.found = found.into();
        self
    }

    fn not(mut self, level: Level, found: impl Into<String>, fix: &'static str) -> Self {
        self.level = level;
        self.found = found.into();
        self.fix = Some(fix);
        self
    }
}

/// Runs every check.
pub fn run() -> Vec<Check> {
    let mut checks = vec![memfd(), shared_futex(), peercred(), numa(), open_files(), memlock()];
    checks.push(seccomp());
    #[cfg(feature = "tcp")]
    checks.extend(io_uring());
    checks
}

/// Whether every required check passed.
pub fn all_required_present(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.level != Level::Missing)
}

fn memfd() -> Check {
    let c = Check::new(
        "memfd",
        "every ring lives in a sealed memfd: no file in /dev/shm to leak or be guessed, \
         and a peer cannot shrink it under the other",
    );
    match crate::shm::region::SharedMemory::create("tachyon-doctor", 4096) {
        Ok(_) => c.ok("memfd_create with MFD_ALLOW_SEALING, seals SHRINK|GROW|SEAL: works"),
        Err(e) => c.not(
            Level::Missing,
            format!("{e}"),
            "a kernel of 3.17 or later with memfd; a seccomp profile that allows memfd_create",
        ),
    }
}

fn shared_futex() -> Check {
    let c = Check::new(
        "shared_futex",
        "an idle consumer sleeps on a futex word in the shared ring, woken by the other \
         process without any socket",
    );
    let arena = match crate::shm::arena::Arena::create(4096) {
        Ok(a) => a,
        Err(e) => return c.not(Level::Missing, format!("no shared memory: {e}"), "see memfd"),
    };
    let word: &AtomicU32 = arena.consumer_sleeping();
    // A wait whose expected value is wrong returns EAGAIN at once: proof the shared
    // (non-private) futex works on this mapping; a wake with nobody waiting returns 0.
    let wait = futex::wait(word, futex::Flags::empty(), u32::MAX, None);
    let wake = futex::wake(word, futex::Flags::empty(), 1);
    match (wait, wake) {
        (Err(rustix::io::Errno::AGAIN), Ok(_)) => {
            c.ok("FUTEX_WAIT/FUTEX_WAKE on shared memory: work")
        }
        (wait, wake) => c.not(
            Level::Missing,
            format!("futex wait: {wait:?}, wake: {wake:?}"),
            "a seccomp profile that allows futex on shared mappings",
        ),
    }
}

fn peercred() -> Check {
    let c = Check::new(
        "so_peercred",
        "the bootstrap socket learns the peer's uid and pid from the kernel, to refuse \
         other users and to watch the peer's process for death",
    );
    let me = rustix::process::getuid();
    match UnixStream::pair()
        .and_then(|(a, _b)| rustix::net::sockopt::socket_peercred(&a).map_err(std::io::Error::from))
    {
        Ok(cred) if cred.uid == me => {
            c.ok(format!("uid {} pid {}", cred.uid.as_raw(), cred.pid.as_raw_nonzero()))
        }
        Ok(cred) => c.not(
            Level::Missing,
            format!("the kernel reported uid {} for our own socket", cred.uid.as_raw()),
            "a kernel that reports SO_PEERCRED truthfully (a user-namespace mapping issue?)",
        ),
        Err(e) => {
            c.not(Level::Missing, e.to_string(), "a kernel with UNIX sockets and SO_PEERCRED")
        }
    }
}

fn numa() -> Check {
    let c = Check::new(
        "numa",
        "two processes on different NUMA nodes pay a remote-memory hop on every message; \
         pin both near the ring (taskset, numactl) for the lowest latency",
    );
    let nodes = std::fs::read_dir("/sys/devices/system/node").map_or(1, |d| {
        d.filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name();
                n.to_string_lossy()
                    .strip_prefix("node")
                    .is_some_and(|rest| rest.parse::<u32>().is_ok())
            })
            .count()
    });
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    c.ok(format!("{} node{}, {cpus} CPUs usable", nodes.max(1), if nodes > 1 { "s" } else { "" }))
}

fn open_files() -> Check {
    let c = Check::new(
        "open_files",
        "each bus holds a few descriptors (memfds, its socket, a pidfd); a server with many \
         clients needs many",
    );
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let soft = l.current.unwrap_or(u64::MAX);
    if soft < 1024 {
        c.not(
            Level::Degraded,
            format!("soft limit {soft}"),
            "raise it: `ulimit -n 65536`, or LimitNOFILE= in a systemd unit",
        )
    } else {
        c.ok(format!("soft limit {}", l.current.map_or("unlimited".to_owned(), |v| v.to_string())))
    }
}

fn memlock() -> Check {
    let c = Check::new(
        "memlock",
        "io_uring's rings count against it on kernels before 5.12; shared memory does not",
    );
    let l = rustix::process::getrlimit(rustix::process::Resource::Memlock);
    c.ok(format!(
        "soft limit {}",
        l.current.map_or("unlimited".to_owned(), |v| format!("{} KiB", v / 1024))
    ))
}

fn seccomp() -> Check {
    let c = Check::new(
        "seccomp",
        "a seccomp filter (Docker's default, systemd's SystemCallFilter=) may forbid io_uring \
         or other calls; Tachyon then falls back where it can",
    );
    let mode = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".into());
    match mode.as_str() {
        "0" => c.ok("no filter"),
        "2" => c.not(
            Level::Degraded,
            "a filter is active (mode 2)",
            "if io_uring below is forbidden, allow io_uring_setup/io_uring_enter/io_uring_register",
        ),
        other => c.ok(format!("mode {other}")),
    }
}

#[cfg(feature = "tcp")]
fn io_uring() -> Vec<Check> {
    let caps = crate::net::capabilities();
    let mut out = Vec::new();
    let c = Check::new(
        "io_uring",
        "the TCP transport's fastest backend (multishot accept and receive into a provided \
         buffer ring); without it, the epoll backend serves",
    );
    out.push(match &caps.io_uring_unavailable {
        None => c.ok(format!(
            "usable: {} ops and features probed",
            caps.opcodes.len() + caps.features.len()
        )),
        Some(why) => c.not(
            Level::Degraded,
            why.clone(),
            "set the io_uring_disabled sysctl to 0, or allow io_uring in the seccomp profile",
        ),
    });
    let sysctl = Check::new(
        "io_uring_disabled",
        "the kernel.io_uring_disabled sysctl: 0 allows io_uring, 1 only privileged, 2 none",
    );
    out.push(match caps.io_uring_disabled_sysctl {
        None | Some(0) => {
            sysctl.ok(caps.io_uring_disabled_sysctl.map_or("not present".into(), |v| v.to_string()))
        }
        Some(v) => {
            sysctl.not(Level::Degraded, v.to_string(), "sysctl -w kernel.io_uring_disabled=0")
        }
    });
    for (name, ok) in caps.opcodes.iter().chain(caps.features.iter()) {
        let c = Check::new(
            "io_uring_op",
            "an io_uring operation or setup flag the transport uses when the kernel has it",
        );
        out.push(if *ok {
            c.ok(format!("{name}: supported"))
        } else {
            c.not(Level::Degraded, format!("{name}: not supported"), "a newer kernel (6.0+)")
        });
    }
    out.push(Check::new("tcp_backend", "which backend a TCP server started here will run").ok(
        match caps.backend {
            crate::net::Backend::IoUring => "io_uring".to_owned(),
            b => b.name().to_owned(),
        },
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_check_passes_here_and_each_says_why() {
        let checks = run();
        for c in &checks {
            assert!(!c.why.is_empty() && !c.found.is_empty(), "{c:?}");
            if c.level != Level::Ok {
                assert!(c.fix.is_some(), "{c:?}");
            }
        }
        assert!(all_required_present(&checks), "{checks:#?}");
        for name in ["memfd", "shared_futex", "so_peercred", "numa", "open_files", "seccomp"] {
            assert!(checks.iter().any(|c| c.name == name), "{name} missing");
        }
    }
}
