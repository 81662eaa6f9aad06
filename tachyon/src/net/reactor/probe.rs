//! What the kernel lets the TCP transport use, probed once per process and never assumed:
//! whether an io_uring can be created at all (the `io_uring_disabled` sysctl, a seccomp
//! filter such as Docker's default, an old kernel), which opcodes it supports, the
//! provided buffer rings and the setup flags. [`capabilities`] reports it; the server
//! falls back to epoll when io_uring is missing or forbidden.

use std::sync::OnceLock;

use io_uring::opcode;

use crate::error::{Error, Result};

/// The I/O backend of the TCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring where the kernel allows it, else epoll.
    Auto,
    /// io_uring: multishot accept and receive into a provided buffer ring (Linux 6.0+).
    IoUring,
    /// epoll readiness with non-blocking sockets (any Linux).
    Epoll,
}

impl Backend {
    /// `"io_uring"`, `"epoll"` or `"auto"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::IoUring => "io_uring",
            Self::Epoll => "epoll",
        }
    }
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The backend [`Backend::Auto`] picks on this machine.
    pub backend: Backend,
    /// Whether an io_uring could be created.
    pub io_uring: bool,
    /// Why io_uring is not used, if it is not.
    pub io_uring_unavailable: Option<String>,
    /// `/proc/sys/kernel/io_uring_disabled` (0 allowed, 1 privileged only, 2 disabled).
    pub io_uring_disabled_sysctl: Option<u8>,
    /// Each opcode the transport uses, and whether the kernel supports it.
    pub opcodes: Vec<(&'static str, bool)>,
    /// Each feature or setup flag the transport uses, and whether it works here.
    pub features: Vec<(&'static str, bool)>,
}

static PROBE: OnceLock<Capabilities> = OnceLock::new();

/// The kernel's io_uring and epoll support, probed once.
pub fn capabilities() -> Capabilities {
    PROBE.get_or_init(probe).clone()
}

/// Whether a named opcode or feature of `capabilities()` is supported.
pub(crate) fn has(name: &str) -> bool {
    let c = PROBE.get_or_init(probe);
    c.opcodes.iter().chain(c.features.iter()).any(|(n, ok)| *n == name && *ok)
}

/// What the io_uring backend cannot do without.
const REQUIRED: [&str; 5] =
    ["Accept (multishot)", "RecvMulti", "Send", "AsyncCancel", "buffer ring"];

fn probe() -> Capabilities {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok());
    let ring = match io_uring::IoUring::new(8) {
        Ok(r) => r,
        Err(e) => {
            let why = match e.raw_os_error() {
                Some(libc::EPERM) => format!("io_uring is forbidden here ({e}): the io_uring_disabled sysctl or a seccomp filter"),
                Some(libc::ENOSYS) => format!("this kernel has no io_uring ({e})"),
                _ => format!("cannot create an io_uring: {e}"),
            };
            return Capabilities {
                backend: Backend::Epoll,
                io_uring: false,
                io_uring_unavailable: Some(why),
                io_uring_disabled_sysctl: sysctl,
                opcodes: Vec::new(),
                features: Vec::new(),
            };
        }
    };
    let mut probe = io_uring::Probe::new();
    let probed = ring.submitter().register_probe(&mut probe).is_ok();
    let op = |code: u8| probed && probe.is_supported(code);
    // Multishot accept and receive need 5.19/6.0; their opcodes exist earlier, so the
    // kernel's feature bits (IORING_FEAT_*) and a buffer-ring registration decide.
    let params = ring.params();
    let buf_ring = buffer_ring_works(&ring);
    let opcodes = vec![
        ("Accept (multishot)", op(opcode::AcceptMulti::CODE) && buf_ring),
        ("RecvMulti", op(opcode::RecvMulti::CODE) && buf_ring),
        ("Send", op(opcode::Send::CODE)),
        ("SendZc", op(opcode::SendZc::CODE)),
        ("AsyncCancel", op(opcode::AsyncCancel::CODE)),
        ("Read", op(opcode::Read::CODE)),
        ("MsgRingData", op(opcode::MsgRingData::CODE)),
    ];
    let single_issuer =
        io_uring::IoUring::<io_uring::squeue::Entry, io_uring::cqueue::Entry>::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(8)
            .is_ok();
    let features = vec![
        ("buffer ring", buf_ring),
        ("SINGLE_ISSUER|DEFER_TASKRUN", single_issuer),
        ("FEAT_NODROP", params.is_feature_nodrop()),
        ("FEAT_RECVSEND_BUNDLE", params.is_feature_recvsend_bundle()),
    ];
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !opcodes.iter().chain(features.iter()).any(|(n, ok)| n == r && *ok))
        .collect();
    let (backend, why) = if missing.is_empty() {
        (Backend::IoUring, None)
    } else {
        (Backend::Epoll, Some(format!("the kernel lacks {}", missing.join(", "))))
    };
    Capabilities {
        backend,
        io_uring: true,
        io_uring_unavailable: why,
        io_uring_disabled_sysctl: sysctl,
        opcodes,
        features,
    }
}

/// Registers (then drops) a small provided-buffer ring: the one sure test of support.
fn buffer_ring_works(ring: &io_uring::IoUring) -> bool {
    crate::net::reactor::bufring::BufRing::new(ring, 0xFFFE, 4, 64).is_ok()
}

/// The backend a server asked for `want` runs.
///
/// # Errors
/// [`Error::Unsupported`] if io_uring is asked for and cannot be used here.
pub(crate) fn choose(want: Backend) -> Result<Backend> {
    let caps = capabilities();
    match want {
        Backend::Auto => Ok(caps.backend),
        Backend::Epoll => Ok(Backend::Epoll),
        Backend::IoUring if caps.backend == Backend::IoUring => Ok(Backend::IoUring),
        Backend::IoUring => Err(Error::Unsupported(format!(
            "the io_uring backend: {}",
            caps.io_uring_unavailable.unwrap_or_else(|| "unavailable".into())
        ))),
    }
}
