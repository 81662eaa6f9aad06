//! Named shared buffers: the same bytes mapped in several processes, of three kinds (the
//! kinds of `node-ipcbuffer`), with `wait`/`notify` on a 32-bit word across processes.
//!
//! ```no_run
//! use std::time::Duration;
//! use tachyon::{BufferKind, SharedBuffer, SharedBufferOptions};
//!
//! # fn main() -> tachyon::Result<()> {
//! // Process A: creates a 4 KiB POSIX shared-memory object (0600) and fills it.
//! let mut a = SharedBuffer::open(&BufferKind::posix("quotes"), 4096, &SharedBufferOptions::default())?;
//! a[8..13].copy_from_slice(b"hello");
//! a.atomic_u32(0)?.store(1, std::sync::atomic::Ordering::Release);
//! a.notify(0, u32::MAX)?;                                   // wakes waiters on word 0
//!
//! // Process B: attaches the same object (a size larger than it is refused).
//! let b = SharedBuffer::open(&BufferKind::posix("quotes"), 4096, &SharedBufferOptions::default())?;
//! b.wait(0, 0, Some(Duration::from_secs(1)))?;              // sleeps while word 0 == 0
//! assert_eq!(&b[8..13], b"hello");
//! b.unlink()?;                                              // the name goes; mappings stay
//! # Ok(()) }
//! ```
//!
//! - [`BufferKind::Posix`]: a POSIX shared-memory object by name (`shm_open`; no file).
//! - [`BufferKind::File`]: a file by path, mapped shared: what is written reaches the
//!   file (`flush` forces it; dropping the buffer does too).
//! - [`BufferKind::SysV`]: a System V segment by numeric key (`shmget`/`shmat`; `libc`,
//!   since `rustix` has no System V calls).
//!
//! A new object is created with mode 0600 (or [`SharedBufferOptions::mode`]), whatever
//! the umask. An existing one is attached only if it is at least as large as asked: a
//! larger attach is refused here instead of faulting (`SIGBUS`) later. Another process
//! shrinking a file or object after it was mapped can still fault an access: share
//! buffers only with processes you trust with them (the same user, by default).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use rustix::fs::Mode;
use rustix::thread::futex;

use crate::error::{Error, Result};

/// Which shared object a [`SharedBuffer`] maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BufferKind {
    /// A POSIX shared-memory object (`/dev/shm/<name>` on Linux), no file on disk.
    Posix(String),
    /// A file, mapped shared.
    File(PathBuf),
    /// A System V shared-memory segment by key (not 0, which is `IPC_PRIVATE`).
    SysV(i32),
}

impl BufferKind {
    /// A POSIX shared-memory object.
    pub fn posix(name: impl Into<String>) -> Self {
        Self::Posix(name.into())
    }

    /// `node-ipcbuffer`'s spelling: `"*name"` is a POSIX object, a decimal number a
    /// System V key, anything else a file path.
    pub fn parse(spec: &str) -> Self {
        if let Some(name) = spec.strip_prefix('*') {
            Self::Posix(name.to_owned())
        } else if let Ok(key) = spec.parse::<i32>() {
            Self::SysV(key)
        } else {
            Self::File(PathBuf::from(spec))
        }
    }
}

impl std::fmt::Display for BufferKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Posix(name) => write!(f, "POSIX shared memory {name:?}"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::SysV(key) => write!(f, "System V segment {key}"),
        }
    }
}

/// How a [`SharedBuffer`] is opened.
#[derive(Debug, Clone)]
pub struct SharedBufferOptions {
    /// Permission bits of a new object (default 0o600).
    pub mode: u32,
    /// Create the object when it is missing (default true).
    pub create: bool,
}

impl Default for SharedBufferOptions {
    fn default() -> Self {
        Self { mode: 0o600, create: true }
    }
}

impl SharedBufferOptions {
    /// Permission bits of a new object.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Whether a missing object is created.
    #[must_use]
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }
}

enum Backing {
    Map(memmap2::MmapRaw),
    SysV { addr: *mut u8, id: i32 },
}

/// Bytes shared between processes: `Deref<Target = [u8]>` and `DerefMut`, atomics at
/// aligned offsets, and `wait`/`notify` on 32-bit words. Unmapped on drop (a file-backed
/// buffer is flushed first).
pub struct SharedBuffer {
    ptr: *mut u8,
    len: usize,
    kind: BufferKind,
    backing: Backing,
    /// Whether this handle created the object.
    created: bool,
}

