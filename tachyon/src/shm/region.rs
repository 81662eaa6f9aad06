//! Shared-memory regions: a sealed memfd mapped read-write and shared.
//!
//! One of the two modules with `unsafe` code (the other is [`crate::shm::arena`]). A
//! [`SharedMemory`] owns the fd and the mapping; it knows nothing of the ring inside.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use memmap2::{MmapMut, MmapOptions};
use rustix::fs::{MemfdFlags, Mode, SealFlags};

use crate::error::{Error, Result};

/// A memfd-backed shared mapping. The mapping lives as long as this value; the fd is kept
/// open for the same time (upstream's connector does the same).
#[derive(Debug)]
pub struct SharedMemory {
    map: MmapMut,
    base: NonNull<u8>,
    file: File,
}

impl SharedMemory {
    /// Creates a new region of `len` bytes as WIRE.md describes: `memfd_create` with
    /// `MFD_ALLOW_SEALING|MFD_CLOEXEC`, `ftruncate`, mode 0600, seals
    /// `SHRINK|GROW|SEAL`, and a `MAP_SHARED|MAP_POPULATE` read-write mapping.
    ///
    /// # Errors
    /// [`Error::Io`] when any of those system calls fails.
    pub fn create(name: &str, len: usize) -> Result<Self> {
        let fd = rustix::fs::memfd_create(name, MemfdFlags::ALLOW_SEALING | MemfdFlags::CLOEXEC)
            .map_err(|e| Error::io("memfd_create", e))?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(|e| Error::io("ftruncate memfd", e))?;
        rustix::fs::fchmod(&fd, Mode::RUSR | Mode::WUSR)
            .map_err(|e| Error::io("fchmod memfd", e))?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(|e| Error::io("seal memfd", e))?;
        Self::map(fd, len, true)
    }

    #[cfg(feature = "test-hooks")]
    /// Maps a region received from a peer. The fd must be at least `len` bytes long and
    /// sealed against shrinking: an unsealed file could be truncated under us, and touching
    /// a page past its end would kill this process with `SIGBUS`.
    ///
    /// # Errors
    /// [`Error::AbiMismatch`] when the file is too small or not sealed, [`Error::Io`] when
    /// `fstat`, `fcntl` or `mmap` fails.
    pub fn attach(fd: OwnedFd, len: usize) -> Result<Self> {
        Self::attach_with(fd, len, usize::MAX)
    }

    /// Like [`SharedMemory::attach`], populating the mapping only if it is at most
    /// `populate_limit` bytes: a larger one (a peer's sparse memfd) faults in as used.
    ///
    /// # Errors
    /// As [`SharedMemory::attach`].
    pub fn attach_with(fd: OwnedFd, len: usize, populate_limit: usize) -> Result<Self> {
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io("fstat shared memory fd", e))?;
        let file_len = usize::try_from(stat.st_size).unwrap_or(0);
        if file_len < len {
            return Err(Error::AbiMismatch(format!(
                "shared memory fd holds {file_len} bytes but the handshake announced {len}"
            )));
        }
        let seals =
            rustix::fs::fcntl_get_seals(&fd).map_err(|e| Error::io("read memfd seals", e))?;
        if !seals.contains(SealFlags::SHRINK) {
            return Err(Error::AbiMismatch(
                "shared memory fd is not sealed against shrinking".to_owned(),
            ));
        }
        Self::map(fd, len, len <= populate_limit)
    }

    fn map(fd: OwnedFd, len: usize, populate: bool) -> Result<Self> {
        let file = File::from(fd);
        let mut opts = MmapOptions::new();
        opts.len(len);
        if populate {
            opts.populate();
        }
        // SAFETY: the file is a memfd sealed against shrinking (checked by `attach`, set by
        // `create`), so the mapping can never point past the file's end. Other processes
        // may write the bytes concurrently; every access to the mapping goes through
        // `crate::shm::arena`, which uses atomics for shared words and treats all of it as
        // untrusted.
        let mut map =
            unsafe { opts.map_mut(&file) }.map_err(|e| Error::io("mmap shared memory", e))?;
        let base = NonNull::new(map.as_mut_ptr()).ok_or_else(|| {
            Error::io("mmap shared memory", std::io::Error::other("null mapping"))
        })?;
        Ok(Self { map, base, file })
    }

    /// Base address of the mapping (page aligned).
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.base
    }

    #[cfg(any(test, feature = "test-hooks"))]
    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(feature = "test-hooks")]
    /// Whether the mapping is empty (never true for a mapped arena).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    #[cfg(any(feature = "rpc", feature = "test-hooks"))]
    /// The memfd's inode number (to find it in another process's `/proc/PID/maps`).
    pub fn inode(&self) -> Option<u64> {
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)] // widths vary by target
        rustix::fs::fstat(&self.file).ok().map(|st| st.st_ino as u64)
    }

    /// The memfd, for passing to a peer with `SCM_RIGHTS`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Binds the mapping to NUMA node `node` with `MPOL_PREFERRED`, migrating pages that
    /// are already populated (`MPOL_MF_MOVE`). Best called before the first message.
    ///
    /// # Errors
    /// [`Error::InvalidNumaNode`] for a node outside `0..64`; [`Error::Io`] when `mbind`
    /// fails (an offline node, or no permission to move pages).
    pub fn bind_numa_node(&self, node: i32) -> Result<()> {
        const MPOL_PREFERRED: libc::c_long = 1;
        const MPOL_MF_MOVE: libc::c_ulong = 1 << 1;
        let Ok(shift @ 0..=63) = u32::try_from(node) else {
            return Err(Error::InvalidNumaNode(node));
        };
        let mask: libc::c_ulong = 1 << shift;
        // SAFETY: mbind only changes the memory policy of our own mapping, whose address
        // and length are exactly those of `self.map`; `mask` outlives the call and holds
        // 64 bits, matching `maxnode = 64`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mbind,
                self.map.as_ptr(),
                self.map.len(),
                MPOL_PREFERRED,
                &raw const mask,
                64 as libc::c_ulong,
                MPOL_MF_MOVE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::io("mbind", std::io::Error::last_os_error()))
        }
    }
}
