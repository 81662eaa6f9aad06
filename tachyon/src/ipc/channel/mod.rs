//! Log channels: named, file-backed, bounded logs that many processes append to and
//! any number read, each reader keeping its own position (the Tiga channel model).
//!
//! ```no_run
//! use std::time::Duration;
//! use tachyon::channel::Channel;
//!
//! # fn main() -> tachyon::Result<()> {
//! let ch = Channel::open("/tmp/tiga", "sample.events")?;      // created 0600 if missing
//! let id = ch.append("text/plain", b"event payload")?;        // ids count from 1
//! let batch = ch.read(0, 100)?;                               // everything after id 0
//! assert_eq!(batch.entries[0].id, id);
//! assert_eq!(batch.lost, 0);                                  // overwritten before read
//! // Sleep until an entry after `batch.last_id` exists (no polling: a futex word).
//! let more = ch.wait_for(batch.last_id, Some(Duration::from_millis(10)))?;
//! # let _ = more; Ok(()) }
//! ```
//!
//! **Bounded, never silently lossy.** The file holds `capacity` bytes of entries; an
//! append that needs room evicts the oldest. A reader that fell behind learns how many
//! entries it missed ([`ReadBatch::lost`]); an entry larger than the channel is refused
//! ([`crate::Error::MessageTooLarge`]).
//!
//! **Appends** from any number of threads and processes: a short lock in the mapping
//! reserves the bytes and the id (no copying under it), then the writer copies its
//! entry in and publishes it with a release store of its state. Readers take no lock:
//! they copy an entry, then check that no writer lapped the area and moved the head past
//! it meanwhile (seqlock-style), so a torn copy is dropped and counted as lost, never
//! returned.
//!
//! **A writer killed mid-append** (see `owner.rs` for how death is told apart from a pid
//! reused by another process):
//! - holding the lock: the next appender sees the holder is dead and takes the lock
//!   over. The holder wrote down what it was changing before changing it (an intent
//!   of absolute values), so the new holder re-applies it and the header is whole again;
//! - after reserving, before publishing: its entry stays "being written" with its pid. A
//!   reader (or an appender evicting it) that finds its writer dead marks it abandoned,
//!   and readers count it in [`ReadBatch::abandoned`] and move on. Readers blocked
//!   behind it look again at least every 200 ms, since a dead writer wakes nobody.
//!
//! **Notification** ([`Channel::wait_for`]): each publish bumps a futex word in the
//! mapping and wakes sleepers only when a reader sleeps (a counter says so).
//!
//! **Files** are created 0600 (or [`ChannelOptions::mode`]) and outlive their processes,
//! so a reader started later reads what is still in the log. A file that is not a
//! channel, of another version, truncated or with impossible indices is refused with
//! [`crate::Error::CorruptChannel`]; no byte of the file is trusted before it is checked.

mod layout;
mod owner;

use std::fs::File;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::thread::futex;

use crate::error::{Error, Result};
use layout::{Area, ENTRY_HEADER, HEADER_LEN, MAGIC, VERSION};

mod append;
mod read;

/// The default capacity of a new channel's entry area (1 MiB).
pub const DEFAULT_CAPACITY: u64 = 1 << 20;

/// The bit of the lock word that says someone sleeps waiting for it (pids stay below
/// 2^22 on Linux).
const CONTENDED: u32 = 1 << 31;

/// The largest logical position and id a file may hold (4 EiB written: never reached;
/// anything above is corruption, and keeps every sum below from overflowing).
const MAX_POSITION: u64 = 1 << 62;

/// How a sleeper re-checks for a dead writer that will never wake it.
const WATCHDOG: Duration = Duration::from_millis(200);

/// Settings for opening (and, if missing, creating) a channel.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// Bytes of entries a new channel keeps (default 1 MiB; 4 KiB to 1 TiB, a multiple
    /// of 8). An existing channel keeps the capacity it was created with.
    pub capacity: u64,
    /// Permission bits of a new file (default 0o600: this user only).
    pub mode: u32,
    /// Create the file if it is missing (default true).
    pub create: bool,
    /// How long an append may wait for the lock or for an older writer still copying
    /// into the space it needs (default 5 s).
    pub append_timeout: Duration,
    /// How long opening an existing file may wait for its creator to finish writing its
    /// header (default 2 s).
    pub open_timeout: Duration,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            mode: 0o600,
            create: true,
            append_timeout: Duration::from_secs(5),
            open_timeout: Duration::from_secs(2),
        }
    }
}

impl ChannelOptions {
    /// The entry area of a new channel.
    #[must_use]
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = bytes;
        self
    }

    /// Permission bits of a new file.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Whether a missing file is created (false: opening it fails).
    #[must_use]
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// How long an append may wait.
    #[must_use]
    pub fn append_timeout(mut self, t: Duration) -> Self {
        self.append_timeout = t;
        self
    }

    /// How long opening may wait for a creator to finish the header.
    #[must_use]
    pub fn open_timeout(mut self, t: Duration) -> Self {
        self.open_timeout = t;
        self
    }
}