// SAFETY: the mapping is owned by the buffer and valid for its life; nothing in it is
// tied to the thread that made it.
unsafe impl Send for SharedBuffer {}
// SAFETY: `&SharedBuffer` hands out shared slices and atomics only; the bytes are shared
// with other processes anyway, so concurrent readers see what the kernel shows them.
unsafe impl Sync for SharedBuffer {}

impl std::fmt::Debug for SharedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBuffer")
            .field("kind", &self.kind)
            .field("len", &self.len)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

fn too_small(kind: &BufferKind, have: u64, want: usize) -> Error {
    Error::InvalidArgument(format!(
        "{kind} is {have} bytes; attaching {want} bytes would fault past its end"
    ))
}

impl SharedBuffer {
    /// Opens (creating if allowed and missing) `kind` with `len` bytes; `len` 0 attaches
    /// an existing object whole.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an existing object smaller than `len`, a bad name
    /// or key, or `len` 0 for a missing one; [`Error::Io`] for what the OS refused
    /// (`NotFound` when it is missing and `create` is false).
    pub fn open(kind: &BufferKind, len: usize, opts: &SharedBufferOptions) -> Result<Self> {
        match kind {
            BufferKind::Posix(name) => Self::open_posix(name, len, opts),
            BufferKind::File(path) => Self::open_file(path, len, opts),
            BufferKind::SysV(key) => Self::open_sysv(*key, len, opts),
        }
    }

