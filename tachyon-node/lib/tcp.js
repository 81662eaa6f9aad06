'use strict';
// RpcClient: the caller over TCP (`tcp://host:port`), with RpcBus's shapes: a blocking
// `invoke` and a Promise `callAsync` that never blocks the event loop, so endpoints and
// generated clients work over it unchanged. Servers: `createRpcServer({ address:
// 'tcp://127.0.0.1:7000', handlers })` (see server.js).
const fs = require('node:fs');
const native = require('./native');
const { fromInfo, withSignal, TachyonRpcError } = require('./errors');
const { bytesOf, timeoutOf, signalOf, listenUnder } = require('./bus');
const arg = require('./args');

/** PEM from a path, PEM text, or a Buffer/Uint8Array of PEM (undefined stays undefined). */
function pemOf(v, what) {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v.includes('-----BEGIN') ? Buffer.from(v) : fs.readFileSync(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError(`tls.${what} must be a file path, PEM text or a Buffer`);
}

/** The native client TLS settings from `{ ca, cert, key, serverName }`. */
function clientTls(tls) {
  if (tls === undefined || tls === null) return undefined;
  if (typeof tls !== 'object') throw new TypeError('tls must be an object { ca, cert?, key?, serverName? }');
  const ca = pemOf(tls.ca, 'ca');
  if (ca === undefined) throw new TypeError("tls.ca is required: the CA that signed the server's certificate");
  return { ca, cert: pemOf(tls.cert, 'cert'), key: pemOf(tls.key, 'key'), serverName: tls.serverName };
}

/** The native server TLS settings from `{ cert, key, ca? }` (ca: require client certificates). */
function serverTls(tls) {
  if (tls === undefined || tls === null) return undefined;
  if (typeof tls !== 'object') throw new TypeError('tls must be an object { cert, key, ca? }');
  const cert = pemOf(tls.cert, 'cert');
  const key = pemOf(tls.key, 'key');
  if (cert === undefined || key === undefined) throw new TypeError('a TLS server needs tls.cert and tls.key');
  return { cert, key, ca: pemOf(tls.ca, 'ca') };
}

/** Checks connect's arguments; the native TLS settings. */
function clientArgs(address, opts) {
  signalOf(opts);
  if (typeof address !== 'string' || !address.startsWith('tcp://')) {
    throw new TypeError('RpcClient.connect takes a tcp://host:port address (RpcBus.connect takes socket paths)');
  }
  if (opts?.connections !== undefined && (!Number.isInteger(opts.connections) || opts.connections < 1)) {
    throw new TypeError(`opts.connections must be a positive integer, got ${opts.connections}`);
  }
  return clientTls(opts?.tls);
}

class RpcClient {
  #n;
  #closed = false;

  /** @internal */
  constructor(n) {
    this.#n = n;
  }

  /**
   * Connects to `address` (`tcp://host:port`); `opts.timeoutMs` bounds it, `opts.connections` (1) sets how many,
   * `opts.tls` ({ ca, cert?, key?, serverName? }: paths, PEM text or Buffers) connects over TLS 1.3.
   */
  static connect(address, opts) {
    signalOf(opts);
    const tls = clientArgs(address, opts);
    return new RpcClient(native.NativeTcpClient.connect(address, timeoutOf(opts), opts?.connections, tls));
  }

  /**
   * As connect, with the TCP and TLS handshakes off the main thread: a Promise of the
   * client (opts.signal rejects it at once; a connection made after that is closed).
   */
  static async connectAsync(address, opts) {
    const tls = clientArgs(address, opts);
    const r = await listenUnder(opts, () =>
      native.NativeTcpClient.connectAsync(address, timeoutOf(opts), opts?.connections, tls));
    if (r instanceof native.NativeTcpClient) return new RpcClient(r);
    throw fromInfo(r);
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
    const r = this.#live().invoke(bytesOf(payload, 'payload'), arg.msgType(msgType), timeoutOf(opts));
    if (Buffer.isBuffer(r)) return r;
    throw new TachyonRpcError(r.msgType, r.code, r.message);
  }

  /** As invoke, without blocking: a Promise of the reply's data (opts.signal aborts the wait). */
  async callAsync(payload, msgType, opts) {
    const signal = signalOf(opts);
    const pending = this.#live().callAsync(Buffer.from(bytesOf(payload, 'payload')), arg.msgType(msgType), timeoutOf(opts));
    const r = await withSignal(pending, signal);
    if (Buffer.isBuffer(r)) return r;
    if (typeof r.msgType === 'number') throw new TachyonRpcError(r.msgType, r.code, r.message);
    throw fromInfo(r);
  }

  /** A oneway request: the handler runs, no reply comes back. */
  notify(payload, msgType, opts) {
    signalOf(opts);
    this.#live().notify(bytesOf(payload, 'payload'), arg.msgType(msgType), timeoutOf(opts));
  }

  /**
   * Starts a server-streaming call; returns a ReplyStream, an async iterable of its items
   * (Buffers, in order). opts.timeoutMs bounds each item; opts.signal aborts the call;
   * leaving the loop early cancels it on the server.
   */
  stream(payload, msgType, opts) {
    const signal = signalOf(opts);
    const timeout = timeoutOf(opts);
    const n = this.#live();
    const cid = n.callStream(bytesOf(payload, 'payload'), arg.msgType(msgType), timeout);
    return new (require('./rpc').ReplyStream)(n, cid, timeout, signal);
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

module.exports = { RpcClient, serverTls };
