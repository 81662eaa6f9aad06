'use strict';
// RpcClient: the caller over TCP (`tcp://host:port`), with RpcBus's shapes: a blocking
// `invoke` and a Promise `callAsync` that never blocks the event loop, so endpoints and
// generated clients work over it unchanged. Servers: `createRpcServer({ address:
// 'tcp://127.0.0.1:7000', handlers })` (see server.js).
const native = require('./native');
const { fromInfo, withSignal, TachyonRpcError } = require('./errors');
const { bytesOf, timeoutOf, signalOf } = require('./bus');

class RpcClient {
  #n;
  #closed = false;

  /** @internal */
  constructor(n) {
    this.#n = n;
  }

  /** Connects to `address` (`tcp://host:port`); `opts.timeoutMs` bounds it, `opts.connections` (1) sets how many. */
  static connect(address, opts) {
    signalOf(opts);
    if (typeof address !== 'string' || !address.startsWith('tcp://')) {
      throw new TypeError('RpcClient.connect takes a tcp://host:port address (RpcBus.connect takes socket paths)');
    }
    return new RpcClient(native.NativeTcpClient.connect(address, timeoutOf(opts), opts?.connections));
  }

  #live() {
    if (this.#closed) {
      const e = new Error('the client is closed');
      e.code = 'ERR_TACHYON_CLOSED';
      throw e;
    }
    return this.#n;
  }

  /** Calls `msgType` and blocks until the reply: its data. Throws TachyonRpcError for an error reply. */
  invoke(payload, msgType, opts) {
    signalOf(opts);
    const r = this.#live().invoke(bytesOf(payload, 'payload'), msgType, timeoutOf(opts));
    if (Buffer.isBuffer(r)) return r;
    throw new TachyonRpcError(r.msgType, r.code, r.message);
  }

  /** As invoke, without blocking: a Promise of the reply's data (opts.signal aborts the wait). */
  async callAsync(payload, msgType, opts) {
    const signal = signalOf(opts);
    const pending = this.#live().callAsync(Buffer.from(bytesOf(payload, 'payload')), msgType, timeoutOf(opts));
    const r = await withSignal(pending, signal);
    if (Buffer.isBuffer(r)) return r;
    if (typeof r.msgType === 'number') throw new TachyonRpcError(r.msgType, r.code, r.message);
    throw fromInfo(r);
  }

  /** A oneway request: the handler runs, no reply comes back. */
  notify(payload, msgType, opts) {
    signalOf(opts);
    this.#live().notify(bytesOf(payload, 'payload'), msgType, timeoutOf(opts));
  }

  /** Server streaming is carried over TCP by the core, not yet by this client. */
  stream() {
    throw new TypeError('server-streaming calls over TCP are not exposed to Node yet; use RpcBus over shared memory');
  }

  /** Calls sent and not answered. */
  get inFlight() {
    return this.#n.inFlight;
  }

  /** The address it connected to. */
  get address() {
    return this.#n.address;
  }

  /** Whether close() was called. */
  get closed() {
    return this.#closed;
  }

  /** Stops using the client (its connections close when it is collected). */
  close() {
    this.#closed = true;
  }

  [Symbol.dispose]() {
    this.close();
  }
}

module.exports = { RpcClient };