    fn open_posix(name: &str, len: usize, opts: &SharedBufferOptions) -> Result<Self> {
        use rustix::shm::OFlags;
        if name.is_empty() || name.contains('/') || name.len() > 250 {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                reason: "a POSIX shared-memory name is 1 to 250 bytes with no '/'",
            });
        }
        let path = format!("/{name}");
        let kind = BufferKind::Posix(name.to_owned());
        let mode = Mode::from_bits_truncate(opts.mode);
        let created = if opts.create {
            match rustix::shm::open(
                path.as_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
                mode,
            ) {
                Ok(fd) => Some(fd),
                Err(rustix::io::Errno::EXIST) => None,
                Err(e) => return Err(Error::io("create the shared-memory object", e)),
            }
        } else {
            None
        };
        let (fd, created) = match created {
            Some(fd) => (fd, true),
            None => (
                rustix::shm::open(path.as_str(), OFlags::RDWR, Mode::empty())
                    .map_err(|e| Error::io("open the shared-memory object", e))?,
                false,
            ),
        };
        // What this call created and could not set up is removed again, not left behind.
        Self::map_fd(kind, &fd, len, created, opts).inspect_err(|_| {
            if created {
                let _ = rustix::shm::unlink(path.as_str());
            }
        })
    }

    fn open_file(path: &std::path::Path, len: usize, opts: &SharedBufferOptions) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let kind = BufferKind::File(path.to_owned());
        let created = if opts.create {
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(opts.mode)
                .open(path)
            {
                Ok(f) => Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => return Err(Error::io("create the buffer file", e)),
            }
        } else {
            None
        };
        let (file, created) = match created {
            Some(f) => (f, true),
            None => (
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io("open the buffer file", e))?,
                false,
            ),
        };
        Self::map_fd(kind, &OwnedFd::from(file), len, created, opts).inspect_err(|_| {
            if created {
                let _ = std::fs::remove_file(path);
            }
        })
    }

    /// Sizes a new object (mode as asked, whatever the umask), checks an existing one,
    /// and maps it shared.
    fn map_fd(
        kind: BufferKind,
        fd: &OwnedFd,
        len: usize,
        created: bool,
        opts: &SharedBufferOptions,
    ) -> Result<Self> {
        if created {
            if len == 0 {
                return Err(Error::InvalidArgument(format!(
                    "{kind} does not exist yet: give its size"
                )));
            }
            rustix::fs::fchmod(fd, Mode::from_bits_truncate(opts.mode))
                .map_err(|e| Error::io("set the buffer's mode", e))?;
            rustix::fs::ftruncate(fd, len as u64).map_err(|e| Error::io("size the buffer", e))?;
        }
        // A creator may not have sized it yet: give it a moment before calling it small.
        let deadline = Instant::now() + Duration::from_millis(200);
        let size = loop {
            let size = rustix::fs::fstat(fd).map_err(|e| Error::io("stat the buffer", e))?.st_size;
            let size = u64::try_from(size).unwrap_or(0);
            if size >= len as u64 && size > 0 || Instant::now() >= deadline {
                break size;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let want = if len == 0 { usize::try_from(size).unwrap_or(usize::MAX) } else { len };
        if size < want as u64 || want == 0 {
            return Err(too_small(&kind, size, want.max(1)));
        }
        let map = memmap2::MmapOptions::new()
            .len(want)
            .map_raw(std::os::fd::AsRawFd::as_raw_fd(fd))
            .map_err(|e| Error::io("map the buffer", e))?;
        Ok(Self { ptr: map.as_mut_ptr(), len: want, kind, backing: Backing::Map(map), created })
    }

    fn open_sysv(key: i32, len: usize, opts: &SharedBufferOptions) -> Result<Self> {
        let kind = BufferKind::SysV(key);
        if key == 0 {
            return Err(Error::InvalidArgument(
                "System V key 0 is IPC_PRIVATE, which no other process can attach".into(),
            ));
        }
        let perms = libc::c_int::try_from(opts.mode & 0o777).unwrap_or(0o600);
        let mut created = false;
        let mut id = -1;
        if opts.create && len > 0 {
            // SAFETY: `shmget` takes plain integers and touches no memory of ours.
            id = unsafe { libc::shmget(key, len, libc::IPC_CREAT | libc::IPC_EXCL | perms) };
            created = id >= 0;
        }
        if id < 0 {
            // SAFETY: as above.
            id = unsafe { libc::shmget(key, 0, 0) };
            if id < 0 {
                return Err(Error::io(
                    "find the System V segment",
                    std::io::Error::last_os_error(),
                ));
            }
        }
        // SAFETY: `ds` is a valid, writable `shmid_ds`; IPC_STAT only fills it.
        let size = unsafe {
            let mut ds: libc::shmid_ds = std::mem::zeroed();
            if libc::shmctl(id, libc::IPC_STAT, &raw mut ds) < 0 {
                return Err(Error::io(
                    "stat the System V segment",
                    std::io::Error::last_os_error(),
                ));
            }
            ds.shm_segsz
        };
        let want = if len == 0 { size } else { len };
        if size < want || want == 0 {
            return Err(too_small(&kind, size as u64, want.max(1)));
        }
        // SAFETY: attaches segment `id` at an address the kernel picks; the result is
        // checked below and detached on drop.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if addr as isize == -1 {
            let e = Error::io("attach the System V segment", std::io::Error::last_os_error());
            if created {
                // SAFETY: IPC_RMID on the segment this call created; no memory is passed.
                unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            }
            return Err(e);
        }
        Ok(Self {
            ptr: addr.cast(),
            len: want,
            kind,
            backing: Backing::SysV { addr: addr.cast(), id },
            created,
        })
    }

    /// Which object this maps.
    pub fn kind(&self) -> &BufferKind {
        &self.kind
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is mapped (never true: an empty buffer cannot be opened).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this handle created the object (rather than attaching an existing one).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The first byte, for bindings that expose the bytes themselves (a Node `Buffer`,
    /// the Python buffer protocol). Valid while the buffer lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Writes what changed back to the file (`msync`); a no-op for the other kinds.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn flush(&self) -> Result<()> {
        match (&self.backing, &self.kind) {
            (Backing::Map(m), BufferKind::File(_)) => {
                m.flush().map_err(|e| Error::io("msync the buffer", e))
            }
            _ => Ok(()),
        }
    }

    /// Removes the name (POSIX object, file or System V key): processes that have it
    /// mapped keep their bytes, and nobody can attach it by name any more.
    ///
    /// # Errors
    /// [`Error::Io`] (`NotFound` when already gone).
    pub fn unlink(&self) -> Result<()> {
        match (&self.kind, &self.backing) {
            (BufferKind::Posix(name), _) => rustix::shm::unlink(format!("/{name}").as_str())
                .map_err(|e| Error::io("unlink the shared-memory object", e)),
            (BufferKind::File(path), _) => {
                std::fs::remove_file(path).map_err(|e| Error::io("remove the buffer file", e))
            }
            (BufferKind::SysV(_), Backing::SysV { id, .. }) => {
                // SAFETY: IPC_RMID with a null buffer only marks the segment for removal.
                if unsafe { libc::shmctl(*id, libc::IPC_RMID, std::ptr::null_mut()) } < 0 {
                    return Err(Error::io(
                        "remove the System V segment",
                        std::io::Error::last_os_error(),
                    ));
                }
                Ok(())
            }
            (BufferKind::SysV(_), Backing::Map(_)) => Ok(()),
        }
    }

    fn word_at<T>(&self, offset: usize) -> Result<*mut T> {
        let size = std::mem::size_of::<T>();
        if offset % size != 0 || offset.checked_add(size).is_none_or(|end| end > self.len) {
            return Err(Error::InvalidArgument(format!(
                "offset {offset} is not a {size}-byte aligned word inside the {}-byte buffer",
                self.len
            )));
        }
        // SAFETY: in bounds (checked above) of a mapping that starts page-aligned.
        Ok(unsafe { self.ptr.add(offset) }.cast())
    }

    /// The 32-bit word at `offset` (4-aligned) as an atomic shared with other processes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an offset out of bounds or unaligned.
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        // SAFETY: aligned and in bounds (checked by `word_at`); the mapping outlives the
        // borrow of `self`, and other processes touch the word atomically too.
        Ok(unsafe { AtomicU32::from_ptr(self.word_at(offset)?) })
    }

    /// The 64-bit word at `offset` (8-aligned) as an atomic: a cross-process counter.
    ///
    /// # Errors
    /// As [`SharedBuffer::atomic_u32`].
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        // SAFETY: as `atomic_u32`.
        Ok(unsafe { AtomicU64::from_ptr(self.word_at(offset)?) })
    }

    /// Sleeps while the 32-bit word at `offset` holds `expected`, up to `timeout`
    /// (`None`: until woken). `Ok(true)` once it differs (or a `notify` came),
    /// `Ok(false)` on the timeout. A shared futex: any process mapping the same bytes
    /// can wake it with [`SharedBuffer::notify`].
    ///
    /// # Errors
    /// As [`SharedBuffer::atomic_u32`].
    pub fn wait(&self, offset: usize, expected: u32, timeout: Option<Duration>) -> Result<bool> {
        self.wait_until(offset, expected, timeout, &|| false)
    }

    /// As [`SharedBuffer::wait`], giving up (`Ok(false)`) once `stop()` says so (looked
    /// at every 100 ms, or at once after a `notify`).
    ///
    /// # Errors
    /// As [`SharedBuffer::atomic_u32`].
    pub fn wait_until(
        &self,
        offset: usize,
        expected: u32,
        timeout: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Result<bool> {
        let word = self.atomic_u32(offset)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if word.load(std::sync::atomic::Ordering::Acquire) != expected {
                return Ok(true);
            }
            if stop() {
                return Ok(false);
            }
            let slice = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    (d - now).min(Duration::from_millis(100))
                }
                None => Duration::from_millis(100),
            };
            let ts = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(slice.subsec_nanos()).max(1),
            };
            // Woken by a notify: report it even if the word was set back meanwhile. An
            // error (EAGAIN: it changed; ETIMEDOUT; EINTR) means look again.
            if let Ok(()) = futex::wait(word, futex::Flags::empty(), expected, Some(&ts)) {
                return Ok(!stop());
            }
        }
    }

    /// Wakes up to `count` waiters on the word at `offset`, in any process; returns how
    /// many woke.
    ///
    /// # Errors
    /// As [`SharedBuffer::atomic_u32`].
    pub fn notify(&self, offset: usize, count: u32) -> Result<usize> {
        let word = self.atomic_u32(offset)?;
        Ok(futex::wake(word, futex::Flags::empty(), count).unwrap_or(0))
    }
}

impl std::ops::Deref for SharedBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped for the buffer's life. Other processes may write
        // them at any time: a reader sees bytes, never uninitialised memory.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::ops::DerefMut for SharedBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `deref`; `&mut self` makes this the only slice of this handle.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        let _ = self.flush();
        if let Backing::SysV { addr, .. } = self.backing {
            // SAFETY: `addr` came from `shmat` and is detached once, here.
            unsafe { libc::shmdt(addr.cast()) };
        }
        // A `Backing::Map` unmaps itself.
    }
}
