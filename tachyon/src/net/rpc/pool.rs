//! The opt-in worker pool of a [`crate::net::TcpServer`]: slow handlers run on worker
//! threads, so a reactor keeps reading, answering pings and serving fast calls while
//! they work. A reactor hands a [`Job`] to the pool; the worker dispatches it and puts
//! the reply in its reactor's [`Finished`] queue, then wakes the reactor (one eventfd
//! write per batch, not per reply).
//!
//! A job whose call was cancelled before a worker took it is skipped without a reply
//! (its caller has gone); one whose deadline passed while queued is answered with
//! [`code::DEADLINE_EXCEEDED`](crate::rpc::code::DEADLINE_EXCEEDED) instead of running.
//!
//! Server-streaming calls always run here (a server without workers starts
//! [`crate::net::TcpServerOptions::stream_workers`] threads for them alone). Each item is
//! a [`Done`] that is not the last; the end (or the error) is the last. A stream has a
//! window of [`STREAM_WINDOW`] items queued on its connection and not yet handed to the
//! socket: its handler waits for room, so a client that reads slowly slows the handler
//! down instead of growing the server's memory. A client that takes nothing for
//! `stream_stall_timeout` gets its stream ended with `DEADLINE_EXCEEDED`. A cancel frame,
//! a closed connection or a shutdown cancels the stream: the handler's next `send`
//! fails, and the end still goes out (the client frees its window slot on it).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
pub(crate) use crate::net::reactor::service::ConnId;
use crate::net::reactor::service::Mailbox;
use crate::rpc::stream::{self, ItemSink, MSG_TYPE_STREAM_END};
use crate::rpc::{code, Dispatcher, RpcError, ServerError, MSG_TYPE_ERROR, ONEWAY_CID};
use crate::sync::lock;

/// Items of one stream that may wait on its connection, not yet handed to the socket.
pub(crate) const STREAM_WINDOW: usize = 64;

/// How a call handed to a worker is controlled: its cancel flag, and for a stream the
/// window of its items queued on the connection.
#[derive(Debug, Default)]
pub(crate) struct JobCtl {
    cancelled: AtomicBool,
    stream: bool,
    /// Items queued on the connection and not yet sent (streams only).
    queued: Mutex<usize>,
    room: Condvar,
}

/// Why a stream's handler may not send.
enum Blocked {
    Cancelled,
    Stalled,
}

impl JobCtl {
    /// The control of a unary call (`stream: false`) or of a stream.
    pub fn new(stream: bool) -> Self {
        Self { stream, ..Self::default() }
    }

    /// Whether the call is a server-streaming one.
    pub fn is_stream(&self) -> bool {
        self.stream
    }