/// One entry of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id: 1 for the channel's first entry, then one more for each.
    pub id: u64,
    /// Its media type (may be empty).
    pub media_type: String,
    /// Its payload.
    pub data: Vec<u8>,
}

/// What [`Channel::read`] found after the caller's last id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadBatch {
    /// Entries, in id order.
    pub entries: Vec<Entry>,
    /// The id to pass to the next read: the last id returned, or passed over.
    pub last_id: u64,
    /// Entries the caller asked for that were overwritten before it read them.
    pub lost: u64,
    /// Entries whose writer died before publishing them (they have no contents).
    pub abandoned: u64,
}

/// A log channel file, mapped. Cheap to share between threads (`&Channel` appends and
/// reads); open it once per process and keep it.
pub struct Channel {
    area: Area,
    _map: memmap2::MmapRaw,
    path: PathBuf,
    append_timeout: Duration,
    /// Where the last read stopped: `(next id, its position)`, so a reader that goes on
    /// from there does not walk from the head again.
    cursor: Mutex<(u64, u64)>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("path", &self.path)
            .field("capacity", &self.area.capacity())
            .finish_non_exhaustive()
    }
}

/// Checks a channel name: a single file name.
fn check_name(name: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidName { name: name.to_owned(), reason });
    if name.is_empty() || name.len() > 255 {
        return bad("a channel name is 1 to 255 bytes");
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return bad("a channel name is a file name: no '/', NUL, '.' or '..'");
    }
    Ok(())
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::CorruptChannel { path: path.display().to_string(), reason: reason.into() }
}

impl Channel {
    /// Opens `<dir>/<name>`, creating it (0600, 1 MiB of entries) if it is missing.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::CorruptChannel`] for a file that is not a valid
    /// channel, [`Error::Io`].
    pub fn open(dir: impl AsRef<Path>, name: &str) -> Result<Self> {
        Self::open_with(dir, name, &ChannelOptions::default())
    }

    /// Opens `<dir>/<name>` with `opts`.
    ///
    /// # Errors
    /// As [`Channel::open`]; [`Error::InvalidArgument`] for a bad capacity.
    pub fn open_with(dir: impl AsRef<Path>, name: &str, opts: &ChannelOptions) -> Result<Self> {
        check_name(name)?;
        Self::open_path(dir.as_ref().join(name), opts)
    }

    /// Opens the channel file at `path` with `opts`.
    ///
    /// # Errors
    /// As [`Channel::open_with`].
    pub fn open_path(path: impl Into<PathBuf>, opts: &ChannelOptions) -> Result<Self> {
        let path = path.into();
        let cap = opts.capacity;
        if !(layout::MIN_CAPACITY..=layout::MAX_CAPACITY).contains(&cap) || cap % 8 != 0 {
            return Err(Error::InvalidArgument(format!(
                "channel capacity {cap} must be a multiple of 8 from 4096 to 2^40 bytes"
            )));
        }
        let created = if opts.create {
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(opts.mode)
                .open(&path)
            {
                Ok(f) => Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => return Err(Error::io("create the channel file", e)),
            }
        } else {
            None
        };
        match created {
            Some(file) => Self::create(path, &file, opts),
            None => Self::attach(&path, opts),
        }
    }

