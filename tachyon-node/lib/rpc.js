'use strict';
// RpcBus: request/reply between two processes over a pair of rings.
const native = require('./native');
const { fromInfo, checkReply, timeoutError, withSignal, TachyonError, TachyonRpcError } = require('./errors');
const { bytesOf, signalOf, listenUnder } = require('./bus');
const arg = require('./args');
const { timeoutOf } = arg;

/**
 * One RPC connection. The caller end connects (to a listener or a multi-client
 * server) and calls; the callee end listens and serves.
 */
/** Bytes kept per bus to receive replies and requests into (larger ones get a Buffer). */
const SCRATCH = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/** A copy of the first `n` bytes of `scratch`, in a pooled Buffer. */
function copyOut(scratch, n) {
  const out = Buffer.allocUnsafe(n);
  scratch.copy(out, 0, 0, n);
  return out;
}

/** The msg_type of the reply that ends a stream. */
const MSG_TYPE_STREAM_END = 0xfffe;

/**
 * The items of one server-streaming call: an async iterator of Buffers. The callee's
 * error ends it with TachyonRpcError; a timeout (opts.timeoutMs per item) rejects one
 * `next()` and leaves the stream open. `return()` (what `break` calls), `cancel()` and
 * `Symbol.asyncDispose` cancel the call.
 */
class ReplyStream {
  #n;
  #cid;
  #timeout;
  #signal;
  #done = false;

  /** @internal */
  constructor(n, cid, timeout, signal) {
    this.#n = n;
    this.#cid = cid;
    this.#timeout = timeout;
    this.#signal = signal;
    if (signal) signal.addEventListener('abort', () => this.cancel(), { once: true });
  }

  /** The call's correlation id. */
  get correlationId() {
    return this.#cid;
  }

