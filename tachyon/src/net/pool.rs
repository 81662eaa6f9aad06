//! The opt-in worker pool of a [`crate::net::TcpServer`]: slow handlers run on worker
//! threads, so a reactor keeps reading, answering pings and serving fast calls while
//! they work. A reactor hands a [`Job`] to the pool; the worker dispatches it and puts
//! the reply in its reactor's [`Finished`] queue, then wakes the reactor (one eventfd
//! write per batch, not per reply).
//!
//! A job whose call was cancelled before a worker took it is skipped without a reply
//! (its caller has gone); one whose deadline passed while queued is answered with
//! [`code::DEADLINE_EXCEEDED`](crate::rpc::code::DEADLINE_EXCEEDED) instead of running.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::net::waker::Waker;
use crate::rpc::{code, Dispatcher, RpcError, MSG_TYPE_ERROR};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which connection of which reactor a job belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnId {
    /// The connection's slot in its reactor.
    pub slot: usize,
    /// The slot's generation (a reused slot has a new one).
    pub generation: u32,
}

/// A request handed to the pool.
pub(crate) struct Job {
    pub conn: ConnId,
    pub correlation_id: u64,
    pub type_id: u32,
    pub payload: Vec<u8>,
    /// When the caller stops waiting, if it said.
    pub deadline: Option<Instant>,
    /// Set by a cancel frame: skip the call if it has not started.
    pub cancelled: Arc<AtomicBool>,
    /// Where the reply goes.
    pub finished: Arc<Finished>,
}

/// A job's outcome, back on its reactor.
#[derive(Debug)]
pub(crate) struct Done {
    pub conn: ConnId,
    pub correlation_id: u64,
    /// The reply's type_id, or `None` when the call was cancelled and gets no reply.
    pub type_id: Option<u32>,
    pub response: Vec<u8>,
}

/// One reactor's queue of finished jobs.
#[derive(Debug)]
pub(crate) struct Finished {
    queue: Mutex<Vec<Done>>,
    /// Whether a wake-up is already on its way.
    woken: AtomicBool,
    waker: Waker,
}

impl Finished {
    pub fn new(waker: Waker) -> Self {
        Self { queue: Mutex::new(Vec::new()), woken: AtomicBool::new(false), waker }
    }

    fn push(&self, done: Done) {
        lock(&self.queue).push(done);
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Everything finished since the last call (reactor side).
    pub fn take(&self, into: &mut Vec<Done>) {
        self.woken.store(false, Ordering::Release);
        into.append(&mut lock(&self.queue));
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// The worker threads and their job queue.
pub(crate) struct Pool {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` threads serving `dispatcher`.
    pub fn start(workers: usize, dispatcher: &Arc<Dispatcher>) -> Result<Self> {
        let queue = Arc::new((Mutex::new(Queue::default()), Condvar::new()));
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (queue, dispatcher) = (queue.clone(), dispatcher.clone());
            let t = std::thread::Builder::new()
                .name(format!("tachyon-worker-{i}"))
                .spawn(move || work(&queue, &dispatcher))
                .map_err(|e| Error::io("spawn a worker thread", e))?;
            threads.push(t);
        }
        Ok(Self { queue, threads })
    }

    /// Queues a job for the next free worker.
    pub fn submit(&self, job: Job) {
        let (m, cv) = &*self.queue;
        lock(m).jobs.push_back(job);
        cv.notify_one();
    }

    /// Lets the workers finish what is queued, then joins them.
    pub fn stop(&mut self) {
        let (m, cv) = &*self.queue;
        lock(m).closed = true;
        cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn work(queue: &(Mutex<Queue>, Condvar), dispatcher: &Dispatcher) {
    let (m, cv) = queue;
    loop {
        let job = {
            let mut q = lock(m);
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.closed {
                    return;
                }
                q = cv.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let mut response = Vec::new();
        let type_id = if job.cancelled.load(Ordering::Acquire) {
            None
        } else if job.deadline.is_some_and(|d| Instant::now() >= d) {
            let mt = crate::msg_type(job.type_id);
            let e = RpcError::new(
                mt,
                code::DEADLINE_EXCEEDED,
                "the call's deadline passed while it waited for a worker",
            );
            response = e.encode();
            Some((job.type_id & 0xFFFF_0000) | u32::from(MSG_TYPE_ERROR))
        } else {
            // The dispatcher catches handler panics and answers them with an error reply.
            let mt = dispatcher.dispatch(crate::msg_type(job.type_id), &job.payload, &mut response);
            Some((job.type_id & 0xFFFF_0000) | u32::from(mt))
        };
        job.finished.push(Done {
            conn: job.conn,
            correlation_id: job.correlation_id,
            type_id,
            response,
        });
    }
}

/// The handler of a server with a pool: requests go to the workers.
pub(crate) struct Offload<'a> {
    pub pool: &'a Pool,
    pub conn: ConnId,
    pub finished: &'a Arc<Finished>,
}

impl crate::net::conn::Handler for Offload<'_> {
    fn request(
        &mut self,
        h: &crate::net::frame::Header,
        payload: &[u8],
        _response: &mut Vec<u8>,
    ) -> crate::net::conn::Answer {
        let cancelled = Arc::new(AtomicBool::new(false));
        let deadline = (h.deadline_us > 0)
            .then(|| Instant::now() + std::time::Duration::from_micros(u64::from(h.deadline_us)));
        self.pool.submit(Job {
            conn: self.conn,
            correlation_id: h.correlation_id,
            type_id: h.type_id,
            payload: payload.to_vec(),
            deadline,
            cancelled: cancelled.clone(),
            finished: self.finished.clone(),
        });
        crate::net::conn::Answer::Later(cancelled)
    }
}