    fn create(path: PathBuf, file: &File, opts: &ChannelOptions) -> Result<Self> {
        // The mode exactly as asked, whatever the umask took away.
        file.set_permissions(std::fs::Permissions::from_mode(opts.mode))
            .map_err(|e| Error::io("set the channel file's mode", e))?;
        let len = HEADER_LEN as u64 + opts.capacity;
        file.set_len(len).map_err(|e| Error::io("size the channel file", e))?;
        let ch = Self::map(path, file, opts.capacity, opts)?;
        let a = &ch.area;
        let mut prefix = [0u8; 16];
        prefix[8..12].copy_from_slice(&VERSION.to_le_bytes());
        prefix[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        a.set_prefix(&prefix);
        a.u64_at(layout::OFF_CAPACITY).store(opts.capacity, Ordering::Relaxed);
        a.u64_at(layout::OFF_NEXT_ID).store(1, Ordering::Relaxed);
        // The magic last, with release ordering: an opener that sees it sees the rest.
        a.u64_at(0).store(u64::from_le_bytes(MAGIC), Ordering::Release);
        Ok(ch)
    }

    fn attach(path: &Path, opts: &ChannelOptions) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open the channel file", e))?;
        // A creator may still be writing the header: give it a moment.
        let deadline = Instant::now() + opts.open_timeout;
        loop {
            let len = file.metadata().map_err(|e| Error::io("stat the channel file", e))?.len();
            if len >= HEADER_LEN as u64 {
                let ch = Self::map(path.to_path_buf(), &file, len - HEADER_LEN as u64, opts)?;
                if ch.area.u64_at(0).load(Ordering::Acquire) == u64::from_le_bytes(MAGIC) {
                    ch.check_header(len)?;
                    return Ok(ch);
                }
                if ch.area.prefix()[..8].iter().any(|&b| b != 0) {
                    return Err(corrupt(path, "it is not a channel file (bad magic)"));
                }
            }
            if Instant::now() >= deadline {
                return Err(corrupt(
                    path,
                    "its header was never written (its creator died?); delete the file",
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn map(path: PathBuf, file: &File, capacity: u64, opts: &ChannelOptions) -> Result<Self> {
        let len = usize::try_from(HEADER_LEN as u64 + capacity)
            .map_err(|_| corrupt(&path, "it is larger than this machine can map"))?;
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(file)
            .map_err(|e| Error::io("map the channel file", e))?;
        if capacity % 8 != 0 || capacity < layout::MIN_CAPACITY {
            return Err(corrupt(
                &path,
                format!("its size leaves {capacity} bytes of entries (truncated?)"),
            ));
        }
        // SAFETY: `map` is a shared read-write mapping of `len` bytes, page-aligned, and
        // it is kept in the `Channel` next to the `Area` for as long as the `Area` lives.
        let area = unsafe { Area::new(map.as_mut_ptr(), len, capacity) };
        Ok(Self {
            area,
            _map: map,
            path,
            append_timeout: opts.append_timeout,
            cursor: Mutex::new((0, 0)),
        })
    }

    /// Refuses a header that does not describe this file.
    fn check_header(&self, file_len: u64) -> Result<()> {
        let a = &self.area;
        let p = a.prefix();
        let version = u32::from_le_bytes([p[8], p[9], p[10], p[11]]);
        let header_len = u32::from_le_bytes([p[12], p[13], p[14], p[15]]);
        if version != VERSION {
            return Err(corrupt(
                &self.path,
                format!("layout version {version}; this build reads version {VERSION}"),
            ));
        }
        if header_len as usize != HEADER_LEN {
            return Err(corrupt(&self.path, format!("header length {header_len}")));
        }
        let cap = a.u64_at(layout::OFF_CAPACITY).load(Ordering::Relaxed);
        if (HEADER_LEN as u64).checked_add(cap) != Some(file_len) || cap != a.capacity() {
            return Err(corrupt(
                &self.path,
                format!("its header says {cap} bytes of entries, its size {file_len} (truncated?)"),
            ));
        }
        self.indices().map(drop)
    }

    /// Head, tail and next id, checked against each other.
    fn indices(&self) -> Result<(u64, u64, u64)> {
        let a = &self.area;
        let sane = |head: u64, tail: u64, next: u64| {
            head % 8 == 0
                && tail % 8 == 0
                && head <= tail
                && tail - head <= a.capacity()
                && tail <= MAX_POSITION
                && (1..MAX_POSITION).contains(&next)
        };
        let load = || {
            let tail = a.u64_at(layout::OFF_TAIL).load(Ordering::Acquire);
            let head = a.u64_at(layout::OFF_HEAD).load(Ordering::Acquire);
            let next = a.u64_at(layout::OFF_NEXT_ID).load(Ordering::Acquire);
            (head, tail, next)
        };
        let (head, tail, next) = load();
        if sane(head, tail, next) {
            return Ok((head, tail, next));
        }
        // A writer may have moved them between the loads: look once more.
        let (head2, tail2, next2) = load();
        if sane(head2, tail2, next2) {
            return Ok((head2, tail2, next2));
        }
        Err(corrupt(
            &self.path,
            format!("impossible indices: head {head}, tail {tail}, next id {next}"),
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of entries the channel keeps.
    pub fn capacity(&self) -> u64 {
        self.area.capacity()
    }

    /// The largest payload an entry with `media_type` can carry.
    pub fn max_payload(&self, media_type: &str) -> usize {
        let cap = usize::try_from(self.capacity()).unwrap_or(usize::MAX);
        (cap - ENTRY_HEADER - media_type.len().min(layout::MAX_MEDIA)) & !7
    }

    /// The id of the newest entry reserved so far (0 for none).
    ///
    /// # Errors
    /// [`Error::CorruptChannel`].
    pub fn last_id(&self) -> Result<u64> {
        Ok(self.indices()?.2 - 1)
    }
}

/// Holds the append lock; releases it (and wakes a waiter) on drop.
struct LockGuard<'c> {
    ch: &'c Channel,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let a = &self.ch.area;
        a.u64_at(layout::OFF_LOCK_START).store(0, Ordering::Relaxed);
        let word = a.u32_at(layout::OFF_LOCK);
        if word.swap(0, Ordering::Release) & CONTENDED != 0 {
            let _ = futex::wake(word, futex::Flags::empty(), 1);
        }
    }
}

/// Test hooks: a writer that dies at a chosen point of an append.
#[doc(hidden)]
#[cfg(feature = "test-hooks")]
pub mod testing {
    use super::layout::Intent;
    use super::{layout, owner, Channel, Ordering};

    /// Reserves an entry and never publishes it (as a writer killed while copying).
    ///
    /// # Errors
    /// As [`Channel::append`].
    pub fn reserve_and_stop(ch: &Channel, payload_len: usize) -> crate::Result<u64> {
        let me = owner::me();
        let deadline = std::time::Instant::now() + ch.append_timeout;
        let total = layout::entry_len(0, payload_len).unwrap_or(u64::MAX);
        let guard = ch.lock(me, deadline)?;
        let i = ch.reserve(me, total, 0, payload_len, deadline);
        drop(guard);
        i.map(|i: Intent| i.id)
    }

    /// Takes the lock and writes half an intent, then returns holding the lock (as a
    /// writer killed inside the critical section). The caller exits without unlocking.
    ///
    /// # Errors
    /// As [`Channel::append`].
    pub fn die_holding_lock(ch: &Channel) -> crate::Result<()> {
        let me = owner::me();
        let deadline = std::time::Instant::now() + ch.append_timeout;
        let guard = ch.lock(me, deadline)?;
        std::mem::forget(guard);
        let (head, tail, next) = ch.indices()?;
        let a = &ch.area;
        let room = a.capacity() - tail % a.capacity();
        let total = layout::entry_len(0, 8).unwrap_or(64);
        if room < total {
            return Ok(()); // keep the test simple: only the lock is left held
        }
        let intent = Intent {
            head,
            pad_at: 0,
            pad_len: 0,
            pos: tail,
            id: next,
            entry_len: total,
            payload_len: 8,
            media_len: 0,
            pid: u64::from(me.pid),
            start: me.start,
        };
        for (i, w) in intent.to_words().into_iter().enumerate() {
            a.u64_at(layout::OFF_INTENT + 8 * i).store(w, Ordering::Relaxed);
        }
        a.u32_at(layout::OFF_INTENT_VALID).store(1, Ordering::Release);
        // Half applied: the head, not the entry or the tail.
        a.u64_at(layout::OFF_HEAD).store(head, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(feature = "test-hooks")]
/// Fuzzes the reading of a channel file: a small channel with a few entries, then the
/// bytes patch its header and entries (and may truncate it); opening, reading, waiting
/// and appending must then fail with a typed error or work, never panic or hang.
pub(crate) fn fuzz_file(data: &[u8]) {
    let path = std::env::temp_dir().join(format!("tachyon-fuzz-channel-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let opts = ChannelOptions::default()
        .capacity(4096)
        .append_timeout(Duration::from_millis(5))
        .open_timeout(Duration::ZERO);
    let Ok(ch) = Channel::open_path(&path, &opts) else { return };
    for i in 0..(data.first().copied().unwrap_or(0) % 80) {
        let _ =
            ch.append(if i % 3 == 0 { "text/plain" } else { "" }, &[i; 37][..usize::from(i % 37)]);
    }
    drop(ch);
    let Ok(mut bytes) = std::fs::read(&path) else { return };
    let mut rest = data.get(1..).unwrap_or_default();
    // Patches: a 2-byte offset, a length, then that many bytes.
    while rest.len() >= 3 {
        let off = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % bytes.len();
        let n = usize::from(rest[2] % 16).min(rest.len() - 3);
        let end = (off + n).min(bytes.len());
        bytes[off..end].copy_from_slice(&rest[3..3 + (end - off)]);
        rest = &rest[3 + n..];
    }
    if data.get(1).is_some_and(|b| b & 0x80 != 0) {
        let keep = usize::from(data[1] & 0x7F) * 64;
        bytes.truncate(keep.min(bytes.len()));
    }
    if std::fs::write(&path, &bytes).is_err() {
        return;
    }
    if let Ok(ch) = Channel::open_path(&path, &opts.clone().create(false)) {
        let mut last = 0;
        for _ in 0..4 {
            match ch.read(last, 64) {
                Ok(b) => {
                    assert!(b.last_id >= last, "a read went backwards");
                    assert!(b.entries.windows(2).all(|w| w[0].id < w[1].id), "ids out of order");
                    last = b.last_id;
                }
                Err(_) => break,
            }
        }
        let _ = ch.wait_for(last, Some(Duration::ZERO));
        let _ = ch.append("m", b"after");
        let _ = ch.read(0, 64);
        let _ = ch.last_id();
    }
    let _ = std::fs::remove_file(&path);
}