  /** Whether the stream ended (or was cancelled). */
  get done() {
    return this.#done;
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** The next item: `{ value: Buffer, done: false }`, or `{ done: true }` at the end. */
  async next() {
    if (this.#signal?.aborted) {
      this.cancel();
      throw this.#signal.reason ?? new Error('aborted');
    }
    if (this.#done) return { value: undefined, done: true };
    let r = this.#n.nextStreamItemAsync(this.#cid, this.#timeout);
    if (typeof r?.then === 'function') {
      r = this.#signal ? await withSignal(r, this.#signal, () => this.cancel()) : await r;
    }
    if (r.data === undefined) {
      // A timeout leaves the stream open; anything else ended it.
      if (r.code !== 'ERR_TACHYON_TIMEOUT') this.#done = true;
      throw fromInfo(r);
    }
    if (r.msgType === MSG_TYPE_STREAM_END) {
      this.#done = true;
      return { value: undefined, done: true };
    }
    if (r.error) this.#done = true;
    return { value: checkReply(r).data, done: false };
  }

  /** Cancels the call (what `break` in `for await` does). */
  async return() {
    this.cancel();
    return { value: undefined, done: true };
  }

  /** Cancels the call: the callee stops at its next item. Idempotent. */
  cancel() {
    if (this.#done) return;
    this.#done = true;
    try {
      this.#n.cancelStream(this.#cid);
    } catch {
      // a closed bus has nothing to cancel
    }
  }

  async [Symbol.asyncDispose]() {
    this.cancel();
  }
}

class RpcBus {
  #n;
  /** Where the native side copies replies and requests (no Buffer made per message). */
  #scratch = null;
  /** `[correlationId, msgType]` of the request in #scratch, as two f64. */
  #regs = null;
  #regsView = null;

  /** @internal */
  constructor(nativeBus) {
    if (!(nativeBus instanceof native.NativeRpcBus)) {
      throw new TypeError('use RpcBus.listen, RpcBus.listenAsync or RpcBus.connect');
    }
    this.#n = nativeBus;
  }

  /** The callee end: creates both rings and waits (blocking) for the caller. */
  static listen(socketPath, capFwd = 1 << 20, capRev = 1 << 20, opts) {
    return new RpcBus(native.NativeRpcBus.listen(arg.str(socketPath, 'socketPath'), arg.u32(capFwd, 'capFwd'), arg.u32(capRev, 'capRev'), timeoutOf(opts)));
  }

  /** The callee end, waiting for the caller off the main thread (opts.signal aborts). */
  static async listenAsync(socketPath, capFwd = 1 << 20, capRev = 1 << 20, opts) {
    arg.str(socketPath, 'socketPath');
    arg.u32(capFwd, 'capFwd');
    arg.u32(capRev, 'capRev');
    const r = await listenUnder(opts, (cancel) =>
      native.NativeRpcBus.listenAsync(socketPath, capFwd, capRev, timeoutOf(opts), cancel));
    if (r instanceof native.NativeRpcBus) return new RpcBus(r);
    throw fromInfo(r);
  }

  /** The caller end. */
  static connect(socketPath, opts) {
    signalOf(opts);
    return new RpcBus(native.NativeRpcBus.connect(arg.str(socketPath, 'socketPath'), timeoutOf(opts)));
  }

  /**
   * As connect, off the main thread: a Promise of the bus, so the event loop keeps
   * running while the handshake waits (opts.signal aborts the wait).
   */
  static async connectAsync(socketPath, opts) {
    arg.str(socketPath, 'socketPath');
    const r = await listenUnder(opts, (cancel) => native.NativeRpcBus.connectAsync(socketPath, timeoutOf(opts), cancel));
    if (r instanceof native.NativeRpcBus) return new RpcBus(r);
    throw fromInfo(r);
  }

  /** Sends a request; returns its correlation id. */
  call(payload, msgType, opts) {
    signalOf(opts);
    return this.#n.call(bytesOf(payload, 'payload'), arg.msgType(msgType), timeoutOf(opts));
  }

  /**
   * Waits for the reply to `correlationId`: `{ data, msgType, correlationId }`.
   * Throws TachyonRpcError for an error reply. On a timeout the call stays in flight
   * (wait again, or abandon it).
   */
  wait(correlationId, opts) {
    signalOf(opts);
    return checkReply(this.#n.wait(arg.id(correlationId), timeoutOf(opts)));
  }

  /**
   * call + wait in one native crossing; returns the reply's data. The timeout bounds
   * the whole call, and a call that times out is abandoned (its late reply is dropped).
   * Throws TachyonRpcError for an error reply.
   */
  /**
   * Sends a oneway request: the callee runs its handler and sends no reply. Fails at
   * once with ERR_TACHYON_FULL when the request ring is full, unless opts.timeoutMs
   * allows waiting for room.
   */
  notify(payload, msgType, opts) {
    signalOf(opts);
    this.#n.notify(bytesOf(payload, 'payload'), arg.msgType(msgType), timeoutOf(opts) ?? 0);
  }

  invoke(payload, msgType, opts) {
    signalOf(opts);
    const scratch = (this.#scratch ??= Buffer.allocUnsafeSlow(SCRATCH));
    const r = this.#n.invokeInto(bytesOf(payload, 'payload'), arg.msgType(msgType), timeoutOf(opts), scratch);
    if (typeof r === 'number') return copyOut(scratch, r);
    if (Buffer.isBuffer(r)) return r;
    throw new TachyonRpcError(r.msgType, r.code, r.message);
  }

  /**
   * Sends a request and resolves with the reply's data without blocking the event
   * loop. Rejects with TachyonRpcError for an error reply, or ERR_TACHYON_TIMEOUT
   * after opts.timeoutMs (the call is then abandoned).
   */
  async callAsync(payload, msgType, opts) {
    return (await this.callAsyncReply(payload, msgType, opts)).data;
  }

  /**
   * As callAsync, resolving with the whole reply `{ data, msgType, correlationId }`.
   * opts.spin (default 1000 rounds, a few microseconds; 0 turns it off): when no other
   * call is in flight, the reply is first awaited by spinning, so a fast callee answers
   * without the pump thread's hops. Pipelined calls never spin.
   */
  async callAsyncReply(payload, msgType, opts) {
    const signal = signalOf(opts);
    arg.msgType(msgType);
    if (signal) {
      // Abortable: the call and the wait apart, so an abort can give up the call.
      const cid = this.#n.call(bytesOf(payload, 'payload'), msgType, timeoutOf(opts));
      const r = await withSignal(this.#n.awaitReply(cid, timeoutOf(opts)), signal, () => this.#n.forget(cid));
      if (r.data === undefined) throw fromInfo(r);
      return checkReply(r);
    }
    const spin = arg.optInt(opts?.spin, 'opts.spin', 0, 0xffffffff) ?? 1000;
    const r = await this.#n.callAsync(bytesOf(payload, 'payload'), msgType, timeoutOf(opts), spin);
    if (r.data === undefined) throw fromInfo(r);
    return checkReply(r);
  }

  /**
   * Starts a server-streaming call; returns a ReplyStream, an async iterable of its
   * items (Buffers, in order): `for await (const item of rpc.stream(payload, 5)) ...`.
   * opts.timeoutMs bounds the send and each item; opts.signal aborts the call. Leaving
   * the loop early (break, throw, return) cancels the call on the callee.
   */
  stream(payload, msgType, opts) {
    const signal = signalOf(opts);
    const timeout = timeoutOf(opts);
    const cid = this.#n.callStream(bytesOf(payload, 'payload'), arg.msgType(msgType), timeout);
    return new ReplyStream(this.#n, cid, timeout, signal);
  }

  /** Gives up on a call; its reply, if it comes, is dropped. */
  abandon(correlationId) {
    this.#n.abandon(arg.id(correlationId));
  }

  /** Calls sent and not yet answered. */
  get inFlight() {
    return this.#n.inFlight;
  }

  /** This side's counters on both rings (as Bus#stats). */
  stats() {
    return this.#n.stats();
  }

  /** Waits for the next request `{ data, msgType, correlationId }`; null on a timeout. */
  serve(opts) {
    signalOf(opts);
    return this.#n.serve(timeoutOf(opts));
  }

  /** Replies to `correlationId`. */
  reply(correlationId, data, msgType, opts) {
    this.#n.reply(arg.id(correlationId), bytesOf(data), arg.msgType(msgType), timeoutOf(opts));
  }

  /** Sends the structured 0xFFFF error reply (the caller throws TachyonRpcError). */
  replyError(correlationId, failedMsgType, code, message, opts) {
    this.#n.replyError(arg.id(correlationId), arg.msgType(failedMsgType, 'failedMsgType'), arg.u32(code, 'code'), String(message), timeoutOf(opts));
  }

  /**
   * Serves requests with `handler(data, request) -> Buffer | Uint8Array | string`
   * until the caller is gone (or `opts.count` requests). A thrown error becomes the
   * error reply (its `rpcCode` sets the code, 2 by default).
   */
  serveForever(handler, opts = {}) {
    signalOf(opts);
    const timeout = timeoutOf(opts);
    const scratch = (this.#scratch ??= Buffer.allocUnsafeSlow(SCRATCH));
    if (this.#regs === null) {
      const ab = new ArrayBuffer(16);
      this.#regs = Buffer.from(ab);
      this.#regsView = new Float64Array(ab);
    }
    const regs = this.#regs;
    const view = this.#regsView;
    // The request object is made only for handlers that take it.
    const wantsRequest = handler.length >= 2;
    const gone = (e) => e.code === 'ERR_TACHYON_PEER_DEAD' || e.code === 'ERR_TACHYON_PEER_CLOSED';
    let served = 0;
    // One native crossing per request: reply to the last one and take the next.
    let got;
    let pending = null; // [correlationId, data, msgType] of a reply not sent yet
    for (;;) {
      const last = opts.count !== undefined && served >= opts.count;
      try {
        if (pending === null) {
          if (last) return served;
          got = this.#n.serveInto(timeout, scratch, regs);
        } else if (last) {
          this.#n.reply(pending[0], pending[1], pending[2], timeout);
          return served;
        } else {
          got = this.#n.replyServeInto(pending[0], pending[1], pending[2], timeout, scratch, regs);
        }
      } catch (e) {
        if (gone(e)) return served;
        throw e;
      }
      pending = null;
      if (got === null) throw timeoutError(opts.timeoutMs);
      const data = typeof got === 'number' ? copyOut(scratch, got) : got;
      const correlationId = view[0];
      const msgType = view[1];
      let out;
      try {
        out = wantsRequest ? handler(data, { data, msgType, correlationId }) : handler(data);
      } catch (e) {
        try {
          this.replyError(correlationId, msgType, e?.rpcCode ?? 2, e?.message ?? String(e));
        } catch (err) {
          if (gone(err)) return served + 1;
          throw err;
        }
        served++;
        continue;
      }
      pending = [correlationId, bytesOf(out ?? EMPTY), msgType];
      served++;
    }
  }

  /** Closes the bus (idempotent); pending async calls fail with ERR_TACHYON_CLOSED. */
  close() {
    this.#n.close();
  }

  /** Whether close() was called. */
  get closed() {
    return this.#n.closed;
  }

  /** Spin only (true) or spin then sleep (false) while waiting. */
  setPollingMode(spinOnly) {
    this.#n.setPollingMode(Boolean(spinOnly));
  }

  [Symbol.dispose]() {
    this.close();
  }
}

module.exports = { RpcBus, ReplyStream, MSG_TYPE_STREAM_END, TachyonError };
