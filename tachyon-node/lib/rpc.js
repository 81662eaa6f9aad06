'use strict';
// RpcBus: request/reply between two processes over a pair of rings.
const native = require('./native');
const { fromInfo, checkReply, timeoutError, withSignal, TachyonError, TachyonRpcError } = require('./errors');
const { bytesOf, timeoutOf, signalOf, listenUnder } = require('./bus');

/**
 * One RPC connection. The caller end connects (to a listener or a multi-client
 * server) and calls; the callee end listens and serves.
 */
class RpcBus {
  #n;

  /** @internal */
  constructor(nativeBus) {
    if (!(nativeBus instanceof native.NativeRpcBus)) {
      throw new TypeError('use RpcBus.listen, RpcBus.listenAsync or RpcBus.connect');
    }
    this.#n = nativeBus;
  }

  /** The callee end: creates both rings and waits (blocking) for the caller. */
  static listen(socketPath, capFwd = 1 << 20, capRev = 1 << 20, opts) {
    return new RpcBus(native.NativeRpcBus.listen(socketPath, capFwd, capRev, timeoutOf(opts)));
  }

  /** The callee end, waiting for the caller off the main thread (opts.signal aborts). */
  static async listenAsync(socketPath, capFwd = 1 << 20, capRev = 1 << 20, opts) {
    const r = await listenUnder(opts, (cancel) =>
      native.NativeRpcBus.listenAsync(socketPath, capFwd, capRev, timeoutOf(opts), cancel));
    if (r instanceof native.NativeRpcBus) return new RpcBus(r);
    throw fromInfo(r);
  }

  /** The caller end. */
  static connect(socketPath, opts) {
    signalOf(opts);
    return new RpcBus(native.NativeRpcBus.connect(socketPath, timeoutOf(opts)));
  }

  /** Sends a request; returns its correlation id. */
  call(payload, msgType, opts) {
    signalOf(opts);
    return this.#n.call(bytesOf(payload, 'payload'), msgType, timeoutOf(opts));
  }

  /**
   * Waits for the reply to `correlationId`: `{ data, msgType, correlationId }`.
   * Throws TachyonRpcError for an error reply. On a timeout the call stays in flight
   * (wait again, or abandon it).
   */
  wait(correlationId, opts) {
    signalOf(opts);
    return checkReply(this.#n.wait(correlationId, timeoutOf(opts)));
  }

  /**
   * call + wait in one native crossing; returns the reply's data. The timeout bounds
   * the whole call, and a call that times out is abandoned (its late reply is dropped).
   * Throws TachyonRpcError for an error reply.
   */
  invoke(payload, msgType, opts) {
    signalOf(opts);
    const r = this.#n.invoke(bytesOf(payload, 'payload'), msgType, timeoutOf(opts));
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
    if (signal) {
      // Abortable: the call and the wait apart, so an abort can give up the call.
      const cid = this.#n.call(bytesOf(payload, 'payload'), msgType, timeoutOf(opts));
      const r = await withSignal(this.#n.awaitReply(cid, timeoutOf(opts)), signal, () => this.#n.forget(cid));
      if (r.data === undefined) throw fromInfo(r);
      return checkReply(r);
    }
    const spin = opts?.spin ?? 1000;
    const r = await this.#n.callAsync(bytesOf(payload, 'payload'), msgType, timeoutOf(opts), spin);
    if (r.data === undefined) throw fromInfo(r);
    return checkReply(r);
  }

  /** Gives up on a call; its reply, if it comes, is dropped. */
  abandon(correlationId) {
    this.#n.abandon(correlationId);
  }

  /** Calls sent and not yet answered. */
  get inFlight() {
    return this.#n.inFlight;
  }

  /** Waits for the next request `{ data, msgType, correlationId }`; null on a timeout. */
  serve(opts) {
    signalOf(opts);
    return this.#n.serve(timeoutOf(opts));
  }

  /** Replies to `correlationId`. */
  reply(correlationId, data, msgType, opts) {
    this.#n.reply(correlationId, bytesOf(data), msgType, timeoutOf(opts));
  }

  /** Sends the structured 0xFFFF error reply (the caller throws TachyonRpcError). */
  replyError(correlationId, failedMsgType, code, message, opts) {
    this.#n.replyError(correlationId, failedMsgType, code, String(message), timeoutOf(opts));
  }

  /**
   * Serves requests with `handler(data, request) -> Buffer | Uint8Array | string`
   * until the caller is gone (or `opts.count` requests). A thrown error becomes the
   * error reply (its `rpcCode` sets the code, 2 by default).
   */
  serveForever(handler, opts = {}) {
    let served = 0;
    for (;;) {
      if (opts.count !== undefined && served >= opts.count) return served;
      let req;
      try {
        req = this.serve(opts);
      } catch (e) {
        if (e.code === 'ERR_TACHYON_PEER_DEAD' || e.code === 'ERR_TACHYON_PEER_CLOSED') return served;
        throw e;
      }
      if (req === null) throw timeoutError(opts.timeoutMs);
      let out;
      try {
        out = handler(req.data, req);
      } catch (e) {
        this.replyError(req.correlationId, req.msgType, e?.rpcCode ?? 2, e?.message ?? String(e));
        served++;
        continue;
      }
      this.reply(req.correlationId, out ?? Buffer.alloc(0), req.msgType);
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

module.exports = { RpcBus, TachyonError };
