//! `NativeChannel`: a log channel of the core ([`tachyon::channel`]) for the Tiga API
//! in `lib/channel.js` (`tigaWrite`, `tigaRead`, `createTigaNotificationListener`).
//! Waits run on libuv worker threads (`waitAsync`), or block (`waitFor`); a `close()`
//! of a listener wakes its waits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{AsyncTask, Buffer};
use napi::{Env, Task};
use napi_derive::napi;
use tachyon::channel::{Channel, ChannelOptions, ReadBatch};

use crate::errors::{arg, core, timeout, BindError, JsError};
use crate::pump::ErrInfo;

/// One entry, as `tigaRead` returns it.
#[napi(object)]
pub struct ChannelEntry {
    /// Its id (1 for the first entry of the channel).
    pub id: f64,
    /// Its payload.
    pub message: Buffer,
    /// Its media type (absent when empty).
    pub media_type: Option<String>,
}

/// What a read found.
#[napi(object)]
pub struct ChannelRead {
    /// The id to pass as `lastId` next time.
    pub last_id: f64,
    /// Entries after the given `lastId`, oldest first.
    pub entries: Vec<ChannelEntry>,
    /// Entries overwritten before they were read.
    pub lost: f64,
    /// Entries whose writer died before publishing them.
    pub abandoned: f64,
}

impl From<ReadBatch> for ChannelRead {
    fn from(b: ReadBatch) -> Self {
        Self {
            last_id: b.last_id as f64,
            lost: b.lost as f64,
            abandoned: b.abandoned as f64,
            entries: b
                .entries
                .into_iter()
                .map(|e| ChannelEntry {
                    id: e.id as f64,
                    message: e.data.into(),
                    media_type: (!e.media_type.is_empty()).then_some(e.media_type),
                })
                .collect(),
        }
    }
}

fn id(v: f64, what: &str) -> Result<u64, JsError> {
    if v.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&v) {
        Ok(v as u64)
    } else {
        Err(arg(format!("{what} must be a non-negative integer, got {v}")))
    }
}

/// A log channel file, mapped.
#[napi]
pub struct NativeChannel {
    ch: Arc<Channel>,
    closed: Arc<AtomicBool>,
}

#[napi]
impl NativeChannel {
    /// Opens `<dir>/<name>`, creating it (0600; `capacity` bytes, 1 MiB by default) if
    /// it is missing.
    #[napi(factory)]
    pub fn open(dir: String, name: String, capacity: Option<f64>) -> Result<Self, JsError> {
        let mut opts = ChannelOptions::default();
        if let Some(c) = capacity {
            opts = opts.capacity(id(c, "capacity")?);
        }
        let ch = Channel::open_with(&dir, &name, &opts).map_err(core)?;
        Ok(Self { ch: Arc::new(ch), closed: Arc::default() })
    }

    /// Appends an entry; returns its id.
    #[napi]
    pub fn append(&self, media_type: String, data: &[u8]) -> Result<f64, JsError> {
        Ok(self.ch.append(&media_type, data).map_err(core)? as f64)
    }

    /// Appends off the JS thread.
    #[napi(ts_return_type = "Promise<number | ErrInfo>")]
    pub fn append_async(&self, media_type: String, data: Buffer) -> AsyncTask<ChannelTask> {
        let ch = self.ch.clone();
        let data = data.to_vec();
        AsyncTask::new(ChannelTask::new(move || {
            ch.append(&media_type, &data).map(|i| Outcome::Id(i as f64))
        }))
    }

    /// Up to `max` entries (default 4096) after `lastId`.
    #[napi]
    pub fn read(&self, last_id: f64, max: Option<u32>) -> Result<ChannelRead, JsError> {
        let b = self.ch.read(id(last_id, "lastId")?, max.unwrap_or(4096) as usize).map_err(core)?;
        Ok(b.into())
    }

    /// `read` off the JS thread.
    #[napi(ts_return_type = "Promise<ChannelRead | ErrInfo>")]
    pub fn read_async(
        &self,
        last_id: f64,
        max: Option<u32>,
    ) -> Result<AsyncTask<ChannelTask>, JsError> {
        let (ch, last) = (self.ch.clone(), id(last_id, "lastId")?);
        let max = max.unwrap_or(4096) as usize;
        Ok(AsyncTask::new(ChannelTask::new(move || ch.read(last, max).map(Outcome::Read))))
    }

    /// The newest id reserved so far (0 for none).
    #[napi]
    pub fn last_id(&self) -> Result<f64, JsError> {
        Ok(self.ch.last_id().map_err(core)? as f64)
    }

    /// Blocks until an entry after `lastId` is readable: true, or false after
    /// `timeoutMs` (or once closed).
    #[napi]
    pub fn wait_for(&self, last_id: f64, timeout_ms: Option<f64>) -> Result<bool, JsError> {
        let (last, t) = (id(last_id, "lastId")?, timeout(timeout_ms)?);
        let closed = self.closed.clone();
        self.ch.wait_until(last, t, &|| closed.load(Ordering::Acquire)).map_err(core)
    }

    /// `waitFor` on a libuv worker thread: a Promise of the same boolean.
    #[napi(ts_return_type = "Promise<boolean | ErrInfo>")]
    pub fn wait_async(
        &self,
        last_id: f64,
        timeout_ms: Option<f64>,
    ) -> Result<AsyncTask<ChannelTask>, JsError> {
        let (last, t) = (id(last_id, "lastId")?, timeout(timeout_ms)?);
        let (ch, closed) = (self.ch.clone(), self.closed.clone());
        Ok(AsyncTask::new(ChannelTask::new(move || {
            ch.wait_until(last, t, &|| closed.load(Ordering::Acquire)).map(Outcome::Ready)
        })))
    }

    /// Ends every wait of this handle at once (they return false); idempotent.
    #[napi]
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ch.wake_all();
    }

    /// The file's path.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.ch.path().display().to_string()
    }
}

/// What a channel task settles with.
pub enum Outcome {
    Id(f64),
    Read(ReadBatch),
    Ready(bool),
}

type Job = Box<dyn FnOnce() -> tachyon::Result<Outcome> + Send>;

/// A channel operation on a libuv worker thread. Settles with the value or an `ErrInfo`
/// (never rejects; the JS layer throws the typed error).
pub struct ChannelTask {
    job: Option<Job>,
}

impl ChannelTask {
    fn new(f: impl FnOnce() -> tachyon::Result<Outcome> + Send + 'static) -> Self {
        Self { job: Some(Box::new(f)) }
    }
}

impl Task for ChannelTask {
    type Output = Result<Outcome, ErrInfo>;
    type JsValue = napi::bindgen_prelude::Either4<f64, ChannelRead, bool, ErrInfo>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let job = self.job.take().ok_or_else(|| napi::Error::from_reason("ran twice"))?;
        Ok(job().map_err(|e| BindError::Core(e).into()))
    }

    fn resolve(&mut self, _env: Env, out: Self::Output) -> napi::Result<Self::JsValue> {
        use napi::bindgen_prelude::Either4;
        Ok(match out {
            Ok(Outcome::Id(i)) => Either4::A(i),
            Ok(Outcome::Read(b)) => Either4::B(b.into()),
            Ok(Outcome::Ready(r)) => Either4::C(r),
            Err(e) => Either4::D(e),
        })
    }
}