    /// Cancels the call: skipped if not started; a stream's next send fails.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        let _queued = lock(&self.queued);
        self.room.notify_all();
    }

    /// Whether the call was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// One of the stream's items left the connection (reactor side).
    pub fn release(&self) {
        let mut queued = lock(&self.queued);
        *queued = queued.saturating_sub(1);
        self.room.notify_one();
    }

    /// Waits (up to `stall`) for room for one more item, and takes it (worker side).
    fn acquire(&self, stall: Duration) -> std::result::Result<(), Blocked> {
        let deadline = Instant::now() + stall;
        let mut queued = lock(&self.queued);
        loop {
            if self.is_cancelled() {
                return Err(Blocked::Cancelled);
            }
            if *queued < STREAM_WINDOW {
                *queued += 1;
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Blocked::Stalled);
            }
            queued = self.room.wait_timeout(queued, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
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
    pub ctl: Arc<JobCtl>,
    /// Where the reply goes.
    pub finished: Arc<Finished>,
    /// The caller's verified identity (mutual TLS), for [`crate::net::peer_identity`].
    pub peer: Option<Arc<crate::net::PeerIdentity>>,
}

/// A job's outcome, back on its reactor.
#[derive(Debug)]
pub(crate) struct Done {
    pub conn: ConnId,
    pub correlation_id: u64,
    /// The reply's type_id, or `None` when the call was cancelled and gets no reply.
    pub type_id: Option<u32>,
    pub response: Vec<u8>,
    /// Whether this ends the call (false only for the items of a stream).
    pub last: bool,
}

/// One reactor's queue of finished jobs.
pub(crate) type Finished = Mailbox<Done>;

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
    /// Starts `workers` threads serving `dispatcher`; a stream whose client takes no
    /// item for `stall` is ended.
    pub fn start(workers: usize, dispatcher: &Arc<Dispatcher>, stall: Duration) -> Result<Self> {
        let queue = Arc::new((Mutex::new(Queue::default()), Condvar::new()));
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (queue, dispatcher) = (queue.clone(), dispatcher.clone());
            let t = std::thread::Builder::new()
                .name(format!("tachyon-worker-{i}"))
                .spawn(move || work(&queue, &dispatcher, stall))
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

fn work(queue: &(Mutex<Queue>, Condvar), dispatcher: &Dispatcher, stall: Duration) {
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
        if let Some((f, name)) = dispatcher.stream_handler(crate::msg_type(job.type_id)) {
            serve_stream(&job, f, name, stall);
            continue;
        }
        let mut response = Vec::new();
        let type_id = if job.ctl.is_cancelled() {
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
            let mt = crate::net::tls::with_peer(job.peer.as_ref(), || {
                dispatcher.dispatch(crate::msg_type(job.type_id), &job.payload, &mut response)
            });
            Some((job.type_id & 0xFFFF_0000) | u32::from(mt))
        };
        job.finished.push(Done {
            conn: job.conn,
            correlation_id: job.correlation_id,
            type_id,
            response,
            last: true,
        });
    }
}

/// Runs one streaming call: each item a [`Done`] that is not the last, then the end.
fn serve_stream(job: &Job, f: &stream::StreamFn, name: &str, stall: Duration) {
    let mt = crate::msg_type(job.type_id);
    let mut sink = JobSink { job, stall, stalled: false };
    let error = if job.ctl.is_cancelled() {
        None
    } else {
        stream::run_handler(f, name, mt, &job.payload, &mut sink)
    };
    let error = error.or_else(|| {
        sink.stalled.then(|| {
            RpcError::new(
                mt,
                code::DEADLINE_EXCEEDED,
                format!("the client took no item of the stream for {stall:?}"),
            )
        })
    });
    if job.correlation_id == ONEWAY_CID {
        if let Some(e) = error {
            tracing::warn!(target: "tachyon", msg_type = mt, code = e.code, "a oneway stream call failed: {}", e.message);
        }
        return;
    }
    let high = job.type_id & 0xFFFF_0000;
    let (reply, response) = match error {
        None => (MSG_TYPE_STREAM_END, Vec::new()),
        Some(e) => (MSG_TYPE_ERROR, e.encode()),
    };
    job.finished.push(Done {
        conn: job.conn,
        correlation_id: job.correlation_id,
        type_id: Some(high | u32::from(reply)),
        response,
        last: true,
    });
}

/// A stream's items, queued on its connection through the reactor's [`Finished`].
struct JobSink<'a> {
    job: &'a Job,
    stall: Duration,
    stalled: bool,
}

impl ItemSink for JobSink<'_> {
    fn send(&mut self, item: &[u8]) -> std::result::Result<(), ServerError> {
        if self.job.correlation_id == ONEWAY_CID {
            // Nobody reads the items of a oneway stream call.
            return if self.job.ctl.is_cancelled() {
                Err(ServerError::new(code::CANCELLED, "the server is shutting down"))
            } else {
                Ok(())
            };
        }
        match self.job.ctl.acquire(self.stall) {
            Ok(()) => {}
            Err(Blocked::Cancelled) => {
                return Err(ServerError::new(code::CANCELLED, "the caller cancelled the stream"));
            }
            Err(Blocked::Stalled) => {
                self.stalled = true;
                self.job.ctl.cancel();
                return Err(ServerError::new(code::CANCELLED, "the client stopped reading"));
            }
        }
        self.job.finished.push(Done {
            conn: self.job.conn,
            correlation_id: self.job.correlation_id,
            type_id: Some(self.job.type_id),
            response: item.to_vec(),
            last: false,
        });
        Ok(())
    }

    fn cancelled(&mut self) -> bool {
        self.job.ctl.is_cancelled()
    }
}

/// The handler of a server with a pool: requests go to the workers (with
/// `streams_only`, only streaming calls do; the rest run inline).
pub(crate) struct Offload<'a> {
    pub pool: &'a Pool,
    pub dispatcher: &'a Dispatcher,
    pub streams_only: bool,
    pub conn: ConnId,
    pub finished: &'a Arc<Finished>,
}

impl crate::net::rpc::conn::Handler for Offload<'_> {
    fn request(
        &mut self,
        h: &crate::net::rpc::frame::Header,
        payload: &[u8],
        response: &mut Vec<u8>,
    ) -> crate::net::rpc::conn::Answer {
        let stream = self.dispatcher.is_stream(h.msg_type());
        if self.streams_only && !stream {
            return crate::net::rpc::conn::Answer::Now(self.dispatcher.dispatch(
                h.msg_type(),
                payload,
                response,
            ));
        }
        let ctl = Arc::new(JobCtl::new(stream));
        let deadline = (h.deadline_us > 0)
            .then(|| Instant::now() + std::time::Duration::from_micros(u64::from(h.deadline_us)));
        self.pool.submit(Job {
            conn: self.conn,
            correlation_id: h.correlation_id,
            type_id: h.type_id,
            payload: payload.to_vec(),
            deadline,
            ctl: ctl.clone(),
            finished: self.finished.clone(),
            peer: crate::net::tls::peer_identity(),
        });
        crate::net::rpc::conn::Answer::Later(ctl)
    }
}
